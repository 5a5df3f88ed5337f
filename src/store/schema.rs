//! Opening the database file and bringing its schema up to date.
//!
//! Migrations are numbered by their place in `MIGRATIONS`; `PRAGMA user_version` records
//! how many have run. Each runs in its own transaction together with the version bump, so
//! a crash mid-migration leaves the previous version intact.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::StoreError;
use super::db::{Db, PostgresUrl, params};
use super::postgres_schema;

const MIGRATIONS: &[&str] = &[
    // 1: jobs, images, events.
    "
    CREATE TABLE jobs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at       INTEGER NOT NULL,
        model            TEXT    NOT NULL,
        prompt           TEXT    NOT NULL,   -- copy of spec.prompt, for search and lists
        spec             TEXT    NOT NULL,   -- JobSpec JSON as the user gave it
        prepared_spec    TEXT,               -- JobSpec JSON as sent (remote refs only)
        state            TEXT    NOT NULL,
        task_id          TEXT UNIQUE,
        task_status      TEXT,
        submitted_at     INTEGER,
        scheduled_at     INTEGER,
        ended_at         INTEGER,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER,
        error_code       TEXT,
        error_message    TEXT,
        error_action     TEXT,
        cost_cny         REAL,
        images_expected  INTEGER NOT NULL,
        images_ok        INTEGER NOT NULL DEFAULT 0,
        images_failed    INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        actual_prompt    TEXT,
        batch_tag        TEXT
    );
    -- Lists by state, newest first, walk this index and stop after the window.
    CREATE INDEX jobs_by_state ON jobs(state, id);
    -- The scheduler's 'next queued job of this model'.
    CREATE INDEX jobs_by_state_model ON jobs(state, model, id);
    -- The dashboard's images/spend today.
    CREATE INDEX jobs_by_ended ON jobs(ended_at) WHERE ended_at IS NOT NULL;
    CREATE TABLE images (
        job_id        INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        idx           INTEGER NOT NULL,
        url           TEXT,
        path          TEXT,
        sha256        TEXT,
        width         INTEGER,
        height        INTEGER,
        bytes         INTEGER,
        error_code    TEXT,
        error_message TEXT,
        PRIMARY KEY (job_id, idx)
    );
    CREATE TABLE events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        at         INTEGER NOT NULL,
        from_state TEXT,
        to_state   TEXT    NOT NULL,
        detail     TEXT
    );
    CREATE INDEX events_by_job ON events(job_id, id);
    ",
    // 2: jobs per state kept by triggers, so the header's counts cost the same at any size.
    "
    CREATE TABLE state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO state_counts (state, n) SELECT state, COUNT(*) FROM jobs GROUP BY state;
    CREATE TRIGGER state_counts_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
            ON CONFLICT (state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER state_counts_delete AFTER DELETE ON jobs BEGIN
        UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
    END;
    CREATE TRIGGER state_counts_update AFTER UPDATE OF state ON jobs WHEN OLD.state <> NEW.state BEGIN
        UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
        INSERT INTO state_counts (state, n) VALUES (NEW.state, 1)
            ON CONFLICT (state) DO UPDATE SET n = n + 1;
    END;
    ",
    // 3: the studio: favourite images (a compare's winner stars its images) and the job a
    // variation or edit came from, so a chain of iterations can be walked back (no foreign
    // key: a deleted parent is still worth naming as "job 12, deleted").
    "
    ALTER TABLE images ADD COLUMN starred INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN parent_job_id INTEGER;
    CREATE INDEX images_starred ON images(job_id) WHERE starred = 1;
    ",
    // 4: money per model over a stretch of time (stats, budgets) read from the index
    // alone: a model's ended jobs in end order, with what they made and cost.
    "
    CREATE INDEX jobs_money ON jobs(model, ended_at, images_ok, cost_cny) WHERE ended_at IS NOT NULL;
    ",
    // 5: queue control. Queued jobs go in `queue_pos` order (then id): existing rows keep
    // their id order and a new job goes last (the trigger gives it its id), so `top` and
    // the dashboard's moves only rewrite positions. `paused` holds one row per paused
    // scope, 'all' or a model id: every engine on the store reads it before a create.
    "
    ALTER TABLE jobs ADD COLUMN queue_pos INTEGER;
    UPDATE jobs SET queue_pos = id;
    CREATE TRIGGER jobs_queue_pos AFTER INSERT ON jobs WHEN NEW.queue_pos IS NULL BEGIN
        UPDATE jobs SET queue_pos = NEW.id WHERE id = NEW.id;
    END;
    -- The scheduler's 'next queued job of this model', and the queued list in send order.
    CREATE INDEX jobs_queue_order ON jobs(state, model, queue_pos, id);
    CREATE INDEX jobs_by_state_queue ON jobs(state, queue_pos, id);
    CREATE TABLE paused (scope TEXT PRIMARY KEY) WITHOUT ROWID;
    ",
    // 6: the answer of a synchronous (multimodal-generation) call, a JSON list of its
    // results: no task exists to fetch them from again, so a restart downloads from here.
    "
    ALTER TABLE jobs ADD COLUMN sync_answer TEXT;
    ",
    // 7: what the engine learned about task durations per model (a moving average of the
    // run times the service reported, over `samples` tasks), so that a new process polls
    // its first tasks when they end.
    "
    CREATE TABLE task_durations (
        model   TEXT    PRIMARY KEY,
        seconds REAL    NOT NULL,
        samples INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 8: image bytes, content-addressed, so that a host whose disk lacks an image (another
    // host's engine downloaded it) reads it from here. Only a PostgreSQL store fills it
    // (see `blobs`); the index finds an image by the path a dashboard asks for.
    "
    CREATE TABLE image_blobs (
        sha256 TEXT   PRIMARY KEY,
        bytes  BLOB    NOT NULL,
        size   INTEGER NOT NULL
    );
    CREATE INDEX images_by_path ON images(path);
    ",
    // 9: who queued each job, as `user@host` (NULL for jobs from before), so a team on
    // one store tells its jobs apart; the dashboard's "mine" and `list --mine` walk the index.
    "
    ALTER TABLE jobs ADD COLUMN submitted_by TEXT;
    CREATE INDEX jobs_by_submitter ON jobs(submitted_by, id);
    ",
    // 10: nothing on SQLite: PostgreSQL's change notifications take this number there, and
    // a dashboard on a file watches its `change_marker` instead.
    "
    SELECT 1;
    ",
    // 11: a team of engines on one store. Each engine registers with a lease it renews
    // (times in ms since the epoch, by the database's clock, so hosts need not agree);
    // a job names the engine that runs it; `rate_buckets` holds the quotas every engine
    // draws from (a create bucket per model, `query` for task queries).
    "
    CREATE TABLE engines (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        host         TEXT    NOT NULL,
        pid          INTEGER NOT NULL,
        os_user      TEXT    NOT NULL,
        lease_ms     INTEGER NOT NULL,
        started_at   INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL
    );
    ALTER TABLE jobs ADD COLUMN engine_id INTEGER;
    CREATE INDEX jobs_by_engine ON jobs(engine_id) WHERE engine_id IS NOT NULL;
    CREATE TABLE rate_buckets (
        name        TEXT    PRIMARY KEY,
        tokens      REAL    NOT NULL,
        refilled_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 12: exactly once while engines adopt next to live ones. `reconciling` holds one row
    // per model whose unanswered creates an engine is looking up in the service's task
    // list (until `until_ms`, the database's clock, or while its engine lives); no create
    // of that model goes out meanwhile. `adopted_unanswered` marks a job adopted with its
    // create unanswered and not yet looked up, so that it is not waited for as a create
    // on the wire and the next adoption round looks it up.
    "
    CREATE TABLE reconciling (
        model     TEXT    PRIMARY KEY,
        engine_id INTEGER NOT NULL,
        until_ms  INTEGER NOT NULL
    ) WITHOUT ROWID;
    ALTER TABLE jobs ADD COLUMN adopted_unanswered INTEGER NOT NULL DEFAULT 0;
    ",
    // 13: the local input files a job was queued with, by the path its spec names and the
    // sha256 of their bytes in `image_blobs`, so an engine on another host sends the same
    // image. Only a PostgreSQL store fills it (see `blobs`): an SQLite store is one host's.
    "
    CREATE TABLE job_inputs (
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        path   TEXT    NOT NULL,
        sha256 TEXT    NOT NULL,
        PRIMARY KEY (job_id, path)
    ) WITHOUT ROWID;
    ",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Several processes share the file (dashboard, CLI, one engine): wait this long for a lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::files::create_private_dir(parent).map_err(|e| StoreError::Io {
            path: parent.to_path_buf(),
            message: format!("cannot create the directory: {e}"),
        })?;
    }
    // SQLite's own answer for a directory is "unable to open database file".
    if path.is_dir() {
        return Err(StoreError::Io {
            path: path.to_path_buf(),
            message:
                "is a directory, not a database file; pass --db a file path such as DIR/wandash.db"
                    .into(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| classify(path, e))?;
    // SQLite opens a file it may not write read-only without a word, and every later
    // write fails ("attempt to write a readonly database"), in a loop for the engine.
    // Asked here, SQLite's own answer finds that at the door. (Not by opening the file
    // ourselves: closing any descriptor of it drops the locks of this process's other
    // connections.) A lock held by another process is not this: readers still open the
    // store while an engine writes.
    if conn
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(|e| classify(path, e))?
    {
        return Err(StoreError::ReadOnly {
            path: path.to_path_buf(),
        });
    }
    // The first statement that reads the header is where a foreign file shows itself.
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| classify(path, e))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    // Every migration bumps the version in its own transaction, so tables at version 0
    // are another program's: adding ours would change a file that is not ours.
    if version == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| classify(path, e))?;
        if tables > 0 {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
            });
        }
    }
    // WAL lets readers (dashboard, CLI) run while the engine writes. FULL sync: a state
    // change that preceded a paid create request must survive a crash or power loss.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| classify(path, e))?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(|e| classify(path, e))?;
    // Only an out-of-date file needs the write lock: a reader (`wandash list`) must open
    // the store while an engine or another connection holds it.
    if version < SCHEMA_VERSION {
        migrate(&conn, path)?;
    }
    make_private(path);
    Ok(conn)
}

