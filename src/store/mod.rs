//! The durable job store: one SQLite file (WAL) shared by the dashboard, the CLI and the
//! engine, possibly in different processes.
//!
//! The API is synchronous; async callers use `spawn_blocking` (the engine does). Every
//! state change writes an event row in the same transaction. The API key is never stored.

mod blobs;
mod db;
mod durations;
mod inputs;
mod lineage;
mod money;
mod postgres_schema;
mod queue;
mod reconciling;
mod schema;
mod stars;
mod submitter;
mod sync_calls;
mod team;
mod types;
mod work;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub use blobs::{DEFAULT_CACHE_MB, ImageCache, ImageFiles, sha256_hex};
pub use db::{ChangeWatcher, Location, PostgresUrl};
use db::{Db, Dialect, Row, ToValue, Value, params};

use crate::dashscope::{JobSpec, Model, TaskStatus, Timestamp};

pub use durations::LearnedDuration;
pub use inputs::InputFile;
pub use money::{
    ModelMoney, ModelTally, MoneyRows, MoneyStats, Periods, Tally, cents, cents_or_none, local_now,
    money_stats, round_to_cent,
};
pub use queue::{DeletedJob, PauseHold, PauseScope, Pauses, QueueStep};
pub use schema::SCHEMA_VERSION;
pub use stars::{GalleryImage, GalleryQuery, image_seed};
pub(crate) use team::Claim;
pub use team::EngineIdentity;
pub use types::{
    CancelOutcome, ErrorKind, EventRecord, ImageRecord, JobDetail, JobError, JobFilter, JobId,
    JobState, JobStatus, JobSummary, Listing, StateCounts, StateFilter, Submission, TaskRef,
    UnreadableJob,
};
pub(crate) use work::{Ending, EngineStore};

