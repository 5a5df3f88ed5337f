//! Commands that only read or change the store: queueing, list, show, cancel, retry.
//! They work while an engine runs in another process (the store is shared).

use std::time::Duration;

use serde_json::json;

use crate::dashscope::{ImageRef, JobSpec, Timestamp, ValidationError};
use crate::intake::{self, Draft};
use crate::store::{
    CancelOutcome, JobDetail, JobFilter, JobId, JobState, JobSummary, PauseHold, Pauses,
    StateFilter, Store, StoreError, image_seed,
};
use crate::text::sanitize;

use super::failure::{CliResult, Failure};
use super::{Context, SubmitArgs};

/// Opens the store named by the context; a store that cannot be opened is an engine error.
pub fn open_store(ctx: &Context) -> CliResult<Store> {
    Store::open(&ctx.db_path).map_err(store_failure)
}

pub fn store_failure(e: StoreError) -> Failure {
    match e {
        StoreError::NoSuchJob(_) | StoreError::WrongState { .. } => Failure::usage(e.to_string()),
        _ => Failure::engine(e.to_string()),
    }
}

/// `submit`: the job the options describe, checked (every problem printed, one a line)
/// and queued; its id.
pub fn submit(ctx: &Context, args: &SubmitArgs) -> CliResult<JobId> {
    let draft = submit_draft(args).for_region(ctx.region);
    let checked = intake::check(draft).map_err(|problems| report_problems(&problems))?;
    let store = open_store(ctx)?;
    intake::enqueue(&store, checked).map_err(store_failure)
}

/// The job the options describe; relative paths are relative to the working directory.
fn submit_draft(args: &SubmitArgs) -> Draft {
    let mut spec = JobSpec::new(args.model, args.prompt.clone());
    spec.negative_prompt = args.negative.clone();
    spec.size = args.size;
    spec.n = args.n;
    spec.seed = args.seed;
    spec.function = args.function;
    spec.base_image = args.base_image.as_deref().map(ImageRef::parse);
    spec.mask_image = args.mask.as_deref().map(ImageRef::parse);
    spec.images = args.images.iter().map(|i| ImageRef::parse(i)).collect();
    spec.style = args.style.clone();
    spec.expand = args.expand;
    spec.upscale_factor = args.upscale;
    spec.mask_color = args.mask_color.clone();
    spec.prompt_extend = if args.no_prompt_extend {
        Some(false)
    } else {
        args.prompt_extend.then_some(true)
    };
    spec.watermark = args.watermark.then_some(true);
    spec.enable_interleave = args.interleave.then_some(true);
    spec.max_images = args.max_images;
    spec.enable_sequential = args.sequential.then_some(true);
    spec.thinking_mode = args.thinking;
    spec.color_palette = args.color_palette.clone().unwrap_or_default();
    spec.bbox_list = args.bbox_list.clone().unwrap_or_default();
    Draft::in_working_dir(spec)
}

/// Prints every problem of a refused job on its own line and sums them up in the failure.
fn report_problems(problems: &[ValidationError]) -> Failure {
    for problem in problems {
        eprintln!("error: {}", sanitize(&problem.to_string()));
    }
    let failure = Failure::usage(format!(
        "{} problem(s) with the job; nothing was queued. Fix the options and run the command again",
        problems.len()
    ));
    // A JSON error names the field when one is at fault.
    match problems {
        [only] => failure.with_field(only.field.clone()),
        _ => failure,
    }
}

pub fn list(ctx: &Context, status: Option<&str>, limit: u64, mine: bool) -> CliResult {
    let store = open_store(ctx)?;
    let state = status.map(parse_status_filter).transpose()?;
    let listing = store
        .list_readable(
            &JobFilter {
                state,
                search: None,
                submitted_by: mine.then(|| store.submitter().to_owned()),
            },
            0,
            limit,
        )
        .map_err(store_failure)?;
    let pauses = store.pauses().map_err(store_failure)?;
    // A row this build cannot read does not hide the others: named on stderr, by id and
    // field, and the rest listed.
    for bad in &listing.unreadable {
        eprintln!(
            "warning: job {} cannot be read and is left out: {}",
            bad.id,
            sanitize(&bad.problem)
        );
    }
    let rows = listing.rows;
    if ctx.json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|row| with_waiting(row, &pauses, serde_json::to_value(row)))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("job rows serialise")
        );
        return Ok(());
    }
    if let Some(line) = super::queue::paused_line(&pauses) {
        println!("{line}");
    }
    if rows.is_empty() {
        println!("no jobs");
        return Ok(());
    }
    println!(
        "{:>6}  {:<15}  {:<18}  {:>6}  prompt",
        "id", "state", "model", "images"
    );
    for row in &rows {
        println!(
            "{:>6}  {:<15}  {:<18}  {:>6}  {}",
            row.id,
            row.state().as_str(),
            row.model.id(),
            format!("{}/{}", row.images_ok, row.images_expected),
            clip(&sanitize(&row.prompt), 60)
        );
        if let Some(hold) = waiting(row, &pauses) {
            println!("{:>6}  waits: {hold}", "");
        }
        // Why a job still waits (a disk that refuses its images, a retry's cause).
        if let (false, Some(error)) = (row.state().is_final(), row.error()) {
            println!(
                "{:>6}  ! {}: {}",
                "",
                sanitize(error.kind.code()),
                sanitize(&error.message)
            );
        }
    }
    Ok(())
}

