//! One job's way through the service: create, poll, cancel, download. Every state
//! change is committed before the next network step.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::EngineEvent;
use super::download::{CheckedImage, DiskFault, check_image, write_image};
use super::recovery::{self, Resolution};
use super::scheduler::{CreateGuard, Ctx, Report};
use crate::dashscope::{
    ClientError, ErrorAction, ImageRef, JobSpec, Model, TaskInfo, TaskResult, TaskStatus,
    Timestamp, classify,
};
use crate::store::{
    Ending, ErrorKind, ImageRecord, JobDetail, JobError, JobId, JobState, JobStatus, JobSummary,
    StoreError, now_ms,
};

/// One of a model's in-flight places, held from the claim until the service's task ends
/// (or is known never to have started). Released exactly once, also if the task is
/// dropped on shutdown.
pub(crate) struct Slot {
    model: Model,
    reports: Option<mpsc::UnboundedSender<Report>>,
}

impl Slot {
    pub(crate) fn held(model: Model, reports: mpsc::UnboundedSender<Report>) -> Self {
        Slot {
            model,
            reports: Some(reports),
        }
    }

    /// For a job whose task has already ended (only downloads are left).
    pub(crate) fn released(model: Model) -> Self {
        Slot {
            model,
            reports: None,
        }
    }

    fn release(&mut self) {
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

/// A job with a task id, being followed.
pub(crate) struct Tracked {
    pub id: JobId,
    pub model: Model,
    pub task_id: String,
    /// When the create went out (epoch ms): the TTL runs from here.
    pub submitted_at: i64,
}

pub(crate) fn expired_error() -> JobError {
    JobError::new(
        ErrorKind::Expired,
        "the service keeps tasks and their images for 24 hours; this one's results can no longer be fetched",
        None,
    )
}

/// Submits a claimed (submitting) job, then follows its task.
pub(crate) async fn submit(ctx: Arc<Ctx>, job: JobDetail, mut slot: Slot, creating: CreateGuard) {
    let id = job.summary.id;
    let outcome = create(&ctx, &job, &mut slot).await;
    drop(creating);
    match outcome {
        Ok(Some(tracked)) => track(ctx, tracked, slot).await,
        Ok(None) => {}
        // The job keeps its committed state; the next start resumes it.
        Err(e) => tracing::error!(job = %id, "store error while submitting: {e}"),
    }
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
                .map(|_| None);
        }
    };
    let gate = ctx.gates[&model].lock().await;
    ctx.create_rates[&model].acquire().await;
    let held_back = if ctx.stopping.is_cancelled() {
        Some("the engine stopped before this job was sent".to_string())
    } else {
        ctx.disk
            .fault()
            .map(|fault| format!("held back while the disk refuses images ({fault})"))
    };
    if let Some(why) = held_back {
        // Stopping (shut down, or a bad key that this create would meet too), or the
        // disk refuses images (see `DiskHealth`): the job was never sent, so it goes back
        // to the queue as it was.
        drop(gate);
        slot.release();
        let note = JobError::new(ErrorKind::NotSent, why, None);
        ctx.db(move |s| s.requeue(id, &note, None, false)).await?;
        ctx.changed(id, JobState::Queued);
        return Ok(None);
    }
    let sent_at = ctx.db(move |s| s.mark_sending(id)).await?;
    match ctx.client.create(&spec).await {
        Ok(created) => {
            // Before the store write, so that polls aimed at the task's end are not late by it.
            let answered_at = now_ms();
            let task_id = created.task_id.clone();
            let status = created.task_status;
            ctx.db(move |s| s.mark_created(id, &created.task_id, created.task_status, "created"))
                .await?;
            drop(gate);
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
        // No answer: the service may or may not have created the task. Find out before
        // anything else is created for this model (the gate is still held).
        Err(e @ (ClientError::Transport(_) | ClientError::Protocol(_))) => {
            tracing::warn!(job = %id, %model, "create not answered ({e}); checking the service's task list");
            let this = JobSummary {
                status: JobStatus::Submitting {
                    sending_since: Some(sent_at),
                    last_error: None,
                },
                ..job.summary.clone()
            };
            let resolution = recovery::reconcile(ctx, model, vec![this]).await?;
            drop(gate);
            match resolution.first().map(|(_, r)| r) {
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
                        submitted_at: sent_at.as_millis(),
                    }))
                }
                Some(Resolution::NotCreated) => create_failed(ctx, id, model, attempts, &e, slot)
                    .await
                    .map(|_| None),
                Some(Resolution::Undecidable) => {
                    slot.release();
                    Ok(None)
                }
                // The engine is stopping; the job stays submitting for the next start.
                None => Ok(None),
            }
        }
        Err(e) => {
            drop(gate);
            create_failed(ctx, id, model, attempts, &e, slot)
                .await
                .map(|_| None)
        }
    }
}

