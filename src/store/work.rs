//! The engine's side of the store: claiming jobs, recording tasks, images and outcomes.
//! Each call is one transaction, committed before the engine takes its next network step,
//! so a crash at any point leaves a state the engine can resume from.

use std::ops::Deref;

use super::db::{Db, Dialect, ToValue, Value, params};
use super::reconciling::{marker_lock, no_marker_holds};
use super::team::Membership;
use super::{
    ErrorKind, ImageRecord, JobDetail, JobError, JobId, JobState, JobSummary, SUMMARY_COLUMNS,
    Store, StoreError, current_state, insert_event, load_detail, parse_model, summary_from_row,
    transition,
};
use crate::dashscope::{ErrorAction, JobSpec, Model, TaskStatus, Timestamp};

impl JobError {
    fn columns(&self) -> [(&'static str, Value); 3] {
        [
            ("error_code", self.kind.code().to_value()),
            ("error_message", self.message.to_value()),
            (
                "error_action",
                self.action.map(ErrorAction::as_str).to_value(),
            ),
        ]
    }
}

/// How the engine ends a job that is not yet final, with what each end must record: a
/// failure, an expiry or a question for a person always says why; a cancel keeps
/// whatever note the job had.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ending {
    Failed(JobError),
    Cancelled,
    Expired(JobError),
    NeedsAttention(JobError),
}

impl Ending {
    pub(crate) fn state(&self) -> JobState {
        match self {
            Ending::Failed(_) => JobState::Failed,
            Ending::Cancelled => JobState::Cancelled,
            Ending::Expired(_) => JobState::Expired,
            Ending::NeedsAttention(_) => JobState::NeedsAttention,
        }
    }

    fn error(&self) -> Option<&JobError> {
        match self {
            Ending::Failed(error) | Ending::Expired(error) | Ending::NeedsAttention(error) => {
                Some(error)
            }
            Ending::Cancelled => None,
        }
    }
}

/// The engine's handle on the store: the writes that move a job through its life, and
/// the reads only the engine makes. The dashboard, the CLI and the MCP server hold a
/// plain `Store`, whose API has reads and user commands only; the engine turns the store
/// it opened into this handle (`Store::into_engine`, crate-private) and reads through it
/// too. Nothing here is public outside the crate.
pub(crate) struct EngineStore {
    store: Store,
    /// The engine's place in the team of engines on this store; `None` for a handle that
    /// runs every job (tests of the store).
    membership: Option<Membership>,
}

impl Deref for EngineStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Store {
    /// This store as the handle of an engine that runs every job (the store's tests).
    #[cfg(test)]
    pub(crate) fn into_engine(self) -> EngineStore {
        EngineStore {
            store: self,
            membership: None,
        }
    }

    /// This store as the handle of the registered engine `membership`.
    pub(super) fn into_engine_as(self, membership: Membership) -> EngineStore {
        EngineStore {
            store: self,
            membership: Some(membership),
        }
    }
}

impl EngineStore {
    pub(crate) fn membership(&self) -> Option<Membership> {
        self.membership
    }

    /// The condition "run by this engine" on a job, and the value to bind at `?param`
    /// for it; neither for a handle that runs every job.
    fn run_by_me(&self, param: usize) -> (String, Option<Value>) {
        match self.membership {
            Some(me) => (format!("AND engine_id = ?{param}"), Some(me.id.to_value())),
            None => (String::new(), None),
        }
    }

    /// Queued jobs of `model` whose retry time has come, in queue order. On PostgreSQL a
    /// job another engine is claiming right now is skipped rather than waited for.
    pub(crate) fn due_queued(
        &self,
        model: Model,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<JobId>, StoreError> {
        let mut conn = self.conn();
        let skip_locked = match conn.dialect() {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        conn.query_map(
            &format!(
                "SELECT id FROM jobs WHERE state = 'queued' AND model = ?1
                   AND (next_attempt_at IS NULL OR next_attempt_at <= ?2)
                 ORDER BY queue_pos, id LIMIT ?3 {skip_locked}"
            ),
            params![model.id(), now, limit],
            |row| row.get(0).map(JobId),
        )
    }

    /// Queued -> submitting, committed before the create request goes out; counts an
    /// attempt. `submitted_at` stays empty until `mark_sending`: a claimed job may wait
    /// for its model's create gate, and one that never reached the wire needs no search
    /// after a crash. `None` if the job is no longer queued (cancelled or claimed meanwhile).
    /// The job names this engine as its runner.
    pub(crate) fn claim_for_submit(&self, id: JobId) -> Result<Option<JobDetail>, StoreError> {
        let engine = self.membership.map(|m| m.id);
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let detail = claim_in(tx, id, engine)?;
            Ok(detail)
        })
    }

