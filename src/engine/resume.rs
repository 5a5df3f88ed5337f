//! Resuming jobs: those a previous run of this engine left at the start, and later those
//! of engines of the team that are gone, once adopted.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::ctx::{Ctx, Slot, Tracked};
use super::{follow, reconcile_alone, recovery, sync_call};
use crate::dashscope::{Model, Timestamp};
use crate::store::{EngineStore, ErrorKind, JobError, JobId, JobState, StoreError};

/// Which of its jobs an engine resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// At the start: every job it runs.
    Everything,
    /// Later: only those it just adopted (it follows the others already).
    Adopted,
}

/// Adopts the jobs of engines that are gone, then resumes the jobs `which`; each job
/// resumed in flight takes one of its model's places (`take_place`).
pub(crate) async fn adopt_and_resume(
    ctx: &Arc<Ctx>,
    jobs: &mut JoinSet<()>,
    take_place: &mut (dyn FnMut(Model) + Send),
    which: Resume,
) -> Result<(), StoreError> {
    let adopted: HashSet<JobId> = ctx
        .db(EngineStore::adopt_orphans)
        .await?
        .into_iter()
        .collect();
    if !adopted.is_empty() {
        tracing::info!(
            jobs = adopted.len(),
            "adopted the jobs of engines that are gone"
        );
    }
    match which {
        Resume::Everything => resume(ctx, jobs, take_place, &|_| true).await,
        Resume::Adopted => {
            // Adopted earlier, their look-up put off while other engines' creates were
            // unanswered: looked up again now.
            let put_off: HashSet<JobId> = ctx
                .db(EngineStore::adopted_unanswered)
                .await?
                .into_iter()
                .collect();
            if adopted.is_empty() && put_off.is_empty() {
                return Ok(());
            }
            let wanted = |id: JobId| adopted.contains(&id) || put_off.contains(&id);
            resume(ctx, jobs, take_place, &wanted).await
        }
    }
}

/// Picks up what a previous run (or an engine that is gone) left of the jobs `wanted`:
/// reconciles interrupted creates, resumes polling and downloading, expires what outlived
/// the service's retention.
async fn resume(
    ctx: &Arc<Ctx>,
    jobs: &mut JoinSet<()>,
    take_place: &mut (dyn FnMut(Model) + Send),
    wanted: &(dyn Fn(JobId) -> bool + Sync),
) -> Result<(), StoreError> {
    let mut remote = ctx.db(EngineStore::remote_jobs).await?;
    remote.retain(|j| wanted(j.id));
    for model in Model::ALL {
        let submitting: Vec<_> = remote
            .iter()
            .filter(|j| j.model == model && j.state() == JobState::Submitting)
            .cloned()
            .collect();
        // Claimed but never stamped as sending: no create left for them.
        let (sent, unsent): (Vec<_>, Vec<_>) = submitting
            .into_iter()
            .partition(|j| j.status.submitted_at().is_some());
        let mut requeue: Vec<(JobId, &str)> = unsent
            .iter()
            .map(|j| {
                (
                    j.id,
                    "the engine stopped before this job's create was sent, so it is queued again",
                )
            })
            .collect();
        if sync_call::is_sync_only(model) {
            // No task list to look a call up in: never sent again without the user.
            for job in &sent {
                sync_call::interrupted(ctx, job).await?;
            }
        } else if !sent.is_empty() {
            tracing::info!(%model, jobs = sent.len(), "reconciling interrupted creates");
            // No create of this engine goes out, nor is set to await a look-up, while
            // these are looked up.
            let gate = ctx.gates[&model].lock().await;
            let resolved = reconcile_alone::reconcile_unanswered(ctx, model, sent).await?;
            drop(gate);
            for (id, resolution) in resolved.unwrap_or_default() {
                if resolution == recovery::Resolution::NotCreated {
                    requeue.push((id, "the engine stopped before the create request was answered; the service has no such task, so it is queued again"));
                }
            }
        }
        for (id, why) in requeue {
            let error = JobError::new(ErrorKind::Interrupted, why, None);
            ctx.db(move |s| s.requeue(id, &error, None, false)).await?;
            ctx.changed(id, JobState::Queued);
        }
    }
    for job in ctx.db(EngineStore::remote_jobs).await? {
        if !wanted(job.id) {
            continue;
        }
        let (Some(task_id), false) = (
            job.status.task_id().map(str::to_owned),
            job.state() == JobState::Submitting,
        ) else {
            continue;
        };
        if job
            .status
            .submitted_at()
            .is_some_and(|at| Timestamp::now() > ctx.results_expire_at(at))
        {
            follow::expire(ctx, job.id, job.model).await?;
            continue;
        }
        if sync_call::is_sync_only(job.model) {
            // Answered before the stop: its images come from the recorded answer.
            jobs.spawn(sync_call::resume_downloads(ctx.clone(), job));
            continue;
        }
        let slot = if job.status.task_status().is_none_or(|s| !s.is_final()) {
            take_place(job.model);
            ctx.slot(job.model)
        } else {
            Slot::released(job.model)
        };
        let tracked = Tracked {
            id: job.id,
            model: job.model,
            task_id,
            submitted_at: job.status.submitted_at().unwrap_or_else(Timestamp::now),
        };
        jobs.spawn(follow::track(ctx.clone(), tracked, slot));
    }
    Ok(())
}
