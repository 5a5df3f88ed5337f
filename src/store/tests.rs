//! The engine's side of the store on real SQLite files: claims, transitions and their
//! events, outcomes, and the lists and counts over the states it writes. In the crate,
//! because the engine's writes are not public.

use super::*;
use crate::dashscope::{ClientError, JobSpec, Model, TaskStatus, Timestamp};
use std::time::Duration;

fn spec(prompt: &str) -> JobSpec {
    JobSpec::new(Model::Wanx21T2iTurbo, prompt)
}

// Shared with other modules' tests (one server per test process).
#[path = "../../tests/support/postgres.rs"]
pub(crate) mod test_postgres;

/// Where a test's store lives, and a private folder beside it (images).
struct Place {
    dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

/// An SQLite file in a folder that does not exist yet.
fn sqlite_place() -> Place {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/wandash.db");
    Place { dir, path }
}

/// A fresh database on the tests' PostgreSQL server; `None` (the test skips, saying so
/// once) where there is no PostgreSQL.
fn postgres_place() -> Option<Place> {
    let url = test_postgres::server()?.fresh_database();
    Some(Place {
        dir: tempfile::tempdir().unwrap(),
        path: url.into(),
    })
}

/// The store suite runs on both backends: each test once on an SQLite file and once on
/// a PostgreSQL database, through the same `Store` API.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::sqlite_place())
            }
            #[test]
            fn postgres() {
                if let Some(place) = super::postgres_place() {
                    super::$name(place)
                }
            }
        }
    )*};
}

on_both_backends!(
    list_pages_a_window_by_state_and_search_newest_first,
    every_transition_writes_an_event,
    cancel_retry_and_delete_follow_the_state,
    a_task_whose_images_all_vanished_ends_expired_and_unbilled,
    money_rows_sum_each_period_per_model_from_the_money_index,
    a_pause_set_on_another_connection_holds_the_send_mark_until_resumed,
    queued_jobs_go_in_queue_order_and_top_and_moves_survive_reopening,
    deleting_a_job_removes_its_image_files_and_folder,
    learned_durations_are_kept_per_model_replaced_and_read_by_another_connection,
    image_bytes_are_kept_once_by_their_sha256_on_postgresql_only,
    an_image_missing_here_is_read_from_the_store_into_the_cache,
    a_jobs_input_file_travels_with_it_on_postgresql_only,
    each_job_records_who_queued_it_and_mine_selects_and_counts_them,
    the_counts_by_state_of_one_submitter_leave_the_others_jobs_out,
);

/// SQLite's plan for `sql` on a migrated store, a line per step (every parameter bound to
/// NULL: the plan does not depend on the values).
fn sqlite_plan(sql: &str) -> Vec<String> {
    let Place { dir: _dir, path } = sqlite_place();
    Store::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let unbound = vec![rusqlite::types::Value::Null; explain.parameter_count()];
    explain
        .query_map(rusqlite::params_from_iter(unbound), |row| {
            row.get::<_, String>(3)
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn the_money_sums_read_the_money_index_alone() {
    // The sums come from the index alone, whatever the store's size.
    let plan = sqlite_plan(&money::ended_sums_sql());
    assert!(
        plan.iter()
            .any(|step| step.contains("COVERING INDEX jobs_money")),
        "{plan:?}"
    );
}

#[test]
fn the_counts_of_one_submitter_walk_the_submitter_index() {
    let plan = sqlite_plan(SUBMITTER_COUNTS_SQL);
    assert!(
        plan.iter()
            .any(|step| step.contains("USING INDEX jobs_by_submitter")),
        "{plan:?}"
    );
}

fn list_pages_a_window_by_state_and_search_newest_first(place: Place) {
    let Place { dir: _dir, path } = place;
    let store = Store::open(&path).unwrap().into_engine();
    let specs: Vec<JobSpec> = (0..30)
        .map(|i| {
            spec(&format!(
                "{} number {i}",
                if i % 3 == 0 { "Red_Cat" } else { "dog" }
            ))
        })
        .collect();
    let ids = store.enqueue_batch(&specs, Some("b1")).unwrap();
    assert_eq!(ids.len(), 30);
    // Fail every 5th job so that there are two states.
    for id in ids.iter().step_by(5) {
        assert_eq!(
            store
                .claim_for_submit(*id)
                .unwrap()
                .unwrap()
                .summary
                .state(),
            JobState::Submitting
        );
        store
            .end_job(
                *id,
                Ending::Failed(JobError::new(
                    ErrorKind::Service("InvalidParameter".into()),
                    "bad",
                    None,
                )),
            )
            .unwrap();
    }

    let all = JobFilter::default();
    assert_eq!(store.count(&all).unwrap(), 30);
    let page = store.list(&all, 0, 10).unwrap();
    let got: Vec<JobId> = page.iter().map(|j| j.id).collect();
    let want: Vec<JobId> = ids.iter().rev().take(10).copied().collect();
    assert_eq!(got, want, "newest first");
    let page2 = store.list(&all, 10, 10).unwrap();
    assert_eq!(page2.first().unwrap().id, ids[19]);
    assert_eq!(store.list(&all, 28, 10).unwrap().len(), 2);

    let failed = JobFilter {
        state: Some(StateFilter::Only(JobState::Failed)),
        search: None,
        submitted_by: None,
    };
    assert_eq!(store.count(&failed).unwrap(), 6);
    let rows = store.list(&failed, 1, 2).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[20], ids[15]]
    );
    assert!(rows.iter().all(|r| r.state() == JobState::Failed
        && r.error().map(|e| e.kind.code()) == Some("InvalidParameter")));
    let problems = JobFilter {
        state: Some(StateFilter::Problems),
        search: None,
        submitted_by: None,
    };
    assert_eq!(store.count(&problems).unwrap(), 6);
    let active = JobFilter {
        state: Some(StateFilter::Active),
        search: None,
        submitted_by: None,
    };
    assert_eq!(store.count(&active).unwrap(), 24);

    // Search is case-insensitive and treats `_` literally, not as a wildcard.
    let cats = JobFilter {
        state: None,
        search: Some("red_cat".into()),
        submitted_by: None,
    };
    assert_eq!(store.count(&cats).unwrap(), 10);
    let wildcard = JobFilter {
        state: None,
        search: Some("Red%".into()),
        submitted_by: None,
    };
    assert_eq!(store.count(&wildcard).unwrap(), 0);
    let failed_cats = JobFilter {
        state: Some(StateFilter::Only(JobState::Failed)),
        search: Some("cat".into()),
        submitted_by: None,
    };
    // Jobs 0, 15 are both failed and cats (i % 3 == 0 and i % 5 == 0).
    let rows = store.list(&failed_cats, 0, 10).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[15], ids[0]]
    );

    let counts = store.counts_by_state().unwrap();
    assert_eq!(
        (
            counts.queued,
            counts.failed,
            counts.total(),
            counts.active()
        ),
        (24, 6, 30, 24)
    );
}

