//! The scheduler: owns the per-model limits and decides which queued job goes next.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ctx::{Ctx, Report};
use super::gate::{Hold, claim_hold};
use super::resume::{Resume, adopt_and_resume};
use super::{EngineConfig, EngineEvent, Progress, budget, create, quotas, sync_call, team};
use crate::dashscope::{Client, Model, Timestamp};
use crate::store::{Claim, EngineStore, JobState, Pauses};

pub(crate) struct Setup {
    pub store: Arc<EngineStore>,
    pub client: Client,
    pub config: EngineConfig,
    pub events: broadcast::Sender<EngineEvent>,
    pub wake: Arc<Notify>,
    pub stop: CancellationToken,
    pub progress: watch::Sender<Progress>,
    /// The locked file that keeps a second engine off an SQLite store, held for as long
    /// as the scheduler runs (a PostgreSQL store takes a team of engines).
    pub lock: Option<std::fs::File>,
}

struct ModelRun {
    in_flight_limit: u32,
    in_flight: u32,
    stopped: bool,
    /// What held its queued jobs back last round, to log when that changes.
    held: Option<Hold>,
    /// The budget held this model's next job back in the last round: its queue waits,
    /// and does not keep the engine from being idle.
    over_budget: bool,
    /// In a team: the last claim found no place free (`Full`), or left one to the other
    /// engines (`LeftForOthers`, and the next claim takes it if it is still free). Other
    /// engines free places without waking this one: the store is looked at sooner.
    waiting_for_place: Option<Claim>,
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
    let config = team::renewing_lease(
        &store,
        quotas::apply_limits_in_force(&client, config, &stop),
    )
    .await;
    let mut models: HashMap<Model, ModelRun> = Model::ALL
        .into_iter()
        .map(|m| {
            (
                m,
                ModelRun {
                    in_flight_limit: config.limits_for(m).in_flight,
                    in_flight: 0,
                    stopped: false,
                    held: None,
                    over_budget: false,
                    waiting_for_place: None,
                },
            )
        })
        .collect();
    let (ctx, mut reports) = Ctx::new(store, client, config, events, stop.clone());
    let ctx = Arc::new(ctx);
    let mut jobs: JoinSet<()> = JoinSet::new();
    let lease = tokio::spawn(team::keep_lease(ctx.clone()));
    let backfill = tokio::spawn(team::backfill_image_blobs(ctx.clone()));
    tracing::info!(
        engine = ctx.store.membership().map(|m| m.id),
        "engine started"
    );
    // What earlier processes learned of task durations: the first polls aim at the end.
    match ctx.db(|s| s.learned_durations()).await {
        Ok(kept) => ctx.durations.remember(kept),
        Err(e) => tracing::warn!("cannot read the learned task durations: {e}"),
    }