/// The spec to send: local files resolved once (uploads last 48 h) and remembered.
async fn prepared(ctx: &Ctx, job: &JobDetail) -> Result<JobSpec, ClientError> {
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
    let spec = ctx.client.prepare(&job.spec).await?;
    let (id, saved) = (job.summary.id, spec.clone());
    ctx.db(move |s| s.set_prepared_spec(id, &saved))
        .await
        .map_err(|e| ClientError::Io(format!("cannot record the uploaded images: {e}")))?;
    Ok(spec)
}

/// A create that certainly did not produce a task: back to the queue, or failed.
/// The backoff step a job waits after the service could not be reached: two to four times
/// the base (jittered, capped), so that an outage is not spun through at the create rate.
const UNREACHABLE_BACKOFF_STEP: u32 = 3;

async fn create_failed(
    ctx: &Ctx,
    id: JobId,
    model: Model,
    attempts: u32,
    error: &ClientError,
    slot: &mut Slot,
) -> Result<(), StoreError> {
    slot.release();
    let recorded = JobError::from_client(error);
    // A 429, or a create that never reached the service (it or our network is down), is
    // not this job's doing: the job waits its turn again with its attempts untouched, so
    // neither throttling nor an outage overnight fails it, and the model's create pace
    // drops so that either is probed at a trickle rather than at the full rate.
    let not_this_jobs_doing = match error {
        ClientError::Api { status: 429, .. } if error.action() == ErrorAction::RetryLater => {
            Some(Duration::from_secs(1))
        }
        ClientError::Unreachable(_) => Some(ctx.backoff(UNREACHABLE_BACKOFF_STEP)),
        _ => None,
    };
    let state = match (error.action(), not_this_jobs_doing) {
        (ErrorAction::RetryLater, Some(wait)) => {
            let speed = ctx.create_rates[&model].throttled();
            tracing::warn!(job = %id, %model, speed, "{error}; slowing down, the job waits its turn");
            let again = Timestamp::now() + wait;
            ctx.db(move |s| s.requeue(id, &recorded, Some(again), false))
                .await?;
            JobState::Queued
        }
        (ErrorAction::RetryLater, None) if attempts < ctx.config.max_attempts => {
            let again = Timestamp::now() + ctx.backoff(attempts);
            tracing::warn!(job = %id, %model, attempts, "create failed ({error}); retrying");
            ctx.db(move |s| s.requeue(id, &recorded, Some(again), true))
                .await?;
            JobState::Queued
        }
        (ErrorAction::RetryLater, None) => {
            let gave_up = JobError {
                message: format!("gave up after {attempts} attempts: {}", recorded.message),
                ..recorded
            };
            ctx.db(move |s| s.end_job(id, Ending::Failed(gave_up)))
                .await?;
            JobState::Failed
        }
        (ErrorAction::StopModel, _) => {
            ctx.db(move |s| s.requeue(id, &recorded, None, false))
                .await?;
            ctx.report(Report::StopModel(model, error.to_string()));
            JobState::Queued
        }
        (ErrorAction::StopAll, _) => {
            // Report (which stops the engine) before requeueing, so the main loop cannot
            // claim the job again for a second, doomed create.
            ctx.report(Report::StopAll(error.to_string()));
            ctx.db(move |s| s.requeue(id, &recorded, None, false))
                .await?;
            JobState::Queued
        }
        (ErrorAction::FixInput, _) => {
            tracing::info!(job = %id, %model, "job refused: {error}");
            ctx.db(move |s| s.end_job(id, Ending::Failed(recorded)))
                .await?;
            JobState::Failed
        }
    };
    ctx.changed(id, state);
    Ok(())
}