use types::StatusColumns;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path}: created by a newer wandash (schema {found}, this build knows {known}); upgrade wandash or use another --db"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{path} is not a wandash database (not an SQLite file); choose another --db")]
    NotADatabase { path: PathBuf },
    #[error(
        "{path} is another program's database (it has tables, none of wandash's); choose another --db"
    )]
    Foreign { path: PathBuf },
    #[error(
        "{path} is read-only: wandash cannot write its job store; make it writable or choose another --db"
    )]
    ReadOnly { path: PathBuf },
    #[error(
        "{path}: database is locked; another connection held its write lock for over {waited_secs} s. Try again when that process is done"
    )]
    Locked { path: PathBuf, waited_secs: u64 },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("no home directory to put the database in; pass --db PATH")]
    NoDataDir,
    #[error("job {0} does not exist")]
    NoSuchJob(JobId),
    #[error("job {id} is {state}; cannot {action} it")]
    WrongState {
        id: JobId,
        state: JobState,
        action: &'static str,
    },
    #[error("the database holds something this build cannot read: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(String),
    /// PostgreSQL aborted a transaction to let a concurrent one finish (a deadlock, or a
    /// serialization conflict): nothing of it was applied, and running it again may
    /// succeed. `attempts` counts the runs that ended so.
    #[error(
        "database error: {message} (SQLSTATE {sqlstate}); the transaction was aborted {attempts} time(s) in a row by other engines' transactions and not applied"
    )]
    Conflict {
        sqlstate: String,
        message: String,
        attempts: u32,
    },
    /// The PostgreSQL server cannot be reached or dropped the connection; `url` is
    /// shown without its password.
    #[error("{url}: {message}")]
    Server { url: String, message: String },
    /// An image this host cannot show: not on its disk, and not to be had from the store.
    #[error("job {job}, image {index} (sha256 {sha256}): {reason}")]
    ImageUnavailable {
        job: JobId,
        index: u32,
        sha256: String,
        reason: String,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// A handle on the database. `Sync`: share it with `Arc` between threads; calls serialise
/// on one connection (open a second `Store` for a second connection).
pub struct Store {
    conn: Mutex<Db>,
    path: PathBuf,
    /// `user@host` recorded with every job this handle queues.
    submitter: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Columns read by `summary_from_row`, in order.
const SUMMARY_COLUMNS: &str = "id, created_at, model, prompt, state, task_status, submitted_at, ended_at, attempts, \
     images_expected, images_ok, images_failed, cost_cny, error_code, error_message, cancel_requested, batch_tag, \
     task_id, scheduled_at, next_attempt_at, error_action, submitted_by";

impl Store {
    /// Opens (creating if needed) the database at `path`, migrating it to this build's schema.
    /// A path given as a `postgres://` URL opens that PostgreSQL database instead (see
    /// `Location`); `path()` then names it without its password.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let (conn, shown) = match Location::of(path) {
            Location::File(file) => (Db::sqlite(schema::open(&file)?, &file), file),
            Location::Postgres(url) => (schema::open_postgres(&url)?, url.to_string().into()),
        };
        Ok(Store {
            conn: Mutex::new(conn),
            path: shown,
            submitter: submitter::this_process(),
        })
    }

    /// Who this process queues jobs as, `user@host`: what the dashboard's "mine" and
    /// `list --mine` select on.
    pub fn submitter(&self) -> &str {
        &self.submitter
    }

    /// The store as another team member's process opens it: what tests of "mine" need.
    #[cfg(test)]
    pub(crate) fn open_as(path: &Path, submitter: &str) -> Store {
        let mut store = Store::open(path).unwrap();
        store.submitter = submitter.to_string();
        store
    }

    /// Where this store lives: a file, or a PostgreSQL server shared with other hosts.
    pub fn location(&self) -> Location {
        Location::of(&self.path)
    }

    /// `~/.local/share/wandash/wandash.db` (the XDG data directory).
    pub fn default_path() -> Result<PathBuf, StoreError> {
        directories::ProjectDirs::from("", "", "wandash")
            .map(|dirs| dirs.data_dir().join("wandash.db"))
            .ok_or(StoreError::NoDataDir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dialect(&self) -> Dialect {
        self.conn().dialect()
    }

    fn conn(&self) -> MutexGuard<'_, Db> {
        // A panic while holding the lock cannot leave a transaction half-applied (rusqlite
        // rolls back on drop), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one job; returns its id.
    pub fn enqueue(&self, spec: &JobSpec) -> Result<JobId, StoreError> {
        Ok(self.enqueue_batch(std::slice::from_ref(spec), None)?[0])
    }

    /// Queues all jobs in one transaction (all or none), tagged with `tag` if given.
    pub fn enqueue_batch(
        &self,
        specs: &[JobSpec],
        tag: Option<&str>,
    ) -> Result<Vec<JobId>, StoreError> {
        let jobs: Vec<(&JobSpec, Option<JobId>)> = specs.iter().map(|s| (s, None)).collect();
        self.enqueue_with_parents(&jobs, tag, &[])
    }

    /// `enqueue_batch` for jobs that may each come from another job (a fork, a seed
    /// sweep, an edit): the parent is recorded with the job, so the chain can be walked.
    /// `inputs` are the local input files the jobs name, their bytes already stored
    /// (`put_input_file`): on a store that keeps them (`keeps_input_files`) each job
    /// records the ones it names, in this transaction, so an engine on another host sends
    /// the same bytes.
    pub fn enqueue_with_parents(
        &self,
        jobs: &[(&JobSpec, Option<JobId>)],
        tag: Option<&str>,
        inputs: &[InputFile],
    ) -> Result<Vec<JobId>, StoreError> {
        let mut conn = self.conn();
        let detail = tag.map(|t| format!("batch {t}"));
        conn.in_write_tx(|tx| {
            let now = Timestamp::now();
            let mut ids = Vec::with_capacity(jobs.len());
            // Many rows per statement: on a PostgreSQL server across a network each
            // statement is a round trip, and a batch of thousands would wait on them.
            for chunk in jobs.chunks(ENQUEUE_ROWS_PER_STATEMENT) {
                let mut values = Vec::with_capacity(chunk.len() * JOB_INSERT_COLUMNS);
                for (spec, parent) in chunk {
                    let json = serde_json::to_string(spec)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    values.extend_from_slice(params![
                        now,
                        spec.model.id(),
                        spec.prompt,
                        json,
                        spec.image_count(),
                        tag,
                        parent.map(|p| p.0),
                        self.submitter.as_str()
                    ]);
                }
                let mut chunk_ids = tx.query_map(
                    &format!(
                        "INSERT INTO jobs (created_at, model, prompt, spec, state, images_expected, batch_tag, parent_job_id, submitted_by)
                         VALUES {} RETURNING id",
                        row_placeholders(chunk.len(), JOB_INSERT_COLUMNS, Some((4, "'queued'")))
                    ),
                    &values,
                    |row| row.get(0).map(JobId),
                )?;
                // Ids are handed out row after row in the order of the VALUES list, but
                // RETURNING's order is not promised: ascending ids are that order.
                chunk_ids.sort_unstable();
                let mut events = Vec::with_capacity(chunk.len() * EVENT_INSERT_COLUMNS);
                for id in &chunk_ids {
                    events.extend_from_slice(params![
                        id.0,
                        now,
                        JobState::Queued.as_str(),
                        detail.as_deref()
                    ]);
                }
                tx.execute(
                    &format!(
                        "INSERT INTO events (job_id, at, from_state, to_state, detail) VALUES {}",
                        row_placeholders(chunk.len(), EVENT_INSERT_COLUMNS, Some((2, "NULL")))
                    ),
                    &events,
                )?;
                for (id, (spec, _)) in chunk_ids.iter().zip(chunk) {
                    inputs::record_inputs(tx, *id, spec, inputs)?;
                }
                ids.extend(chunk_ids);
            }
            Ok(ids)
        })
    }

    /// A window of jobs, newest first; queued jobs alone come in the order they will be
    /// sent, next first. Costs O(offset + limit) index steps, not O(jobs).
    pub fn list(
        &self,
        filter: &JobFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<JobSummary>, StoreError> {
        let listing = self.list_readable(filter, offset, limit)?;
        match listing.unreadable.into_iter().next() {
            Some(bad) => Err(StoreError::Corrupt(bad.problem)),
            None => Ok(listing.rows),
        }
    }

    /// `list`, reading past rows this build cannot make sense of (a store edited by hand
    /// or by another program is an outside input too): the readable jobs, and each
    /// unreadable one by id with what is wrong with it and in which field.
    pub fn list_readable(
        &self,
        filter: &JobFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Listing, StoreError> {
        let (where_sql, mut args) = filter_sql(filter, self.dialect());
        let order = if filter.state == Some(StateFilter::Only(JobState::Queued)) {
            "queue_pos, id"
        } else {
            "id DESC"
        };
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM jobs {where_sql} ORDER BY {order} LIMIT ? OFFSET ?"
        );
        args.push(limit.to_value());
        args.push(offset.to_value());
        let rows = self.conn().query(&sql, &args)?;
        let mut listing = Listing::default();
        for row in &rows {
            let id = JobId(row.get(0)?);
            match summary_from_row(row) {
                Ok(summary) => listing.rows.push(summary),
                Err(StoreError::Corrupt(problem)) => {
                    listing.unreadable.push(UnreadableJob { id, problem })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(listing)
    }

    pub fn count(&self, filter: &JobFilter) -> Result<u64, StoreError> {
        let searched = filter
            .search
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty());
        if !searched && filter.submitted_by.is_none() {
            // Kept up to date by triggers: no scan, whatever the size of the store.
            let counts = self.counts_by_state()?;
            return Ok(match filter.state {
                None => counts.total(),
                Some(states) => states.states().into_iter().map(|s| counts.get(s)).sum(),
            });
        }
        let (where_sql, args) = filter_sql(filter, self.dialect());
        let sql = format!("SELECT COUNT(*) FROM jobs {where_sql}");
        self.conn().query_row(&sql, &args, |row| row.get(0))
    }

    pub fn counts_by_state(&self) -> Result<StateCounts, StoreError> {
        let rows = self
            .conn()
            .query("SELECT state, n FROM state_counts", params![])?;
        counts_from_rows(&rows)
    }

    /// The counts of one submitter's jobs (the dashboard's "mine"). `state_counts` holds
    /// everyone's, so this groups the submitter's rows, found through `jobs_by_submitter`:
    /// a walk over one person's jobs, not the store's.
    pub fn counts_by_state_submitted_by(&self, submitter: &str) -> Result<StateCounts, StoreError> {
        let rows = self
            .conn()
            .query(SUBMITTER_COUNTS_SQL, params![submitter])?;
        counts_from_rows(&rows)
    }

    /// One job with its images and events; `None` if there is no such job.
    pub fn job(&self, id: JobId) -> Result<Option<JobDetail>, StoreError> {
        let mut conn = self.conn();
        let Some(mut detail) = load_detail(&mut conn, id)? else {
            return Ok(None);
        };
        detail.events = load_events(&mut conn, id)?;
        Ok(Some(detail))
    }

    /// Images saved by jobs that ended since local midnight.
    pub fn images_today(&self) -> Result<u64, StoreError> {
        self.images_since(local_midnight())
    }

    /// CNY spent on jobs that ended since local midnight (only billed images count).
    pub fn spend_today(&self) -> Result<f64, StoreError> {
        self.spend_since(local_midnight())
    }

    pub fn images_since(&self, since: Timestamp) -> Result<u64, StoreError> {
        self.conn().query_row(
            "SELECT COALESCE(SUM(images_ok), 0) FROM jobs WHERE ended_at >= ?1",
            params![since],
            |row| row.get(0),
        )
    }

    pub fn spend_since(&self, since: Timestamp) -> Result<f64, StoreError> {
        self.conn().query_row(
            "SELECT COALESCE(SUM(cost_cny), 0.0) FROM jobs WHERE ended_at >= ?1",
            params![since],
            |row| row.get(0),
        )
    }

    /// Cancels a queued job at once; for a job with a task, flags it for the engine.
    pub fn request_cancel(&self, id: JobId) -> Result<CancelOutcome, StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let state = current_state(tx, id)?;
            let outcome = match state {
                JobState::Queued => {
                    transition(
                        tx,
                        id,
                        &[JobState::Queued],
                        JobState::Cancelled,
                        &[("ended_at", Timestamp::now().into())],
                        Some("cancelled before submission"),
                    )?;
                    CancelOutcome::Cancelled
                }
                s if s.is_remote() => {
                    tx.execute(
                        "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1",
                        params![id.0],
                    )?;
                    insert_event(
                        tx,
                        id,
                        Timestamp::now(),
                        Some(s),
                        s,
                        Some("cancel requested"),
                    )?;
                    CancelOutcome::Requested
                }
                s => CancelOutcome::AlreadyEnded(s),
            };
            Ok(outcome)
        })
    }

    /// Puts a failed, cancelled, expired or needs-attention job back in the queue, as new.
    pub fn retry(&self, id: JobId) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let state = current_state(tx, id)?;
            if !state.is_retryable() {
                return Err(StoreError::WrongState {
                    id,
                    state,
                    action: "retry",
                });
            }
            tx.execute("DELETE FROM images WHERE job_id = ?1", params![id.0])?;
            let null = Value::Null;
            transition(
                tx,
                id,
                &[state],
                JobState::Queued,
                &[
                    ("task_id", null.clone()),
                    ("task_status", null.clone()),
                    ("submitted_at", null.clone()),
                    ("scheduled_at", null.clone()),
                    ("ended_at", null.clone()),
                    ("next_attempt_at", null.clone()),
                    ("error_code", null.clone()),
                    ("error_message", null.clone()),
                    ("error_action", null.clone()),
                    ("cost_cny", null.clone()),
                    ("actual_prompt", null),
                    ("attempts", 0.into()),
                    ("images_ok", 0.into()),
                    ("images_failed", 0.into()),
                    ("cancel_requested", 0.into()),
                ],
                Some("retry requested"),
            )?;
            Ok(())
        })
    }

    /// Deletes a job, its records and its image files. Refused while a task may be in
    /// flight, so that a paid task is never forgotten. The dashboard and the CLI both
    /// delete through here.
    pub fn delete(&self, id: JobId) -> Result<DeletedJob, StoreError> {
        let mut conn = self.conn();
        let images = conn.in_write_tx(|tx| {
            let state = current_state(tx, id)?;
            if state.is_remote() {
                return Err(StoreError::WrongState {
                    id,
                    state,
                    action: "delete",
                });
            }
            let images = queue::image_paths(tx, id)?;
            tx.execute("DELETE FROM jobs WHERE id = ?1", params![id.0])?;
            Ok(images)
        })?;
        // After the commit: a file removed for a job that stayed would be an image lost.
        Ok(queue::remove_image_files(id, &images))
    }

    /// Changes whenever any process commits to the database: compare two readings to know
    /// whether a refresh is needed. Cheap (no table is read).
    pub fn change_marker(&self) -> Result<i64, StoreError> {
        self.conn().change_marker()
    }

    /// On PostgreSQL, a watcher that wakes when any process on any host commits a change
    /// to the jobs, their images and events, or the pauses; it has a connection of its
    /// own. `None` on SQLite, where `change_marker` is the cheap way to know.
    pub fn watch_changes(&self) -> Result<Option<ChangeWatcher>, StoreError> {
        // Connecting may take a while: not under the lock the store's calls wait on.
        let url = self.conn().postgres_url();
        url.map(|url| ChangeWatcher::start(&url)).transpose()
    }
}

