//! Jobs of models served only synchronously (the multimodal-generation endpoint): one
//! call holds its connection while the service makes the images, and answers them.
//!
//! Such a call counts against the model's in-flight limit from its claim to its answer,
//! and is recorded as on the wire (`mark_sending`) before it goes out. There is no task
//! id, so a call whose answer never came cannot be looked up: it is never sent again
//! blindly (the service may have made and billed the images), its job goes to
//! needs_attention and `retry` sends it again on the user's word. An answer is committed
//! (`record_sync_answer`) before its images are downloaded, so a restart finishes them.

use std::sync::Arc;
use std::time::Duration;

use super::create::{STOP_GRACE, create_failed, prepared, stopped_for};
use super::create_failure::may_have_created;
use super::ctx::{CreateGuard, Ctx, Slot, Tracked};
use super::download::fetch_images;
use crate::dashscope::{
    ClientError, Model, SyncAnswer, TaskInfo, TaskResult, TaskStatus, Timestamp,
};
use crate::store::{
    Ending, ErrorKind, JobDetail, JobError, JobId, JobState, JobSummary, StoreError,
};

/// Whether jobs of `model` go through a synchronous call: only when no endpoint that
/// serves it is asynchronous (an async endpoint is preferred wherever there is one).
pub(crate) fn is_sync_only(model: Model) -> bool {
    !model.entry().endpoints.iter().any(|e| e.is_async())
}

/// Why a job whose synchronous call may have reached the service is left to the user.
pub(crate) fn unanswered_call_error(why: &str) -> JobError {
    JobError::new(
        ErrorKind::CreateUncertain,
        format!(
            "{why}: the service may have made (and billed) the image, and a synchronous call leaves no task id to look it up; `retry` sends it again"
        ),
        None,
    )
}

