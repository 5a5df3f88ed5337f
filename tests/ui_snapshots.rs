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
use wandash::ui::keys::KeyMap;
use wandash::ui::state::{
    AppState, BackendLabel, BatchProgress, Header, ImageView, JobDetailView, JobId, JobRow,
    JobState, Mode, PreviewImage, ReadyImage, TabCounts,
};
use wandash::ui::update::{Command, DataSnapshot};

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
        remaining: 13,
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
    let mut state = mixed(Rect::new(0, 0, 120, 40), 0);
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
        remaining: 16,
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
                remaining: 16,
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
        remaining: 5,
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