fn local_midnight() -> Timestamp {
    // The local offset is unavailable in some multi-threaded processes; UTC is then the day.
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let now = time::OffsetDateTime::now_utc().to_offset(offset);
    now.replace_time(time::Time::MIDNIGHT).into()
}

/// One submitter's jobs per state.
const SUBMITTER_COUNTS_SQL: &str =
    "SELECT state, COUNT(*) FROM jobs WHERE submitted_by = ?1 GROUP BY state";

/// Rows of (state, count) as counts per state.
fn counts_from_rows(rows: &[Row]) -> Result<StateCounts, StoreError> {
    let mut counts = StateCounts::default();
    for row in rows {
        let state: String = row.get(0)?;
        let n: i64 = row.get(1)?;
        *counts.slot(parse_state(&state)?) = n.max(0) as u64;
    }
    Ok(counts)
}

/// `WHERE ...` and its arguments for a filter.
fn filter_sql(filter: &JobFilter, dialect: Dialect) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    if let Some(state) = filter.state {
        let states = state.states();
        let marks = vec!["?"; states.len()].join(", ");
        clauses.push(format!("state IN ({marks})"));
        args.extend(states.into_iter().map(|s| s.as_str().to_value()));
    }
    if let Some(search) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let escaped = search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        // SQLite's LIKE ignores ASCII case; PostgreSQL's needs ILIKE for the same search.
        let like = match dialect {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        };
        clauses.push(format!("prompt {like} ? ESCAPE '\\'"));
        args.push(Value::Text(format!("%{escaped}%")));
    }
    if let Some(submitter) = &filter.submitted_by {
        clauses.push("submitted_by = ?".to_string());
        args.push(submitter.as_str().to_value());
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, args)
}