/// Makes a claimed (submitting) job's call, then downloads what it answered.
pub(crate) async fn call(ctx: Arc<Ctx>, job: JobDetail, mut slot: Slot, creating: CreateGuard) {
    let id = job.summary.id;
    let outcome = tokio::select! {
        outcome = send(&ctx, &job, &mut slot) => outcome,
        () = stopped_for(&ctx, STOP_GRACE) => {
            // Not yet sent: the next start queues the job again. Sent: the next start
            // puts it in needs_attention (see `interrupted`).
            tracing::info!(job = %id, "stopping during a synchronous call; the next start settles it");
            Ok(None)
        }
    };
    drop(creating);
    match outcome {
        Ok(Some((tracked, info))) => {
            if let Err(e) = fetch_images(&ctx, &tracked, &info).await {
                tracing::error!(job = %id, "store error while saving a call's images: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!(job = %id, "store error during a synchronous call: {e}"),
    }
}

async fn send(
    ctx: &Ctx,
    job: &JobDetail,
    slot: &mut Slot,
) -> Result<Option<(Tracked, TaskInfo)>, StoreError> {
    let (id, model, attempts) = (job.summary.id, job.summary.model, job.summary.attempts);
    let spec = match prepared(ctx, job).await {
        Ok(spec) => spec,
        Err(e) => {
            return create_failed(ctx, id, model, attempts, &e, slot)
                .await
                .map(|()| None);
        }
    };
    // The create pace applies to calls too; no gate: calls of a model may overlap up to
    // its in-flight limit, and there is no task list to reconcile against.
    tokio::select! {
        biased;
        () = ctx.stopping.cancelled() => {}
        () = ctx.create_token(model) => {}
    }
    let held_back = if ctx.stopping.is_cancelled() {
        Some("the engine stopped before this job was sent".to_string())
    } else {
        ctx.disk
            .fault()
            .map(|fault| format!("held back while the disk refuses images ({fault})"))
    };
    let sent_at = match held_back {
        Some(why) => Err(why),
        None => ctx
            .db(move |s| s.mark_sending(id, model))
            .await?
            .ok_or_else(|| "held back: the queue was paused, or an engine was looking up unanswered creates of this model, before this job was sent".to_string()),
    };
    let sent_at = match sent_at {
        Ok(sent_at) => sent_at,
        Err(why) => {
            // Never sent: back to the queue as it was, in its place, the attempt uncounted.
            slot.release();
            let note = JobError::new(ErrorKind::NotSent, why, None);
            ctx.db(move |s| s.requeue(id, &note, None, false)).await?;
            ctx.changed(id, JobState::Queued);
            return Ok(None);
        }
    };
    let limit = ctx.config.sync_call_timeout;
    let answer = ctx.client.call_sync(&spec, limit).await;
    slot.release();
    match answer {
        Ok(answer) => {
            ctx.create_rates[&model].accepted();
            ctx.learn_duration(model, Timestamp::now().since(sent_at))
                .await;
            answered(ctx, id, model, sent_at, answer).await
        }
        Err(error) if may_have_created(&error) => {
            let why = unanswered_call_error(&no_answer(&error, limit));
            tracing::warn!(job = %id, %model, "{}", why.message);
            ctx.db(move |s| s.end_job(id, Ending::NeedsAttention(why)))
                .await?;
            ctx.changed(id, JobState::NeedsAttention);
            Ok(None)
        }
        Err(error) => {
            if error.is_async_header_refused() {
                tracing::error!(job = %id, %model, "bug: the synchronous endpoint was sent the async header: {error}");
            }
            create_failed(ctx, id, model, attempts, &error, slot)
                .await
                .map(|()| None)
        }
    }
}

/// Why a call that may have reached the service has no answer: a timeout names the limit
/// and the setting behind it, so that a user whose calls run long knows what to raise.
fn no_answer(error: &ClientError, limit: Duration) -> String {
    if error.is_timeout() {
        format!(
            "the synchronous call got no answer within {} s (the sync call timeout, the config's sync.call_timeout_ms)",
            limit.as_secs_f64()
        )
    } else {
        format!("the synchronous call got no answer ({error})")
    }
}

/// Commits a call's answer, then returns what `fetch_images` needs.
async fn answered(
    ctx: &Ctx,
    id: JobId,
    model: Model,
    sent_at: Timestamp,
    answer: SyncAnswer,
) -> Result<Option<(Tracked, TaskInfo)>, StoreError> {
    let call_id = call_id(id, answer.request_id.as_deref(), sent_at);
    if !answer.texts.is_empty() {
        tracing::info!(job = %id, text = %crate::text::sanitize(&answer.texts.join(" ")), "the call answered text too");
    }
    let (results, task_id) = (answer.results, call_id.clone());
    let saved = results.clone();
    let recorded = ctx
        .db(move |s| s.record_sync_answer(id, &task_id, &saved))
        .await?;
    if !recorded {
        return Ok(None);
    }
    ctx.changed(id, JobState::Running);
    tracing::info!(job = %id, %model, call = %call_id, "synchronous call answered");
    Ok(Some(answer_to_fetch(id, model, call_id, sent_at, results)))
}

/// The id a call is recorded under: the service's request id, which support can trace.
fn call_id(id: JobId, request_id: Option<&str>, sent_at: Timestamp) -> String {
    match request_id
        .map(crate::text::sanitize)
        .filter(|r| !r.is_empty())
    {
        Some(request_id) => format!("sync-{request_id}"),
        None => format!("sync-job{}-{}", id.0, sent_at.as_millis()),
    }
}

fn answer_to_fetch(
    id: JobId,
    model: Model,
    call_id: String,
    sent_at: Timestamp,
    results: Vec<TaskResult>,
) -> (Tracked, TaskInfo) {
    let info = TaskInfo {
        task_id: call_id.clone(),
        status: TaskStatus::Succeeded,
        submit_time: None,
        scheduled_time: None,
        end_time: None,
        results,
        texts: Vec::new(),
        metrics: None,
        code: None,
        message: None,
        image_count: None,
        request_id: None,
    };
    let tracked = Tracked {
        id,
        model,
        task_id: call_id,
        submitted_at: sent_at,
    };
    (tracked, info)
}

/// At start: a call that was on the wire when the process died goes to needs_attention.
pub(crate) async fn interrupted(ctx: &Ctx, job: &JobSummary) -> Result<(), StoreError> {
    let id = job.id;
    let why = unanswered_call_error(
        "the engine stopped while this job's synchronous call was on the wire",
    );
    tracing::warn!(job = %id, "{}", why.message);
    ctx.db(move |s| s.end_job(id, Ending::NeedsAttention(why)))
        .await?;
    ctx.changed(id, JobState::NeedsAttention);
    Ok(())
}

/// At start: a call answered but whose images were not all saved; downloads the rest
/// from the recorded answer.
pub(crate) async fn resume_downloads(ctx: Arc<Ctx>, job: JobSummary) {
    let id = job.id;
    let Some(call_id) = job.status.task_id().map(str::to_owned) else {
        return;
    };
    let sent_at = job.status.submitted_at().unwrap_or_else(Timestamp::now);
    let results = match ctx.db(move |s| s.sync_answer(id)).await {
        Ok(Some(results)) => results,
        Ok(None) => Vec::new(),
        Err(e) => return tracing::error!(job = %id, "cannot read the call's answer: {e}"),
    };
    let (tracked, info) = answer_to_fetch(id, job.model, call_id, sent_at, results);
    if let Err(e) = fetch_images(&ctx, &tracked, &info).await {
        tracing::error!(job = %id, "store error while saving a call's images: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_recorded_under_the_request_id_or_a_stand_in() {
        let at = Timestamp::from_millis(1_700_000_000_000);
        assert_eq!(call_id(JobId(3), Some("abc-1"), at), "sync-abc-1");
        assert_eq!(call_id(JobId(3), None, at), "sync-job3-1700000000000");
        assert_eq!(call_id(JobId(3), Some(""), at), "sync-job3-1700000000000");
    }

    #[test]
    fn a_timed_out_call_names_the_limit_and_its_setting() {
        let timeout = ClientError::Transport("timed out: error sending request".into());
        let text = no_answer(&timeout, Duration::from_millis(1500));
        assert!(text.contains("within 1.5 s"), "{text}");
        assert!(text.contains("sync.call_timeout_ms"), "{text}");
        let reset = ClientError::Transport("connection reset".into());
        assert!(no_answer(&reset, Duration::from_secs(1)).contains("connection reset"));
    }

    #[test]
    fn the_message_says_the_image_may_be_billed_and_how_to_send_again() {
        let error = unanswered_call_error("the engine stopped");
        assert_eq!(error.kind, ErrorKind::CreateUncertain);
        assert!(error.message.contains("billed"), "{}", error.message);
        assert!(error.message.contains("no task id"), "{}", error.message);
        assert!(error.message.contains("`retry`"), "{}", error.message);
    }
}