/// Follows a task until it ends, then fetches its images.
pub(crate) async fn track(ctx: Arc<Ctx>, job: Tracked, mut slot: Slot) {
    let id = job.id;
    if let Err(e) = follow(&ctx, &job, &mut slot).await {
        tracing::error!(job = %id, "store error while following the task: {e}");
    }
}

async fn follow(ctx: &Ctx, job: &Tracked, slot: &mut Slot) -> Result<(), StoreError> {
    let id = job.id;
    // Measured from the create's answer (also across restarts), not from when following began.
    let age = || Duration::from_millis(u64::try_from(now_ms() - job.submitted_at).unwrap_or(0));
    let mut failures = 0u32;
    let mut last_status: Option<TaskStatus> = None;
    let mut cancel_sent = false;
    loop {
        if now_ms() > ctx.results_expire_at(job.submitted_at) {
            slot.release();
            return expire(ctx, id, job.model).await;
        }
        if !cancel_sent && ctx.db(move |s| s.is_cancel_requested(id)).await? {
            cancel_sent = cancel(ctx, job).await?;
        }
        tokio::time::sleep(poll_interval(ctx, job.model, age(), failures)).await;
        ctx.queries.acquire().await;
        let info = match ctx.client.fetch(&job.task_id).await {
            Ok(info) => info,
            Err(e) if e.action() == ErrorAction::StopAll => {
                ctx.report(Report::StopAll(e.to_string()));
                return Ok(());
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(job = %id, task = %job.task_id, failures, "poll failed: {e}");
                continue;
            }
        };
        failures = 0;
        // UNKNOWN is the service having forgotten the task, not a state of it: the last
        // status seen stays recorded, for `expire` to know whether it had SUCCEEDED.
        if last_status != Some(info.status) && info.status != TaskStatus::Unknown {
            let (status, scheduled) = (
                info.status,
                info.scheduled_time
                    .as_deref()
                    .and_then(Timestamp::parse_service),
            );
            ctx.db(move |s| s.update_task_status(id, status, scheduled))
                .await?;
            if last_status.is_some() || status != TaskStatus::Pending {
                ctx.changed(
                    id,
                    if status == TaskStatus::Pending {
                        JobState::Submitted
                    } else {
                        JobState::Running
                    },
                );
            }
            last_status = Some(info.status);
        }
        let ended = match info.status {
            TaskStatus::Pending | TaskStatus::Running | TaskStatus::Suspended => continue,
            TaskStatus::Succeeded => {
                slot.release();
                ctx.learn_duration(job.model, service_duration(&info).unwrap_or_else(age));
                return fetch_images(ctx, job, &info).await;
            }
            TaskStatus::Failed => {
                let kind = info
                    .code
                    .clone()
                    .map_or(ErrorKind::TaskFailed, ErrorKind::Service);
                let action = classify(0, kind.code());
                let message = info
                    .message
                    .clone()
                    .unwrap_or_else(|| "the service reports the task failed".into());
                Ending::Failed(JobError::new(kind, message, Some(action)))
            }
            TaskStatus::Canceled => Ending::Cancelled,
            TaskStatus::Unknown => {
                slot.release();
                return expire(ctx, id, job.model).await;
            }
        };
        slot.release();
        let state = ended.state();
        ctx.db(move |s| s.end_job(id, ended)).await?;
        ctx.changed(id, state);
        return Ok(());
    }
}