    /// Stamps `submitted_at` on a submitting job right before its create goes on the wire
    /// (the time window recovery searches, and the sign that a create may have happened);
    /// returns the stamp. `None`, stamping nothing, while the queue or `model` is paused,
    /// or while an engine looks up unanswered creates of `model` in the service's task
    /// list (the `reconciling` marker): checked in the same statement, so no create goes
    /// out once a pause or a marker has committed. Also `None` once another engine
    /// adopted the job (this one was held up past its lease): the adopter decides about
    /// its create.
    pub(crate) fn mark_sending(
        &self,
        id: JobId,
        model: Model,
    ) -> Result<Option<Timestamp>, StoreError> {
        let at = Timestamp::now();
        let (mine, me) = self.run_by_me(4);
        let mut args = params![at, id.0, model.id()].to_vec();
        args.extend(me);
        let mut conn = self.conn();
        let dialect = conn.dialect();
        let no_marker = no_marker_holds(dialect, 3);
        let stamped = conn.in_write_tx(|tx| {
            // Shared: stamps go on side by side, and a marker waits for those under way.
            tx.lock_until_commit(&marker_lock(model), true)?;
            tx.execute(
                &format!(
                    "UPDATE jobs SET submitted_at = ?1 WHERE id = ?2
                       AND NOT EXISTS (SELECT 1 FROM paused WHERE scope IN ('all', ?3))
                       AND {no_marker} {mine}"
                ),
                &args,
            )
        })?;
        Ok((stamped == 1).then_some(at))
    }

    /// Records the spec as sent (local files replaced by remote refs), so a retry within
    /// the upload's lifetime does not upload again.
    pub(crate) fn set_prepared_spec(&self, id: JobId, spec: &JobSpec) -> Result<(), StoreError> {
        let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn().execute(
            "UPDATE jobs SET prepared_spec = ?1 WHERE id = ?2",
            params![json, id.0],
        )?;
        Ok(())
    }

