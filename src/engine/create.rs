//! Creating a job's task: exactly one create per job, under the model's gate, and what a
//! failed create means for the job.

use std::sync::Arc;
use std::time::Duration;

use super::create_failure::{
    AfterFailedCreate, Wait, after_failed_create, is_throttled, may_have_created,
};
use super::ctx::{CreateGuard, Ctx, Report, Slot, Tracked};
use super::follow;
use super::inputs::inputs_here;
use super::reconcile_alone;
use super::recovery::Resolution;
use crate::dashscope::{ClientError, ImageRef, JobSpec, Model, TaskStatus, Timestamp};
use crate::store::{
    Ending, ErrorKind, JobDetail, JobError, JobId, JobState, JobStatus, JobSummary, StoreError,
};

/// Submits a claimed (submitting) job, then follows its task.
pub(crate) async fn submit(ctx: Arc<Ctx>, job: JobDetail, mut slot: Slot, creating: CreateGuard) {
    let id = job.summary.id;
    let outcome = tokio::select! {
        outcome = create(&ctx, &job, &mut slot) => outcome,
        () = stopped_for(&ctx, STOP_GRACE) => {
            // Whatever was committed stands: not yet sent, the next start queues the job
            // again; sent, it looks the create up in the service's task list.
            tracing::info!(job = %id, "stopping before the create was answered; the next start settles it");
            Ok(None)
        }
    };
    drop(creating);
    match outcome {
        Ok(Some(tracked)) => follow::track(ctx, tracked, slot).await,
        Ok(None) => {}
        // The job keeps its committed state; the next start resumes it.
        Err(e) => tracing::error!(job = %id, "store error while submitting: {e}"),
    }
}

/// How long a create already under way may still take once the engine stops: a quick
/// answer is still recorded, and a service that does not answer holds the stop no longer
/// than this (a stop takes under a second whatever the service does). A create given up
/// is settled at the next start, as after a kill -9: looked up in the service's task list
/// and adopted if its task is there; if the list may have forgotten it (sent longer ago
/// than the service keeps tasks, by its clock), the job needs attention instead of being
/// created a second time.
pub(crate) const STOP_GRACE: Duration = Duration::from_millis(500);

/// Resolves `grace` after the engine started stopping.
pub(super) async fn stopped_for(ctx: &Ctx, grace: Duration) {
    ctx.stopping.cancelled().await;
    tokio::time::sleep(grace).await;
}

async fn create(
    ctx: &Ctx,
    job: &JobDetail,
    slot: &mut Slot,
) -> Result<Option<Tracked>, StoreError> {
    let id = job.summary.id;
    let model = job.summary.model;
    let attempts = job.summary.attempts;
    let spec = match prepared(ctx, job).await {
        Ok(spec) => spec,
        Err(e) => {
            return create_failed(ctx, id, model, attempts, &e, slot)
                .await
                .map(|()| None);
        }
    };
    match send_gated(ctx, job, &spec).await? {
        Sent::HeldBack(why) => {
            // Stopping (shut down, or a bad key that this create would meet too), the
            // disk refuses images (see `DiskHealth`), or the queue was paused (or an
            // engine began to look up unanswered creates of the model) while the job
            // waited for the gate: it was never sent, so it goes back to the queue as it
            // was, in its place, its attempt uncounted.
            slot.release();
            let note = JobError::new(ErrorKind::NotSent, why, None);
            ctx.db(move |s| s.requeue(id, &note, None, false)).await?;
            ctx.changed(id, JobState::Queued);
            Ok(None)
        }
        Sent::Created {
            task_id,
            status,
            answered_at,
        } => {
            ctx.create_rates[&model].accepted();
            let state = if status == TaskStatus::Pending {
                JobState::Submitted
            } else {
                JobState::Running
            };
            ctx.changed(id, state);
            tracing::info!(job = %id, %model, task = %task_id, "task created");
            Ok(Some(Tracked {
                id,
                model,
                task_id,
                submitted_at: answered_at,
            }))
        }
        Sent::Unanswered {
            error,
            sent_at,
            resolution,
        } => match resolution {
            Some(Resolution::Adopted) => {
                let detail = ctx.db(move |s| s.job_brief(id)).await?;
                let Some(task_id) = detail.and_then(|d| d.task_id().map(str::to_owned)) else {
                    return Ok(None);
                };
                ctx.changed(id, JobState::Submitted);
                Ok(Some(Tracked {
                    id,
                    model,
                    task_id,
                    submitted_at: sent_at,
                }))
            }
            Some(Resolution::NotCreated) => create_failed(ctx, id, model, attempts, &error, slot)
                .await
                .map(|()| None),
            Some(Resolution::Undecidable) => {
                slot.release();
                Ok(None)
            }
            // The engine is stopping, or in a team the look-up was put off (other
            // creates of the model stayed unanswered, or another engine looks up): the
            // job stays submitting, awaiting its look-up by the next start or adoption
            // round, which takes a place for it again if it is to be followed.
            None => {
                slot.release();
                Ok(None)
            }
        },
        Sent::Failed(error) => create_failed(ctx, id, model, attempts, &error, slot)
            .await
            .map(|()| None),
        Sent::Duplicate => {
            slot.release();
            ctx.changed(id, JobState::NeedsAttention);
            Ok(None)
        }
    }
}