/// Ends a job whose task the service no longer has (it reads UNKNOWN, or is older than
/// the service keeps tasks). Images already saved stay the job's. When the task had been
/// seen SUCCEEDED (the engine stopped before fetching everything), each image slot without
/// a record is recorded as expired and the job ends as its downloads would have: succeeded
/// with what was saved (so saved images count and are priced), otherwise expired. Without
/// this, a job with saved images ended expired with none counted.
pub(crate) async fn expire(ctx: &Ctx, id: JobId, model: Model) -> Result<(), StoreError> {
    let Some(job) = ctx.db(move |s| s.job_brief(id)).await? else {
        return Ok(());
    };
    if job.summary.status.task_status() != Some(TaskStatus::Succeeded) {
        ctx.db(move |s| s.end_job(id, Ending::Expired(expired_error())))
            .await?;
        ctx.changed(id, JobState::Expired);
        return Ok(());
    }
    let recorded: HashSet<u32> = job.images.iter().map(|i| i.index).collect();
    for index in (0..job.summary.images_expected).filter(|i| !recorded.contains(i)) {
        let record = ImageRecord {
            index,
            error_code: Some("Expired".into()),
            error_message: Some(format!(
                "result image {index} expired at the service before it was downloaded"
            )),
            ..Default::default()
        };
        ctx.db(move |s| s.record_image(id, &record)).await?;
    }
    let price = ctx.config.price_for(model);
    let actual_prompt = job.actual_prompt.clone();
    let state = ctx
        .db(move |s| s.finish_downloads(id, price, actual_prompt.as_deref()))
        .await?;
    if let Some(state) = state {
        ctx.changed(id, state);
    }
    Ok(())
}

/// Asks the service to cancel; only a PENDING task can be, a running one is left running
/// and the refusal noted. Returns whether the service accepted.
async fn cancel(ctx: &Ctx, job: &Tracked) -> Result<bool, StoreError> {
    let id = job.id;
    ctx.queries.acquire().await;
    match ctx.client.cancel(&job.task_id).await {
        // The next poll sees CANCELED and ends the job.
        Ok(()) => {
            tracing::info!(job = %id, task = %job.task_id, "task cancelled");
            Ok(true)
        }
        Err(ClientError::Api { code, message, .. }) if code == "UnsupportedOperation" => {
            ctx.db(move |s| s.note_cancel_refused(id, &message)).await?;
            Ok(false)
        }
        Err(e) => {
            tracing::warn!(job = %id, "cancel failed, will ask again: {e}");
            Ok(false)
        }
    }
}

/// Polls sparsely while the task is young, halving the distance to the model's usual
/// duration (learned from finished tasks) so an early end is seen soon, then aims one poll
/// just past the expected end, where most tasks finish; after that every `expected / 10`.
/// Within [poll_min, poll_max], except the aimed poll, which may come sooner than
/// poll_min: it is one query per task, and it decides how soon the task's slot is reused.
/// Backs off on errors.
fn poll_interval(ctx: &Ctx, model: Model, age: Duration, failures: u32) -> Duration {
    let (min, max) = (
        ctx.config.poll_min,
        ctx.config.poll_max.max(ctx.config.poll_min),
    );
    if failures > 0 {
        return ctx.backoff(failures).max(min);
    }
    let expected = ctx.expected_duration(model);
    match expected.checked_sub(age) {
        Some(remaining) if remaining > 2 * min => (remaining / 2).min(max),
        Some(remaining) if !remaining.is_zero() => (remaining + PAST_EXPECTED_END).min(max),
        _ => (expected / 10).clamp(min, max),
    }
}

/// How far past the expected end the aimed poll lands: enough for our clock, which starts
/// when the create is answered, to be behind the service's.
const PAST_EXPECTED_END: Duration = Duration::from_millis(10);

