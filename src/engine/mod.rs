//! The job engine: takes queued jobs from the store to the service and their images to
//! disk, within the service's limits, exactly once, resuming after a crash.
//!
//! One scheduler task owns the per-model limits (token bucket for creates, in-flight
//! count) and spawns one task per job in flight; each job task submits, polls, cancels
//! and downloads, committing every state change to the store before its next network
//! step. Other processes (dashboard, CLI) only enqueue and read; the engine finds their
//! jobs by polling the store and on `wake()`.
//!
//! A job's stages, one file each: `create` (one create per job, under the model's gate),
//! `follow` (the poll schedule, polling, cancelling) and `download` (fetch, verify,
//! save); `sync_call` does the jobs of models served only synchronously (one held call
//! instead of create and polls, never re-sent blindly). `scheduler` claims jobs and owns the in-flight counts; `recovery` finds out what
//! unanswered creates did; `ctx` is what they all share. The decisions are pure
//! functions, unit-tested without a server: `create_failure` (what a failed create
//! means), `answer_failure` (what a failed poll or download means),
//! `follow::PollSchedule`, `durations` (what a model's tasks are expected to take, learned
//! and kept in the store), `pairing` (lost creates and the service's tasks), `gate`
//! (whether a model's next job may be claimed: stopped, disk, pauses), `budget` (whether
//! a job may be sent under the config's budget) and `limits` (pace and backoff); `quotas`
//! decides each model's limits in force (config, the account's quotas read at start, or
//! the defaults). `decode` checks downloaded images, `disk` writes them. Which service to
//! talk to is not the engine's business: see `crate::backend`.

mod answer_failure;
mod budget;
mod create;
mod create_failure;
mod ctx;
mod decode;
mod disk;
mod download;
mod durations;
mod follow;
mod gate;
mod inputs;
mod limits;
mod pairing;
mod quotas;
mod reconcile_alone;
mod recovery;
mod resume;
mod scheduler;
mod sync_call;
mod team;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::dashscope::{Client, DEFAULT_QUOTAS_PATH, Model, ModelLimits};
use crate::store::{ImageCache, JobId, JobState, Location, Store, StoreError};

pub use budget::{Budget, Hold, Period, Spending, forecast, hold, periods_now};
pub use quotas::{LimitSource, LimitsInForce, limits_in_force};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Images go to `data_dir/images/<job id>/<i>.png`.
    pub data_dir: PathBuf,
    /// Limits set by the user: they win over the account's quotas and the defaults
    /// (`Model::default_limits()`). Once the engine runs, every model's limits in force.
    pub limits: HashMap<Model, ModelLimits>,
    /// Overrides of `Model::default_price_cny()`, per image.
    pub prices: HashMap<Model, f64>,
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// Task queries (polls, lists, cancels) per second across all tasks; the account
    /// limit is 20.
    pub queries_per_second: f64,
    /// Attempts at a create (or a download) that fails with a retryable error, and how
    /// many times in a row the service may answer a poll or a download with something
    /// wrong before the job ends with the reason.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub download_max_bytes: u64,
    /// How long the service keeps a task and its images.
    pub ttl: Duration,
    /// How often the store is checked for jobs enqueued by other processes.
    pub store_poll: Duration,
    /// Limits on spend and free images; no job is sent past them.
    pub budget: Budget,
    /// Where the account's quotas are read at start, under the base URL; unconfirmed (u),
    /// see `DEFAULT_QUOTAS_PATH`.
    pub quotas_path: String,
    /// How long the start waits for the account's quotas before it uses the defaults.
    pub quotas_timeout: Duration,
    /// How long a synchronous call may hold its connection; past it the job needs
    /// attention (the service may still make and bill the image).
    pub sync_call_timeout: Duration,
    /// How long an engine's lease on the store lasts without renewal: past it, other
    /// engines on a PostgreSQL store adopt its jobs.
    pub lease: Duration,
    /// How many MB `<data dir>/cache` may hold (`[store] cache_mb`): the engine keeps there
    /// the input files of jobs queued on other hosts, read from a PostgreSQL store.
    pub image_cache_mb: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_dir: directories::ProjectDirs::from("", "", "wandash")
                .map(|d| d.data_dir().to_path_buf())
                .unwrap_or_else(|| PathBuf::from(".")),
            limits: HashMap::new(),
            prices: HashMap::new(),
            // The SDK polls from 1 s up to 5 s.
            poll_min: Duration::from_secs(1),
            poll_max: Duration::from_secs(5),
            queries_per_second: 15.0,
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            download_max_bytes: 50 * 1024 * 1024,
            ttl: Duration::from_secs(24 * 3600),
            store_poll: Duration::from_millis(500),
            budget: Budget::default(),
            quotas_path: DEFAULT_QUOTAS_PATH.to_string(),
            quotas_timeout: Duration::from_secs(3),
            sync_call_timeout: crate::dashscope::DEFAULT_SYNC_CALL_TIMEOUT,
            lease: DEFAULT_LEASE,
            image_cache_mb: crate::store::DEFAULT_CACHE_MB,
        }
    }
}

/// An engine's lease, unless the config sets one (`[store] lease_ms`): long enough that
/// a busy host does not lose it, short enough that a dead engine's jobs move on soon.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

impl EngineConfig {
    /// Where this engine keeps what it reads from the store, and how much.
    pub fn image_cache(&self) -> ImageCache {
        ImageCache::new(&self.data_dir, self.image_cache_mb)
    }

    pub fn limits_for(&self, model: Model) -> ModelLimits {
        self.limits
            .get(&model)
            .copied()
            .unwrap_or_else(|| model.default_limits())
    }

    pub fn price_for(&self, model: Model) -> Option<f64> {
        self.prices
            .get(&model)
            .copied()
            .or_else(|| model.default_price_cny())
    }