    /// Submitting -> submitted with the task id, right after the create answered (or after
    /// recovery found the task: `detail` says which).
    pub(crate) fn mark_created(
        &self,
        id: JobId,
        task_id: &str,
        status: TaskStatus,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let done = record_created(tx, id, task_id, status, detail)?;
            Ok(done)
        })
    }

    /// `mark_created` for a create's answer, unless another job already has `task_id`
    /// (the service answered two creates with one id): then, in the same transaction,
    /// this job goes to needs_attention with the error `duplicate` makes of the other
    /// job's id, and that id is returned.
    pub(crate) fn mark_created_unless_taken(
        &self,
        id: JobId,
        task_id: &str,
        status: TaskStatus,
        duplicate: impl Fn(JobId) -> JobError,
    ) -> Result<Option<JobId>, StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let holder: Option<JobId> = tx.query_opt(
                "SELECT id FROM jobs WHERE task_id = ?1 AND id != ?2",
                params![task_id, id.0],
                |r| r.get(0).map(JobId),
            )?;
            let Some(holder) = holder else {
                record_created(tx, id, task_id, status, "created")?;
                return Ok(None);
            };
            let error = duplicate(holder);
            let mut columns = vec![("ended_at", Value::from(Timestamp::now()))];
            columns.extend(error.columns());
            transition(
                tx,
                id,
                &[JobState::Submitting],
                JobState::NeedsAttention,
                &columns,
                Some(&error.to_string()),
            )?;
            Ok(Some(holder))
        })
    }

    /// Records a polled task status; submitted -> running once the task left PENDING.
    pub(crate) fn update_task_status(
        &self,
        id: JobId,
        status: TaskStatus,
        scheduled_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            tx.execute(
                "UPDATE jobs SET task_status = ?1, scheduled_at = COALESCE(?2, scheduled_at) WHERE id = ?3",
                params![status.as_str(), scheduled_at, id.0],
            )?;
            if status != TaskStatus::Pending {
                transition(
                    tx,
                    id,
                    &[JobState::Submitted],
                    JobState::Running,
                    &[],
                    Some(status.as_str()),
                )?;
            }
            Ok(())
        })
    }

    /// Back to the queue after a create that certainly did not happen (an error answer),
    /// to be tried again at `next_attempt_at`. `count_attempt = false` when the job was not
    /// at fault (its model or the engine was stopped), so it keeps its attempts.
    pub(crate) fn requeue(
        &self,
        id: JobId,
        error: &JobError,
        next_attempt_at: Option<Timestamp>,
        count_attempt: bool,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let mut columns = error.columns().to_vec();
            columns.push(("next_attempt_at", next_attempt_at.to_value()));
            columns.push(("submitted_at", Value::Null));
            if !count_attempt {
                let attempts: u32 = tx.query_row(
                    "SELECT attempts FROM jobs WHERE id = ?1",
                    params![id.0],
                    |r| r.get(0),
                )?;
                columns.push(("attempts", attempts.saturating_sub(1).into()));
            }
            let done = transition(
                tx,
                id,
                &[JobState::Submitting],
                JobState::Queued,
                &columns,
                Some(&error.to_string()),
            )?;
            Ok(done)
        })
    }

    /// Ends a job that is not yet final: failed, cancelled, expired or needs_attention.
    pub(crate) fn end_job(&self, id: JobId, ending: Ending) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let mut columns = vec![("ended_at", Value::from(Timestamp::now()))];
            let error = ending.error();
            if let Some(error) = error {
                columns.extend(error.columns());
            }
            let detail = error.map(JobError::to_string);
            let from = [
                JobState::Queued,
                JobState::Submitting,
                JobState::Submitted,
                JobState::Running,
            ];
            let to = ending.state();
            let done = transition(tx, id, &from, to, &columns, detail.as_deref())?;
            Ok(done)
        })
    }

    /// Writes (or overwrites) one image slot of a job.
    pub(crate) fn record_image(&self, id: JobId, image: &ImageRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO images
               (job_id, idx, url, path, sha256, width, height, bytes, error_code, error_message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (job_id, idx) DO UPDATE SET url = excluded.url, path = excluded.path,
               sha256 = excluded.sha256, width = excluded.width, height = excluded.height,
               bytes = excluded.bytes, error_code = excluded.error_code,
               error_message = excluded.error_message",
            params![
                id.0,
                image.index,
                image.url,
                image
                    .path
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                image.sha256,
                image.width,
                image.height,
                image.bytes.map(|b| b as i64),
                image.error_code,
                image.error_message,
            ],
        )?;
        Ok(())
    }

    /// Ends a job whose task succeeded, once every image slot is saved or has its error:
    /// succeeded if any image was saved (priced per saved image), otherwise expired (the
    /// results were gone before they could be fetched) or failed, with the first image's
    /// error. Returns the state reached, `None` if the job had already moved on.
    pub(crate) fn finish_downloads(
        &self,
        id: JobId,
        price_per_image: Option<f64>,
        actual_prompt: Option<&str>,
    ) -> Result<Option<JobState>, StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let (ok, failed): (u32, u32) = tx.query_row(
                "SELECT COUNT(path), COUNT(*) - COUNT(path) FROM images WHERE job_id = ?1",
                params![id.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            // An expired image explains the job best: the others could not have been fetched either.
            let first_error: Option<(String, String)> = tx.query_opt(
                "SELECT error_code, COALESCE(error_message, '') FROM images
             WHERE job_id = ?1 AND path IS NULL ORDER BY (error_code = ?2) DESC, idx LIMIT 1",
                params![id.0, ErrorKind::Expired.code()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let mut columns = vec![
                ("ended_at", Value::from(Timestamp::now())),
                ("images_ok", ok.into()),
                ("images_failed", failed.into()),
                ("task_status", TaskStatus::Succeeded.as_str().to_value()),
                ("actual_prompt", actual_prompt.to_value()),
            ];
            let to = if ok > 0 {
                columns.push((
                    "cost_cny",
                    price_per_image.map_or(Value::Null, |p| Value::Real(p * ok as f64)),
                ));
                // A note made while the job ran (a disk that refused its images for a while)
                // is history now: the event log keeps it, the job shows no error.
                columns.extend([
                    ("error_code", Value::Null),
                    ("error_message", Value::Null),
                    ("error_action", Value::Null),
                ]);
                JobState::Succeeded
            } else {
                let error = first_error.map_or_else(
                    || JobError::new(ErrorKind::NoImage, "the task returned no image", None),
                    |(code, message)| JobError::new(ErrorKind::from_code(&code), message, None),
                );
                let to = if matches!(error.kind, ErrorKind::Expired) {
                    JobState::Expired
                } else {
                    JobState::Failed
                };
                columns.extend(error.columns());
                to
            };
            let done = transition(
                tx,
                id,
                &[JobState::Running, JobState::Submitted],
                to,
                &columns,
                Some(&format!("{ok} image(s) saved, {failed} failed")),
            )?;
            Ok(done.then_some(to))
        })
    }

    /// Jobs left submitting, submitted or running, oldest first: what the engine watches.
    /// A registered engine gets the jobs it runs (claimed or adopted: `adopt_orphans`).
    pub(crate) fn remote_jobs(&self) -> Result<Vec<JobSummary>, StoreError> {
        let (mine, me) = self.run_by_me(1);
        self.conn().query_map(
            &format!(
                "SELECT {SUMMARY_COLUMNS} FROM jobs
                 WHERE state IN ('submitting', 'submitted', 'running') {mine} ORDER BY id"
            ),
            &me.into_iter().collect::<Vec<_>>(),
            summary_from_row,
        )
    }

    /// The job that owns a task id, if any.
    pub(crate) fn job_for_task(&self, task_id: &str) -> Result<Option<JobId>, StoreError> {
        self.conn().query_opt(
            "SELECT id FROM jobs WHERE task_id = ?1",
            params![task_id],
            |r| r.get(0).map(JobId),
        )
    }

    /// Queued jobs per model (retry times not considered): what is left to submit.
    pub(crate) fn queued_by_model(&self) -> Result<Vec<(Model, u64)>, StoreError> {
        self.conn().query_map(
            "SELECT model, COUNT(*) FROM jobs WHERE state = 'queued' GROUP BY model",
            params![],
            |row| {
                let model: String = row.get(0)?;
                let n: i64 = row.get(1)?;
                Ok((parse_model(&model)?, n.max(0) as u64))
            },
        )
    }

    pub(crate) fn is_cancel_requested(&self, id: JobId) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_opt(
                "SELECT cancel_requested FROM jobs WHERE id = ?1",
                params![id.0],
                |r| r.get(0),
            )?
            .unwrap_or(false))
    }

    /// The service refused to cancel (the task already runs): the request is dropped and
    /// the refusal noted in the job's log; the job runs on.
    pub(crate) fn note_cancel_refused(&self, id: JobId, message: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let state = current_state(tx, id)?;
            tx.execute(
                "UPDATE jobs SET cancel_requested = 0 WHERE id = ?1",
                params![id.0],
            )?;
            insert_event(
                tx,
                id,
                Timestamp::now(),
                Some(state),
                state,
                Some(&format!("cancel refused by the service: {message}")),
            )?;
            Ok(())
        })
    }

    /// Records an error on a job without changing its state (e.g. a disk that is full
    /// while the job waits to save its images).
    pub(crate) fn note_error(&self, id: JobId, error: &JobError) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let state = current_state(tx, id)?;
            tx.execute(
                "UPDATE jobs SET error_code = ?1, error_message = ?2, error_action = ?3 WHERE id = ?4",
                params![
                    error.kind.code(),
                    error.message,
                    error.action.map(ErrorAction::as_str),
                    id.0
                ],
            )?;
            insert_event(
                tx,
                id,
                Timestamp::now(),
                Some(state),
                state,
                Some(&error.to_string()),
            )?;
            Ok(())
        })
    }

    /// One job without its event log.
    pub(crate) fn job_brief(&self, id: JobId) -> Result<Option<JobDetail>, StoreError> {
        load_detail(&mut self.conn(), id)
    }
}

