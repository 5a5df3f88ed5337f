//! The engine's side of the store on real SQLite files: claims, transitions and their
//! events, outcomes, and the lists and counts over the states it writes. In the crate,
//! because the engine's writes are not public.

use super::*;
use crate::dashscope::{ClientError, JobSpec, Model, TaskStatus, Timestamp};

fn spec(prompt: &str) -> JobSpec {
    JobSpec::new(Model::Wanx21T2iTurbo, prompt)
}

fn db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/wandash.db");
    (dir, path)
}

#[test]
fn list_pages_a_window_by_state_and_search_newest_first() {
    let (_dir, path) = db();
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

#[test]
fn cancel_retry_and_delete_follow_the_state() {
    let (_dir, path) = db();
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

#[test]
fn a_task_whose_images_all_vanished_ends_expired_and_unbilled() {
    let (_dir, path) = db();
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

#[test]
fn learned_durations_are_kept_per_model_replaced_and_read_by_another_connection() {
    let (_dir, path) = db();
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
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "INSERT INTO task_durations VALUES ('wan9-future', 3.0, 2);
             INSERT INTO task_durations VALUES ('wanx-x-painting', 0.0, 2);",
        )
        .unwrap();
    assert_eq!(other.learned_durations().unwrap().len(), 2);
}
