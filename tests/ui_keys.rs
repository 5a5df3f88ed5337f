//! Key handling through the public surface: events in, state and commands out. The list
//! data comes from a real store (SQLite in a temp dir) through the data adapter.

use std::path::Path;

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use time::OffsetDateTime;
use wandash::dashscope::{JobSpec, Model};
use wandash::store::{ImageFiles, JobState, PauseScope, QueueStep, Store};
use wandash::ui::data::snapshot;
use wandash::ui::draw::frame_layout;
use wandash::ui::keys::KeyMap;
use wandash::ui::state::{AppState, Confirm, Header, Mode, Tab};
use wandash::ui::update::{Command, SubmitError};

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::from(code))
}

fn ch(c: char) -> Event {
    key(KeyCode::Char(c))
}

fn ctrl(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// A store with `n` jobs, prompts "job 0" .. "job n-1" (the last is the newest).
fn store_with(dir: &Path, n: usize) -> Store {
    let store = Store::open(&dir.join("jobs.db")).unwrap();
    let specs: Vec<JobSpec> = (0..n)
        .map(|i| JobSpec::new(Model::Wanx21T2iTurbo, format!("job {i}")))
        .collect();
    store.enqueue_batch(&specs, None).unwrap();
    store
}

/// Answers the state's list request from the store, as the data worker does, until the
/// state stops asking.
fn load(state: &mut AppState, store: &Store) {
    for _ in 0..3 {
        let data = snapshot(store, &state.list_request()).unwrap();
        if state.apply_data(data).is_empty() {
            return;
        }
    }
    panic!("the state kept asking for data");
}

fn app(area: Rect) -> AppState {
    AppState::new(
        frame_layout(area),
        OffsetDateTime::now_utc(),
        Header::default(),
    )
}

#[test]
fn moving_down_scrolls_the_window_and_fetches_only_visible_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 100);
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 80, 24));
    load(&mut state, &store);
    let visible = state.visible_rows();
    assert_eq!(state.list.total, 100);
    assert_eq!(
        state.list.rows.len() as u64,
        visible,
        "only the visible window is loaded"
    );
    assert_eq!(state.list.rows[0].prompt, "job 99", "newest first");

    for _ in 0..visible {
        assert_eq!(state.handle(&keys, &ch('j')), vec![Command::Refresh]);
    }
    assert_eq!(state.list.selected, visible);
    assert_eq!(state.list.top, 1, "the window follows the selection");
    load(&mut state, &store);
    assert_eq!(
        state.list.selected_row().unwrap().prompt,
        format!("job {}", 99 - visible)
    );
    assert_eq!(
        state.selected_detail().unwrap().spec.prompt,
        format!("job {}", 99 - visible)
    );

    state.handle(
        &keys,
        &Event::Key(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT)),
    );
    load(&mut state, &store);
    assert_eq!(state.list.selected, 99);
    assert_eq!(state.list.selected_row().unwrap().prompt, "job 0");
    state.handle(&keys, &ch('g'));
    assert_eq!((state.list.selected, state.list.top), (0, 0));
    // At the top, k does nothing and asks for nothing.
    assert!(state.handle(&keys, &ch('k')).is_empty());
}

#[test]
fn tabs_and_search_filter_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 30);
    store.request_cancel(wandash::store::JobId(3)).unwrap();
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 120, 40));
    load(&mut state, &store);
    assert_eq!(state.header.counts.get(Tab::Cancelled), 1);
    assert_eq!(state.header.counts.get(Tab::Queued), 29);

    assert_eq!(state.handle(&keys, &ch('6')), vec![Command::Refresh]);
    assert_eq!(state.tab, Tab::Cancelled);
    load(&mut state, &store);
    assert_eq!(state.list.total, 1);
    assert_eq!(state.list.rows[0].prompt, "job 2");

    state.handle(&keys, &ch('1'));
    state.handle(&keys, &ch('/'));
    assert_eq!(state.mode, Mode::Search);
    for c in "job 2".chars() {
        assert_eq!(
            state.handle(&keys, &ch(c)),
            vec![Command::Refresh],
            "search is incremental"
        );
    }
    load(&mut state, &store);
    // "job 2" and "job 20" .. "job 29".
    assert_eq!(state.list.total, 11);
    state.handle(&keys, &key(KeyCode::Enter));
    assert_eq!(
        (state.mode.clone(), state.search.as_str()),
        (Mode::Browse, "job 2")
    );
    state.handle(&keys, &ch('/'));
    state.handle(&keys, &key(KeyCode::Esc));
    assert!(state.search.is_empty());
}

