//! Exactly once: deciding whether a create that was never answered produced a task.
//!
//! The service's task list (`GET /tasks` by model and time) shows every task of the
//! account. Tasks already recorded in the store are someone else's; what is left are
//! candidates. One job and one candidate: adopt it. No candidate: the create never
//! happened, submit again - unless it was sent so long ago, by the service's clock, that
//! the list may have forgotten its task (a person decides). Otherwise the prompt echoed by finished text-to-image tasks
//! may pair them up; what still cannot be paired goes to needs_attention, never to a
//! silent second create.

use super::ctx::{Ctx, Report};
use super::pairing::{
    Candidate, LostCreate, QUERY_PAD, created_in_window, latest_clock, pair, query_falls_short,
    remembered_since, window_start,
};
use crate::dashscope::{
    ClientError, ErrorAction, ListQuery, Model, TaskResult, TaskSummary, Timestamp,
};
use crate::store::{Ending, ErrorKind, JobError, JobId, JobState, JobSummary, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// The task was found and recorded; the job is submitted (or running).
    Adopted,
    /// The service has no such task: the caller may submit again.
    NotCreated,
    /// Could not be decided; the job is now needs_attention.
    Undecidable,
}

const PAGE_SIZE: u32 = 100;
const MAX_PAGES: u32 = 50;

/// Resolves `jobs` (all of `model`, all left submitting, none with a create on the wire),
/// recording adoptions and needs_attention in the store; the caller requeues `NotCreated`.
/// Jobs missing from the answer are left submitting (the engine is stopping, or a bad key).
pub(crate) async fn reconcile(
    ctx: &Ctx,
    model: Model,
    jobs: Vec<JobSummary>,
) -> Result<Vec<(JobId, Resolution)>, StoreError> {
    let now = Timestamp::now();
    let from = window_start(jobs.iter().filter_map(|j| j.status.submitted_at()), now);
    let listed = match list_window(ctx, model, from, now).await {
        // The service's clock is far ahead of ours: what it made since is past the
        // query's end, so ask up to its clock.
        Ok(listed) if query_falls_short(now, latest_clock(now, listed.service_time)) => {
            list_window(ctx, model, from, latest_clock(now, listed.service_time)).await
        }
        other => other,
    };
    let (tasks, latest) = match listed {
        Ok(listed) => (listed.tasks, latest_clock(now, listed.service_time)),
        Err(e) if e.action() == ErrorAction::StopAll => {
            // A bad key says nothing about the task: leave the jobs for a later start.
            ctx.report(Report::StopAll(e.to_string()));
            return Ok(Vec::new());
        }
        Err(_) if ctx.stopping.is_cancelled() => return Ok(Vec::new()),
        Err(why) => {
            let message = format!(
                "could not check whether the service created this job's task ({why}); look for it in the service's task list, then retry or delete the job"
            );
            let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
            return give_up(ctx, &ids, message).await;
        }
    };
    let mut unrecorded = Vec::new();
    for task in tasks {
        if !created_in_window(task.gmt_create, from, latest) {
            continue;
        }
        let task_id = task.task_id.clone();
        if ctx.db(move |s| s.job_for_task(&task_id)).await?.is_none() {
            unrecorded.push(task);
        }
    }
    let mut prompts = Vec::new();
    for task in &unrecorded {
        prompts.push(echoed_prompt(ctx, &task.task_id).await);
    }
    let lost: Vec<LostCreate> = jobs
        .iter()
        .map(|j| LostCreate {
            id: j.id,
            prompt: &j.prompt,
            sent_at: j.status.submitted_at().unwrap_or(now),
        })
        .collect();
    let candidates: Vec<Candidate> = unrecorded
        .iter()
        .zip(&prompts)
        .map(|(task, prompt)| Candidate {
            task,
            echoed_prompt: prompt.as_deref(),
        })
        .collect();
    let pairing = pair(&lost, &candidates, remembered_since(latest, ctx.config.ttl));

    let mut out = Vec::new();
    for &(id, task) in &pairing.adopted {
        adopt(ctx, id, task).await?;
        out.push((id, Resolution::Adopted));
    }
    out.extend(
        pairing
            .not_created
            .iter()
            .map(|&id| (id, Resolution::NotCreated)),
    );
    for &id in &pairing.forgotten {
        let sent_at = lost.iter().find(|j| j.id == id).map_or(now, |j| j.sent_at);
        let message = format!(
            "this job's create was sent {} h ago by the service's clock and never answered, and the service's task list keeps tasks only {} h: whether a task was made cannot be known any more (if one was, its images have expired); retry to create it again, or delete the job",
            latest.since(sent_at).as_secs() / 3600,
            ctx.config.ttl.as_secs() / 3600,
        );
        out.extend(give_up(ctx, &[id], message).await?);
    }
    if !pairing.undecided.is_empty() {
        let ids: Vec<&str> = pairing
            .unclaimed
            .iter()
            .map(|t| t.task_id.as_str())
            .collect();
        let message = format!(
            "the service has {} task(s) of {model} from around this job's submission that no job records ({}), and they cannot be told apart; check them, then retry or delete the job",
            ids.len(),
            ids.join(", ")
        );
        out.extend(give_up(ctx, &pairing.undecided, message).await?);
    }
    Ok(out)
}