fn parse_state(text: &str) -> Result<JobState, StoreError> {
    text.parse().map_err(StoreError::Corrupt)
}

fn parse_model(text: &str) -> Result<Model, StoreError> {
    text.parse()
        .map_err(|e: crate::dashscope::UnknownModel| StoreError::Corrupt(e.to_string()))
}

fn parse_task_status(text: Option<String>) -> Result<Option<TaskStatus>, StoreError> {
    text.map(|t| {
        serde_json::from_value(serde_json::Value::String(t.clone()))
            .map_err(|_| StoreError::Corrupt(format!("unknown task status `{t}`")))
    })
    .transpose()
}

fn parse_spec(json: &str) -> Result<JobSpec, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("job spec: {e}")))
}

/// A column of job `id` that cannot be read, named by its field.
fn in_field(id: JobId, field: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Corrupt(why) => {
            StoreError::Corrupt(format!("job {id}, field `{field}`: {why}"))
        }
        other => other,
    }
}

/// Reads `SUMMARY_COLUMNS`; a row this build cannot read is `StoreError::Corrupt`, naming
/// the job and the field.
fn summary_from_row(row: &Row) -> Result<JobSummary, StoreError> {
    let id = JobId(row.get(0)?);
    let model: String = row.get(2)?;
    let state: String = row.get(4)?;
    let task_status: Option<String> = row.get(5)?;
    let columns = |state: JobState, task_status: Option<TaskStatus>| {
        Ok::<_, StoreError>(StatusColumns {
            state,
            task_id: row.get(17)?,
            task_status,
            submitted_at: row.get(6)?,
            scheduled_at: row.get(18)?,
            ended_at: row.get(7)?,
            next_attempt_at: row.get(19)?,
            error_code: row.get(13)?,
            error_message: row.get(14)?,
            error_action: row.get(20)?,
        })
    };
    let status = match (
        parse_state(&state).map_err(|e| in_field(id, "state", e)),
        parse_task_status(task_status).map_err(|e| in_field(id, "task_status", e)),
    ) {
        (Ok(state), Ok(task_status)) => JobStatus::from_columns(columns(state, task_status)?)
            .map_err(|why| StoreError::Corrupt(format!("job {id}: {why}"))),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let build = |status: Result<JobStatus, StoreError>| -> Result<JobSummary, StoreError> {
        Ok(JobSummary {
            id,
            created_at: row.get(1)?,
            model: parse_model(&model).map_err(|e| in_field(id, "model", e))?,
            prompt: row.get(3)?,
            status: status?,
            attempts: row.get(8)?,
            images_expected: row.get(9)?,
            images_ok: row.get(10)?,
            images_failed: row.get(11)?,
            cost_cny: row.get(12)?,
            cancel_requested: row.get(15)?,
            batch_tag: row.get(16)?,
            submitted_by: row.get(21)?,
        })
    };
    build(status)
}

/// A job without its events (the engine does not need them).
fn load_detail(conn: &mut Db, id: JobId) -> Result<Option<JobDetail>, StoreError> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, spec, prepared_spec, actual_prompt, parent_job_id FROM jobs WHERE id = ?1"
    );
    let found = conn.query_opt(&sql, params![id.0], |row| {
        let summary = summary_from_row(row);
        let spec: String = row.get(22)?;
        let prepared: Option<String> = row.get(23)?;
        let actual_prompt: Option<String> = row.get(24)?;
        let parent: Option<i64> = row.get(25)?;
        Ok((summary, spec, prepared, actual_prompt, parent.map(JobId)))
    })?;
    let Some((summary, spec, prepared, actual_prompt, parent_job_id)) = found else {
        return Ok(None);
    };
    Ok(Some(JobDetail {
        summary: summary?,
        spec: parse_spec(&spec).map_err(|e| in_field(id, "spec", e))?,
        prepared_spec: prepared
            .as_deref()
            .map(parse_spec)
            .transpose()
            .map_err(|e| in_field(id, "prepared_spec", e))?,
        actual_prompt,
        parent_job_id,
        images: load_images(conn, id)?,
        events: Vec::new(),
    }))
}

