//! What every job task shares (`Ctx`), what job tasks tell the scheduler (`Report`,
//! `Slot`, `CreateGuard`), and the job being followed (`Tracked`). Depends on no stage of the engine, so every stage and the
//! scheduler can import it without a circle.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::disk::DiskHealth;
use super::durations::Durations;
use super::limits::{Backoff, CreateRate, QueryBudget};
use super::{EngineConfig, EngineEvent};
use crate::dashscope::{Client, Model, Timestamp};
use crate::store::{EngineStore, JobError, JobId, JobState, StoreError};

/// What job tasks tell the scheduler.
#[derive(Debug)]
pub(crate) enum Report {
    /// A task ended at the service (or was never created): one more may be in flight.
    SlotFreed(Model),
    StopModel(Model, String),
    StopAll(String),
}

/// What every job task shares.
pub(crate) struct Ctx {
    pub store: Arc<EngineStore>,
    pub client: Client,
    pub config: EngineConfig,
    pub events: broadcast::Sender<EngineEvent>,
    pub queries: QueryBudget,
    /// Per model, taken right before each create.
    pub create_rates: HashMap<Model, CreateRate>,
    /// Held around a create and the commit of its task id, and around reconciling: while
    /// a model's jobs are reconciled, none of its creates is on the wire.
    pub gates: HashMap<Model, tokio::sync::Mutex<()>>,
    /// What is known of each model's task durations, for polling; kept in the store.
    pub durations: Durations,
    reports: mpsc::UnboundedSender<Report>,
    /// Cancelled when the engine stops (shut down, or a StopAll report: bad key,
    /// arrears): claimed jobs not yet sent go back to the queue instead of being created,
    /// and no more jobs are claimed.
    pub stopping: CancellationToken,
    /// Jobs between their claim and the recorded answer to their create.
    pub creates: Arc<CreatesInFlight>,
    /// Whether the disk takes images; no creates while it does not.
    pub disk: DiskHealth,
    /// Taken around each image decode: a decode may hold hundreds of megabytes.
    pub decodes: tokio::sync::Semaphore,
}

/// Images decoded at once at most.
const DECODES_AT_ONCE: usize = 2;

impl Ctx {
    /// A context with every model's limits taken from `config`; job tasks' reports
    /// arrive on the returned receiver.
    pub fn new(
        store: Arc<EngineStore>,
        client: Client,
        config: EngineConfig,
        events: broadcast::Sender<EngineEvent>,
        stopping: CancellationToken,
    ) -> (Ctx, mpsc::UnboundedReceiver<Report>) {
        let (reports, received) = mpsc::unbounded_channel();
        let ctx = Ctx {
            store,
            client,
            queries: QueryBudget::new(config.queries_per_second),
            create_rates: Model::ALL
                .into_iter()
                .map(|m| (m, CreateRate::new(config.limits_for(m).submit_per_second)))
                .collect(),
            gates: Model::ALL
                .into_iter()
                .map(|m| (m, tokio::sync::Mutex::new(())))
                .collect(),
            durations: Durations::default(),
            stopping,
            creates: Arc::default(),
            disk: DiskHealth::default(),
            decodes: tokio::sync::Semaphore::new(DECODES_AT_ONCE),
            config,
            events,
            reports,
        };
        (ctx, received)
    }

    /// Runs a store call off the async threads.
    pub async fn db<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&EngineStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || call(&store))
            .await
            .map_err(|e| StoreError::Database(format!("store call stopped: {e}")))?
    }

    pub fn emit(&self, event: EngineEvent) {
        // No subscriber is fine: events are a courtesy, the store is the truth.
        let _ = self.events.send(event);
    }

    pub fn changed(&self, id: JobId, state: JobState) {
        self.emit(EngineEvent::JobChanged { id, state });
    }

    /// Something the engine retries, and why: noted on the job (what `show`, `list` and
    /// the dashboard display) and told to watchers (`submit --wait` prints it).
    pub async fn retrying(&self, id: JobId, note: JobError) -> Result<(), StoreError> {
        let reason = note.message.clone();
        self.db(move |s| s.note_error(id, &note)).await?;
        self.emit(EngineEvent::Retrying { id, reason });
        Ok(())
    }

    pub fn report(&self, report: Report) {
        let stops_everything = matches!(report, Report::StopAll(_));
        let _ = self.reports.send(report);
        if stops_everything {
            // After the send: the main loop drains reports before it looks at the token,
            // so it stops with this reason rather than as a plain shutdown.
            self.stopping.cancel();
        }
    }

    pub fn slot(&self, model: Model) -> Slot {
        Slot::held(model, self.reports.clone())
    }

    /// When the service discards a task submitted at `submitted_at`, and with it the
    /// task's result URLs.
    pub fn results_expire_at(&self, submitted_at: Timestamp) -> Timestamp {
        submitted_at + self.config.ttl
    }

    /// Learns that a task of `model` ran for `took`; the average goes to the store when
    /// it moved enough for the next process to poll differently.
    pub async fn learn_duration(&self, model: Model, took: Duration) {
        let Some(learned) = self.durations.learn(model, took) else {
            return;
        };
        match self
            .db(move |s| s.save_learned_duration(model, learned))
            .await
        {
            Ok(()) => self.durations.saved(model, learned),
            // A hint for the next process, not a reason to stop this job.
            Err(e) => tracing::warn!(%model, "cannot keep the learned task duration: {e}"),
        }
    }

    /// The configured backoff for the `attempt`th failure, with fresh jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff::of(&self.config).delay(attempt, fastrand::f64())
    }
}

/// A job with a task id, being followed.
pub(crate) struct Tracked {
    pub id: JobId,
    pub model: Model,
    pub task_id: String,
    /// When the create went out: the TTL runs from here.
    pub submitted_at: Timestamp,
}

/// One of a model's in-flight places, held from the claim until the service's task ends
/// (or is known never to have started). Released exactly once, also if the task is
/// dropped on shutdown.
pub(crate) struct Slot {
    model: Model,
    reports: Option<mpsc::UnboundedSender<Report>>,
}

impl Slot {
    fn held(model: Model, reports: mpsc::UnboundedSender<Report>) -> Self {
        Slot {
            model,
            reports: Some(reports),
        }
    }

    /// For a job whose task has already ended (only downloads are left).
    pub fn released(model: Model) -> Self {
        Slot {
            model,
            reports: None,
        }
    }

    pub fn release(&mut self) {
        if let Some(reports) = self.reports.take() {
            let _ = reports.send(Report::SlotFreed(self.model));
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Counts jobs between their claim and the commit of their create's outcome, so that a
/// stopping engine lets those outcomes land instead of leaving jobs `submitting` (which
/// the next start would have to reconcile against the service's task list).
#[derive(Default)]
pub(crate) struct CreatesInFlight {
    count: AtomicUsize,
    settled: Notify,
}

impl CreatesInFlight {
    pub fn begin(self: &Arc<Self>) -> CreateGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        CreateGuard(self.clone())
    }

    /// Waits until no create is in flight, or `within` has passed.
    pub async fn settle(&self, within: Duration) {
        let wait = async {
            loop {
                let settled = self.settled.notified();
                if self.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                settled.await;
            }
        };
        if tokio::time::timeout(within, wait).await.is_err() {
            tracing::warn!(
                "stopping with creates still unanswered; the next start reconciles them"
            );
        }
    }
}

/// Held by a job task until its create's outcome is committed.
pub(crate) struct CreateGuard(Arc<CreatesInFlight>);

impl Drop for CreateGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.settled.notify_waiters();
    }
}