    pub fn images_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "another wandash engine is already running on {db} (lock {lock}); stop it, or just enqueue: it will pick the jobs up"
    )]
    Locked { db: PathBuf, lock: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
    #[error(
        "a base URL was given but no API key: set DASHSCOPE_API_KEY (or drop the base URL to use the built-in simulator)"
    )]
    MissingKey,
    #[error("backend: {0}")]
    Backend(String),
    #[error(
        "cannot write images to {}: {reason}; make it a writable directory (or set data_dir in the config); queued jobs stay queued",
        path.display()
    )]
    Unwritable { path: PathBuf, reason: String },
}

/// What the engine tells its watchers (dashboard, `wandash watch`).
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    JobChanged {
        id: JobId,
        state: JobState,
    },
    ImageSaved {
        job: JobId,
        index: u32,
        path: PathBuf,
    },
    /// Something about this job is retried, and why (also noted on the job).
    Retrying {
        id: JobId,
        reason: String,
    },
    /// No more creates for this model until the engine restarts (quota, access).
    ModelStopped {
        model: Model,
        reason: String,
    },
    /// The engine stopped (bad key, arrears, or shutdown); queued jobs stay queued.
    Stopped {
        reason: String,
    },
    /// Saving images fails (disk full, no permission, not a directory): `path` could not
    /// be written for `reason` (the OS's words). Until a save succeeds again no new task
    /// is created (queued jobs stay queued); jobs whose images are made keep them and
    /// retry.
    DiskRefused {
        path: PathBuf,
        reason: String,
    },
    /// A save succeeded after `DiskRefused`: creates resume.
    DiskRecovered,
    /// Nothing left to do: no queued job it can submit, nothing in flight.
    Idle,
}

pub struct Engine;

impl Engine {
    /// Starts the engine on the store at `store_path` (inside a Tokio runtime) and
    /// registers it in the store's team of engines. On an SQLite file it takes an
    /// exclusive lock (`<db>.engine.lock` beside it): a second engine gets
    /// `EngineError::Locked`. On a PostgreSQL server any number of engines run side by
    /// side, each running the jobs it claims and adopting those of engines whose lease
    /// expired.
    pub fn start(
        store_path: &Path,
        client: Client,
        config: EngineConfig,
    ) -> Result<EngineHandle, EngineError> {
        check_images_dir(&config.images_dir())?;
        let lock = match Location::of(store_path) {
            Location::File(_) => Some(take_lock(store_path, &lock_path(store_path))?),
            Location::Postgres(_) => None,
        };
        let store =
            Arc::new(Store::open(store_path)?.into_team_engine(&team::identity(), config.lease)?);
        let (events, _) = broadcast::channel(4096);
        let wake = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let (progress_tx, progress) = watch::channel(Progress::default());
        let task = tokio::spawn(scheduler::run(scheduler::Setup {
            store,
            client,
            config,
            events: events.clone(),
            wake: wake.clone(),
            stop: stop.clone(),
            progress: progress_tx,
            lock,
        }));
        Ok(EngineHandle {
            events,
            wake,
            stop,
            progress,
            task,
        })
    }
}

/// Fails unless images can be written in `dir` (created if missing): a data directory
/// that is a regular file, read-only or not creatable is reported at start, naming the
/// path and the OS's reason, before any job is claimed. (A full disk is found by the
/// saves themselves: an empty probe file fits on a full disk.)
pub fn check_images_dir(dir: &Path) -> Result<(), EngineError> {
    let unwritable = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| EngineError::Unwritable {
            path,
            reason: e.to_string(),
        }
    };
    crate::files::create_private_dir(dir).map_err(unwritable(dir))?;
    let probe = dir.join(format!(".write-check.{:016x}.tmp", fastrand::u64(..)));
    File::create(&probe).map_err(unwritable(dir))?;
    std::fs::remove_file(&probe).map_err(unwritable(&probe))
}

fn lock_path(store_path: &Path) -> PathBuf {
    let mut name = store_path.as_os_str().to_owned();
    name.push(".engine.lock");
    PathBuf::from(name)
}

fn take_lock(db: &Path, lock_path: &Path) -> Result<File, EngineError> {
    if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| EngineError::Io(format!("{}: {e}", parent.display())))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .map_err(|e| {
            EngineError::Io(format!(
                "cannot open the engine lock {}: {e}",
                lock_path.display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(EngineError::Locked {
            db: db.to_path_buf(),
            lock: lock_path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(EngineError::Io(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

/// The scheduler's published progress: `round` counts store reads, so a waiter can ask
/// for a verdict based on a read made after its own request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    round: u64,
    idle: bool,
    finished: bool,
}

pub struct EngineHandle {
    events: broadcast::Sender<EngineEvent>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    progress: watch::Receiver<Progress>,
    task: tokio::task::JoinHandle<()>,
}

impl EngineHandle {
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    /// Asks the engine to look at the store now (e.g. right after enqueueing).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Returns once nothing is queued that the engine can submit, nothing is in flight and
    /// nothing waits to be downloaded, as seen by a store read made after this call; or
    /// once the engine has stopped.
    pub async fn wait_idle(&self) {
        let mut progress = self.progress.clone();
        let asked_at = progress.borrow().round;
        self.wake();
        let _ = progress
            .wait_for(|p| p.finished || (p.idle && p.round > asked_at))
            .await;
    }

    /// True once the engine stopped by itself (bad key, arrears) or was shut down.
    pub fn is_stopped(&self) -> bool {
        self.progress.borrow().finished
    }

    /// Stops the engine; jobs in flight keep their state and resume on the next start.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!("engine task ended abnormally: {e}");
        }
    }
}