async fn adopt(ctx: &Ctx, id: JobId, task: &TaskSummary) -> Result<(), StoreError> {
    let (task_id, status) = (task.task_id.clone(), task.status);
    tracing::info!(job = %id, task = %task_id, "adopting the task an interrupted create made");
    ctx.db(move |s| s.mark_created(id, &task_id, status, "adopted after an unanswered create"))
        .await?;
    Ok(())
}

async fn give_up(
    ctx: &Ctx,
    jobs: &[JobId],
    message: String,
) -> Result<Vec<(JobId, Resolution)>, StoreError> {
    let mut out = Vec::new();
    for &id in jobs {
        let error = JobError::new(ErrorKind::CreateUncertain, message.clone(), None);
        tracing::warn!(job = %id, "{message}");
        ctx.db(move |s| s.end_job(id, Ending::NeedsAttention(error)))
            .await?;
        ctx.changed(id, JobState::NeedsAttention);
        out.push((id, Resolution::Undecidable));
    }
    Ok(out)
}

/// The service's tasks of a window, and its clock when it last answered.
struct Listed {
    tasks: Vec<TaskSummary>,
    service_time: Option<Timestamp>,
}

/// Every task of `model` created between `from` and `to`, retrying a failing page.
async fn list_window(
    ctx: &Ctx,
    model: Model,
    from: Timestamp,
    to: Timestamp,
) -> Result<Listed, ClientError> {
    let mut tasks = Vec::new();
    for page_no in 1..=MAX_PAGES {
        let query = ListQuery {
            page_no,
            page_size: PAGE_SIZE,
            start_time: Some((from - QUERY_PAD).to_list_filter()),
            end_time: Some((to + QUERY_PAD).to_list_filter()),
            // The list names a task by the id it was created with: the region's own.
            model_name: Some(
                model
                    .id_in(ctx.client.region())
                    .unwrap_or(model.id())
                    .to_string(),
            ),
            status: None,
        };
        let mut attempt = 0;
        let page = loop {
            attempt += 1;
            ctx.query_token().await;
            match ctx.client.list(&query).await {
                Ok(page) => break page,
                // Without the list nothing can be decided, and nothing else of this model
                // should be created meanwhile: a passing outage is waited out (until the
                // engine stops, which leaves the jobs submitting for the next start).
                Err(e) if e.action() == ErrorAction::RetryLater && !ctx.stopping.is_cancelled() => {
                    tracing::warn!(%model, attempt, "task list failed: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(ctx.backoff(attempt)) => {}
                        _ = ctx.stopping.cancelled() => {}
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let last = page.data.is_empty() || u64::from(page_no) >= page.total_page;
        tasks.extend(page.data);
        if last {
            return Ok(Listed {
                tasks,
                service_time: page.service_time,
            });
        }
    }
    Err(ClientError::Protocol(format!(
        "more than {} tasks in the window",
        MAX_PAGES * PAGE_SIZE
    )))
}

/// The prompt a finished text-to-image task reports (`orig_prompt`), if any.
async fn echoed_prompt(ctx: &Ctx, task_id: &str) -> Option<String> {
    ctx.query_token().await;
    let info = ctx.client.fetch(task_id).await.ok()?;
    info.results.into_iter().find_map(|r| match r {
        TaskResult::Image { orig_prompt, .. } => orig_prompt,
        TaskResult::Failed { .. } => None,
    })
}