fn load_images(conn: &mut Db, id: JobId) -> Result<Vec<ImageRecord>, StoreError> {
    let sql = "SELECT idx, url, path, sha256, width, height, bytes, error_code, error_message
         FROM images WHERE job_id = ?1 ORDER BY idx";
    conn.query_map(sql, params![id.0], |row| {
        Ok(ImageRecord {
            index: row.get(0)?,
            url: row.get(1)?,
            path: row.get::<Option<String>>(2)?.map(PathBuf::from),
            sha256: row.get(3)?,
            width: row.get(4)?,
            height: row.get(5)?,
            bytes: row.get::<Option<i64>>(6)?.map(|b| b as u64),
            error_code: row.get(7)?,
            error_message: row.get(8)?,
        })
    })
}

fn load_events(conn: &mut Db, id: JobId) -> Result<Vec<EventRecord>, StoreError> {
    let sql =
        "SELECT id, at, from_state, to_state, detail FROM events WHERE job_id = ?1 ORDER BY id";
    conn.query_map(sql, params![id.0], |row| {
        let from: Option<String> = row.get(2)?;
        let to: String = row.get(3)?;
        Ok(EventRecord {
            id: row.get(0)?,
            job_id: id,
            at: row.get(1)?,
            from_state: from.as_deref().map(parse_state).transpose()?,
            to_state: parse_state(&to)?,
            detail: row.get(4)?,
        })
    })
}