/// The database and the WAL files SQLite keeps beside it.
fn store_files(path: &Path) -> [std::path::PathBuf; 3] {
    let with_suffix = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    [path.to_path_buf(), with_suffix("-wal"), with_suffix("-shm")]
}

/// Prompts and images are private: the store and its WAL files are made 0600 whatever
/// the umask SQLite created them with (by path: opening a descriptor of them here would
/// drop the locks of this process's other connections when it closed). A file that is
/// not ours to change keeps its mode.
fn make_private(path: &Path) {
    for file in store_files(path) {
        match crate::files::restrict_to_owner(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot make {} private (0600): {e}", file.display()),
        }
    }
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    loop {
        // Re-read inside an IMMEDIATE transaction: another process may be migrating too.
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| classify(path, e))?;
        let result = (|| {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            if version >= SCHEMA_VERSION {
                return Ok(None);
            }
            conn.execute_batch(MIGRATIONS[version as usize])?;
            conn.pragma_update(None, "user_version", version + 1)?;
            Ok(Some(version + 1))
        })();
        match result {
            Ok(next) => {
                conn.execute_batch("COMMIT")
                    .map_err(|e| classify(path, e))?;
                match next {
                    Some(v) => tracing::info!(version = v, "store schema migrated"),
                    None => return Ok(()),
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(classify(path, e));
            }
        }
    }
}