#[test]
fn delete_asks_and_quit_asks_only_with_unsent_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 3);
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 120, 40));
    load(&mut state, &store);
    let newest = state.list.rows[0].id;

    state.handle(&keys, &ch('d'));
    assert_eq!(state.mode, Mode::Confirm(Confirm::Delete(newest)));
    assert!(state.handle(&keys, &ch('n')).is_empty());
    state.handle(&keys, &ch('d'));
    assert_eq!(state.handle(&keys, &ch('y')), vec![Command::Delete(newest)]);

    // An empty editor does not hold the quit back.
    state.handle(&keys, &ch('n'));
    state.handle(&keys, &key(KeyCode::Esc));
    state.handle(&keys, &ch('q'));
    assert!(state.quit);

    let mut state = app(Rect::new(0, 0, 120, 40));
    state.handle(&keys, &ch('n'));
    state.handle(&keys, &Event::Paste("a lighthouse\r\nat dusk".into()));
    assert_eq!(
        state.editor.as_ref().unwrap().prompt_text(),
        "a lighthouse\nat dusk"
    );
    state.handle(&keys, &key(KeyCode::Esc));
    state.handle(&keys, &ch('q'));
    assert_eq!(state.mode, Mode::Confirm(Confirm::Quit));
    assert!(!state.quit);
    state.handle(&keys, &key(KeyCode::Esc));
    assert_eq!(state.mode, Mode::Editor, "saying no returns to the draft");
}

#[test]
fn fork_fills_the_editor_and_submit_sends_only_a_valid_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("jobs.db")).unwrap();
    let mut spec = JobSpec::new(Model::Wanx21T2iPlus, "a red fox in snow");
    spec.seed = Some(7);
    spec.n = Some(2);
    let forked = store.enqueue(&spec).unwrap();
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 120, 40));
    load(&mut state, &store);

    state.handle(&keys, &ch('e'));
    assert_eq!(state.mode, Mode::Editor);
    let commands = state.handle(&keys, &ctrl('s'));
    assert_eq!(
        commands,
        vec![Command::Submit(Box::new(spec.clone()), Some(forked))],
        "the fork submits the same job, naming the job it came from"
    );
    // A second Ctrl-s while the first is in flight sends nothing.
    assert!(state.handle(&keys, &ctrl('s')).is_empty());
    // The worker found a problem with a file: it shows beside the field, the draft stays.
    let refused = wandash::dashscope::ValidationError::new("seed", "refused for the test");
    state.submitted(Err(SubmitError::Invalid(vec![refused])));
    assert_eq!(state.mode, Mode::Editor);
    assert!(state.editor.as_ref().unwrap().error_for("seed").is_some());

    // Clearing the prompt makes the job invalid: Ctrl-s sends nothing.
    state.handle(&keys, &key(KeyCode::Backspace));
    let editor = state.editor.as_mut().unwrap();
    editor.prompt = Default::default();
    editor.revalidate();
    assert!(editor.error_for("prompt").is_some());
    assert!(state.handle(&keys, &ctrl('s')).is_empty());

    let id = store.enqueue(&spec).unwrap();
    assert_eq!(state.submitted(Ok(id)), vec![Command::Refresh]);
    assert!(state.editor.is_none() && state.mode == Mode::Browse);
    load(&mut state, &store);
    assert_eq!(state.list.rows[0].id, id);
    assert_eq!(
        store.job(id).unwrap().unwrap().summary.state(),
        JobState::Queued
    );
}