/// How long the service says the task ran (its own submit and end times), so that what
/// the engine learns does not include its own polling delay.
fn service_duration(info: &TaskInfo) -> Option<Duration> {
    let submitted = Timestamp::parse_service(info.submit_time.as_deref()?)?;
    let ended = Timestamp::parse_service(info.end_time.as_deref()?)?;
    (ended >= submitted).then(|| ended.since(submitted))
}

/// Downloads every image not yet saved, then ends the job. A disk that refuses the
/// images keeps the job running (its error noted) until a save succeeds.
async fn fetch_images(ctx: &Ctx, job: &Tracked, info: &TaskInfo) -> Result<(), StoreError> {
    let id = job.id;
    let saved: HashSet<u32> = ctx
        .db(move |s| s.job_brief(id))
        .await?
        .map(|d| {
            d.images
                .iter()
                .filter(|i| i.is_saved())
                .map(|i| i.index)
                .collect()
        })
        .unwrap_or_default();
    let mut actual_prompt = None;
    for (index, result) in info.results.iter().enumerate() {
        let index = index as u32;
        let record = match result {
            TaskResult::Failed { code, message } => ImageRecord {
                index,
                error_code: Some(code.clone()),
                error_message: Some(message.clone()),
                ..Default::default()
            },
            TaskResult::Image {
                url,
                actual_prompt: actual,
                ..
            } => {
                actual_prompt = actual_prompt.or(actual.clone());
                if saved.contains(&index) {
                    continue;
                }
                download(ctx, job, index, url).await?
            }
        };
        let path = record.path.clone();
        ctx.db(move |s| s.record_image(id, &record)).await?;
        if let Some(path) = path {
            ctx.emit(EngineEvent::ImageSaved {
                job: id,
                index,
                path,
            });
        }
    }
    let price = ctx.config.price_for(job.model);
    let state = ctx
        .db(move |s| s.finish_downloads(id, price, actual_prompt.as_deref()))
        .await?;
    if let Some(state) = state {
        tracing::info!(job = %id, %state, "job finished");
        ctx.changed(id, state);
    }
    Ok(())
}

/// One image: downloaded, checked and saved, or its error.
async fn download(
    ctx: &Ctx,
    job: &Tracked,
    index: u32,
    url: &str,
) -> Result<ImageRecord, StoreError> {
    let id = job.id;
    let failed = |code: &str, message: String| ImageRecord {
        index,
        url: Some(url.to_string()),
        error_code: Some(code.into()),
        error_message: Some(message),
        ..Default::default()
    };
    let give_up_at = ctx.results_expire_at(job.submitted_at);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last_try = attempt >= ctx.config.max_attempts;
        let bytes = match ctx
            .client
            .download(url, ctx.config.download_max_bytes)
            .await
        {
            Ok(bytes) => bytes,
            Err(ClientError::Api {
                status: 403 | 404 | 410,
                ..
            }) => {
                return Ok(failed(
                    "Expired",
                    format!("result image {index} is no longer available at the service"),
                ));
            }
            // The URL lives as long as the task (24 h): a network or service outage is
            // waited out for that long rather than `max_attempts` tries, so an overnight
            // batch does not lose images to a few minutes without a connection.
            Err(e) if e.action() == ErrorAction::RetryLater && now_ms() < give_up_at => {
                tracing::warn!(job = %id, index, attempt, "download failed, retrying: {e}");
                if attempt == ctx.config.max_attempts {
                    let note = JobError::new(
                        ErrorKind::of_client(&e),
                        format!(
                            "downloading image {index} keeps failing ({e}); retried until the service discards it"
                        ),
                        Some(ErrorAction::RetryLater),
                    );
                    ctx.db(move |s| s.note_error(id, &note)).await?;
                }
                let wait = ctx
                    .backoff(attempt)
                    .min(Duration::from_millis((give_up_at - now_ms()).max(0) as u64));
                tokio::time::sleep(wait).await;
                continue;
            }
            Err(e) => return Ok(failed(e.code(), e.to_string())),
        };
        let (bytes, checked) = tokio::task::spawn_blocking(move || {
            let checked = check_image(&bytes);
            (bytes, checked)
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("checking an image stopped: {e}")))?;
        match checked {
            Ok(checked) => return save(ctx, job, index, url, bytes, checked).await,
            Err(why) if last_try => {
                return Ok(failed(
                    "InvalidImage",
                    format!("downloaded image {index} does not decode: {why}"),
                ));
            }
            Err(why) => {
                tracing::warn!(job = %id, index, "downloaded image does not decode ({why}); fetching again");
            }
        }
        tokio::time::sleep(ctx.backoff(attempt)).await;
    }
}