/// How the part of a create under the model's gate ended.
enum Sent {
    /// Not sent: the engine is stopping, the disk refuses images, the queue or the
    /// model is paused, or an engine looks up unanswered creates of the model (the
    /// reason).
    HeldBack(String),
    /// The service created the task, and its id is committed.
    Created {
        task_id: String,
        status: TaskStatus,
        /// When the answer came: polls aim at the task's end from here.
        answered_at: Timestamp,
    },
    /// No answer, so the service's task list was checked; `None` when the engine stopped
    /// before that could decide, or in a team the check was put off (the job stays
    /// submitting, awaiting its look-up).
    Unanswered {
        error: ClientError,
        sent_at: Timestamp,
        resolution: Option<Resolution>,
    },
    /// The service answered with an error: it certainly created no task.
    Failed(ClientError),
    /// The service answered with a task id another job already has; the job is now
    /// needs_attention.
    Duplicate,
}

/// Why a job whose create was answered with another job's task id needs attention.
fn duplicate_task_error(task_id: &str, other: JobId) -> JobError {
    JobError::new(
        ErrorKind::DuplicateTaskId,
        format!(
            "the service answered this job's create with task id {task_id}, which job {other} already has; a task may have been made for this job that wandash cannot follow: check the service's task list, then retry or delete the job"
        ),
        None,
    )
}

/// The part of a create that holds the model's gate: no other create of this model is on
/// the wire meanwhile, and none starts before an unanswered create has been looked up in
/// the service's task list, or in a team until that look-up is put off (the create then
/// awaits it with the adopted ones, and the store's marker keeps every create of the
/// model off the wire while it is made). The gate is released when this returns,
/// whichever way.
async fn send_gated(ctx: &Ctx, job: &JobDetail, spec: &JobSpec) -> Result<Sent, StoreError> {
    let (id, model) = (job.summary.id, job.summary.model);
    // A stop does not wait for the gate or the create pace: the job goes back to the
    // queue at once, well within the stop's grace.
    let gated = tokio::select! {
        biased;
        () = ctx.stopping.cancelled() => None,
        gate = async {
            let gate = ctx.gates[&model].lock().await;
            ctx.create_token(model).await;
            gate
        } => Some(gate),
    };
    let Some(_gate) = gated else {
        return Ok(Sent::HeldBack(
            "the engine stopped before this job was sent".to_string(),
        ));
    };
    let held_back = if ctx.stopping.is_cancelled() {
        Some("the engine stopped before this job was sent".to_string())
    } else {
        ctx.disk
            .fault()
            .map(|fault| format!("held back while the disk refuses images ({fault})"))
    };
    if let Some(why) = held_back {
        return Ok(Sent::HeldBack(why));
    }
    let Some(sent_at) = ctx.db(move |s| s.mark_sending(id, model)).await? else {
        return Ok(Sent::HeldBack(
            "held back: the queue was paused, or an engine was looking up unanswered creates of this model, before this job was sent".to_string(),
        ));
    };
    match ctx.client.create(spec).await {
        Ok(created) => {
            // Before the store write, so that polls aimed at the task's end are not late by it.
            let answered_at = Timestamp::now();
            let (task_id, status) = (created.task_id.clone(), created.task_status);
            let taken_by = ctx
                .db(move |s| {
                    s.mark_created_unless_taken(
                        id,
                        &created.task_id,
                        created.task_status,
                        |other| duplicate_task_error(&created.task_id, other),
                    )
                })
                .await?;
            if let Some(other) = taken_by {
                tracing::error!(job = %id, task = %task_id, %other, "the service answered a task id another job already has");
                return Ok(Sent::Duplicate);
            }
            Ok(Sent::Created {
                task_id,
                status,
                answered_at,
            })
        }
        // The service may or may not have created the task. Find out before anything else
        // is created for this model (the gate is still held); in a team, once no other
        // engine's create of the model is on the wire either (see `reconcile_alone`).
        Err(error) if may_have_created(&error) => {
            tracing::warn!(job = %id, %model, "create not answered ({error}); checking the service's task list");
            let this = JobSummary {
                status: JobStatus::Submitting {
                    sending_since: Some(sent_at),
                    last_error: None,
                },
                ..job.summary.clone()
            };
            let resolution = reconcile_alone::reconcile_unanswered(ctx, model, vec![this]).await?;
            Ok(Sent::Unanswered {
                error,
                sent_at,
                resolution: resolution.and_then(|resolved| resolved.first().map(|&(_, r)| r)),
            })
        }
        Err(error) => Ok(Sent::Failed(error)),
    }
}