/// Connects to the PostgreSQL database at `url` and brings its schema up to date: the same
/// migration history as the SQLite file's, in PostgreSQL's dialect (`postgres_schema`).
/// Engines on several hosts may open it at once; an advisory lock serialises them.
pub(super) fn open_postgres(url: &PostgresUrl) -> Result<Db, StoreError> {
    debug_assert_eq!(postgres_schema::MIGRATIONS.len(), MIGRATIONS.len());
    let mut db = Db::postgres(url)?;
    let at = || std::path::PathBuf::from(url.to_string());
    loop {
        let mut tx = db.write_tx()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(?1)",
            params![postgres_schema::MIGRATION_LOCK],
        )?;
        let ours: bool = tx.query_row(
            "SELECT to_regclass('wandash_schema') IS NOT NULL",
            params![],
            |row| row.get(0),
        )?;
        if !ours {
            let tables: i64 = tx.query_row(
                "SELECT COUNT(*) FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                params![],
                |row| row.get(0),
            )?;
            if tables > 0 {
                return Err(StoreError::Foreign { path: at() });
            }
            tx.execute_batch(postgres_schema::VERSION_TABLE)?;
        }
        let version: i64 =
            tx.query_row("SELECT version FROM wandash_schema", params![], |row| {
                row.get(0)
            })?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: at(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == SCHEMA_VERSION {
            tx.commit()?;
            return Ok(db);
        }
        tx.execute_batch(postgres_schema::MIGRATIONS[version as usize])?;
        tx.execute("UPDATE wandash_schema SET version = version + 1", params![])?;
        tx.commit()?;
        tracing::info!(version = version + 1, "store schema migrated (PostgreSQL)");
    }
}

/// Turns SQLite's "file is not a database" and "database is locked" into messages that
/// name the file and say what to do.
pub(super) fn classify(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
            path: path.to_path_buf(),
        },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
            path: path.to_path_buf(),
            waited_secs: BUSY_TIMEOUT.as_secs(),
        },
        _ => StoreError::Database(error.to_string()),
    }
}