    // Resuming may wait on the service (the task-list check of unanswered creates): a stop
    // cuts it, and what it had not settled stays for the next start.
    let resumed = {
        let mut places = take_place(&mut models);
        tokio::select! {
            resumed = adopt_and_resume(&ctx, &mut jobs, &mut places, Resume::Everything) => Some(resumed),
            () = stop.cancelled() => None,
        }
    };
    let reason = match resumed {
        None => first_stop_reason(&mut reports).unwrap_or_else(|| "shut down".into()),
        Some(Err(e)) => format!("cannot resume from the store: {e}"),
        Some(Ok(())) => {
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
    // Creates on the wire get `STOP_GRACE` to record their answer (a claimed job not yet
    // sent goes back to the queue); other job tasks stop at their next await, with every
    // state they reached committed, and the next start resumes from there (a create whose
    // answer never came is looked up in the service's task list, as after a kill -9).
    stop.cancel();
    ctx.creates.settle(CREATE_SETTLE_LIMIT).await;
    jobs.shutdown().await;
    lease.abort();
    backfill.abort();
    // What it leaves running, the next engine to look adopts at once.
    if let Err(e) = ctx.db(EngineStore::leave_team).await {
        tracing::warn!("cannot take this engine off the store's team: {e}");
    }
    tracing::info!(%reason, "engine stopped");
    ctx.emit(EngineEvent::Stopped { reason });
    progress.send_modify(|p| p.finished = true);
    drop(lock);
}

/// How long a stopping engine waits for creates already sent to be answered: each create
/// gives up after `create::STOP_GRACE`, this is the backstop. A stop takes under a second
/// whatever the service does.
const CREATE_SETTLE_LIMIT: Duration = Duration::from_millis(750);

/// Why the engine stops, if a job task reported a reason to stop everything.
fn first_stop_reason(reports: &mut mpsc::UnboundedReceiver<Report>) -> Option<String> {
    std::iter::from_fn(|| reports.try_recv().ok()).find_map(|report| match report {
        Report::StopAll(reason) => Some(reason),
        Report::SlotFreed(_) | Report::StopModel(..) => None,
    })
}

/// A resumed job in flight takes one of its model's places.
fn take_place(models: &mut HashMap<Model, ModelRun>) -> impl FnMut(Model) + Send + '_ {
    |model| {
        models
            .get_mut(&model)
            .expect("every model has a run")
            .in_flight += 1;
    }
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
    let team = ctx.store.membership().filter(|m| m.shared);
    let mut adopted_at = Instant::now();
    loop {
        while let Ok(report) = reports.try_recv() {
            if let Some(reason) = apply(ctx, models, report) {
                return reason;
            }
        }
        if stop.is_cancelled() {
            return "shut down".into();
        }
        if let Some(me) = team
            && adopted_at.elapsed() >= team::renewal_interval(me.lease)
        {
            adopted_at = Instant::now();
            let adopted =
                adopt_and_resume(ctx, jobs, &mut take_place(models), Resume::Adopted).await;
            if let Err(e) = adopted {
                tracing::error!("cannot adopt the jobs of engines that are gone: {e}");
            }
        }
        let queued = match ctx.db(EngineStore::queued_by_model).await {
            Ok(queued) => queued,
            Err(e) => {
                tracing::error!("cannot read the queue: {e}");
                Vec::new()
            }
        };
        // Set by any process on the store; unreadable, nothing is sent.
        let pauses = ctx.db(|s| s.pauses()).await.unwrap_or_else(|e| {
            tracing::error!("cannot read the pauses, holding every create: {e}");
            Pauses {
                all: true,
                ..Pauses::default()
            }
        });
        // Unreadable, nothing is held: `mark_sending` checks the markers anyway.
        let reconciling = match team {
            Some(_) => ctx
                .db(EngineStore::reconciling_models)
                .await
                .unwrap_or_else(|e| {
                    tracing::error!("cannot read which models are being reconciled: {e}");
                    Vec::new()
                }),
            None => Vec::new(),
        };
        let mut submittable = false;
        for &(model, count) in &queued {
            let run = models.get_mut(&model).expect("every model has a run");
            run.over_budget = false;
            let left_a_place = matches!(run.waiting_for_place.take(), Some(Claim::LeftForOthers));
            if count == 0 {
                continue;
            }
            let hold = claim_hold(
                model,
                run.stopped,
                ctx.disk.is_refusing(),
                &pauses,
                reconciling.contains(&model),
            );
            note_hold(model, run, hold);
            match hold {
                None => {
                    submit_next(ctx, jobs, model, run, left_a_place).await;
                    submittable |= !run.over_budget;
                }
                Some(hold) => submittable |= hold.ends_by_itself(),
            }
        }
        let idle =
            jobs.is_empty() && !submittable && (team.is_none() || team::store_idle(ctx).await);
        round += 1;
        progress.send_modify(|p| {
            p.round = round;
            p.idle = idle;
        });
        if idle && !was_idle {
            ctx.emit(EngineEvent::Idle);
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
            _ = tokio::time::sleep(next_look(ctx, models)) => {}
        }
    }
}

/// When to look at the store again unless woken: sooner while a model waits for a place
/// other engines hold, since their jobs end without waking this engine.
fn next_look(ctx: &Ctx, models: &HashMap<Model, ModelRun>) -> Duration {
    if models.values().any(|run| run.waiting_for_place.is_some()) {
        ctx.config.store_poll.min(team::PLACE_POLL)
    } else {
        ctx.config.store_poll
    }
}

/// Logs when what holds a model's queued jobs back changes (a pause, say, set by another
/// process), so the log tells why nothing was sent.
fn note_hold(model: Model, run: &mut ModelRun, hold: Option<Hold>) {
    if run.held == hold {
        return;
    }
    match hold {
        Some(Hold::Paused(pause)) => tracing::info!(%model, "queued jobs held: {pause}"),
        Some(Hold::DiskRefusing) => {
            tracing::info!(%model, "queued jobs held while the disk refuses images")
        }
        Some(Hold::Stopped) => tracing::info!(%model, "queued jobs held: the model is stopped"),
        Some(Hold::Reconciling) => tracing::info!(
            %model,
            "queued jobs held while an engine looks up unanswered creates of this model"
        ),
        None => tracing::info!(%model, "sending queued jobs"),
    }
    run.held = hold;
}

/// Claims and starts as many queued jobs of `model` as its in-flight limit allows; the
/// job tasks then wait for the model's create rate. `left_a_place`: in a team, the last
/// round left a free place to the other engines; still free, it is taken now.
async fn submit_next(
    ctx: &Arc<Ctx>,
    jobs: &mut JoinSet<()>,
    model: Model,
    run: &mut ModelRun,
    mut left_a_place: bool,
) {
    while run.in_flight < run.in_flight_limit && !ctx.stopping.is_cancelled() {
        let due = ctx
            .db(move |s| s.due_queued(model, Timestamp::now(), 1))
            .await;
        let Some(&id) = due.as_deref().ok().and_then(|ids| ids.first()) else {
            if let Err(e) = due {
                tracing::error!("cannot read the queue: {e}");
            }
            return;
        };
        match budget::check(ctx, id).await {
            Ok(true) => {}
            Ok(false) => {
                run.over_budget = true;
                return;
            }
            Err(e) => {
                tracing::error!(job = %id, "cannot check the budget: {e}");
                return;
            }
        }
        let limit = run.in_flight_limit;
        let claim = team::claim(ctx, id, model, limit, !left_a_place).await;
        left_a_place = false;
        match claim {
            Ok(Claim::Claimed(job)) => {
                let job = *job;
                run.in_flight += 1;
                ctx.changed(id, JobState::Submitting);
                let guard = ctx.creates.begin();
                if sync_call::is_sync_only(model) {
                    jobs.spawn(sync_call::call(ctx.clone(), job, ctx.slot(model), guard));
                } else {
                    jobs.spawn(create::submit(ctx.clone(), job, ctx.slot(model), guard));
                }
            }
            // Cancelled, retried or claimed by another process between the two reads.
            Ok(Claim::Gone) => {}
            // The model's places are taken by other engines' jobs, or the one free is
            // left to them for a round.
            Ok(waiting @ (Claim::Full | Claim::LeftForOthers)) => {
                run.waiting_for_place = Some(waiting);
                return;
            }
            Err(e) => {
                tracing::error!(job = %id, "cannot claim the job: {e}");
                return;
            }
        }
    }
}

/// Applies a job task's report; returns a reason if the whole engine must stop.
fn apply(ctx: &Ctx, models: &mut HashMap<Model, ModelRun>, report: Report) -> Option<String> {
    match report {
        Report::SlotFreed(model) => {
            let run = models.get_mut(&model)?;
            run.in_flight = run.in_flight.saturating_sub(1);
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
