//! The scheduler: owns the per-model limits and decides which queued job goes next.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::job::{self, Slot};
use super::limits::{QueryBudget, TokenBucket};
use super::{EngineConfig, EngineEvent, Progress, recovery};
use crate::dashscope::{Client, Model, ModelLimits};
use crate::store::{JobId, JobState, Store, StoreError, now_ms};

/// Creates are sent a little under the quota so that timing jitter between our bucket and
/// the service's never turns into a 429; costs about as much wall time as it saves.
const RATE_MARGIN: f64 = 0.95;
/// The service's create bucket holds two tokens.
const CREATE_BURST: f64 = 2.0;

pub(crate) struct Setup {
    pub store: Arc<Store>,
    pub client: Client,
    pub config: EngineConfig,
    pub events: broadcast::Sender<EngineEvent>,
    pub wake: Arc<Notify>,
    pub stop: CancellationToken,
    pub progress: watch::Sender<Progress>,
    /// Held for as long as the scheduler runs.
    pub lock: File,
}

/// What job tasks tell the scheduler.
#[derive(Debug)]
pub(crate) enum Report {
    /// A task ended at the service (or was never created): one more may be in flight.
    SlotFreed(Model),
    /// A create was answered 429: slow this model down.
    Throttled(Model),
    /// A create was accepted: the model may speed up again.
    Created(Model),
    StopModel(Model, String),
    StopAll(String),
}

/// What every job task shares.
pub(crate) struct Ctx {
    pub store: Arc<Store>,
    pub client: Client,
    pub config: EngineConfig,
    pub events: broadcast::Sender<EngineEvent>,
    pub queries: QueryBudget,
    /// Held around a create and the commit of its task id, and around reconciling: while
    /// a model's jobs are reconciled, none of its creates is on the wire.
    pub gates: HashMap<Model, tokio::sync::Mutex<()>>,
    /// Observed task durations (seconds, moving average) per model, for polling.
    durations: Mutex<HashMap<Model, f64>>,
    reports: mpsc::UnboundedSender<Report>,
}

impl Ctx {
    /// Runs a store call off the async threads.
    pub async fn db<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || call(&store))
            .await
            .map_err(|e| StoreError::Sqlite(format!("store call stopped: {e}")))?
    }

    pub fn emit(&self, event: EngineEvent) {
        // No subscriber is fine: events are a courtesy, the store is the truth.
        let _ = self.events.send(event);
    }

    pub fn changed(&self, id: JobId, state: JobState) {
        self.emit(EngineEvent::JobChanged { id, state });
    }

    pub fn report(&self, report: Report) {
        let _ = self.reports.send(report);
    }

    pub fn slot(&self, model: Model) -> Slot {
        Slot::held(model, self.reports.clone())
    }

    pub fn expected_duration(&self, model: Model) -> Duration {
        let seconds = self
            .durations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&model)
            .copied();
        seconds.map_or_else(|| model.typical_duration(), Duration::from_secs_f64)
    }

    pub fn learn_duration(&self, model: Model, took: Duration) {
        let mut durations = self.durations.lock().unwrap_or_else(|p| p.into_inner());
        let seen = took.as_secs_f64();
        durations
            .entry(model)
            .and_modify(|avg| *avg = 0.7 * *avg + 0.3 * seen)
            .or_insert(seen);
    }

    /// Exponential backoff with jitter for the `attempt`th failure, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.backoff_base.as_secs_f64()
            * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let capped = base.min(self.config.backoff_cap.as_secs_f64());
        Duration::from_secs_f64(capped * (0.5 + 0.5 * fastrand::f64()))
    }
}

struct ModelRun {
    limits: ModelLimits,
    bucket: TokenBucket,
    in_flight: u32,
    /// 1.0 at full rate; halved on each 429, recovering step by step on success.
    speed: f64,
    stopped: bool,
}

impl ModelRun {
    fn new(limits: ModelLimits) -> Self {
        let rate = limits.submit_per_second * RATE_MARGIN;
        ModelRun {
            limits,
            bucket: TokenBucket::new(rate, CREATE_BURST.min(limits.submit_per_second.max(1.0))),
            in_flight: 0,
            speed: 1.0,
            stopped: false,
        }
    }