fn current_state(tx: &mut Db, id: JobId) -> Result<JobState, StoreError> {
    let state: Option<String> = tx.query_opt(
        "SELECT state FROM jobs WHERE id = ?1",
        params![id.0],
        |row| row.get(0),
    )?;
    parse_state(&state.ok_or(StoreError::NoSuchJob(id))?)
}

/// Jobs queued per INSERT: 500 rows of `JOB_INSERT_COLUMNS` parameters stay far below
/// SQLite's 32 766 and PostgreSQL's 65 535 parameters per statement.
const ENQUEUE_ROWS_PER_STATEMENT: usize = 500;
/// Parameters per job row `enqueue_with_parents` binds (its `state` is a literal).
const JOB_INSERT_COLUMNS: usize = 8;
/// Parameters per queued event row (its `from_state` is NULL).
const EVENT_INSERT_COLUMNS: usize = 4;

/// `rows` groups of `columns` numbered placeholders, `(?1, ?2), (?3, ?4)`, with `literal`
/// (position, SQL) put in each group at that position, bound to no parameter.
fn row_placeholders(rows: usize, columns: usize, literal: Option<(usize, &str)>) -> String {
    (0..rows)
        .map(|row| {
            let mut cells: Vec<String> = (1..=columns)
                .map(|column| format!("?{}", row * columns + column))
                .collect();
            if let Some((at, sql)) = literal {
                cells.insert(at, sql.to_string());
            }
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn insert_event(
    tx: &mut Db,
    id: JobId,
    at: Timestamp,
    from: Option<JobState>,
    to: JobState,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO events (job_id, at, from_state, to_state, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id.0, at, from.map(JobState::as_str), to.as_str(), detail],
    )?;
    Ok(())
}

/// Moves a job from one of `from` to `to`, setting `columns`, and writes the event, inside
/// the caller's transaction. Returns `false` (and changes nothing) if the job was not in
/// one of `from` — another process got there first. The update names the state it saw:
/// on PostgreSQL, where engines on other hosts write the same rows under row locks, a
/// concurrent move makes it change nothing instead of overwriting.
fn transition(
    tx: &mut Db,
    id: JobId,
    from: &[JobState],
    to: JobState,
    columns: &[(&str, Value)],
    detail: Option<&str>,
) -> Result<bool, StoreError> {
    let state = current_state(tx, id)?;
    if !from.contains(&state) {
        return Ok(false);
    }
    let mut sets = vec!["state = ?".to_string()];
    let mut args = vec![to.as_str().to_value()];
    for (column, value) in columns {
        sets.push(format!("{column} = ?"));
        args.push(value.clone());
    }
    args.push(id.0.to_value());
    args.push(state.as_str().to_value());
    let changed = tx.execute(
        &format!(
            "UPDATE jobs SET {} WHERE id = ? AND state = ?",
            sets.join(", ")
        ),
        &args,
    )?;
    if changed == 0 {
        return Ok(false);
    }
    insert_event(tx, id, Timestamp::now(), Some(state), to, detail)?;
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests;
