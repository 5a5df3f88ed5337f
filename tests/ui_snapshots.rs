//! Snapshots of whole screens, drawn from hand-made view-models with the halfblocks
//! picker (deterministic), at 120x36 unless the test is about size.

use std::path::PathBuf;
use std::sync::Arc;

use image::{DynamicImage, Rgb, RgbImage};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Rect, Size as CellSize};
use ratatui_image::Resize;
use ratatui_image::picker::Picker;
use time::OffsetDateTime;
use time::macros::datetime;
use wandash::dashscope::{JobSpec, Model, Size};
use wandash::store::Pauses;
use wandash::ui::draw::{draw, frame_layout};
use wandash::ui::gallery::{Gallery, GalleryScope, GallerySnapshot, Thumb, Tile};
use wandash::ui::keys::KeyMap;
use wandash::ui::state::{
    AppState, BackendLabel, BatchProgress, Header, ImageView, JobDetailView, JobId, JobRow,
    JobState, Mode, PreviewImage, ReadyImage, Tab, TabCounts,
};
use wandash::ui::update::{Command, DataSnapshot, ListRequest};

const NOW: OffsetDateTime = datetime!(2026-11-20 12:00:00 UTC);

fn header() -> Header {
    Header {
        backend: BackendLabel::Simulator,
        protocol: "halfblocks".into(),
        counts: TabCounts([0; 6]),
        images_today: 0,
        spend_today_cny: 0.0,
        batch: BatchProgress::default(),
        engine_stopped: None,
        pauses: Pauses::default(),
    }
}

/// The whole store's counts per tab with `remaining` jobs left to run, as the worker
/// reports them for the batch progress.
fn queue_left(remaining: u64) -> TabCounts {
    TabCounts([remaining, remaining, remaining, 0, 0, 0])
}

fn render(state: &AppState) -> String {
    let area = state.layout.area;
    let mut terminal = Terminal::new(TestBackend::new(area.width, area.height)).unwrap();
    let mut drawn = None;
    terminal
        .draw(|frame| drawn = Some(draw(state, &KeyMap::default(), frame)))
        .unwrap();
    assert_eq!(
        drawn,
        Some(state.layout),
        "the frame reports the layout the state was made for"
    );
    terminal.backend().to_string()
}

fn snapshot(name: &str, screen: String) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../src/ui/snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, screen));
}

const PROMPTS: [&str; 6] = [
    "a lighthouse at dusk, oil painting, warm light over a calm sea",
    "a red fox in fresh snow, morning fog",
    "city street at night in the rain, neon reflections",
    "a bowl of ramen, top view, studio light",
    "portrait of an old fisherman, charcoal sketch",
    "a tiny robot watering plants on a balcony",
];

const STATES: [JobState; 6] = [
    JobState::Running,
    JobState::Queued,
    JobState::Succeeded,
    JobState::Failed,
    JobState::Cancelled,
    JobState::Succeeded,
];

fn row(i: usize) -> JobRow {
    let state = STATES[i % STATES.len()];
    JobRow {
        id: JobId(100 - i as i64),
        state,
        model: Model::ALL[i % 3],
        prompt: PROMPTS[i % PROMPTS.len()].to_string(),
        created_at: NOW - time::Duration::seconds(37 * (i as i64 + 1) * (i as i64 + 1)),
        images_ok: if state == JobState::Succeeded { 4 } else { 0 },
        images_expected: 4,
    }
}