    fn set_speed(&mut self, speed: f64) {
        self.speed = speed.clamp(0.1, 1.0);
        self.bucket.set_rate(
            self.limits.submit_per_second * RATE_MARGIN * self.speed,
            Instant::now(),
        );
    }
}

pub(crate) async fn run(setup: Setup) {
    let Setup {
        store,
        client,
        config,
        events,
        wake,
        stop,
        progress,
        lock,
    } = setup;
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let mut models: HashMap<Model, ModelRun> = Model::ALL
        .into_iter()
        .map(|m| (m, ModelRun::new(config.limits_for(m))))
        .collect();
    let ctx = Arc::new(Ctx {
        store,
        client,
        queries: QueryBudget::new(config.queries_per_second),
        gates: Model::ALL
            .into_iter()
            .map(|m| (m, tokio::sync::Mutex::new(())))
            .collect(),
        durations: Mutex::new(HashMap::new()),
        config,
        events,
        reports: reports_tx,
    });
    let mut jobs: JoinSet<()> = JoinSet::new();
    tracing::info!("engine started");

    let reason = match resume(&ctx, &mut jobs, &mut models).await {
        Err(e) => format!("cannot resume from the store: {e}"),
        Ok(()) => {
            schedule(
                &ctx,
                &mut jobs,
                &mut models,
                &mut reports,
                &wake,
                &stop,
                &progress,
            )
            .await
        }
    };
    // Job tasks stop at their next await; every state they reached is committed, and
    // the next start resumes from there.
    jobs.shutdown().await;
    tracing::info!(%reason, "engine stopped");
    ctx.emit(EngineEvent::Stopped { reason });
    progress.send_modify(|p| p.finished = true);
    drop(lock);
}

/// Picks up what a previous run left: reconciles interrupted creates, resumes polling and
/// downloading, expires what outlived the service's retention.
async fn resume(
    ctx: &Arc<Ctx>,
    jobs: &mut JoinSet<()>,
    models: &mut HashMap<Model, ModelRun>,
) -> Result<(), StoreError> {
    let remote = ctx.db(|s| s.remote_jobs()).await?;
    for model in Model::ALL {
        let submitting: Vec<_> = remote
            .iter()
            .filter(|j| j.model == model && j.state == JobState::Submitting)
            .cloned()
            .collect();
        if submitting.is_empty() {
            continue;
        }
        tracing::info!(%model, jobs = submitting.len(), "reconciling interrupted creates");
        for (id, resolution) in recovery::reconcile(ctx, model, submitting).await? {
            if resolution == recovery::Resolution::NotCreated {
                let error = crate::store::JobError::new(
                    "Interrupted",
                    "the engine stopped before the create request was answered; the service has no such task, so it is queued again",
                    None,
                );
                ctx.db(move |s| s.requeue(id, &error, None, false)).await?;
                ctx.changed(id, JobState::Queued);
            }
        }
    }
    let ttl_ms = ctx.config.ttl.as_millis() as i64;
    for job in ctx.db(|s| s.remote_jobs()).await? {
        let (Some(task_id), false) = (job.task_id.clone(), job.state == JobState::Submitting)
        else {
            continue;
        };
        if job.submitted_at.is_some_and(|at| now_ms() - at > ttl_ms) {
            let id = job.id;
            ctx.db(move |s| s.end_job(id, JobState::Expired, Some(&job::expired_error())))
                .await?;
            ctx.changed(id, JobState::Expired);
            continue;
        }
        let slot = if job.task_status.is_none_or(|s| !s.is_final()) {
            models
                .get_mut(&job.model)
                .expect("every model has a run")
                .in_flight += 1;
            ctx.slot(job.model)
        } else {
            Slot::released(job.model)
        };
        let tracked = job::Tracked {
            id: job.id,
            model: job.model,
            task_id,
            submitted_at: job.submitted_at.unwrap_or_else(now_ms),
        };
        jobs.spawn(job::track(ctx.clone(), tracked, slot));
    }
    Ok(())
}