#[test]
fn choice_fields_change_with_arrows_and_fields_follow_the_model() {
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 120, 40));
    state.handle(&keys, &ch('n'));
    state.handle(&keys, &key(KeyCode::Tab));
    // Model is the first field; → moves to the next model.
    state.handle(&keys, &key(KeyCode::Right));
    assert_eq!(state.editor.as_ref().unwrap().model, Model::Wanx21T2iPlus);
    for _ in 0..2 {
        state.handle(&keys, &key(KeyCode::Right));
    }
    let editor = state.editor.as_ref().unwrap();
    assert_eq!(editor.model, Model::Wanx21ImageEdit);
    // imageedit needs a function; the next field is its choice.
    assert!(
        editor.error_for("function").is_some(),
        "{:?}",
        editor.errors
    );
    state.handle(&keys, &key(KeyCode::Tab));
    state.handle(&keys, &key(KeyCode::Right));
    let editor = state.editor.as_ref().unwrap();
    assert!(
        editor.error_for("function").is_none(),
        "{:?}",
        editor.errors
    );
    // Then its base image is missing, and the form now has a field for it.
    assert!(
        editor.error_for("base_image").is_some(),
        "{:?}",
        editor.errors
    );
    assert!(
        editor
            .visible_fields()
            .contains(&wandash::ui::editor::Field::BaseImage)
    );
}

/// Jobs "extra 0" .. "extra n-1" added to the store, newer than all before.
fn enqueue_more(store: &Store, n: usize) {
    let specs: Vec<JobSpec> = (0..n)
        .map(|i| JobSpec::new(Model::Wanx21T2iTurbo, format!("extra {i}")))
        .collect();
    store.enqueue_batch(&specs, None).unwrap();
}

#[test]
fn new_jobs_push_the_rows_down_and_the_selection_stays_on_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 6);
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 120, 40));
    load(&mut state, &store);
    state.handle(&keys, &ch('j'));
    state.handle(&keys, &ch('j'));
    load(&mut state, &store);
    let chosen = state.list.selected_row().unwrap().id;
    assert_eq!(state.list.selected_row().unwrap().prompt, "job 3");

    enqueue_more(&store, 3);
    load(&mut state, &store);
    assert_eq!(state.list.total, 9);
    assert_eq!(state.list.selected, 5, "three new rows above it");
    assert_eq!(state.list.selected_row().unwrap().id, chosen);
    assert_eq!(state.selected_detail().unwrap().id, chosen);
    // `c` cancels the job shown as selected, not the one now at its old row.
    assert_eq!(state.handle(&keys, &ch('c')), vec![Command::Cancel(chosen)]);
}

#[test]
fn a_selected_job_pushed_out_of_the_window_is_followed_there() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 40);
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 80, 24));
    load(&mut state, &store);
    let visible = state.visible_rows();
    // The last row on screen.
    for _ in 1..visible {
        state.handle(&keys, &ch('j'));
    }
    load(&mut state, &store);
    assert_eq!(state.list.top, 0);
    let chosen = state.list.selected_row().unwrap().id;

    enqueue_more(&store, 5);
    load(&mut state, &store);
    assert_eq!(state.list.selected, visible - 1 + 5);
    assert_eq!(state.list.top, 5, "the window follows the job down");
    assert_eq!(state.list.selected_row().unwrap().id, chosen);
    assert_eq!(state.selected_detail().unwrap().id, chosen);
}

#[test]
fn the_editor_opens_on_the_prompt_and_typing_on_a_choice_shows_a_hint() {
    use wandash::ui::editor::{CHOICE_HINT, EditorFocus};
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 120, 40));
    state.handle(&keys, &ch('n'));
    assert_eq!(state.editor.as_ref().unwrap().focus, EditorFocus::Prompt);
    state.handle(&keys, &ch('a'));
    // On the model field, a letter changes nothing and says what would.
    state.handle(&keys, &key(KeyCode::Tab));
    state.handle(&keys, &ch('x'));
    let editor = state.editor.as_ref().unwrap();
    assert_eq!(editor.hint, Some(CHOICE_HINT));
    assert_eq!(
        (editor.model, editor.prompt_text().as_str()),
        (Model::Wanx21T2iTurbo, "a")
    );
    // The next key takes the hint away.
    state.handle(&keys, &key(KeyCode::Right));
    assert_eq!(state.editor.as_ref().unwrap().hint, None);

    // Leaving with the focus on a field and coming back with `n` starts on the prompt.
    state.handle(&keys, &key(KeyCode::Esc));
    state.handle(&keys, &ch('n'));
    let editor = state.editor.as_ref().unwrap();
    assert_eq!(editor.focus, EditorFocus::Prompt);
    assert_eq!(editor.prompt_text(), "a", "the draft is kept");
}

