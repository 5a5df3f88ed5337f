//! Queue control from the shell: `pause`, `resume`, `top` and `delete`. They change the
//! store only, so an engine in another process (a worker, a dashboard) obeys them at its
//! next claim.

use serde_json::json;

use crate::dashscope::Model;
use crate::store::{JobId, PauseScope, Pauses, Store, StoreError};
use crate::text::sanitize;

use super::Context;
use super::failure::{CliResult, Failure};
use super::jobs::{no_such_job, open_store, store_failure};

/// `wandash pause [--model M]`.
pub fn pause(ctx: &Context, model: Option<Model>) -> CliResult {
    let store = open_store(ctx)?;
    let pauses = store.pause(scope(model)).map_err(store_failure)?;
    let what = model.map_or_else(|| "the queue".to_string(), |m| m.to_string());
    let text = format!(
        "{what} paused: no new job is sent until `wandash resume{}`; jobs already at the service finish and their images are saved",
        model.map(|m| format!(" --model {m}")).unwrap_or_default()
    );
    print_pauses(ctx, &text, &pauses);
    Ok(())
}

/// `wandash resume [--model M]`; resuming the queue lifts every pause.
pub fn resume(ctx: &Context, model: Option<Model>) -> CliResult {
    let store = open_store(ctx)?;
    let pauses = store.resume(scope(model)).map_err(store_failure)?;
    let mut text = match model {
        None => "the queue resumed: queued jobs are sent again".to_string(),
        Some(m) => format!("{m} resumed"),
    };
    if pauses.all {
        text.push_str(", but the whole queue is still paused (`wandash resume` resumes it)");
    }
    print_pauses(ctx, &text, &pauses);
    Ok(())
}

fn scope(model: Option<Model>) -> PauseScope {
    model.map_or(PauseScope::All, PauseScope::Model)
}

fn print_pauses(ctx: &Context, text: &str, pauses: &Pauses) {
    if ctx.json {
        println!("{}", json!({ "paused": pauses }));
    } else {
        println!("{text}");
        if let Some(line) = paused_line(pauses) {
            println!("{line}");
        }
    }
}

/// `paused: the whole queue` or `paused: model-a, model-b`, when anything is paused.
pub fn paused_line(pauses: &Pauses) -> Option<String> {
    if pauses.all {
        return Some("paused: the whole queue".to_string());
    }
    let models: Vec<&str> = pauses.models.iter().map(|m| m.id()).collect();
    (!models.is_empty()).then(|| format!("paused: {}", models.join(", ")))
}

/// `wandash top ID`: the job is sent next (of its model's jobs: models go side by side).
pub fn top(ctx: &Context, id: JobId) -> CliResult {
    let store = open_store(ctx)?;
    store.move_to_top(id).map_err(|e| match e {
        StoreError::WrongState { state, .. } => Failure::usage(format!(
            "job {id} is {state}; only a queued job has a place in the queue to move"
        )),
        e => job_failure(e),
    })?;
    let job = store
        .job(id)
        .map_err(store_failure)?
        .ok_or_else(|| job_failure(StoreError::NoSuchJob(id)))?;
    let model = job.summary.model;
    if ctx.json {
        println!("{}", json!({ "id": id, "model": model, "next": true }));
        return Ok(());
    }
    println!("job {id} goes next of the queued {model} jobs");
    if let Some(hold) = store.pauses().map_err(store_failure)?.holds(model) {
        println!("it waits meanwhile: {hold}");
    }
    Ok(())
}

/// `wandash delete ID... [--yes]`: every job is checked before any is deleted; a job at
/// the service is refused (cancel it, then delete it once it has ended), so a task that
/// may be billed is never forgotten.
pub fn delete(ctx: &Context, ids: &[JobId], yes: bool) -> CliResult {
    let store = open_store(ctx)?;
    check_deletable(&store, ids)?;
    let list = ids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let question = format!(
        "delete {} {list} and {} images?",
        if ids.len() == 1 { "job" } else { "jobs" },
        if ids.len() == 1 { "its" } else { "their" }
    );
    if !yes && !super::ask_on_terminal(ctx, &question) {
        return Err(Failure::usage(format!(
            "nothing was deleted: {question} asks for a yes at a terminal; pass --yes to delete without the question"
        )));
    }
    let mut results = Vec::with_capacity(ids.len());
    for &id in ids {
        let deleted = store.delete(id).map_err(job_failure)?;
        if !ctx.json {
            println!("job {id} deleted with {}", deleted.files_removed());
        }
        for left in &deleted.images_left {
            eprintln!("warning: job {id}: cannot remove {}", sanitize(left));
        }
        results.push(json!({
            "id": id,
            "images_removed": deleted.images_removed,
            "images_left": deleted.images_left,
        }));
    }
    if ctx.json {
        println!("{}", json!({ "deleted": results }));
    }
    Ok(())
}

/// Refuses the whole command, before anything is deleted, if a job does not exist or is
/// at the service.
fn check_deletable(store: &Store, ids: &[JobId]) -> CliResult {
    for &id in ids {
        let job = store
            .job(id)
            .map_err(store_failure)?
            .ok_or_else(|| job_failure(StoreError::NoSuchJob(id)))?;
        let state = job.summary.state();
        if state.is_remote() {
            return Err(Failure::usage(format!(
                "job {id} is {state}, at the service; nothing was deleted. Cancel it first (`wandash cancel {id}`) and delete it once it has ended"
            )));
        }
    }
    Ok(())
}

fn job_failure(e: StoreError) -> Failure {
    match e {
        StoreError::NoSuchJob(id) => no_such_job(id),
        e => store_failure(e),
    }
}