fn detail_for(row: &JobRow) -> JobDetailView {
    let mut spec = JobSpec::new(row.model, row.prompt.clone());
    spec.size = Some(Size::new(1024, 1024).into());
    spec.seed = Some(1234);
    spec.negative_prompt = Some("blurry, low quality".into());
    let succeeded = row.state == JobState::Succeeded;
    JobDetailView {
        id: row.id,
        state: row.state,
        spec,
        task_id: Some("0385dc79-5ff8-4d82-bcb6-5d2a5c2a8b1c".into()),
        created_at: row.created_at,
        submitted_at: Some(row.created_at + time::Duration::seconds(1)),
        scheduled_at: Some(row.created_at + time::Duration::seconds(3)),
        ended_at: succeeded.then_some(row.created_at + time::Duration::seconds(21)),
        attempts: 1,
        error: None,
        actual_prompt: succeeded.then(|| format!("{}, highly detailed, soft light", row.prompt)),
        cost_cny: succeeded.then_some(0.56),
        parent: None,
        submitted_by: None,
        // A succeeded job saved three of its four images; the fourth was blocked.
        images: if succeeded {
            (0..4)
                .map(|i| ImageView {
                    index: i,
                    path: (i < 3)
                        .then(|| PathBuf::from(format!("/data/wandash/images/{}/{i}.png", row.id))),
                    width: (i < 3).then_some(1024),
                    height: (i < 3).then_some(1024),
                    error: (i == 3)
                        .then(|| "DataInspectionFailed: output image blocked".to_string()),
                    starred: i == 1,
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// A state with 40 jobs in the store, the window loaded, row `selected` selected and its
/// detail loaded, as the data worker would leave it.
fn mixed(area: Rect, selected: u64) -> AppState {
    let mut state = AppState::new(frame_layout(area), NOW, header());
    state.header.counts = TabCounts([40, 6, 7, 14, 7, 6]);
    state.header.images_today = 56;
    state.header.spend_today_cny = 7.84;
    state.header.batch = BatchProgress {
        remaining: 13,
        per_minute: Some(6.5),
    };
    state.list.selected = selected;
    // Ask for the window the way the app does, and answer it the way the worker does.
    let request = state.list_request();
    let rows: Vec<JobRow> = (request.offset..request.offset + request.limit)
        .map(|i| row(i as usize))
        .collect();
    let detail = rows
        .get((request.selected - request.offset) as usize)
        .map(detail_for);
    let more = state.apply_data(DataSnapshot {
        request,
        counts: state.header.counts,
        images_today: 56,
        spend_today_cny: 7.84,
        pauses: Pauses::default(),
        queue: queue_left(13),
        total: 40,
        rows,
        detail,
    });
    assert!(more.is_empty());
    state
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::from(code))
}

#[test]
fn empty_store() {
    let state = AppState::new(frame_layout(Rect::new(0, 0, 120, 36)), NOW, header());
    snapshot("empty_store", render(&state));
}

#[test]
fn mixed_list_with_detail() {
    // Row 2 has succeeded: the detail lists its images, one with an error.
    let state = mixed(Rect::new(0, 0, 120, 40), 2);
    let screen = render(&state);
    assert!(screen.contains("Jobs 1-"), "{screen}");
    assert!(screen.contains("DataInspectionFailed"), "{screen}");
    snapshot("mixed_list_with_detail", screen);
}

#[test]
fn small_terminal_80x24() {
    let state = mixed(Rect::new(0, 0, 80, 24), 0);
    snapshot("small_80x24", render(&state));
}

#[test]
fn large_terminal_250x70() {
    let state = mixed(Rect::new(0, 0, 250, 70), 5);
    let screen = render(&state);
    // Every row of the store fits; all 40 are drawn.
    assert!(screen.contains("Jobs 1-40 of 40"), "{screen}");
}

#[test]
fn help_overlay_lists_the_key_table() {
    let keys = KeyMap::default();
    // The whole table on one screen at 160x50 (smaller screens scroll it: see below).
    let mut state = mixed(Rect::new(0, 0, 160, 50), 0);
    state.handle(&keys, &key(KeyCode::Char('?')));
    assert_eq!(state.mode, Mode::Help);
    let screen = render(&state);
    for binding in &keys.bindings {
        assert!(
            screen.contains(binding.help),
            "help lacks `{}`:\n{screen}",
            binding.help
        );
    }
    snapshot("help_overlay", screen);
}

#[test]
fn editor_shows_each_error_beside_its_field() {
    let keys = KeyMap::default();
    let mut state = mixed(Rect::new(0, 0, 120, 36), 0);
    state.handle(&keys, &key(KeyCode::Char('n')));
    assert_eq!(state.mode, Mode::Editor);
    for c in "a lighthouse at dusk".chars() {
        state.handle(&keys, &key(KeyCode::Char(c)));
    }
    // Tab to the fields: model, size, n. Type a size that breaks the model's rule and an n
    // that is not a number.
    for _ in 0..2 {
        state.handle(&keys, &key(KeyCode::Tab));
    }
    for c in "9000*16".chars() {
        state.handle(&keys, &key(KeyCode::Char(c)));
    }
    state.handle(&keys, &key(KeyCode::Tab));
    state.handle(&keys, &key(KeyCode::Char('7')));
    let editor = state.editor.as_ref().unwrap();
    assert!(
        editor.error_for("size").is_some() && editor.error_for("n").is_some(),
        "{:?}",
        editor.errors
    );
    // Ctrl-s refuses to submit.
    let commands = state.handle(
        &keys,
        &Event::Key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL)),
    );
    assert!(commands.is_empty());
    snapshot("editor_validation_errors", render(&state));
}

#[test]
fn preview_draws_a_generated_image() {
    let mut state = mixed(Rect::new(0, 0, 120, 36), 2);
    let key = state
        .wanted_image()
        .expect("a succeeded job with saved images wants a preview");
    let picture = DynamicImage::ImageRgb8(RgbImage::from_fn(64, 64, |x, y| {
        Rgb([
            (x * 4) as u8,
            (y * 4) as u8,
            if (x / 16 + y / 16) % 2 == 0 { 200 } else { 40 },
        ])
    }));
    let protocol = Picker::halfblocks()
        .new_protocol(
            picture,
            CellSize::new(key.width, key.height),
            Resize::Fit(None),
        )
        .unwrap();
    state.preview = PreviewImage::Ready(ReadyImage {
        key,
        protocol: Arc::new(protocol),
    });
    let screen = render(&state);
    assert!(
        screen.contains('▀') || screen.contains('▄'),
        "no halfblocks drawn:\n{screen}"
    );
    snapshot("preview_image", screen);

    // Moving to a job without images leaves no picture behind.
    let keys = KeyMap::default();
    assert_eq!(state.handle(&keys, &key_event('j')), vec![Command::Refresh]);
    let screen = render(&state);
    assert!(
        !screen.contains('▀') && !screen.contains('▄'),
        "image residue:\n{screen}"
    );
}

fn key_event(c: char) -> Event {
    key(KeyCode::Char(c))
}

#[test]
fn hostile_prompt_is_drawn_harmlessly() {
    let mut state = mixed(Rect::new(0, 0, 120, 36), 0);
    let hostile = "evil\u{1b}]52;c;ZXZpbA==\u{7} prompt \u{202E}desrever\u{202C} \u{1b}[2J\u{9b}31m end\u{200B}";
    state.list.rows[0].prompt = hostile.to_string();
    if let Some(detail) = state.detail.as_mut() {
        detail.spec.prompt = hostile.to_string();
        detail.error = Some(format!("service said: {hostile}"));
    }
    let screen = render(&state);
    for bad in [
        '\u{1b}', '\u{7}', '\u{202E}', '\u{202C}', '\u{9b}', '\u{200B}',
    ] {
        assert!(!screen.contains(bad), "{bad:?} reached the screen");
    }
    assert!(
        screen.contains("evil]52;c;ZXZpbA== prompt desrever [2J31m"),
        "{screen}"
    );
    snapshot("hostile_prompt", screen);
}

#[test]
fn new_rows_keep_the_selection_on_its_job() {
    // Row 2 (job 98) is selected; then three new jobs arrive at the top of the list.
    let mut state = mixed(Rect::new(0, 0, 120, 40), 2);
    let chosen = state.list.selected_row().unwrap().id;
    let newer: Vec<JobRow> = (0..3)
        .map(|i| JobRow {
            id: JobId(103 - i),
            state: JobState::Queued,
            model: Model::ALL[0],
            prompt: format!("a new job {i}"),
            created_at: NOW,
            images_ok: 0,
            images_expected: 1,
        })
        .collect();
    let request = state.list_request();
    let mut rows = newer;
    rows.extend((0..request.limit - 3).map(|i| row(i as usize)));
    // The worker loaded the detail of the job now at the old position: not the chosen one.
    let detail = detail_for(&rows[request.selected as usize]);
    let mut counts = state.header.counts;
    counts.0[0] += 3;
    counts.0[1] += 3;
    let commands = state.apply_data(DataSnapshot {
        request,
        counts,
        images_today: 56,
        spend_today_cny: 7.84,
        pauses: Pauses::default(),
        queue: queue_left(16),
        total: 43,
        rows: rows.clone(),
        detail: Some(detail),
    });
    assert_eq!(state.list.selected, 5);
    assert_eq!(state.list.selected_row().unwrap().id, chosen);
    assert_eq!(commands, vec![Command::Refresh], "the chosen job's detail");
    // The worker answers for the new position.
    let request = state.list_request();
    assert_eq!(request.selected, 5);
    let detail = detail_for(&rows[5]);
    assert!(
        state
            .apply_data(DataSnapshot {
                request,
                counts,
                images_today: 56,
                spend_today_cny: 7.84,
                pauses: Pauses::default(),
                queue: queue_left(16),
                total: 43,
                rows,
                detail: Some(detail),
            })
            .is_empty()
    );
    assert_eq!(state.selected_detail().unwrap().id, chosen);
    let screen = render(&state);
    assert!(screen.contains("Jobs 1-"), "{screen}");
    snapshot("new_rows_keep_selection", screen);
}

#[test]
fn help_overlay_fits_its_descriptions_at_160x48_and_80x24() {
    let keys = KeyMap::default();
    for (width, height, name) in [(160, 48, "help_160x48"), (80, 24, "help_80x24")] {
        let mut state = mixed(Rect::new(0, 0, width, height), 0);
        state.handle(&keys, &key(KeyCode::Char('?')));
        let screen = render(&state);
        // Every description that shows, shows whole.
        assert!(screen.contains("fork the job into the editor"), "{screen}");
        assert!(
            screen.contains("copy prompt (image path in preview)"),
            "{screen}"
        );
        snapshot(name, screen);
    }
    // Scrolled to its end, the small screen shows the last of the table.
    let mut state = mixed(Rect::new(0, 0, 80, 24), 0);
    state.handle(&keys, &key(KeyCode::Char('?')));
    for _ in 0..keys.help_layout(state.layout.area).overflow {
        state.handle(&keys, &key(KeyCode::Char('j')));
    }
    let screen = render(&state);
    assert!(screen.contains("close help"), "{screen}");
}

#[test]
fn a_list_with_no_room_for_rows_names_no_range() {
    let state = mixed(Rect::new(0, 0, 80, 8), 0);
    assert_eq!(state.visible_rows(), 0);
    let screen = render(&state);
    assert!(screen.contains("Jobs (40)"), "{screen}");
    assert!(!screen.contains("1-0"), "{screen}");
}

#[test]
fn the_header_shows_a_dash_until_a_rate_is_measured() {
    let mut state = mixed(Rect::new(0, 0, 120, 36), 0);
    state.header.batch.per_minute = None;
    let screen = render(&state);
    assert!(screen.contains("13 left -/min"), "{screen}");
}

#[test]
fn the_editor_shows_what_the_job_will_cost() {
    use std::collections::BTreeMap;
    use wandash::ui::state::Prices;
    let keys = KeyMap::default();
    let mut state = mixed(Rect::new(0, 0, 120, 36), 0);
    state.prices = Prices(BTreeMap::from([(Model::Wanx21T2iTurbo, 0.5)]));
    state.handle(&keys, &key(KeyCode::Char('n')));
    for c in "a lighthouse".chars() {
        state.handle(&keys, &key(KeyCode::Char(c)));
    }
    // Tab to n (model, size, n) and ask for three images.
    for _ in 0..3 {
        state.handle(&keys, &key(KeyCode::Tab));
    }
    state.handle(&keys, &key(KeyCode::Char('3')));
    let screen = render(&state);
    assert!(screen.contains("cost 3 x 0.50 = 1.50 CNY"), "{screen}");
    snapshot("editor_cost", screen);
}

#[test]
fn the_stats_view_shows_spend_and_free_images_per_model_at_80x24() {
    use wandash::dashscope::{Region, Timestamp};
    use wandash::store::{ModelTally, MoneyRows, Periods, Tally, money_stats};
    use wandash::ui::stats::StatsState;
    let keys = KeyMap::default();
    let mut state = mixed(Rect::new(0, 0, 80, 24), 0);
    assert_eq!(
        state.handle(&keys, &key(KeyCode::Char('$'))),
        vec![Command::WatchStats(true)]
    );
    assert_eq!(state.mode, Mode::Stats);
    assert!(render(&state).contains("loading…"));

    let tally = |images: u64, cost_cny: f64| Tally { images, cost_cny };
    let rows = MoneyRows {
        ended: vec![
            ModelTally {
                model: Model::Wanx21T2iTurbo,
                all: tally(48, 6.72),
                today: tally(4, 0.56),
                month: tally(12, 1.68),
                since_free: tally(48, 6.72),
            },
            ModelTally {
                model: Model::Wanx20T2iTurbo,
                all: tally(520, 20.8),
                today: tally(20, 0.8),
                month: tally(100, 4.0),
                since_free: tally(520, 20.8),
            },
        ],
        at_service: Default::default(),
    };
    let periods = Periods::at(NOW, Timestamp::from(datetime!(2026-10-01 00:00 UTC)));
    let figures = money_stats(&rows, &periods, Region::Beijing, Model::default_price_cny);
    state.stats = StatsState::Ready(Box::new(figures));
    let screen = render(&state);
    for text in [
        "prices for cn-beijing",
        "wanx2.1-t2i-turbo",
        "4 ¥0.56",
        "452/500",
        "0/500",
        "counted locally",
        "2026-10-01",
    ] {
        assert!(screen.contains(text), "`{text}` in:\n{screen}");
    }
    snapshot("stats_80x24", screen);

    assert_eq!(
        state.handle(&keys, &key(KeyCode::Esc)),
        vec![Command::WatchStats(false)]
    );
    assert_eq!(state.mode, Mode::Browse);
}

fn queued_row(id: i64, prompt: &str) -> JobRow {
    JobRow {
        id: JobId(id),
        state: JobState::Queued,
        model: Model::Wanx21T2iTurbo,
        prompt: prompt.to_string(),
        created_at: NOW - time::Duration::seconds(60 * id),
        images_ok: 0,
        images_expected: 1,
    }
}

/// Answers the state's request with `rows` (the whole list), as the data worker would.
fn answer_with(state: &mut AppState, rows: &[JobRow], pauses: &Pauses) -> Vec<Command> {
    let request = state.list_request();
    let detail = rows
        .get(request.selected as usize)
        .map(|row| JobDetailView {
            task_id: None,
            submitted_at: None,
            scheduled_at: None,
            attempts: 0,
            ..detail_for(row)
        });
    state.apply_data(DataSnapshot {
        request,
        counts: TabCounts([5, 5, 5, 0, 0, 0]),
        images_today: 0,
        spend_today_cny: 0.0,
        pauses: pauses.clone(),
        queue: queue_left(5),
        total: rows.len() as u64,
        rows: rows.to_vec(),
        detail,
    })
}

#[test]
fn a_job_sent_to_the_top_keeps_the_selection_and_the_header_says_paused() {
    let keys = KeyMap::default();
    let mut state = AppState::new(frame_layout(Rect::new(0, 0, 120, 36)), NOW, header());
    let pauses = Pauses {
        all: false,
        models: [Model::Wanx21T2iTurbo].into_iter().collect(),
    };
    let mut rows: Vec<JobRow> = (1..=5)
        .map(|id| queued_row(id, &format!("queued job number {id}")))
        .collect();
    assert_eq!(
        state.handle(&keys, &key(KeyCode::Char('2'))),
        vec![Command::Refresh]
    );
    answer_with(&mut state, &rows, &pauses);
    for _ in 0..3 {
        state.handle(&keys, &key(KeyCode::Char('j')));
        answer_with(&mut state, &rows, &pauses);
    }
    let chosen = state.list.selected_row().unwrap().id;
    assert_eq!(chosen, JobId(4));

    let commands = state.handle(&keys, &key(KeyCode::Char('T')));
    assert_eq!(commands, vec![Command::MoveToTop(chosen), Command::Refresh]);
    // The store moved it: the worker's next answer lists it first.
    let moved = rows.remove(3);
    rows.insert(0, moved);
    assert!(answer_with(&mut state, &rows, &pauses).is_empty());
    assert_eq!(state.list.selected, 0);
    assert_eq!(state.selected_detail().unwrap().id, chosen);
    let screen = render(&state);
    assert!(screen.contains("PAUSED: wanx2.1-t2i-turbo"), "{screen}");
    snapshot("queue_top_paused", screen);
}

#[test]
fn cancelling_a_job_at_the_service_asks_because_it_may_be_billed() {
    let keys = KeyMap::default();
    // Row 0 is running.
    let mut state = mixed(Rect::new(0, 0, 120, 40), 0);
    assert!(state.handle(&keys, &key(KeyCode::Char('c'))).is_empty());
    let screen = render(&state);
    assert!(screen.contains("it may be billed"), "{screen}");
    snapshot("cancel_billed_confirm", screen);
}

/// A picture as the studio worker makes it: a 1024x1024 image's small copy, a gradient
/// with no red, so the painter's tint (half of a full red) is told apart by its red.
fn studio_picture() -> Arc<wandash::ui::studio::Picture> {
    Arc::new(wandash::ui::studio::Picture {
        width: 1024,
        height: 1024,
        small: RgbImage::from_fn(64, 64, |x, y| Rgb([0, 60 + x as u8 * 2, 60 + y as u8 * 2])),
    })
}

/// The screen's text, then a map of the picture's cells: `#` where the painter's tint
/// shows, `.` elsewhere (text snapshots carry no colours).
fn render_with_tint(state: &AppState, area: Rect) -> String {
    use ratatui::style::Color;
    let mut terminal = Terminal::new(TestBackend::new(area.width, area.height)).unwrap();
    terminal
        .draw(|frame| {
            draw(state, &KeyMap::default(), frame);
        })
        .unwrap();
    let buffer = terminal.backend().buffer().clone();
    let image = frame_layout(area).full_image;
    let tinted = |color: Color| matches!(color, Color::Rgb(r, _, _) if r > 0);
    let mut map = String::new();
    for y in image.y..image.bottom() {
        for x in image.x..image.right() {
            let cell = &buffer[(x, y)];
            map.push(match cell.symbol() {
                "▀" if tinted(cell.bg) || tinted(cell.fg) => '#',
                "▀" => '.',
                "+" => '+',
                _ => ' ',
            });
        }
        map.push('\n');
    }
    format!("{}\n--- tint ---\n{map}", terminal.backend())
}

#[test]
fn the_mask_painter_shows_the_painted_region_over_the_image() {
    use wandash::ui::studio::{StudioCommand, StudioEvent};
    let keys = KeyMap::default();
    let area = Rect::new(0, 0, 80, 24);
    let mut state = mixed(area, 2);
    let commands = state.handle(&keys, &key_event('m'));
    assert_eq!(state.mode, Mode::Painter);
    let path = state.studio.painter.as_ref().unwrap().base.clone();
    assert_eq!(
        commands,
        vec![Command::Studio(StudioCommand::LoadPicture(path.clone()))]
    );
    state.studio_event(StudioEvent::Picture(path, Ok(studio_picture())));
    // Two dabs down and to the right, then the rectangle between them.
    for c in "llllljjj ".chars() {
        state.handle(&keys, &key_event(c));
    }
    for c in "llllljj ".chars() {
        state.handle(&keys, &key_event(c));
    }
    state.handle(&keys, &key_event('r'));
    let mask = state
        .studio
        .painter
        .as_ref()
        .unwrap()
        .mask
        .as_ref()
        .unwrap();
    assert_eq!((mask.width(), mask.height()), (1024, 1024));
    let painted = mask.edit_count();
    assert!(painted > 0 && painted < 1024 * 1024, "{painted}");
    let screen = render_with_tint(&state, area);
    assert!(screen.contains("mask · job 98 · 1024x1024"), "{screen}");
    assert!(screen.contains('#') && screen.contains('.'), "{screen}");
    snapshot("painter_painted_region", screen);
}

/// Three succeeded jobs that differ in seed, prompt, model and negative prompt, marked
/// with Space and compared with `C`, their pictures loaded.
fn comparing_three(area: Rect) -> AppState {
    use wandash::ui::studio::{StudioCommand, StudioEvent};
    let keys = KeyMap::default();
    // Marked on a screen that shows all their rows, then compared at `area`.
    let mut state = mixed(Rect::new(0, 0, 200, 60), 2);
    let mut details = Vec::new();
    for (i, (prompt, seed)) in [
        ("a lighthouse at dusk, oil painting", 1234),
        ("a lighthouse at dawn, oil painting", 99),
        ("a lighthouse at dusk, watercolour", 1234),
    ]
    .into_iter()
    .enumerate()
    {
        let mut detail = detail_for(&row(2 + 3 * i));
        detail.spec.prompt = prompt.to_string();
        detail.spec.seed = Some(seed);
        if i == 2 {
            detail.spec.model = Model::Wanx21T2iPlus;
            detail.spec.negative_prompt = None;
        }
        details.push(detail);
    }
    for detail in &details {
        // Select the job's row and mark it.
        let position = state
            .list
            .rows
            .iter()
            .position(|r| r.id == detail.id)
            .unwrap() as u64;
        state.list.selected = position;
        state.list.selected_id = Some(detail.id);
        state.handle(&keys, &key_event(' '));
    }
    let ids: Vec<JobId> = details.iter().map(|d| d.id).collect();
    assert_eq!(state.studio.marks, ids);
    state.laid_out(frame_layout(area));
    let commands = state.handle(&keys, &key_event('C'));
    assert_eq!(state.mode, Mode::Compare);
    assert_eq!(
        commands,
        vec![Command::Studio(StudioCommand::LoadCompare(ids))]
    );
    let asked = state.studio_event(StudioEvent::CompareLoaded(Ok(details)));
    assert_eq!(asked.len(), 3, "one picture per column: {asked:?}");
    for command in asked {
        if let Command::Studio(StudioCommand::LoadPicture(path)) = command {
            state.studio_event(StudioEvent::Picture(path, Ok(studio_picture())));
        }
    }
    state
}

/// A tile of job `job`: its image `index`, the job's seed 7000 + job.
fn gallery_tile(job: i64, index: u32, state: JobState) -> Tile {
    let mut spec = JobSpec::new(Model::Wanx21T2iTurbo, PROMPTS[job as usize % PROMPTS.len()]);
    spec.seed = Some(7000 + job as u64);
    Tile {
        job: JobId(job),
        index,
        path: PathBuf::from(format!("/data/wandash/images/{job}/{index}.png")),
        state,
        spec,
        starred: (job + i64::from(index)) % 5 == 0,
    }
}

/// A screen of `area` with the gallery of `scope` open, the data worker's answer of
/// `tiles` (of `total`) applied, and the tiles on screen given halfblock thumbnails of
/// pictures that differ per tile, as the thumbnail workers would leave them.
fn gallery_screen(area: Rect, scope: GalleryScope, tiles: Vec<Tile>, total: u64) -> AppState {
    let mut state = AppState::new(frame_layout(area), NOW, header());
    state.header.counts = TabCounts([30, 0, 0, 30, 0, 0]);
    let gallery = Gallery::new(scope, Tab::All, String::new());
    let request = gallery.request(state.gallery_shape());
    state.gallery = Some(gallery);
    state.mode = Mode::Gallery;
    let tiles = tiles
        .into_iter()
        .skip(request.offset as usize)
        .take(request.limit as usize)
        .collect();
    let more = state.apply_gallery(GallerySnapshot {
        request,
        total,
        tiles,
    });
    assert!(more.is_empty(), "the answer covers the screen");
    let (screen, _) = state.thumbnails_wanted();
    assert!(!screen.is_empty());
    let thumbs = screen
        .into_iter()
        .enumerate()
        .map(|(i, key)| {
            let shade = (i * 37 % 200) as u8;
            let picture = DynamicImage::ImageRgb8(RgbImage::from_fn(256, 256, |x, y| {
                Rgb([shade + (x / 8) as u8, (y / 2) as u8, 255 - shade])
            }));
            let protocol = Picker::halfblocks()
                .new_protocol(
                    picture,
                    CellSize::new(key.width, key.height),
                    Resize::Fit(None),
                )
                .unwrap();
            (key, Thumb::Ready(Arc::new(protocol)))
        })
        .collect();
    state.gallery.as_mut().unwrap().thumbs = thumbs;
    state
}

#[test]
fn compare_shows_three_jobs_and_only_what_differs_at_80x24_and_200x60() {
    for (width, height, name) in [(80, 24, "compare_80x24"), (200, 60, "compare_200x60")] {
        let state = comparing_three(Rect::new(0, 0, width, height));
        let screen = render(&state);
        for shown in [
            "job 98",
            "job 95",
            "job 92",
            "seed 1234",
            "seed 99",
            "model",
            "negative",
        ] {
            assert!(
                screen.contains(shown),
                "{shown} at {width}x{height}:\n{screen}"
            );
        }
        // The same size in every job: not listed.
        assert!(!screen.contains("size"), "{screen}");
        assert!(screen.contains('▀'), "the pictures show:\n{screen}");
        snapshot(name, screen);
    }
    // 2 picks the second job: the store is asked to record it.
    let keys = KeyMap::default();
    let mut state = comparing_three(Rect::new(0, 0, 120, 36));
    let commands = state.handle(&keys, &key_event('2'));
    assert_eq!(
        commands,
        vec![Command::Studio(
            wandash::ui::studio::StudioCommand::RecordWinner {
                winner: JobId(95),
                others: vec![JobId(98), JobId(92)],
            }
        )]
    );
    assert!(render(&state).contains("winner"));
}

#[test]
fn the_detail_names_the_job_a_variation_came_from() {
    let mut state = mixed(Rect::new(0, 0, 120, 40), 2);
    state.detail.as_mut().unwrap().parent = Some(JobId(61));
    let screen = render(&state);
    assert!(screen.contains("from       job 61"), "{screen}");
}

/// `o` shows only one's own jobs: the header says `mine` and the list is asked again for
/// them alone; the detail names who queued the job.
#[test]
fn mine_filters_the_list_the_header_says_so_and_the_detail_names_the_submitter() {
    let keys = KeyMap::default();
    let mut state = mixed(Rect::new(0, 0, 120, 40), 2);
    assert!(!render(&state).contains("│ mine"));
    assert_eq!(
        state.handle(&keys, &key(KeyCode::Char('o'))),
        vec![Command::Refresh]
    );
    assert!(state.mine && state.list_request().mine);
    // An answer asked for before the toggle counts everyone's jobs: the tabs keep theirs.
    let counted = state.header.counts;
    state.apply_data(DataSnapshot {
        request: ListRequest {
            mine: false,
            ..state.list_request()
        },
        counts: TabCounts([99; 6]),
        images_today: 0,
        spend_today_cny: 0.0,
        pauses: Pauses::default(),
        queue: queue_left(5),
        total: 99,
        rows: Vec::new(),
        detail: None,
    });
    assert_eq!(state.header.counts, counted);
    // The tabs count one's own jobs, as the list does.
    let rows: Vec<JobRow> = (0..3).map(row).collect();
    answer_with(&mut state, &rows, &Pauses::default());
    assert_eq!(state.header.counts, TabCounts([5, 5, 5, 0, 0, 0]));
    state.detail.as_mut().unwrap().submitted_by = Some("alice@box1".into());
    let screen = render(&state);
    assert!(screen.contains("│ mine"), "{screen}");
    assert!(screen.contains("by         alice@box1"), "{screen}");
    snapshot("mine_with_submitter", screen);
    // The gallery of the tab shows the same jobs' images.
    match state.handle(&keys, &key(KeyCode::Char('v'))).as_slice() {
        [Command::LoadGallery(request)] => assert!(request.mine, "{request:?}"),
        other => panic!("the gallery opens: {other:?}"),
    }
    state.handle(&keys, &key(KeyCode::Esc));
    // With none of one's own, the list says how to see everyone's.
    answer_with(&mut state, &[], &Pauses::default());
    let screen = render(&state);
    assert!(screen.contains("Only your jobs are shown"), "{screen}");
    state.handle(&keys, &key(KeyCode::Char('o')));
    assert!(!state.mine && !state.list_request().mine);
}

#[test]
fn gallery_of_one_job_shows_its_four_images_side_by_side() {
    for (name, area) in [
        ("gallery_one_job_80x24", Rect::new(0, 0, 80, 24)),
        ("gallery_one_job_200x60", Rect::new(0, 0, 200, 60)),
    ] {
        let tiles: Vec<Tile> = (0..4)
            .map(|i| gallery_tile(42, i, JobState::Succeeded))
            .collect();
        let state = gallery_screen(area, GalleryScope::Job(JobId(42)), tiles, 4);
        let screen = render(&state);
        for i in 1..=4 {
            assert!(
                screen.contains(&format!("#42.{i} seed {}", 7041 + i)),
                "tile {i} with its own seed:\n{screen}"
            );
        }
        assert!(screen.contains('▀') || screen.contains('▄'), "{screen}");
        snapshot(name, screen);
    }
}

#[test]
fn gallery_of_a_tab_of_30_jobs_fills_the_pane_newest_first() {
    const STATES: [JobState; 3] = [
        JobState::Succeeded,
        JobState::Failed,
        JobState::NeedsAttention,
    ];
    // 30 jobs, newest (id 130) first, with 1 to 4 saved images each.
    let tiles: Vec<Tile> = (0..30)
        .flat_map(|j| {
            let job = 130 - j;
            (0..(job % 4 + 1) as u32).map(move |i| gallery_tile(job, i, STATES[j as usize % 3]))
        })
        .collect();
    let total = tiles.len() as u64;
    for (name, area, shown) in [
        ("gallery_tab_80x24", Rect::new(0, 0, 80, 24), 4),
        ("gallery_tab_200x60", Rect::new(0, 0, 200, 60), 18),
    ] {
        let state = gallery_screen(area, GalleryScope::Tab, tiles.clone(), total);
        let screen = render(&state);
        assert!(screen.contains(&format!("1/{total}")), "{screen}");
        let captions = screen.matches(" seed ").count();
        assert_eq!(captions, shown, "{name}: one caption per tile:\n{screen}");
        assert!(
            screen.contains("#130.1 seed 7130"),
            "newest first:\n{screen}"
        );
        snapshot(name, screen);
    }
}

#[test]
fn the_editor_offers_the_catalogue_by_family_at_80x24() {
    let keys = KeyMap::default();
    let mut state = mixed(Rect::new(0, 0, 80, 24), 0);
    state.handle(&keys, &key(KeyCode::Char('n')));
    for c in "a lighthouse".chars() {
        state.handle(&keys, &key(KeyCode::Char(c)));
    }
    // Tab to the model and step to wan2.6-t2i.
    state.handle(&keys, &key(KeyCode::Tab));
    for _ in 0..Model::ALL.len() {
        if state.editor.as_ref().unwrap().model == Model::Wan26T2i {
            break;
        }
        state.handle(&keys, &key(KeyCode::Right));
    }
    assert_eq!(state.editor.as_ref().unwrap().model, Model::Wan26T2i);
    let screen = render(&state);
    for text in [
        "Models · cn-beijing",
        "wan text-to-image",
        "› wan2.6-t2i",
        "0.20",
    ] {
        assert!(screen.contains(text), "`{text}` in:\n{screen}");
    }
    snapshot("editor_model_list_80x24", screen);

    // Off the model: the prompt again, and the form of wan2.6-t2i with its defaults.
    state.handle(&keys, &key(KeyCode::Tab));
    let screen = render(&state);
    let default_n = Model::Wan26T2i.default_n();
    assert!(
        screen.contains(&format!("cost {default_n} x 0.20")),
        "{screen}"
    );
    assert!(screen.contains("a lighthouse"), "{screen}");
    snapshot("editor_wan26_t2i_80x24", screen);
}