#[test]
fn help_scrolls_only_within_its_lines() {
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 80, 24));
    state.handle(&keys, &ch('?'));
    assert_eq!(state.mode, Mode::Help);
    state.handle(&keys, &ch('k'));
    assert_eq!(state.help_scroll, 0);
    for _ in 0..500 {
        state.handle(&keys, &ch('j'));
    }
    let overflow = keys.help_layout(state.layout.area).overflow;
    assert!(overflow > 0, "80x24 is too small for the whole table");
    assert_eq!(state.help_scroll, overflow, "down to the last screenful");
    state.handle(&keys, &ch('k'));
    assert_eq!(state.help_scroll, overflow - 1, "and straight back up");
    state.handle(&keys, &key(KeyCode::Esc));
    state.handle(&keys, &ch('?'));
    assert_eq!(state.help_scroll, 0, "help opens at its top");
}

#[test]
fn the_stats_view_gets_its_figures_from_the_data_worker_and_again_on_changes() {
    use std::time::{Duration, Instant};
    use wandash::dashscope::{Region, Timestamp};
    use wandash::store::MoneyStats;
    use wandash::ui::data::{DataJob, DataWorker};
    use wandash::ui::event::AppEvent;
    use wandash::ui::stats::StatsSource;

    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 2);
    // Ends job `id` now with four images, as the engine writes an ended job.
    let end = |id: i64| {
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        conn.execute(
            "UPDATE jobs SET state = 'succeeded', task_id = 't' || id, ended_at = ?2,
                 images_ok = 4, cost_cny = 0.56 WHERE id = ?1",
            rusqlite::params![id, Timestamp::now().as_millis()],
        )
        .unwrap();
    };
    end(1);
    let (events, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let worker = DataWorker::start(store.path(), ImageFiles::default(), events).unwrap();
    let next_figures = |answers: &mut tokio::sync::mpsc::UnboundedReceiver<AppEvent>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match answers.try_recv() {
                Ok(AppEvent::Stats(figures)) => return figures.expect("the figures load"),
                Ok(_) => {}
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("no figures from the data worker: {e}"),
            }
        }
    };
    worker.send(DataJob::WatchStats(Some(StatsSource {
        region: Region::Beijing,
        prices: Default::default(),
        free_quota_since: None,
    })));
    let figures: Box<MoneyStats> = next_figures(&mut answers);
    assert_eq!(figures.images_today, 4);
    assert_eq!(figures.models[0].free_images_left, 496);
    // A job another process ends shows up without being asked for.
    end(2);
    let figures = next_figures(&mut answers);
    assert_eq!(figures.images_today, 8);
    assert!((figures.spend_today_cny - 1.12).abs() < 1e-9);
}

/// Carries out the queue commands on the store, as the data worker does.
fn carry_out_queue(store: &Store, commands: &[Command]) {
    for command in commands {
        match command {
            Command::MoveInQueue(id, step) => {
                store.move_in_queue(*id, *step).unwrap();
            }
            Command::MoveToTop(id) => store.move_to_top(*id).unwrap(),
            Command::Pause => drop(store.pause(PauseScope::All).unwrap()),
            Command::Resume => drop(store.resume(PauseScope::All).unwrap()),
            Command::Refresh => {}
            other => panic!("not a queue command: {other:?}"),
        }
    }
}

/// Waits for the data worker's next answer of the kind `pick` takes.
fn next_answer<T>(
    answers: &mut tokio::sync::mpsc::UnboundedReceiver<wandash::ui::event::AppEvent>,
    pick: impl Fn(wandash::ui::event::AppEvent) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match answers.try_recv() {
            Ok(event) => {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(_) => panic!("the data worker did not answer"),
        }
    }
}

fn prompts(state: &AppState) -> Vec<&str> {
    state.list.rows.iter().map(|r| r.prompt.as_str()).collect()
}