/// The spec to send: local files resolved once (uploads last 48 h) and remembered.
pub(super) async fn prepared(ctx: &Ctx, job: &JobDetail) -> Result<JobSpec, ClientError> {
    if let Some(spec) = &job.prepared_spec {
        return Ok(spec.clone());
    }
    if !job
        .spec
        .image_refs()
        .iter()
        .any(|(_, r)| matches!(r, ImageRef::File(_)))
    {
        return Ok(job.spec.clone());
    }
    let spec = ctx.client.prepare(&inputs_here(ctx, job).await?).await?;
    let (id, saved) = (job.summary.id, spec.clone());
    ctx.db(move |s| s.set_prepared_spec(id, &saved))
        .await
        .map_err(|e| ClientError::Io(format!("cannot record the uploaded images: {e}")))?;
    Ok(spec)
}

/// A create that produced no task the engine can follow: back to the queue, failed, or
/// needs_attention, as `after_failed_create` decides.
pub(super) async fn create_failed(
    ctx: &Ctx,
    id: JobId,
    model: Model,
    attempts: u32,
    error: &ClientError,
    slot: &mut Slot,
) -> Result<(), StoreError> {
    slot.release();
    let recorded = JobError::from_client(error);
    let wait_until = |wait: Wait| {
        let wait = match wait {
            Wait::Fixed(wait) => wait,
            Wait::Backoff(step) => ctx.backoff(step),
        };
        Timestamp::now() + wait
    };
    let state = match after_failed_create(error, attempts, ctx.config.max_attempts) {
        AfterFailedCreate::WaitTurn(wait) => {
            let again = wait_until(wait);
            let speed = ctx.create_rates[&model].throttled();
            tracing::warn!(job = %id, %model, speed, "{error}; slowing down, the job waits its turn");
            if is_throttled(error) {
                ctx.throttle_team(model, speed).await;
            }
            ctx.db(move |s| s.requeue(id, &recorded, Some(again), false))
                .await?;
            JobState::Queued
        }
        AfterFailedCreate::Retry(wait) => {
            let again = wait_until(wait);
            tracing::warn!(job = %id, %model, attempts, "create failed ({error}); retrying");
            ctx.db(move |s| s.requeue(id, &recorded, Some(again), true))
                .await?;
            JobState::Queued
        }
        AfterFailedCreate::GiveUp => {
            let gave_up = JobError {
                message: format!("gave up after {attempts} attempts: {}", recorded.message),
                ..recorded
            };
            ctx.db(move |s| s.end_job(id, Ending::Failed(gave_up)))
                .await?;
            JobState::Failed
        }
        AfterFailedCreate::StopModel => {
            ctx.db(move |s| s.requeue(id, &recorded, None, false))
                .await?;
            ctx.report(Report::StopModel(model, error.to_string()));
            JobState::Queued
        }
        AfterFailedCreate::StopAll => {
            // Report (which stops the engine) before requeueing, so the main loop cannot
            // claim the job again for a second, doomed create.
            ctx.report(Report::StopAll(error.to_string()));
            ctx.db(move |s| s.requeue(id, &recorded, None, false))
                .await?;
            JobState::Queued
        }
        AfterFailedCreate::Unfollowable => {
            // The service made a task it named unusably: never created again, never lost.
            let why = JobError {
                message: format!(
                    "{}; a task may have been made for this job: check the service's task list, then retry or delete the job",
                    recorded.message
                ),
                action: None,
                ..recorded
            };
            tracing::warn!(job = %id, %model, "{}", why.message);
            ctx.db(move |s| s.end_job(id, Ending::NeedsAttention(why)))
                .await?;
            JobState::NeedsAttention
        }
        AfterFailedCreate::FixInput => {
            tracing::info!(job = %id, %model, "job refused: {error}");
            ctx.db(move |s| s.end_job(id, Ending::Failed(recorded)))
                .await?;
            JobState::Failed
        }
    };
    ctx.changed(id, state);
    Ok(())
}