fn every_transition_writes_an_event(place: Place) {
    use JobState::*;
    let Place { dir: _dir, path } = place;
    let store = Store::open(&path).unwrap().into_engine();
    let id = store.enqueue(&spec("lighthouse")).unwrap();
    store.claim_for_submit(id).unwrap().unwrap();
    let err = ClientError::Api {
        status: 500,
        code: "InternalError".into(),
        message: "boom".into(),
        request_id: None,
    };
    assert!(
        store
            .requeue(
                id,
                &JobError::from_client(&err),
                Some(Timestamp::from_millis(0)),
                true,
            )
            .unwrap()
    );
    store.claim_for_submit(id).unwrap().unwrap();
    assert!(
        store
            .mark_created(id, "task-1", TaskStatus::Pending, "created")
            .unwrap()
    );
    store
        .update_task_status(id, TaskStatus::Pending, None)
        .unwrap();
    store
        .update_task_status(id, TaskStatus::Running, Some(Timestamp::from_millis(5)))
        .unwrap();
    store
        .record_image(
            id,
            &ImageRecord {
                index: 0,
                url: Some("http://x/0.png".into()),
                path: Some("/tmp/0.png".into()),
                bytes: Some(10),
                ..Default::default()
            },
        )
        .unwrap();
    store
        .record_image(
            id,
            &ImageRecord {
                index: 1,
                error_code: Some("InternalError.Algo".into()),
                error_message: Some("no".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        store
            .finish_downloads(id, Some(0.14), Some("a lighthouse, dusk"))
            .unwrap(),
        Some(Succeeded)
    );

    let job = store.job(id).unwrap().unwrap();
    let moves: Vec<(Option<JobState>, JobState)> = job
        .events
        .iter()
        .map(|e| (e.from_state, e.to_state))
        .collect();
    assert_eq!(
        moves,
        vec![
            (None, Queued),
            (Some(Queued), Submitting),
            (Some(Submitting), Queued),
            (Some(Queued), Submitting),
            (Some(Submitting), Submitted),
            (Some(Submitted), Running),
            (Some(Running), Succeeded),
        ]
    );
    assert_eq!(job.events[2].detail.as_deref(), Some("InternalError: boom"));
    let s = &job.summary;
    assert_eq!((s.attempts, s.images_ok, s.images_failed), (2, 1, 1));
    assert!((s.cost_cny.unwrap() - 0.14).abs() < 1e-9);
    assert_eq!(job.task_id(), Some("task-1"));
    assert_eq!(job.actual_prompt.as_deref(), Some("a lighthouse, dusk"));
    assert_eq!(job.images.len(), 2);
    assert_eq!(store.images_since(Timestamp::from_millis(0)).unwrap(), 1);
    assert!((store.spend_since(Timestamp::from_millis(0)).unwrap() - 0.14).abs() < 1e-9);
    assert_eq!(store.images_today().unwrap(), 1);
    assert_eq!(store.job_for_task("task-1").unwrap(), Some(id));
    // A finished job is not claimed, ended or requeued again.
    assert!(store.claim_for_submit(id).unwrap().is_none());
    let refused = JobError::new(ErrorKind::Service("InvalidParameter".into()), "late", None);
    assert!(!store.end_job(id, Ending::Failed(refused)).unwrap());
}

fn cancel_retry_and_delete_follow_the_state(place: Place) {
    let Place { dir: _dir, path } = place;
    let store = Store::open(&path).unwrap().into_engine();
    let queued = store.enqueue(&spec("one")).unwrap();
    let remote = store.enqueue(&spec("two")).unwrap();
    store.claim_for_submit(remote).unwrap().unwrap();
    store
        .mark_created(remote, "t-2", TaskStatus::Pending, "created")
        .unwrap();

    assert_eq!(
        store.request_cancel(queued).unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        store.job(queued).unwrap().unwrap().summary.state(),
        JobState::Cancelled
    );
    assert_eq!(
        store.request_cancel(queued).unwrap(),
        CancelOutcome::AlreadyEnded(JobState::Cancelled)
    );
    assert_eq!(
        store.request_cancel(remote).unwrap(),
        CancelOutcome::Requested
    );
    let r = store.remote_jobs().unwrap();
    assert_eq!(r.len(), 1);
    assert!(r[0].cancel_requested);

    assert!(matches!(
        store.delete(remote),
        Err(StoreError::WrongState {
            action: "delete",
            ..
        })
    ));
    assert!(matches!(
        store.retry(remote),
        Err(StoreError::WrongState {
            action: "retry",
            ..
        })
    ));
    store.retry(queued).unwrap();
    let job = store.job(queued).unwrap().unwrap();
    assert_eq!(job.summary.state(), JobState::Queued);
    assert!(job.summary.status.ended_at().is_none());
    assert_eq!(
        job.events.last().unwrap().detail.as_deref(),
        Some("retry requested")
    );

    store.delete(queued).unwrap();
    assert!(store.job(queued).unwrap().is_none());
    assert!(matches!(store.retry(queued), Err(StoreError::NoSuchJob(_))));
}

fn a_task_whose_images_all_vanished_ends_expired_and_unbilled(place: Place) {
    let Place { dir: _dir, path } = place;
    let store = Store::open(&path).unwrap().into_engine();
    let id = store.enqueue(&spec("gone")).unwrap();
    store.claim_for_submit(id).unwrap().unwrap();
    store
        .mark_created(id, "t-gone", TaskStatus::Succeeded, "created")
        .unwrap();
    store
        .record_image(
            id,
            &ImageRecord {
                index: 0,
                error_code: Some("Expired".into()),
                error_message: Some("result image 0 is no longer available".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        store.finish_downloads(id, Some(0.14), None).unwrap(),
        Some(JobState::Expired)
    );
    let job = store.job(id).unwrap().unwrap();
    assert_eq!((job.summary.images_ok, job.summary.images_failed), (0, 1));
    assert_eq!(job.summary.error().map(|e| e.kind.code()), Some("Expired"));
    assert_eq!(job.summary.cost_cny, None);
    assert!(job.summary.state().is_retryable());
}

fn money_rows_sum_each_period_per_model_from_the_money_index(place: Place) {
    let Place { dir: _dir, path } = place;
    let store = Store::open(&path).unwrap().into_engine();
    let plus = JobSpec::new(Model::Wanx21T2iPlus, "plus");
    let ids = store
        .enqueue_batch(&[spec("a"), spec("b"), spec("c"), plus, spec("d")], None)
        .unwrap();
    let periods = Periods {
        today: Timestamp::from_millis(3_000),
        month: Timestamp::from_millis(2_000),
        free_since: Timestamp::from_millis(1_500),
    };
    // Ended at 1000 (before everything), 2500 (this month), 3500 (today) and, for the
    // other model, today; the last job is still at the service.
    let ended = [
        (ids[0], 1_000, 4, 0.56),
        (ids[1], 2_500, 2, 0.28),
        (ids[2], 3_500, 1, 0.14),
        (ids[3], 3_600, 3, 0.6),
    ];
    for (id, at, images, cost) in ended {
        store
            .conn()
            .execute(
                "UPDATE jobs SET state = 'succeeded', task_id = 't' || id, ended_at = ?2,
                     images_ok = ?3, cost_cny = ?4 WHERE id = ?1",
                params![id.0, at, images, cost],
            )
            .unwrap();
    }
    store.claim_for_submit(ids[4]).unwrap().unwrap();

    let rows = store
        .money_rows(&periods, Timestamp::from_millis(i64::MIN))
        .unwrap();
    let turbo = rows
        .ended
        .iter()
        .find(|t| t.model == Model::Wanx21T2iTurbo)
        .unwrap();
    let images = |t: Tally| t.images;
    assert_eq!(
        (
            images(turbo.all),
            images(turbo.month),
            images(turbo.today),
            images(turbo.since_free)
        ),
        (7, 3, 1, 3)
    );
    assert!((turbo.all.cost_cny - 0.98).abs() < 1e-9);
    assert!((turbo.today.cost_cny - 0.14).abs() < 1e-9);
    let plus = rows
        .ended
        .iter()
        .find(|t| t.model == Model::Wanx21T2iPlus)
        .unwrap();
    assert_eq!(plus.today.images, 3);
    assert_eq!(
        rows.at_service.get(&Model::Wanx21T2iTurbo),
        Some(&u64::from(
            store.job(ids[4]).unwrap().unwrap().summary.images_expected
        ))
    );
    // A budget's read starts at the month: older jobs are not read at all.
    let this_month = store.money_rows(&periods, periods.month).unwrap();
    let turbo = this_month
        .ended
        .iter()
        .find(|t| t.model == Model::Wanx21T2iTurbo)
        .unwrap();
    assert_eq!(turbo.all.images, 3);
    assert_eq!(
        store.first_job_at().unwrap(),
        Some(store.job(ids[0]).unwrap().unwrap().summary.created_at)
    );
}
fn a_pause_set_on_another_connection_holds_the_send_mark_until_resumed(place: Place) {
    let Place { dir: _dir, path } = place;
    let engine = Store::open(&path).unwrap().into_engine();
    // Another process: the CLI's `wandash pause`.
    let cli = Store::open(&path).unwrap();
    let turbo = engine.enqueue(&spec("turbo")).unwrap();
    let plus = engine
        .enqueue(&JobSpec::new(Model::Wanx21T2iPlus, "plus"))
        .unwrap();
    engine.claim_for_submit(turbo).unwrap().unwrap();
    engine.claim_for_submit(plus).unwrap().unwrap();

    let paused = cli.pause(PauseScope::Model(Model::Wanx21T2iTurbo)).unwrap();
    assert_eq!(engine.pauses().unwrap(), paused);
    assert_eq!(
        paused.holds(Model::Wanx21T2iTurbo),
        Some(PauseHold::Model(Model::Wanx21T2iTurbo))
    );
    assert_eq!(
        engine.mark_sending(turbo, Model::Wanx21T2iTurbo).unwrap(),
        None
    );
    let turbo_job = engine.job(turbo).unwrap().unwrap();
    assert_eq!(turbo_job.summary.status.submitted_at(), None, "not stamped");
    assert!(
        engine
            .mark_sending(plus, Model::Wanx21T2iPlus)
            .unwrap()
            .is_some(),
        "another model is not held"
    );

    // The whole queue: a model's resume does not release it, the queue's resume does.
    cli.pause(PauseScope::All).unwrap();
    cli.pause(PauseScope::All).unwrap();
    let left = cli
        .resume(PauseScope::Model(Model::Wanx21T2iTurbo))
        .unwrap();
    assert!(left.all && left.models.is_empty(), "{left:?}");
    assert_eq!(
        engine.mark_sending(turbo, Model::Wanx21T2iTurbo).unwrap(),
        None
    );
    cli.pause(PauseScope::Model(Model::Wanx21T2iPlus)).unwrap();
    assert!(cli.resume(PauseScope::All).unwrap().is_empty());
    assert!(
        engine
            .mark_sending(turbo, Model::Wanx21T2iTurbo)
            .unwrap()
            .is_some()
    );
}

fn due_ids(store: &EngineStore) -> Vec<JobId> {
    store
        .due_queued(Model::Wanx21T2iTurbo, Timestamp::now(), 100)
        .unwrap()
}

fn queued_list(store: &Store) -> Vec<JobId> {
    let queued = JobFilter {
        state: Some(StateFilter::Only(JobState::Queued)),
        search: None,
        submitted_by: None,
    };
    store
        .list(&queued, 0, 100)
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect()
}

fn queued_jobs_go_in_queue_order_and_top_and_moves_survive_reopening(place: Place) {
    let Place { dir: _dir, path } = place;
    let store = Store::open(&path).unwrap().into_engine();
    let ids = store
        .enqueue_batch(&[spec("a"), spec("b"), spec("c"), spec("d")], None)
        .unwrap();
    let [a, b, c, d] = ids[..] else { panic!() };
    assert_eq!(due_ids(&store), vec![a, b, c, d], "oldest first by default");

    store.move_to_top(d).unwrap();
    assert_eq!(due_ids(&store), vec![d, a, b, c]);
    assert!(store.move_in_queue(a, QueueStep::Later).unwrap());
    assert_eq!(due_ids(&store), vec![d, b, a, c]);
    assert!(store.move_in_queue(c, QueueStep::Earlier).unwrap());
    assert_eq!(due_ids(&store), vec![d, b, c, a]);
    assert!(
        !store.move_in_queue(d, QueueStep::Earlier).unwrap(),
        "first"
    );
    assert!(!store.move_in_queue(a, QueueStep::Later).unwrap(), "last");
    // A new job goes last; the queued list shows the send order, next first.
    let e = store.enqueue(&spec("e")).unwrap();
    assert_eq!(queued_list(&store), vec![d, b, c, a, e]);
    assert_eq!(
        store
            .list(&JobFilter::default(), 0, 100)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect::<Vec<_>>(),
        vec![e, d, c, b, a],
        "every other list stays newest first"
    );

    // Only a queued job has a place in the queue.
    store.claim_for_submit(d).unwrap().unwrap();
    for refused in [
        store.move_to_top(d),
        store.move_in_queue(d, QueueStep::Later).map(drop),
    ] {
        assert!(
            matches!(
                refused,
                Err(StoreError::WrongState {
                    state: JobState::Submitting,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    assert!(matches!(
        store.move_to_top(JobId(99)),
        Err(StoreError::NoSuchJob(_))
    ));
    drop(store);
    let reopened = Store::open(&path).unwrap().into_engine();
    assert_eq!(due_ids(&reopened), vec![b, c, a, e]);
}

fn deleting_a_job_removes_its_image_files_and_folder(place: Place) {
    let Place { dir, path } = place;
    let store = Store::open(&path).unwrap().into_engine();
    let id = store.enqueue(&spec("with images")).unwrap();
    store.claim_for_submit(id).unwrap().unwrap();
    store
        .mark_created(id, "t-img", TaskStatus::Succeeded, "created")
        .unwrap();
    let folder = dir.path().join("images").join(id.to_string());
    std::fs::create_dir_all(&folder).unwrap();
    for index in 0..2 {
        let file = folder.join(format!("{index}.png"));
        std::fs::write(&file, b"png").unwrap();
        let image = ImageRecord {
            index,
            path: Some(file),
            ..Default::default()
        };
        store.record_image(id, &image).unwrap();
    }
    // One file already gone is no error.
    std::fs::remove_file(folder.join("1.png")).unwrap();
    store.finish_downloads(id, Some(0.14), None).unwrap();

    let deleted = store.delete(id).unwrap();
    assert_eq!(
        deleted,
        DeletedJob {
            images_removed: 1,
            images_left: Vec::new()
        }
    );
    assert!(store.job(id).unwrap().is_none());
    assert!(!folder.exists(), "the emptied folder goes too");
    assert!(dir.path().join("images").exists(), "not the images folder");
}

fn learned_durations_are_kept_per_model_replaced_and_read_by_another_connection(place: Place) {
    let Place { dir: _dir, path } = place;
    let store = Store::open(&path).unwrap().into_engine();
    assert_eq!(store.learned_durations().unwrap(), Vec::new());
    let turbo = LearnedDuration {
        seconds: 1.25,
        samples: 3,
    };
    store
        .save_learned_duration(Model::Wanx21T2iTurbo, turbo)
        .unwrap();
    let edit = LearnedDuration {
        seconds: 9.5,
        samples: 1,
    };
    store
        .save_learned_duration(Model::Wanx21ImageEdit, edit)
        .unwrap();
    let faster = LearnedDuration {
        seconds: 0.75,
        samples: 4,
    };
    store
        .save_learned_duration(Model::Wanx21T2iTurbo, faster)
        .unwrap();
    // A fresh process reads what this one learned.
    let other = Store::open(&path).unwrap();
    assert_eq!(
        other.learned_durations().unwrap(),
        vec![
            (Model::Wanx21ImageEdit, edit),
            (Model::Wanx21T2iTurbo, faster)
        ]
    );
    // A model this build does not know, or a row without a duration, is skipped.
    Store::open(&path)
        .unwrap()
        .conn()
        .execute_batch(
            "INSERT INTO task_durations VALUES ('wan9-future', 3.0, 2);
             INSERT INTO task_durations VALUES ('wanx-x-painting', 0.0, 2);",
        )
        .unwrap();
    assert_eq!(other.learned_durations().unwrap().len(), 2);
}

/// Waits (bounded) until `attempt` answers `Some`, returning every error seen on the way.
fn retry_until<T>(mut attempt: impl FnMut() -> Result<T, StoreError>) -> (T, Vec<StoreError>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut errors = Vec::new();
    loop {
        match attempt() {
            Ok(answer) => return (answer, errors),
            Err(e) if std::time::Instant::now() < deadline => {
                errors.push(e);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("no answer within 20 s: {e}; before: {errors:?}"),
        }
    }
}

/// Issue #14: a PostgreSQL server that stops and comes back. While it is down, every call
/// fails at once, naming the server without the password; once it is back, the same
/// `Store` reconnects by itself and nothing committed before is lost.
#[test]
fn a_store_reconnects_to_a_restarted_postgresql_server_and_loses_nothing() {
    let Some(mut server) = test_postgres::own_server() else {
        return;
    };
    let url = server.fresh_database();
    let store = Store::open(std::path::Path::new(&url))
        .unwrap()
        .into_engine();
    let id = store.enqueue(&spec("before the restart")).unwrap();
    store.claim_for_submit(id).unwrap().unwrap();

    server.stop();
    let down = store.job(id).unwrap_err().to_string();
    let shown = PostgresUrl::parse(&url).unwrap().to_string();
    assert!(down.starts_with(&shown), "{down}");
    let password = url.split(':').nth(2).unwrap().split('@').next().unwrap();
    assert!(!down.contains(password), "{down}");

    server.start();
    let (job, _errors_while_reconnecting) = retry_until(|| store.job(id));
    let job = job.expect("the job is still there");
    assert_eq!(job.summary.state(), JobState::Submitting);
    assert_eq!(job.summary.prompt, "before the restart");
    // Writes work again too.
    let (later, _) = retry_until(|| store.enqueue(&spec("after the restart")));
    assert!(later.0 > id.0);
}

/// A job with one image saved at `<dir>/images/<job>/0.png`, its bytes put in the store as
/// the engine does; the record and the bytes.
fn job_with_saved_image(
    store: &EngineStore,
    dir: &std::path::Path,
) -> (JobId, ImageRecord, Vec<u8>) {
    job_with_image(
        store,
        dir,
        b"\x89PNG not really, but bytes all the same".to_vec(),
    )
}

/// A job with one image of `bytes` saved: its file under `dir`, its bytes in the store.
fn job_with_image(
    store: &EngineStore,
    dir: &std::path::Path,
    bytes: Vec<u8>,
) -> (JobId, ImageRecord, Vec<u8>) {
    let id = store.enqueue(&spec("a lighthouse")).unwrap();
    let path = dir.join(format!("images/{id}/0.png"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let image = ImageRecord {
        index: 0,
        path: Some(path),
        sha256: Some(sha256_hex(&bytes)),
        bytes: Some(bytes.len() as u64),
        ..Default::default()
    };
    store
        .put_image_bytes(image.sha256.as_ref().unwrap(), &bytes, 1024)
        .unwrap();
    store.record_image(id, &image).unwrap();
    (id, image, bytes)
}

fn image_bytes_are_kept_once_by_their_sha256_on_postgresql_only(place: Place) {
    let Place { dir: _dir, path } = place;
    let store = Store::open(&path).unwrap();
    let on_postgres = matches!(store.location(), Location::Postgres(_));
    let bytes = b"pixels".to_vec();
    let sha = sha256_hex(&bytes);
    store.put_image_bytes(&sha, &bytes, 6).unwrap();
    // Idempotent: the same bytes again change nothing.
    store.put_image_bytes(&sha, &bytes, 6).unwrap();
    let kept = store.image_bytes(&sha).unwrap();
    assert_eq!(kept, on_postgres.then(|| bytes.clone()));

    // Bytes that do not hash to their name, or over the limit, are refused on either.
    let other = sha256_hex(b"other pixels");
    let refused = store.put_image_bytes(&other, &bytes, 6).unwrap_err();
    assert!(refused.to_string().contains(&other), "{refused}");
    assert_eq!(store.image_bytes(&other).unwrap(), None);
    let over = store.put_image_bytes(&sha, &bytes, 5).unwrap_err();
    assert!(over.to_string().contains("limit of 5 bytes"), "{over}");
}

fn an_image_missing_here_is_read_from_the_store_into_the_cache(place: Place) {
    use std::os::unix::fs::PermissionsExt;

    let Place { dir, path } = place;
    let store = Store::open(&path).unwrap().into_engine();
    let on_postgres = matches!(store.location(), Location::Postgres(_));
    let (id, image, bytes) = job_with_saved_image(&store, dir.path());
    let cache_dir = dir.path().join("other-host/cache");
    let cache = blobs::ImageCache::at(cache_dir.clone(), u64::MAX);
    let recorded = image.path.clone().unwrap();
    // Here, the recorded file is the answer: nothing is fetched or cached.
    assert_eq!(store.image_on_disk(id, &image, &cache).unwrap(), recorded);

    // Another host: the recorded file is not on its disk.
    std::fs::remove_file(&recorded).unwrap();
    let found = store.image_on_disk(id, &image, &cache);
    if !on_postgres {
        let message = found.unwrap_err().to_string();
        let sha = image.sha256.as_deref().unwrap();
        assert!(
            message.contains(&format!("job {id}, image 0 (sha256 {sha})"))
                && message.contains("SQLite store keeps no copy"),
            "{message}"
        );
        return;
    }
    let cached = found.unwrap();
    assert!(cached.starts_with(&cache_dir), "{}", cached.display());
    assert_eq!(std::fs::read(&cached).unwrap(), bytes);
    let mode = std::fs::metadata(&cached).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // By the recorded path, as the dashboard asks, the same cached file.
    assert_eq!(store.image_on_disk_at(&recorded, &cache).unwrap(), cached);

    // Bytes in the database that no longer match their hash are never used.
    store
        .conn()
        .execute(
            "UPDATE image_blobs SET bytes = ?1",
            params![b"tampered".as_slice()],
        )
        .unwrap();
    let elsewhere_dir = dir.path().join("third-host/cache");
    let elsewhere = blobs::ImageCache::at(elsewhere_dir.clone(), u64::MAX);
    let message = store
        .image_on_disk(id, &image, &elsewhere)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&format!("job {id}, image 0")) && message.contains("hash to"),
        "{message}"
    );
    assert!(!elsewhere_dir.join(cached.file_name().unwrap()).exists());
}

/// The cache keeps to its limit: an image read from the store that does not fit evicts
/// the image used longest ago, and an image served from the cache counts as used.
#[test]
fn the_image_cache_keeps_to_its_limit_by_evicting_the_image_used_longest_ago() {
    let Some(Place { dir, path }) = postgres_place() else {
        return;
    };
    let store = Store::open(&path).unwrap().into_engine();
    let images: Vec<(JobId, ImageRecord)> = ["first", "second", "third"]
        .into_iter()
        .map(|name| {
            let bytes = format!("{name:>6} image's bytes").into_bytes();
            let (id, image, _) = job_with_image(&store, dir.path(), bytes);
            // Saved by another host: not on this one's disk.
            std::fs::remove_file(image.path.as_ref().unwrap()).unwrap();
            (id, image)
        })
        .collect();
    let size = images[0].1.bytes.unwrap();
    let cache = blobs::ImageCache::at(dir.path().join("cache"), 2 * size);
    let fetch =
        |(id, image): &(JobId, ImageRecord)| store.image_on_disk(*id, image, &cache).unwrap();
    let used_at = |file: &std::path::Path, secs: u64| {
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    };
    let first = fetch(&images[0]);
    used_at(&first, 1_000);
    let second = fetch(&images[1]);
    used_at(&second, 2_000);
    assert!(first.exists() && second.exists(), "two fit");
    // Shown again (from the cache): now the first is the one used last.
    assert_eq!(fetch(&images[0]), first);
    let third = fetch(&images[2]);
    assert!(third.exists());
    assert!(first.exists(), "used after the second");
    assert!(!second.exists(), "used longest ago, evicted");
}

fn a_jobs_input_file_travels_with_it_on_postgresql_only(place: Place) {
    use crate::dashscope::{EditFunction, ImageRef};
    use std::os::unix::fs::PermissionsExt;

    let Place { dir, path } = place;
    let store = Store::open(&path).unwrap();
    let on_postgres = matches!(store.location(), Location::Postgres(_));
    assert_eq!(store.keeps_input_files(), on_postgres);
    let base = dir.path().join("cat.png");
    image::GrayImage::from_pixel(600, 600, image::Luma([90]))
        .save(&base)
        .unwrap();
    let bytes = std::fs::read(&base).unwrap();
    let mut edit = JobSpec::new(Model::Wanx21ImageEdit, "colour the cat");
    edit.function = Some(EditFunction::Colorization);
    edit.base_image = Some(ImageRef::File(base.clone()));
    // As intake queues it: the bytes first, then the job naming them.
    let inputs = if store.keeps_input_files() {
        vec![
            store
                .put_input_file(base.clone(), &bytes, 10 << 20)
                .unwrap(),
        ]
    } else {
        Vec::new()
    };
    let id = store
        .enqueue_with_parents(&[(&edit, None)], None, &inputs)
        .unwrap()[0];
    let rows: Vec<(String, String)> = store
        .conn()
        .query_map(
            "SELECT path, sha256 FROM job_inputs WHERE job_id = ?1",
            params![id.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let cache = ImageCache::at(dir.path().join("other-host/cache"), 1 << 30);
    if !on_postgres {
        // One host: the file is the input; nothing is copied into the database.
        assert!(rows.is_empty(), "{rows:?}");
        assert_eq!(store.input_on_disk(id, &base, &cache).unwrap(), None);
        return;
    }
    let sha = sha256_hex(&bytes);
    assert_eq!(rows, [(base.to_string_lossy().into_owned(), sha.clone())]);
    assert_eq!(store.image_bytes(&sha).unwrap(), Some(bytes.clone()));
    // On the host that queued it, the file itself.
    assert_eq!(
        store.input_on_disk(id, &base, &cache).unwrap(),
        Some(base.clone())
    );

    // Another host holds another file at that path: the queued bytes are sent all the same.
    std::fs::write(&base, b"another host's cat").unwrap();
    let cached = store.input_on_disk(id, &base, &cache).unwrap().unwrap();
    assert!(
        cached.starts_with(dir.path().join("other-host/cache")),
        "{}",
        cached.display()
    );
    assert_eq!(std::fs::read(&cached).unwrap(), bytes);
    let mode = std::fs::metadata(&cached).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Nothing at that path on a third host: the copy again.
    std::fs::remove_file(&base).unwrap();
    assert_eq!(
        store.input_on_disk(id, &base, &cache).unwrap(),
        Some(cached)
    );

    // Bytes in the database that no longer match their hash are never sent.
    store
        .conn()
        .execute(
            "UPDATE image_blobs SET bytes = ?1 WHERE sha256 = ?2",
            params![b"tampered".as_slice(), sha.as_str()],
        )
        .unwrap();
    let elsewhere = ImageCache::at(dir.path().join("third-host/cache"), 1 << 30);
    let refused = store
        .input_on_disk(id, &base, &elsewhere)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&format!("job {id}'s input")) && refused.contains("hash to"),
        "{refused}"
    );
    assert!(
        !dir.path()
            .join("third-host/cache")
            .join(format!("{sha}.png"))
            .exists()
    );

    // The row goes with its job; the bytes stay (another job may name them).
    store.delete(id).unwrap();
    assert_eq!(store.input_on_disk(id, &base, &cache).unwrap(), None);
    assert!(store.image_bytes(&sha).unwrap().is_some());
}

/// A store handle queueing as `who` (in place of this process's `user@host`).
fn each_job_records_who_queued_it_and_mine_selects_and_counts_them(place: Place) {
    let Place { dir: _dir, path } = place;
    let alice = Store::open_as(&path, "alice@box1");
    let bob = Store::open_as(&path, "bob@box2");
    let theirs = alice
        .enqueue_batch(&[spec("a red fox"), spec("a blue fox")], None)
        .unwrap();
    let his = bob.enqueue(&spec("a red owl")).unwrap();
    let detail = alice.job(his).unwrap().unwrap();
    assert_eq!(detail.summary.submitted_by.as_deref(), Some("bob@box2"));
    let json = serde_json::to_value(&detail).unwrap();
    assert_eq!(json["summary"]["submitted_by"], "bob@box2");

    let mine = |who: &str| JobFilter {
        submitted_by: Some(who.to_string()),
        ..JobFilter::default()
    };
    let ids = |filter: &JobFilter| -> Vec<JobId> {
        alice
            .list(filter, 0, 10)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect()
    };
    assert_eq!(ids(&mine("alice@box1")), vec![theirs[1], theirs[0]]);
    assert_eq!(ids(&mine("bob@box2")), vec![his]);
    assert_eq!(ids(&mine("carol@box3")), Vec::<JobId>::new());
    // The counts' fast path holds every submitter's jobs: a submitter filter counts rows.
    assert_eq!(alice.count(&JobFilter::default()).unwrap(), 3);
    assert_eq!(alice.count(&mine("alice@box1")).unwrap(), 2);
    let queued_red = JobFilter {
        state: Some(StateFilter::Only(JobState::Queued)),
        search: Some("red".into()),
        submitted_by: Some("alice@box1".into()),
    };
    assert_eq!(alice.count(&queued_red).unwrap(), 1);
    assert_eq!(ids(&queued_red), vec![theirs[0]]);
    let queued_alice = JobFilter {
        state: Some(StateFilter::Only(JobState::Queued)),
        ..mine("alice@box1")
    };
    assert_eq!(bob.count(&queued_alice).unwrap(), 2);
    // This process's own name is `user@host`, made safe to show.
    let own = Store::open(&path).unwrap();
    let (user, host) = own.submitter().split_once('@').unwrap();
    assert!(!user.is_empty() && !host.is_empty());
    assert!(!own.submitter().chars().any(char::is_control));
}

fn the_counts_by_state_of_one_submitter_leave_the_others_jobs_out(place: Place) {
    let Place { dir: _dir, path } = place;
    let alice = Store::open_as(&path, "alice@box1");
    let bob = Store::open_as(&path, "bob@box2");
    let theirs = alice
        .enqueue_batch(&[spec("a red fox"), spec("a blue fox")], None)
        .unwrap();
    bob.enqueue_batch(&[spec("a red owl"), spec("a grey owl")], None)
        .unwrap();
    let his = bob.enqueue(&spec("a white owl")).unwrap();
    assert_eq!(
        alice.request_cancel(theirs[0]).unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(bob.request_cancel(his).unwrap(), CancelOutcome::Cancelled);

    let hers = alice.counts_by_state_submitted_by("alice@box1").unwrap();
    assert_eq!((hers.queued, hers.cancelled, hers.total()), (1, 1, 2));
    let his = alice.counts_by_state_submitted_by("bob@box2").unwrap();
    assert_eq!((his.queued, his.cancelled, his.total()), (2, 1, 3));
    assert_eq!(
        alice.counts_by_state_submitted_by("carol@box3").unwrap(),
        StateCounts::default()
    );
    // Everyone's counts are still the sum.
    let everyone = bob.counts_by_state().unwrap();
    assert_eq!((everyone.queued, everyone.cancelled), (3, 2));
}

#[test]
fn a_store_on_a_file_has_no_change_watcher_its_marker_moves() {
    let Place { dir: _dir, path } = sqlite_place();
    let store = Store::open(&path).unwrap();
    assert!(store.watch_changes().unwrap().is_none());
    let before = store.change_marker().unwrap();
    Store::open(&path).unwrap().enqueue(&spec("a fox")).unwrap();
    assert_ne!(store.change_marker().unwrap(), before);
}

/// A commit on one connection (another process, another host) wakes a watcher on
/// another connection; with nothing committed it stays asleep.
#[test]
fn a_commit_on_postgresql_wakes_a_change_watcher_on_another_connection() {
    let Some(Place { dir: _dir, path }) = postgres_place() else {
        return;
    };
    let dashboard = Store::open(&path).unwrap();
    let watcher = dashboard
        .watch_changes()
        .unwrap()
        .expect("a watcher on PostgreSQL");
    assert!(
        !watcher.wait(Duration::from_millis(300)),
        "woken with no change"
    );
    let engine = Store::open(&path).unwrap();
    let id = engine.enqueue(&spec("a fox")).unwrap();
    assert!(
        watcher.wait(Duration::from_secs(5)),
        "not woken by a commit"
    );
    // A transaction rolled back notifies nobody; a pause (shown in the header) does.
    {
        let mut conn = engine.conn();
        let mut tx = conn.write_tx().unwrap();
        tx.execute(
            "UPDATE jobs SET prompt = 'gone' WHERE id = ?1",
            params![id.0],
        )
        .unwrap();
    }
    assert!(
        !watcher.wait(Duration::from_millis(300)),
        "woken by a rollback"
    );
    engine.pause(PauseScope::All).unwrap();
    assert!(watcher.wait(Duration::from_secs(5)), "not woken by a pause");
}

on_both_backends!(
    engines_run_what_they_claim_and_adopt_only_what_engines_that_are_gone_left,
    of_engines_adopting_at_once_each_job_goes_to_one,
    claims_of_many_engines_at_once_keep_to_the_in_flight_limit,
    a_shared_bucket_is_one_quota_for_every_connection,
    a_bucket_throttled_by_one_engine_makes_every_engine_wait
);

fn member(path: &std::path::Path, lease: std::time::Duration) -> EngineStore {
    let who = EngineIdentity {
        host: "test-host".into(),
        pid: std::process::id(),
        user: "tester".into(),
    };
    Store::open(path)
        .unwrap()
        .into_team_engine(&who, lease)
        .unwrap()
}

fn ids(jobs: &[JobSummary]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id).collect()
}

/// Calls `adopt` until it adopts something (a lease runs out in real time), for 10 s at most.
fn adopted_once_expired(adopter: &EngineStore) -> Vec<JobId> {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let adopted = adopter.adopt_orphans().unwrap();
        if !adopted.is_empty() || std::time::Instant::now() > give_up {
            return adopted;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn engines_run_what_they_claim_and_adopt_only_what_engines_that_are_gone_left(place: Place) {
    let Place { dir: _dir, path } = place;
    let short = std::time::Duration::from_millis(300);
    let long = std::time::Duration::from_secs(60);
    let first = member(&path, short);
    let one = first.enqueue(&spec("one")).unwrap();
    let two = first.enqueue(&spec("two")).unwrap();
    first.claim_for_submit(one).unwrap().unwrap();
    let shared = first.membership().unwrap().shared;
    let second = member(&path, long);
    second.claim_for_submit(two).unwrap().unwrap();
    if !shared {
        // SQLite: an engine starts only once the last one is gone; it takes all at once.
        assert_eq!(second.adopt_orphans().unwrap(), vec![one]);
        assert_eq!(ids(&second.remote_jobs().unwrap()), vec![one, two]);
        return;
    }
    assert_eq!(ids(&first.remote_jobs().unwrap()), vec![one]);
    assert_eq!(ids(&second.remote_jobs().unwrap()), vec![two]);
    assert!(first.renew_lease().unwrap(), "within its lease");
    assert_eq!(
        second.adopt_orphans().unwrap(),
        Vec::<JobId>::new(),
        "the first engine is alive"
    );
    // The first engine is held up past its lease: its job moves to the second, and it
    // learns it lost the lease and may not send the job's create.
    assert_eq!(adopted_once_expired(&second), vec![one]);
    assert_eq!(ids(&second.remote_jobs().unwrap()), vec![one, two]);
    assert!(first.remote_jobs().unwrap().is_empty());
    assert!(!first.renew_lease().unwrap());
    assert_eq!(
        first.mark_sending(one, Model::Wanx21T2iTurbo).unwrap(),
        None
    );
    assert!(
        second
            .mark_sending(one, Model::Wanx21T2iTurbo)
            .unwrap()
            .is_some()
    );
    // An engine that leaves has its jobs adopted at once.
    let third = member(&path, long);
    second.leave_team().unwrap();
    let mut adopted = third.adopt_orphans().unwrap();
    adopted.sort();
    assert_eq!(adopted, vec![one, two]);
}

fn of_engines_adopting_at_once_each_job_goes_to_one(place: Place) {
    let Place { dir: _dir, path } = place;
    let gone = member(&path, std::time::Duration::from_secs(60));
    let jobs: Vec<JobId> = (0..12)
        .map(|i| {
            let id = gone.enqueue(&spec(&format!("job {i}"))).unwrap();
            gone.claim_for_submit(id).unwrap().unwrap();
            id
        })
        .collect();
    let several = if gone.membership().unwrap().shared {
        4
    } else {
        1 // SQLite runs one engine at a time
    };
    gone.leave_team().unwrap();
    let adopters: Vec<EngineStore> = (0..several)
        .map(|_| member(&path, std::time::Duration::from_secs(60)))
        .collect();
    let mut adopted: Vec<JobId> = std::thread::scope(|scope| {
        let runs: Vec<_> = adopters
            .iter()
            .map(|adopter| scope.spawn(|| adopter.adopt_orphans().unwrap()))
            .collect();
        runs.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    adopted.sort();
    assert_eq!(adopted, jobs, "every job adopted once");
}

fn claims_of_many_engines_at_once_keep_to_the_in_flight_limit(place: Place) {
    let Place { dir: _dir, path } = place;
    let engines: Vec<EngineStore> = (0..4)
        .map(|_| member(&path, std::time::Duration::from_secs(60)))
        .collect();
    let model = Model::Wanx21T2iTurbo;
    let queued: Vec<JobId> = (0..8)
        .map(|i| engines[0].enqueue(&spec(&format!("job {i}"))).unwrap())
        .collect();
    // Each engine tries every job: two places, so two claims, whoever makes them.
    let claimed: Vec<JobId> = std::thread::scope(|scope| {
        let runs: Vec<_> = engines
            .iter()
            .map(|engine| {
                let queued = &queued;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for &id in queued {
                        if let Claim::Claimed(job) =
                            engine.claim_within(id, model, 2, false).unwrap()
                        {
                            assert_eq!(job.summary.id, id);
                            mine.push(id);
                        }
                    }
                    mine
                })
            })
            .collect();
        runs.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    let next = *queued.iter().find(|id| !claimed.contains(id)).unwrap();
    assert!(matches!(
        engines[1].claim_within(next, model, 2, false).unwrap(),
        Claim::Full
    ));
    assert!(matches!(
        engines[1]
            .claim_within(claimed[0], model, 3, false)
            .unwrap(),
        Claim::Gone
    ));
    // A task that ended frees its place, though its images are still to be saved.
    engines[0]
        .mark_created(claimed[0], "t-1", TaskStatus::Pending, "created")
        .unwrap();
    engines[0]
        .update_task_status(claimed[0], TaskStatus::Succeeded, None)
        .unwrap();
    assert!(matches!(
        engines[1].claim_within(next, model, 2, false).unwrap(),
        Claim::Claimed(_)
    ));
}

fn a_shared_bucket_is_one_quota_for_every_connection(place: Place) {
    let Place { dir: _dir, path } = place;
    let a = member(&path, std::time::Duration::from_secs(60));
    let b = member(&path, std::time::Duration::from_secs(60));
    // A slow refill: the test's own pace adds nothing measurable.
    let (rate, capacity) = (0.01, 2.0);
    assert_eq!(a.take_token("create m", rate, capacity).unwrap(), None);
    assert_eq!(b.take_token("create m", rate, capacity).unwrap(), None);
    let wait = a.take_token("create m", rate, capacity).unwrap();
    assert!(
        wait.is_some_and(|w| w > std::time::Duration::from_secs(90)),
        "{wait:?}"
    );
    assert!(b.take_token("create m", rate, capacity).unwrap().is_some());
    assert_eq!(
        b.take_token("query", rate, capacity).unwrap(),
        None,
        "buckets are apart"
    );
}

fn a_bucket_throttled_by_one_engine_makes_every_engine_wait(place: Place) {
    let Place { dir: _dir, path } = place;
    let throttled = member(&path, std::time::Duration::from_secs(60));
    let other = member(&path, std::time::Duration::from_secs(60));
    // Plenty of tokens: only the penalty can make anyone wait.
    let (rate, capacity) = (10.0, 5.0);
    assert_eq!(other.take_token("create m", rate, capacity).unwrap(), None);
    // At a tenth of its speed the throttled engine's next create is 1 s off: so is the
    // other engine's, less the moments between the two calls.
    throttled
        .throttle_bucket("create m", rate, capacity, 0.1)
        .unwrap();
    let wait = other.take_token("create m", rate, capacity).unwrap();
    assert!(
        wait.is_some_and(|w| w > Duration::from_millis(500) && w <= Duration::from_secs(1)),
        "{wait:?}"
    );
    // A bucket no engine took from yet is created in debt.
    throttled
        .throttle_bucket("create n", rate, capacity, 0.1)
        .unwrap();
    assert!(
        other
            .take_token("create n", rate, capacity)
            .unwrap()
            .is_some()
    );
    assert_eq!(
        other.take_token("query", rate, capacity).unwrap(),
        None,
        "other buckets are not throttled"
    );
}

/// PostgreSQL breaks a deadlock by aborting one of its transactions (SQLSTATE 40P01); the
/// store runs the aborted one again from the start, and it then commits.
#[test]
fn a_transaction_aborted_to_break_a_deadlock_runs_again_and_commits() {
    let Some(Place { dir: _dir, path }) = postgres_place() else {
        return;
    };
    let store = Store::open(&path).unwrap();
    let peer = Store::open(&path).unwrap();
    let onlooker = Store::open(&path).unwrap();
    let first = store.enqueue(&spec("first")).unwrap();
    let second = store.enqueue(&spec("second")).unwrap();
    let set_prompt = "UPDATE jobs SET prompt = ?1 WHERE id = ?2";
    let (second_locked, await_second_locked) = std::sync::mpsc::channel();
    let mut runs = 0;
    std::thread::scope(|scope| {
        let peer = scope.spawn(|| {
            let mut conn = peer.conn();
            let mut tx = conn.write_tx().unwrap();
            tx.execute(set_prompt, params!["peer", second.0]).unwrap();
            second_locked.send(()).unwrap();
            // The store's transaction waits for `second` first, so its deadlock check runs
            // first and aborts it, not this one.
            wait_until_a_transaction_waits_for_a_lock(&onlooker);
            std::thread::sleep(Duration::from_millis(200));
            tx.execute(set_prompt, params!["peer", first.0]).unwrap();
            tx.commit().unwrap();
        });
        let outcome = store.conn().in_write_tx(|tx| {
            runs += 1;
            tx.execute(set_prompt, params!["store", first.0])?;
            if runs == 1 {
                await_second_locked.recv().unwrap();
            }
            tx.execute(set_prompt, params!["store", second.0])?;
            Ok(())
        });
        peer.join().unwrap();
        assert_eq!(outcome, Ok(()));
    });
    assert_eq!(runs, 2, "aborted once, then committed");
    for id in [first, second] {
        assert_eq!(
            store.job(id).unwrap().unwrap().summary.prompt,
            "store",
            "{id}"
        );
    }
}

/// Polls the server until some transaction of the database waits for a row lock.
fn wait_until_a_transaction_waits_for_a_lock(onlooker: &Store) {
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = onlooker
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                params![],
                |row| row.get(0),
            )
            .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "nobody waits for a lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A transaction aborted for a conflict each time it runs is given up after a bounded
/// number of runs, and the error names the SQLSTATE and how many runs there were.
#[test]
fn a_transaction_that_keeps_conflicting_is_given_up_naming_the_sqlstate_and_the_runs() {
    let Place { dir: _dir, path } = sqlite_place();
    let store = Store::open(&path).unwrap();
    let mut runs = 0;
    let outcome: Result<(), StoreError> = store.conn().in_write_tx(|_| {
        runs += 1;
        Err(StoreError::Conflict {
            sqlstate: "40P01".into(),
            message: "deadlock detected".into(),
            attempts: 1,
        })
    });
    assert_eq!(runs, db::CONFLICT_ATTEMPTS);
    let error = outcome.unwrap_err();
    assert_eq!(
        error,
        StoreError::Conflict {
            sqlstate: "40P01".into(),
            message: "deadlock detected".into(),
            attempts: db::CONFLICT_ATTEMPTS,
        }
    );
    let said = error.to_string();
    let runs_said = format!("{} time(s)", db::CONFLICT_ATTEMPTS);
    assert!(
        said.contains("SQLSTATE 40P01") && said.contains(&runs_said),
        "{said}"
    );
}

on_both_backends!(
    a_reconciling_marker_holds_its_models_creates_and_is_one_live_engines_until_it_lapses,
    creates_on_the_wire_are_those_live_engines_sent_not_those_adopted_unanswered,
    an_own_unanswered_create_set_to_await_its_look_up_is_no_longer_waited_for,
    the_reconciler_gathers_every_lost_create_of_the_model_no_live_engine_waits_for,
);

fn a_reconciling_marker_holds_its_models_creates_and_is_one_live_engines_until_it_lapses(
    place: Place,
) {
    let Place { dir: _dir, path } = place;
    let long = Duration::from_secs(60);
    let (turbo, plus) = (Model::Wanx21T2iTurbo, Model::Wanx21T2iPlus);
    let reconciler = member(&path, long);
    let held = reconciler.enqueue(&spec("held")).unwrap();
    let free = reconciler
        .enqueue(&JobSpec::new(plus, "another model"))
        .unwrap();
    reconciler.claim_for_submit(held).unwrap().unwrap();
    reconciler.claim_for_submit(free).unwrap().unwrap();

    assert!(reconciler.begin_reconciling(turbo, long).unwrap());
    assert_eq!(reconciler.reconciling_models().unwrap(), vec![turbo]);
    assert_eq!(
        reconciler.mark_sending(held, turbo).unwrap(),
        None,
        "not even the reconciler's own creates go out"
    );
    let job = reconciler.job(held).unwrap().unwrap();
    assert_eq!(job.summary.status.submitted_at(), None, "not stamped");
    assert!(
        reconciler.mark_sending(free, plus).unwrap().is_some(),
        "another model is not held"
    );
    assert!(
        reconciler.begin_reconciling(turbo, long).unwrap(),
        "renewed by its holder"
    );

    if reconciler.membership().unwrap().shared {
        let other = member(&path, long);
        assert!(
            !other.begin_reconciling(turbo, long).unwrap(),
            "held by a live engine"
        );
        assert!(
            other.begin_reconciling(plus, long).unwrap(),
            "one per model"
        );
        other.end_reconciling(plus).unwrap();
        // A marker that lapsed, its engine alive, is taken.
        assert!(reconciler.begin_reconciling(turbo, Duration::ZERO).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        assert!(reconciler.reconciling_models().unwrap().is_empty());
        assert!(
            other.begin_reconciling(turbo, long).unwrap(),
            "taken once lapsed"
        );
        // An engine's end does not end another's marker.
        reconciler.end_reconciling(turbo).unwrap();
        assert_eq!(reconciler.mark_sending(held, turbo).unwrap(), None);
        // The marker of an engine whose lease ran out holds nothing, though it has not
        // lapsed itself.
        other
            .conn()
            .execute(
                "UPDATE engines SET heartbeat_at = 0 WHERE id = ?1",
                params![other.membership().unwrap().id],
            )
            .unwrap();
        assert!(reconciler.reconciling_models().unwrap().is_empty());
        assert!(reconciler.begin_reconciling(turbo, long).unwrap());
        // One that leaves takes its markers along.
        assert!(other.begin_reconciling(plus, long).unwrap());
        other.leave_team().unwrap();
        let left: i64 = reconciler
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM reconciling WHERE model = ?1",
                params![plus.id()],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }
    reconciler.end_reconciling(turbo).unwrap();
    assert!(reconciler.reconciling_models().unwrap().is_empty());
    assert!(reconciler.mark_sending(held, turbo).unwrap().is_some());
}

fn creates_on_the_wire_are_those_live_engines_sent_not_those_adopted_unanswered(place: Place) {
    let Place { dir: _dir, path } = place;
    let long = Duration::from_secs(60);
    let model = Model::Wanx21T2iTurbo;
    let gone = member(&path, long);
    let lost = gone.enqueue(&spec("lost")).unwrap();
    gone.claim_for_submit(lost).unwrap().unwrap();
    gone.mark_sending(lost, model).unwrap().unwrap();
    assert_eq!(gone.creates_on_the_wire(model).unwrap(), 1);
    assert_eq!(
        gone.creates_on_the_wire(Model::Wanx21T2iPlus).unwrap(),
        0,
        "per model"
    );
    gone.leave_team().unwrap();
    assert_eq!(
        gone.creates_on_the_wire(model).unwrap(),
        0,
        "no answer comes to an engine that is gone"
    );

    let adopter = member(&path, long);
    assert_eq!(adopter.adopt_orphans().unwrap(), vec![lost]);
    assert_eq!(adopter.adopted_unanswered().unwrap(), vec![lost]);
    assert_eq!(
        adopter.creates_on_the_wire(model).unwrap(),
        0,
        "an adopted create is looked up, not waited for"
    );
    let sent = adopter.enqueue(&spec("sent")).unwrap();
    adopter.claim_for_submit(sent).unwrap().unwrap();
    adopter.mark_sending(sent, model).unwrap().unwrap();
    assert_eq!(adopter.creates_on_the_wire(model).unwrap(), 1);
    assert_eq!(adopter.adopted_unanswered().unwrap(), vec![lost]);
    adopter
        .mark_created(sent, "task-sent", TaskStatus::Pending, "created")
        .unwrap();
    assert_eq!(adopter.creates_on_the_wire(model).unwrap(), 0, "answered");

    // Looked up and found never created: queued, then claimed afresh.
    let not_created = JobError::new(ErrorKind::Interrupted, "not created", None);
    adopter.requeue(lost, &not_created, None, false).unwrap();
    assert!(adopter.adopted_unanswered().unwrap().is_empty());
    adopter.claim_for_submit(lost).unwrap().unwrap();
    adopter.mark_sending(lost, model).unwrap().unwrap();
    assert!(adopter.adopted_unanswered().unwrap().is_empty());
    assert_eq!(adopter.creates_on_the_wire(model).unwrap(), 1, "sent again");
}

fn an_own_unanswered_create_set_to_await_its_look_up_is_no_longer_waited_for(place: Place) {
    let Place { dir: _dir, path } = place;
    let long = Duration::from_secs(60);
    let model = Model::Wanx21T2iTurbo;
    // On SQLite an engine starts only once the last one is gone: `engine` is the live one.
    let other = member(&path, long);
    let engine = member(&path, long);
    let unsent = engine.enqueue(&spec("unsent")).unwrap();
    engine.claim_for_submit(unsent).unwrap().unwrap();
    assert!(!engine.await_lookup(unsent).unwrap(), "never sent");
    let lost = engine.enqueue(&spec("lost")).unwrap();
    engine.claim_for_submit(lost).unwrap().unwrap();
    engine.mark_sending(lost, model).unwrap().unwrap();
    assert!(
        !other.await_lookup(lost).unwrap(),
        "another engine's create"
    );
    assert_eq!(engine.creates_on_the_wire(model).unwrap(), 1);

    assert!(engine.await_lookup(lost).unwrap());
    assert_eq!(
        other.creates_on_the_wire(model).unwrap(),
        0,
        "its answer is not waited for"
    );
    assert_eq!(engine.adopted_unanswered().unwrap(), vec![lost]);
    assert!(other.adopted_unanswered().unwrap().is_empty());

    // Looked up and found: recorded, nothing left to look up.
    engine
        .mark_created(lost, "task-lost", TaskStatus::Pending, "adopted")
        .unwrap();
    assert!(engine.adopted_unanswered().unwrap().is_empty());
    assert!(!engine.await_lookup(lost).unwrap(), "answered");
}

fn the_reconciler_gathers_every_lost_create_of_the_model_no_live_engine_waits_for(place: Place) {
    let Place { dir: _dir, path } = place;
    let long = Duration::from_secs(60);
    let (turbo, plus) = (Model::Wanx21T2iTurbo, Model::Wanx21T2iPlus);
    let sent = |engine: &EngineStore, prompt: &str, model: Model| {
        let id = engine.enqueue(&JobSpec::new(model, prompt)).unwrap();
        engine.claim_for_submit(id).unwrap().unwrap();
        engine.mark_sending(id, model).unwrap().unwrap();
        id
    };
    let gone = member(&path, long);
    let left_by_the_gone = sent(&gone, "gone", turbo);
    gone.leave_team().unwrap();
    let reconciler = member(&path, long);
    let own = sent(&reconciler, "own", turbo);
    let other_model = sent(&reconciler, "other model", plus);
    let answered = sent(&reconciler, "answered", turbo);
    reconciler
        .mark_created(answered, "task-answered", TaskStatus::Pending, "created")
        .unwrap();
    for id in [own, other_model] {
        assert!(reconciler.await_lookup(id).unwrap());
    }
    let mut lost = vec![left_by_the_gone, own];
    assert_eq!(reconciler.gather_awaiting_lookup(turbo).unwrap(), lost);
    assert_eq!(
        reconciler.adopted_unanswered().unwrap(),
        vec![left_by_the_gone, own, other_model],
        "this engine looks them up; another model's are not gathered"
    );
    if !reconciler.membership().unwrap().shared {
        return;
    }

    let other = member(&path, long);
    let put_off = sent(&other, "put off", turbo);
    let on_the_wire = sent(&other, "on the wire", turbo);
    assert!(other.await_lookup(put_off).unwrap());
    lost.push(put_off);
    assert_eq!(reconciler.gather_awaiting_lookup(turbo).unwrap(), lost);
    assert!(
        other.adopted_unanswered().unwrap().is_empty(),
        "the reconciler took over its put-off look-up"
    );
    assert_eq!(
        other.creates_on_the_wire(turbo).unwrap(),
        1,
        "a create whose answer may come stays its engine's"
    );
    other
        .mark_created(on_the_wire, "task-wire", TaskStatus::Pending, "created")
        .unwrap();
    assert_eq!(reconciler.gather_awaiting_lookup(turbo).unwrap(), lost);
}

on_both_backends!(a_batch_larger_than_one_statement_is_queued_in_order_each_job_with_its_event);

fn a_batch_larger_than_one_statement_is_queued_in_order_each_job_with_its_event(place: Place) {
    let Place { dir: _dir, path } = place;
    let store = Store::open(&path).unwrap();
    let specs: Vec<JobSpec> = (0..1_234)
        .map(|i| JobSpec::new(Model::Wanx21T2iTurbo, format!("job number {i}")))
        .collect();
    let ids = store.enqueue_batch(&specs, Some("big")).unwrap();
    assert_eq!(ids.len(), specs.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in batch order");
    for (i, id) in ids.iter().enumerate() {
        let job = store.job(*id).unwrap().unwrap();
        assert_eq!(job.spec.prompt, format!("job number {i}"), "job {id}");
        assert_eq!(job.summary.state(), JobState::Queued);
        assert_eq!(job.events.len(), 1, "job {id}: {:?}", job.events);
        let event = &job.events[0];
        assert_eq!(
            (event.from_state, event.to_state, event.detail.as_deref()),
            (None, JobState::Queued, Some("batch big"))
        );
    }
    assert_eq!(store.counts_by_state().unwrap().queued, specs.len() as u64);
}

#[test]
fn rows_of_placeholders_number_on_across_rows_around_a_literal() {
    use super::row_placeholders;
    assert_eq!(row_placeholders(1, 2, None), "(?1, ?2)");
    assert_eq!(
        row_placeholders(2, 3, Some((1, "NULL"))),
        "(?1, NULL, ?2, ?3), (?4, NULL, ?5, ?6)"
    );
    assert_eq!(
        row_placeholders(1, 2, Some((2, "'queued'"))),
        "(?1, ?2, 'queued')"
    );
}