#[test]
fn queue_keys_reorder_the_queued_tab_and_the_selection_stays_on_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 5);
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 120, 40));
    load(&mut state, &store);
    state.handle(&keys, &ch('2'));
    load(&mut state, &store);
    assert_eq!(
        prompts(&state),
        ["job 0", "job 1", "job 2", "job 3", "job 4"],
        "the queued tab lists the send order, next first"
    );
    state.handle(&keys, &ch('j'));
    state.handle(&keys, &ch('j'));
    let chosen = state.list.selected_row().unwrap().id;

    let up = state.handle(&keys, &ch('K'));
    assert_eq!(
        up,
        vec![
            Command::MoveInQueue(chosen, QueueStep::Earlier),
            Command::Refresh
        ]
    );
    carry_out_queue(&store, &up);
    load(&mut state, &store);
    assert_eq!(
        prompts(&state),
        ["job 0", "job 2", "job 1", "job 3", "job 4"]
    );
    assert_eq!(state.list.selected, 1);
    assert_eq!(state.list.selected_row().unwrap().id, chosen);

    for _ in 0..2 {
        let down = state.handle(&keys, &ch('J'));
        carry_out_queue(&store, &down);
        load(&mut state, &store);
    }
    assert_eq!(
        prompts(&state),
        ["job 0", "job 1", "job 3", "job 2", "job 4"]
    );
    assert_eq!(state.list.selected_row().unwrap().id, chosen);

    let top = state.handle(&keys, &ch('T'));
    assert_eq!(top, vec![Command::MoveToTop(chosen), Command::Refresh]);
    carry_out_queue(&store, &top);
    load(&mut state, &store);
    assert_eq!(
        prompts(&state),
        ["job 2", "job 0", "job 1", "job 3", "job 4"]
    );
    assert_eq!(state.list.selected, 0);
    assert_eq!(state.selected_detail().unwrap().id, chosen);
    assert!(
        state.handle(&keys, &ch('K')).is_empty(),
        "the first job has nowhere to go up"
    );

    // In the list by age the row stays put; the store still moves the job.
    state.handle(&keys, &ch('1'));
    load(&mut state, &store);
    let newest = state.list.selected_row().unwrap().id;
    assert_eq!(
        state.handle(&keys, &ch('T')),
        vec![Command::MoveToTop(newest)]
    );

    // Only a queued job moves.
    store.request_cancel(newest).unwrap();
    load(&mut state, &store);
    assert!(state.handle(&keys, &ch('J')).is_empty());
    assert!(
        state
            .toasts
            .back()
            .unwrap()
            .text
            .contains("only a queued job can be moved"),
        "{:?}",
        state.toasts
    );
}

#[test]
fn p_pauses_and_resumes_the_whole_queue_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 2);
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 120, 40));
    load(&mut state, &store);
    let pause = state.handle(&keys, &ch('p'));
    assert_eq!(pause, vec![Command::Pause]);
    carry_out_queue(&store, &pause);
    load(&mut state, &store);
    assert!(state.header.pauses.all);
    let resume = state.handle(&keys, &ch('p'));
    assert_eq!(resume, vec![Command::Resume]);
    carry_out_queue(&store, &resume);
    load(&mut state, &store);
    assert!(state.header.pauses.is_empty());
}

#[test]
fn cancelling_a_job_at_the_service_asks_first_and_a_queued_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 2);
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 120, 40));
    load(&mut state, &store);
    let queued = state.list.selected_row().unwrap().id;
    assert_eq!(state.handle(&keys, &ch('c')), vec![Command::Cancel(queued)]);

    // What the engine's claim does to the row (the engine's writes are not public).
    rusqlite::Connection::open(dir.path().join("jobs.db"))
        .unwrap()
        .execute(
            "UPDATE jobs SET state = 'submitting', attempts = 1 WHERE id = ?1",
            [queued.0],
        )
        .unwrap();
    load(&mut state, &store);
    assert!(state.handle(&keys, &ch('c')).is_empty(), "not at once");
    assert_eq!(state.mode, Mode::Confirm(Confirm::CancelBilled(queued)));
    assert!(state.handle(&keys, &ch('n')).is_empty());
    assert_eq!(state.mode, Mode::Browse);
    state.handle(&keys, &ch('c'));
    assert_eq!(state.handle(&keys, &ch('y')), vec![Command::Cancel(queued)]);
}