/// Saves a checked image. While the disk refuses (full, read-only, not a directory) the
/// bytes stay in memory and the save is retried with backoff, or at once when another
/// job's save succeeds, for as long as the service would keep the image: the job stays
/// running with the reason noted, never failed, so freeing space lets it finish without
/// a restart. Only past the service's retention does the image end as a `DiskError`.
async fn save(
    ctx: &Ctx,
    job: &Tracked,
    index: u32,
    url: &str,
    bytes: Vec<u8>,
    checked: CheckedImage,
) -> Result<ImageRecord, StoreError> {
    let id = job.id;
    let bytes = Arc::new(bytes);
    let give_up_at = ctx.results_expire_at(job.submitted_at);
    let mut waiting: Option<DiskFault> = None;
    let mut attempt = 0u32;
    loop {
        let (dir, url_owned, data) = (ctx.config.images_dir(), url.to_string(), bytes.clone());
        let written = tokio::task::spawn_blocking(move || {
            write_image(&dir, id, index, &url_owned, &data, checked)
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("saving an image stopped: {e}")))?;
        let fault = match written {
            Ok(record) => {
                if ctx.disk.accepted() {
                    tracing::info!("the disk takes images again; creates resume");
                    ctx.emit(EngineEvent::DiskRecovered);
                }
                if waiting.is_some() {
                    ctx.disk.done_waiting();
                    tracing::info!(job = %id, index, "image saved after the disk refused it");
                }
                return Ok(record);
            }
            Err(fault) => fault,
        };
        attempt += 1;
        if ctx.disk.refused(&fault, waiting.is_none()) {
            tracing::error!(path = %fault.path.display(), reason = %fault.reason, "the disk refuses images; no new creates until a save succeeds");
            ctx.emit(EngineEvent::DiskRefused {
                path: fault.path.clone(),
                reason: fault.reason.clone(),
            });
        }
        if waiting.as_ref() != Some(&fault) {
            tracing::error!(job = %id, index, "{fault}; the image is kept in memory and saving it retried");
            let note = JobError::new(
                ErrorKind::DiskError,
                format!("{fault}; the image is kept and saving retried until the disk accepts it"),
                Some(ErrorAction::RetryLater),
            );
            // The store may sit on the same full disk: not being able to note the
            // error is no reason to drop the image.
            if let Err(e) = ctx.db(move |s| s.note_error(id, &note)).await {
                tracing::warn!(job = %id, "cannot note the disk error in the store: {e}");
            }
            waiting = Some(fault.clone());
        }
        if now_ms() >= give_up_at {
            if ctx.disk.done_waiting() {
                tracing::warn!("no job waits on the disk any more; creates resume");
            }
            return Ok(ImageRecord {
                index,
                url: Some(url.to_string()),
                error_code: Some("DiskError".into()),
                error_message: Some(format!(
                    "image {index} could not be saved before the service discarded it: {fault}"
                )),
                ..Default::default()
            });
        }
        let wait = ctx
            .backoff(attempt)
            .min(Duration::from_millis((give_up_at - now_ms()).max(0) as u64));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.disk.wait_recovered() => {}
        }
    }
}
