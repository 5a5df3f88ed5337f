//! The store on real SQLite files: schema handling, paging, events, cancel/retry/delete.

use wandash::dashscope::{ClientError, JobSpec, Model, TaskStatus};
use wandash::store::{
    CancelOutcome, ImageRecord, JobError, JobFilter, JobId, JobState, SCHEMA_VERSION, StateFilter,
    Store, StoreError,
};

fn spec(prompt: &str) -> JobSpec {
    JobSpec::new(Model::Wanx21T2iTurbo, prompt)
}

fn db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/wandash.db");
    (dir, path)
}

#[test]
fn opening_twice_keeps_data_and_schema_version() {
    let (_dir, path) = db();
    let id = Store::open(&path).unwrap().enqueue(&spec("a fox")).unwrap();
    let store = Store::open(&path).unwrap();
    let job = store.job(id).unwrap().expect("job survives reopening");
    assert_eq!(job.spec.prompt, "a fox");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_message() {
    let (_dir, path) = db();
    Store::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 3)
        .unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, known, .. } if found == SCHEMA_VERSION + 3 && known == SCHEMA_VERSION)
    );
    let text = err.to_string();
    assert!(text.contains("created by a newer wandash"), "{text}");
    assert!(
        text.contains(&format!("schema {}", SCHEMA_VERSION + 3)),
        "{text}"
    );
    // Refusing must not have touched the file.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION + 3);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let (dir, _) = db();
    let path = dir.path().join("notes.txt");
    let content = "this is a text file, not SQLite, and it is long enough to fill a header page.\n"
        .repeat(20);
    std::fs::write(&path, &content).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("not a wandash database"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
}

#[test]
fn list_pages_a_window_by_state_and_search_newest_first() {
    let (_dir, path) = db();
    let store = Store::open(&path).unwrap();
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
            store.claim_for_submit(*id).unwrap().unwrap().summary.state,
            JobState::Submitting
        );
        store
            .end_job(
                *id,
                JobState::Failed,
                Some(&JobError::new("InvalidParameter", "bad", None)),
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
    };
    assert_eq!(store.count(&failed).unwrap(), 6);
    let rows = store.list(&failed, 1, 2).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[20], ids[15]]
    );
    assert!(rows.iter().all(
        |r| r.state == JobState::Failed && r.error_code.as_deref() == Some("InvalidParameter")
    ));
    let problems = JobFilter {
        state: Some(StateFilter::Problems),
        search: None,
    };
    assert_eq!(store.count(&problems).unwrap(), 6);
    let active = JobFilter {
        state: Some(StateFilter::Active),
        search: None,
    };
    assert_eq!(store.count(&active).unwrap(), 24);

    // Search is case-insensitive and treats `_` literally, not as a wildcard.
    let cats = JobFilter {
        state: None,
        search: Some("red_cat".into()),
    };
    assert_eq!(store.count(&cats).unwrap(), 10);
    let wildcard = JobFilter {
        state: None,
        search: Some("Red%".into()),
    };
    assert_eq!(store.count(&wildcard).unwrap(), 0);
    let failed_cats = JobFilter {
        state: Some(StateFilter::Only(JobState::Failed)),
        search: Some("cat".into()),
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

#[test]
fn every_transition_writes_an_event() {
    use JobState::*;
    let (_dir, path) = db();
    let store = Store::open(&path).unwrap();
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
            .requeue(id, &JobError::from_client(&err), Some(0), true)
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
        .update_task_status(id, TaskStatus::Running, Some(5))
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
    assert_eq!(job.task_id.as_deref(), Some("task-1"));
    assert_eq!(job.actual_prompt.as_deref(), Some("a lighthouse, dusk"));
    assert_eq!(job.images.len(), 2);
    assert_eq!(store.images_since(0).unwrap(), 1);
    assert!((store.spend_since(0).unwrap() - 0.14).abs() < 1e-9);
    assert_eq!(store.images_today().unwrap(), 1);
    assert_eq!(store.job_for_task("task-1").unwrap(), Some(id));
    // A finished job is not claimed, ended or requeued again.
    assert!(store.claim_for_submit(id).unwrap().is_none());
    assert!(!store.end_job(id, Failed, None).unwrap());
}

#[test]
fn cancel_retry_and_delete_follow_the_state() {
    let (_dir, path) = db();
    let store = Store::open(&path).unwrap();
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
        store.job(queued).unwrap().unwrap().summary.state,
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
    assert_eq!(job.summary.state, JobState::Queued);
    assert!(job.summary.ended_at.is_none());
    assert_eq!(
        job.events.last().unwrap().detail.as_deref(),
        Some("retry requested")
    );

    store.delete(queued).unwrap();
    assert!(store.job(queued).unwrap().is_none());
    assert!(matches!(store.retry(queued), Err(StoreError::NoSuchJob(_))));
}

#[test]
fn change_marker_moves_on_commits_from_other_connections() {
    let (_dir, path) = db();
    let reader = Store::open(&path).unwrap();
    let writer = Store::open(&path).unwrap();
    let before = reader.change_marker().unwrap();
    assert_eq!(
        reader.change_marker().unwrap(),
        before,
        "no commit, no change"
    );
    writer.enqueue(&spec("x")).unwrap();
    let after = reader.change_marker().unwrap();
    assert_ne!(after, before);
    reader.enqueue(&spec("y")).unwrap();
    assert_ne!(
        reader.change_marker().unwrap(),
        after,
        "own commits count too"
    );
}

#[test]
fn the_spec_round_trips_and_no_key_is_stored() {
    let (_dir, path) = db();
    let store = Store::open(&path).unwrap();
    let mut s = spec("a bridge");
    s.seed = Some(42);
    s.n = Some(2);
    let id = store.enqueue(&s).unwrap();
    let job = store.job(id).unwrap().unwrap();
    assert_eq!(job.spec, s);
    assert_eq!(job.summary.images_expected, 2);
    assert!("7".parse::<JobId>().is_ok() && "x".parse::<JobId>().is_err());
}