#[test]
fn a_seed_sweep_and_a_compare_winner_reach_the_store_through_the_data_worker() {
    use wandash::ui::data::{DataJob, DataWorker, StoreChange};
    use wandash::ui::event::AppEvent;
    use wandash::ui::studio::{StudioCommand, StudioEvent};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    let store = store_with(dir.path(), 3);
    let keys = KeyMap::default();
    let mut state = app(Rect::new(0, 0, 120, 40));
    load(&mut state, &store);
    let (events, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let worker = DataWorker::start(&db, ImageFiles::default(), events).unwrap();

    // s on the newest job, 3 seeds, Enter: three jobs queued, each naming it.
    let parent = state.list.selected_row().unwrap().id;
    state.handle(&keys, &ch('s'));
    assert_eq!(state.mode, Mode::Sweep);
    state.handle(&keys, &ch('3'));
    let commands = state.handle(&keys, &key(KeyCode::Enter));
    assert_eq!(state.mode, Mode::Browse);
    let [
        Command::Studio(StudioCommand::Sweep {
            parent: from,
            specs,
        }),
    ] = &commands[..]
    else {
        panic!("a sweep command: {commands:?}");
    };
    assert_eq!((*from, specs.len()), (parent, 3));
    worker.send(DataJob::Change(StoreChange::Sweep {
        parent,
        specs: specs.clone(),
    }));
    let message = next_answer(&mut answers, |event| match event {
        AppEvent::ChangeDone(result) => Some(result),
        _ => None,
    })
    .unwrap();
    assert!(message.starts_with(&format!("seed sweep of job {parent}: 3 jobs queued")));
    let mut seeds = Vec::new();
    for id in 4..=6 {
        let job = store.job(wandash::store::JobId(id)).unwrap().unwrap();
        assert_eq!(job.parent_job_id, Some(parent));
        assert_eq!(job.spec.prompt, "job 2");
        seeds.push(job.spec.seed.expect("a swept job has its seed"));
    }
    seeds.sort_unstable();
    seeds.dedup();
    assert_eq!(seeds.len(), 3, "three different seeds");

    // Mark two jobs, compare them, pick the second: the store notes the win.
    load(&mut state, &store);
    state.handle(&keys, &ch(' '));
    state.handle(&keys, &ch('j'));
    load(&mut state, &store);
    state.handle(&keys, &ch(' '));
    let marked = state.studio.marks.clone();
    assert_eq!(marked.len(), 2);
    let commands = state.handle(&keys, &ch('C'));
    assert_eq!(
        commands,
        vec![Command::Studio(StudioCommand::LoadCompare(marked.clone()))]
    );
    worker.send(DataJob::Compare(marked.clone()));
    let loaded = next_answer(&mut answers, |event| match event {
        AppEvent::Studio(StudioEvent::CompareLoaded(jobs)) => Some(jobs),
        _ => None,
    });
    assert_eq!(loaded.as_ref().map(Vec::len), Ok(2));
    state.studio_event(StudioEvent::CompareLoaded(loaded));
    let commands = state.handle(&keys, &ch('2'));
    let [Command::Studio(StudioCommand::RecordWinner { winner, others })] = &commands[..] else {
        panic!("a winner: {commands:?}");
    };
    assert_eq!((*winner, others.clone()), (marked[1], vec![marked[0]]));
    worker.send(DataJob::Change(StoreChange::RecordWinner {
        winner: *winner,
        others: others.clone(),
    }));
    let message = next_answer(&mut answers, |event| match event {
        AppEvent::ChangeDone(result) => Some(result),
        _ => None,
    })
    .unwrap();
    assert_eq!(message, format!("job {winner} won; 0 image(s) starred"));
    let noted = store.job(*winner).unwrap().unwrap().events;
    assert_eq!(
        noted.last().unwrap().detail.as_deref(),
        Some(format!("won a compare against jobs {}", marked[0]).as_str())
    );
}