/// `all`, `active`, `problems`, or one state.
fn parse_status_filter(text: &str) -> CliResult<StateFilter> {
    match text {
        "active" => Ok(StateFilter::Active),
        "problems" => Ok(StateFilter::Problems),
        other => other
            .parse::<JobState>()
            .map(StateFilter::Only)
            .map_err(|e| Failure::usage(format!("--status: {e}, active, problems"))),
    }
}

pub fn show(ctx: &Context, id: JobId) -> CliResult {
    let store = open_store(ctx)?;
    let mut detail = store
        .job(id)
        .map_err(store_failure)?
        .ok_or_else(|| no_such_job(id))?;
    // The paths shown are files on this host: another host's images come from the store.
    for unavailable in store.images_here(&mut detail, &ctx.image_cache()) {
        eprintln!("warning: {unavailable}");
    }
    let pauses = store.pauses().map_err(store_failure)?;
    let starred = store.starred_indexes(id).map_err(store_failure)?;
    if ctx.json {
        let mut shown = with_waiting(&detail.summary, &pauses, serde_json::to_value(&detail));
        shown["starred_images"] = json!(starred);
        println!(
            "{}",
            serde_json::to_string_pretty(&shown).expect("a job serialises")
        );
    } else {
        print!(
            "{}",
            render_detail(&detail, waiting(&detail.summary, &pauses), &starred)
        );
    }
    Ok(())
}

/// Why a queued job is not sent now: a pause that holds its model.
fn waiting(job: &JobSummary, pauses: &Pauses) -> Option<PauseHold> {
    (job.state() == JobState::Queued)
        .then(|| pauses.holds(job.model))
        .flatten()
}

/// A job's JSON with `"waiting"`: why it is not sent now (`null` when nothing holds it).
fn with_waiting(
    job: &JobSummary,
    pauses: &Pauses,
    value: serde_json::Result<serde_json::Value>,
) -> serde_json::Value {
    let mut value = value.expect("a job serialises");
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "waiting".into(),
            waiting(job, pauses).map_or(serde_json::Value::Null, |hold| hold.to_string().into()),
        );
    }
    value
}

pub(super) fn no_such_job(id: JobId) -> Failure {
    Failure::usage(format!(
        "job {id} does not exist; `wandash list` shows the jobs"
    ))
}

fn render_detail(d: &JobDetail, waits: Option<PauseHold>, starred: &[u32]) -> String {
    let s = &d.summary;
    let mut out = String::new();
    let mut line =
        |label: &str, value: String| out.push_str(&format!("{label:<14} {}\n", sanitize(&value)));
    line("job", s.id.to_string());
    line("state", s.state().as_str().to_string());
    if let Some(hold) = waits {
        line("waits", hold.to_string());
    }
    line("model", s.model.id().to_string());
    if let Some(parent) = d.parent_job_id {
        // The chain of iterations, walked back one `show` at a time.
        line("from job", parent.to_string());
    }
    line("prompt", d.spec.prompt.clone());
    if let Some(actual) = &d.actual_prompt {
        line("actual prompt", actual.clone());
    }
    if let Some(task) = s.status.task() {
        line(
            "task",
            format!("{} ({})", task.id, task.status.map_or("?", |t| t.as_str())),
        );
    }
    line("created", format_time(s.created_at));
    if let Some(who) = &s.submitted_by {
        line("submitted by", who.clone());
    }
    if let Some(at) = s.status.ended_at() {
        line("ended", format_time(at));
    }
    line("attempts", s.attempts.to_string());
    line(
        "images",
        format!(
            "{} saved, {} failed, {} expected",
            s.images_ok, s.images_failed, s.images_expected
        ),
    );
    if let Some(cost) = s.cost_cny {
        line("cost", format!("{cost:.2} CNY"));
    }
    if let Some(error) = s.error() {
        let action = error
            .action
            .map(|a| format!(" [{}]", a.as_str()))
            .unwrap_or_default();
        line("error", format!("{error}{action}"));
    }
    if s.cancel_requested {
        line("cancel", "requested".into());
    }
    line("spec", serde_json::to_string(&d.spec).unwrap_or_default());
    for image in &d.images {
        let what = match (&image.path, &image.error_code) {
            (Some(path), _) => format!(
                "{} ({}x{}, {} bytes)",
                path.display(),
                image.width.unwrap_or(0),
                image.height.unwrap_or(0),
                image.bytes.unwrap_or(0)
            ),
            (None, Some(code)) => format!(
                "failed: {code}: {}",
                image.error_message.as_deref().unwrap_or("")
            ),
            (None, None) => "not downloaded yet".into(),
        };
        let star = if starred.contains(&image.index) {
            " ★ starred"
        } else {
            ""
        };
        let seed = image_seed(&d.spec, image.index)
            .map(|seed| format!(" seed {seed}"))
            .unwrap_or_default();
        line(
            &format!("image {}", image.index),
            format!("{what}{seed}{star}"),
        );
    }
    for event in &d.events {
        let from = event.from_state.map_or("-", |s| s.as_str());
        let detail = event
            .detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        line(
            "event",
            format!(
                "{} {from} -> {}{detail}",
                format_time(event.at),
                event.to_state.as_str()
            ),
        );
    }
    out
}