/// Queued -> submitting within `tx`, run by `engine` (see `EngineStore::claim_for_submit`).
pub(super) fn claim_in(
    tx: &mut Db,
    id: JobId,
    engine: Option<i64>,
) -> Result<Option<JobDetail>, StoreError> {
    let attempts: u32 = tx.query_row(
        "SELECT attempts FROM jobs WHERE id = ?1",
        params![id.0],
        |r| r.get(0),
    )?;
    let claimed = transition(
        tx,
        id,
        &[JobState::Queued],
        JobState::Submitting,
        &[
            ("attempts", (attempts + 1).into()),
            ("submitted_at", Value::Null),
            ("next_attempt_at", Value::Null),
            ("engine_id", engine.to_value()),
            ("adopted_unanswered", 0.into()),
        ],
        Some(&format!("attempt {}", attempts + 1)),
    )?;
    if claimed {
        load_detail(tx, id)
    } else {
        Ok(None)
    }
}

/// Submitting -> submitted (or running) with the task id, within `tx`.
fn record_created(
    tx: &mut Db,
    id: JobId,
    task_id: &str,
    status: TaskStatus,
    detail: &str,
) -> Result<bool, StoreError> {
    let to = if status == TaskStatus::Pending {
        JobState::Submitted
    } else {
        JobState::Running
    };
    transition(
        tx,
        id,
        &[JobState::Submitting],
        to,
        &[
            ("task_id", task_id.to_value()),
            ("task_status", status.as_str().to_value()),
            ("error_code", Value::Null),
            ("error_message", Value::Null),
            ("error_action", Value::Null),
        ],
        Some(&format!("{detail}: task {task_id}")),
    )
}