/// The main loop; returns why it stopped.
async fn schedule(
    ctx: &Arc<Ctx>,
    jobs: &mut JoinSet<()>,
    models: &mut HashMap<Model, ModelRun>,
    reports: &mut mpsc::UnboundedReceiver<Report>,
    wake: &Notify,
    stop: &CancellationToken,
    progress: &watch::Sender<Progress>,
) -> String {
    let mut round = 0u64;
    let mut was_idle = false;
    loop {
        while let Ok(report) = reports.try_recv() {
            if let Some(reason) = apply(ctx, models, report) {
                return reason;
            }
        }
        if stop.is_cancelled() {
            return "shut down".into();
        }
        let queued = match ctx.db(|s| s.queued_by_model()).await {
            Ok(queued) => queued,
            Err(e) => {
                tracing::error!("cannot read the queue: {e}");
                Vec::new()
            }
        };
        let mut next_look = ctx.config.store_poll;
        for &(model, count) in &queued {
            let run = models.get_mut(&model).expect("every model has a run");
            if run.stopped || count == 0 {
                continue;
            }
            if let Some(wait) = submit_next(ctx, jobs, model, run).await {
                next_look = next_look.min(wait);
            }
        }
        let submittable = queued.iter().any(|(m, n)| *n > 0 && !models[m].stopped);
        let idle = jobs.is_empty() && !submittable;
        round += 1;
        progress.send_modify(|p| {
            p.round = round;
            p.idle = idle;
        });
        if idle && !was_idle {
            ctx.emit(super::EngineEvent::Idle);
        }
        was_idle = idle;

        tokio::select! {
            _ = stop.cancelled() => {}
            _ = wake.notified() => {}
            Some(report) = reports.recv() => {
                if let Some(reason) = apply(ctx, models, report) {
                    return reason;
                }
            }
            Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                if let Err(e) = done {
                    tracing::error!("a job task ended abnormally: {e}");
                }
            }
            _ = tokio::time::sleep(next_look) => {}
        }
    }
}

/// Claims and starts as many queued jobs of `model` as its limits allow now. Returns how
/// long until the rate allows the next one, if that is what stopped it.
async fn submit_next(
    ctx: &Arc<Ctx>,
    jobs: &mut JoinSet<()>,
    model: Model,
    run: &mut ModelRun,
) -> Option<Duration> {
    while run.in_flight < run.limits.in_flight {
        let now = Instant::now();
        if !run.bucket.try_take(now) {
            return Some(run.bucket.wait_time(now));
        }
        let due = ctx.db(move |s| s.due_queued(model, now_ms(), 1)).await;
        let Some(&id) = due.as_deref().ok().and_then(|ids| ids.first()) else {
            if let Err(e) = due {
                tracing::error!("cannot read the queue: {e}");
            }
            run.bucket.refund();
            return None;
        };
        match ctx.db(move |s| s.claim_for_submit(id)).await {
            Ok(Some(job)) => {
                run.in_flight += 1;
                ctx.changed(id, JobState::Submitting);
                jobs.spawn(job::submit(ctx.clone(), job, ctx.slot(model)));
            }
            // Cancelled or retried by another process between the two reads.
            Ok(None) => run.bucket.refund(),
            Err(e) => {
                tracing::error!(job = %id, "cannot claim the job: {e}");
                run.bucket.refund();
                return None;
            }
        }
    }
    None
}

/// Applies a job task's report; returns a reason if the whole engine must stop.
fn apply(ctx: &Ctx, models: &mut HashMap<Model, ModelRun>, report: Report) -> Option<String> {
    match report {
        Report::SlotFreed(model) => {
            let run = models.get_mut(&model)?;
            run.in_flight = run.in_flight.saturating_sub(1);
        }
        Report::Throttled(model) => {
            let run = models.get_mut(&model)?;
            let speed = run.speed * 0.5;
            run.set_speed(speed);
            run.bucket.drain(Instant::now());
            tracing::warn!(%model, speed = run.speed, "throttled by the service; slowing down");
        }
        Report::Created(model) => {
            let run = models.get_mut(&model)?;
            if run.speed < 1.0 {
                let speed = run.speed + 0.1;
                run.set_speed(speed);
            }
        }
        Report::StopModel(model, reason) => {
            let run = models.get_mut(&model)?;
            if !run.stopped {
                run.stopped = true;
                tracing::warn!(%model, %reason, "no more submissions for this model");
                ctx.emit(EngineEvent::ModelStopped { model, reason });
            }
        }
        Report::StopAll(reason) => return Some(reason),
    }
    None
}