/// `wandash cancel ID [--yes]`: a queued job at once; a job already at the service only
/// after a yes (at the terminal, or `--yes`), since it may be billed.
pub fn cancel(ctx: &Context, id: JobId, yes: bool) -> CliResult {
    let store = open_store(ctx)?;
    let job = store
        .job(id)
        .map_err(store_failure)?
        .ok_or_else(|| no_such_job(id))?;
    let state = job.summary.state();
    if state.is_remote() && !yes {
        let why = format!(
            "job {id} is already at the service ({state}), so it may be billed: only a PENDING task can still be cancelled"
        );
        if !super::ask_on_terminal(ctx, &format!("{why}. Cancel it?")) {
            return Err(Failure::usage(format!(
                "{why}; nothing was changed. Answer y at a terminal, or pass --yes to cancel it anyway"
            )));
        }
    }
    let outcome = store.request_cancel(id).map_err(|e| match e {
        StoreError::NoSuchJob(id) => no_such_job(id),
        e => store_failure(e),
    })?;
    let text = match outcome {
        CancelOutcome::Cancelled => format!("job {id} cancelled"),
        CancelOutcome::Requested => {
            format!(
                "job {id}: cancel requested; the engine asks the service (only a PENDING task can be cancelled)"
            )
        }
        CancelOutcome::AlreadyEnded(state) => {
            format!("job {id} already ended ({state}); nothing to cancel")
        }
    };
    if ctx.json {
        println!("{}", json!({"id": id, "outcome": outcome}));
    } else {
        println!("{text}");
    }
    Ok(())
}

pub fn retry(ctx: &Context, id: JobId) -> CliResult {
    let store = open_store(ctx)?;
    store.retry(id).map_err(|e| match e {
        StoreError::NoSuchJob(id) => no_such_job(id),
        StoreError::WrongState { state, .. } => Failure::usage(format!(
            "job {id} is {state}; only failed, cancelled, expired or needs_attention jobs can be retried"
        )),
        e => store_failure(e),
    })?;
    if ctx.json {
        println!("{}", json!({"id": id, "state": JobState::Queued}));
    } else {
        println!("job {id} queued again");
    }
    Ok(())
}

/// Prints what `submit`/`batch` queued.
pub fn print_queued(ctx: &Context, ids: &[JobId]) {
    if ctx.json {
        println!("{}", json!({ "ids": ids }));
    } else if let [id] = ids {
        println!("{id}");
    } else if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
        println!("queued {} jobs ({first}..{last})", ids.len());
    }
}

/// Prints how the given jobs ended, with their image paths.
pub fn print_outcome(ctx: &Context, jobs: &[JobDetail]) {
    if ctx.json {
        let rows: Vec<_> = jobs
            .iter()
            .map(|d| {
                let error = d.summary.error();
                json!({
                    "id": d.summary.id,
                    "state": d.summary.state(),
                    "images": d.images.iter().filter_map(|i| i.path.as_ref()).collect::<Vec<_>>(),
                    "error_code": error.map(|e| e.kind.code()),
                    "error_message": error.map(|e| &e.message),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("outcomes serialise")
        );
        return;
    }
    for d in jobs {
        let s: &JobSummary = &d.summary;
        if s.state() == JobState::Succeeded {
            for path in d.images.iter().filter_map(|i| i.path.as_ref()) {
                println!("{}", path.display());
            }
        }
        if s.state() != JobState::Succeeded || s.images_failed > 0 {
            let why = s.error().map(|e| format!(": {e}")).unwrap_or_default();
            eprintln!("job {} {}{}", s.id, s.state().as_str(), sanitize(&why));
        }
    }
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut clipped: String = text.chars().take(max - 1).collect();
        clipped.push('…');
        clipped
    }
}

/// A time as local-free UTC `2025-02-21 17:56:31 UTC`.
pub fn format_time(at: Timestamp) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.to_datetime()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| at.to_string())
}

/// How often store readers look for changes made by the engine.
pub const STORE_POLL: Duration = Duration::from_millis(250);
