//! Commands that run the engine in this process: `worker`, and `--wait` on submit/batch.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::backend::{self, Backend, BackendKind, Choice};
use crate::config::ImageProtocol;
use crate::dashscope::ApiKey;
use crate::engine::{self, Engine, EngineError, EngineEvent, EngineHandle};
use crate::store::{JobDetail, JobId, JobState, PauseHold, Store, StoreError};
use crate::text::sanitize;
use crate::ui::{UiOptions, keys::KeyMap, state::BackendLabel};
use ratatui_image::picker::ProtocolType;

use super::Context;
use super::failure::{CliResult, ExitKind, Failure};
use super::jobs::{STORE_POLL, print_outcome, store_failure};
use super::progress::WaitProgress;

/// The async runtime every command that talks to a service runs on.
pub(crate) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| Failure::other(format!("cannot start the async runtime: {e}")))
}

fn engine_failure(e: EngineError) -> Failure {
    Failure::engine(e.to_string())
}

/// Connects to the backend (live, or the embedded simulator) and starts the engine.
/// Keep the returned backend alive as long as the engine: it may own the simulator.
async fn start_engine(ctx: &Context) -> Result<(Backend, EngineHandle), EngineError> {
    let (backend, handle) = start_engine_quietly(ctx).await?;
    match &backend.kind {
        BackendKind::Simulator { base_url } => {
            eprintln!(
                "backend: SIMULATOR (embedded at {base_url}; set DASHSCOPE_API_KEY to use the real service)"
            )
        }
        BackendKind::Live { base_url } => eprintln!("backend: {base_url}"),
    }
    Ok((backend, handle))
}

/// `start_engine` without the announcement, for the dashboard, which owns the terminal.
async fn start_engine_quietly(ctx: &Context) -> Result<(Backend, EngineHandle), EngineError> {
    let config = ctx.config.engine_config(&ctx.data_dir);
    // Before the backend: the built-in simulator keeps its state in the data directory
    // too, and would fail with a vaguer message.
    engine::check_images_dir(&config.images_dir())?;
    let settings = ctx.config.backend_settings(
        ApiKey::from_env(),
        ctx.base_url.clone(),
        ctx.region,
        &ctx.data_dir,
    );
    let backend = backend::connect(settings).await?;
    let handle = Engine::start(&ctx.db_path, backend.client.clone(), config)?;
    tracing::info!(
        backend = backend.kind.label(),
        base_url = backend.kind.base_url(),
        "engine started"
    );
    Ok((backend, handle))
}

/// `wandash` with no subcommand: the dashboard, on an engine of its own, or, when a
/// `wandash worker` already owns the store, as a viewer that enqueues for that worker.
pub fn dashboard(ctx: &Context) -> CliResult<ExitCode> {
    runtime()?.block_on(async {
        let running = match start_engine_quietly(ctx).await {
            Ok(pair) => Some(pair),
            Err(EngineError::Locked { .. }) => None,
            Err(e) => return Err(engine_failure(e)),
        };
        let backend = match &running {
            Some((backend, _)) => match backend.kind {
                BackendKind::Simulator { .. } => BackendLabel::Simulator,
                BackendKind::Live { .. } => BackendLabel::Live {
                    region: ctx.region.id().to_string(),
                },
            },
            // Another process runs the engine; it follows the same rule to pick a backend.
            None => match backend::choose(ApiKey::from_env(), ctx.base_url.as_deref()) {
                Choice::Simulator => BackendLabel::Simulator,
                Choice::Live(_) | Choice::MissingKey => BackendLabel::Live {
                    region: ctx.region.id().to_string(),
                },
            },
        };
        let ui_config = &ctx.config.ui;
        let options = UiOptions {
            store_path: ctx.db_path.clone(),
            backend,
            protocol: match ui_config.image_protocol {
                ImageProtocol::Auto => None,
                ImageProtocol::Halfblocks => Some(ProtocolType::Halfblocks),
                ImageProtocol::Sixel => Some(ProtocolType::Sixel),
                ImageProtocol::Kitty => Some(ProtocolType::Kitty),
                ImageProtocol::Iterm2 => Some(ProtocolType::Iterm2),
            },
            mouse: ui_config.mouse,
            notify: ui_config.notify,
            keys: KeyMap::with_overrides(&ui_config.keys).map_err(Failure::usage)?,
            prices: ctx.config.price_table(),
            stats: super::stats::source(ctx),
            data_dir: ctx.data_dir.clone(),
            image_cache: ctx.image_cache(),
        };
        let outcome = crate::ui::run(options, running.as_ref().map(|(_, handle)| handle)).await;
        if let Some((backend, handle)) = running {
            handle.shutdown().await;
            drop(backend);
        }
        outcome
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| Failure::other(e.to_string()))
    })
}

/// Resolves on Ctrl-C or SIGTERM. SIGTERM is listened for from this call on, not from
/// the first poll: one that comes while the engine starts still stops it cleanly.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
}

/// Prints one engine event as a progress line (stdout), or a warning (stderr).
fn report(ctx: &Context, event: &EngineEvent) {
    match event {
        EngineEvent::JobChanged { id, state } if state.is_final() => {
            if ctx.json {
                println!("{}", json!({"event": "job", "id": id, "state": state}));
            } else {
                println!("job {id} {state}");
            }
        }
        EngineEvent::ImageSaved { job, index, path } => {
            if ctx.json {
                println!(
                    "{}",
                    json!({"event": "image", "id": job, "index": index, "path": path})
                );
            } else {
                println!("job {job} image {index}: {}", path.display());
            }
        }
        _ => {
            if let Some(line) = warning(event) {
                eprintln!("{line}");
            }
        }
    }
}

/// The line for an engine event worth telling at once on stderr: one that concerns every
/// job rather than one (a model stopped, the disk refusing images), or a job's retry and
/// its reason (a service that answers something wrong is not left to be found in `show`
/// after the job ends).
fn warning(event: &EngineEvent) -> Option<String> {
    match event {
        EngineEvent::ModelStopped { model, reason } => Some(format!(
            "warning: {model} stopped: {}; its jobs stay queued",
            sanitize(reason)
        )),
        EngineEvent::DiskRefused { path, reason } => Some(format!(
            "warning: cannot save images: {}: {}; no new jobs are sent and the images already made are kept and saved again until the disk accepts them (free some space or fix the permissions)",
            sanitize(&path.display().to_string()),
            sanitize(reason)
        )),
        EngineEvent::DiskRecovered => Some("images save again; sending jobs".to_string()),
        EngineEvent::Retrying { id, reason } => Some(format!("job {id}: {}", sanitize(reason))),
        _ => None,
    }
}

/// `wandash worker [--until-idle]`.
pub fn worker(ctx: &Context, until_idle: bool) -> CliResult<ExitCode> {
    runtime()?.block_on(async {
        let signal = shutdown_signal();
        tokio::pin!(signal);
        let (backend, handle) = start_engine(ctx).await.map_err(engine_failure)?;
        let mut events = handle.subscribe();
        let outcome = {
            let idle = handle.wait_idle();
            tokio::pin!(idle);
            loop {
                tokio::select! {
                    _ = &mut signal => break Ok(ExitCode::SUCCESS),
                    _ = &mut idle, if until_idle => break match handle.is_stopped() {
                        true => Err(stopped(&stop_reason(&mut events))),
                        false => Ok(ExitCode::SUCCESS),
                    },
                    event = events.recv() => match event {
                        Ok(EngineEvent::Stopped { reason }) => break Err(stopped(&reason)),
                        Ok(event) => report(ctx, &event),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break Ok(ExitCode::SUCCESS),
                    },
                }
            }
        };
        handle.shutdown().await;
        drop(backend);
        outcome
    })
}

/// The reason of a `Stopped` event already sent, for an engine found stopped.
fn stop_reason(events: &mut tokio::sync::broadcast::Receiver<EngineEvent>) -> String {
    loop {
        match events.try_recv() {
            Ok(EngineEvent::Stopped { reason }) => return reason,
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return "see the log in the data directory".into(),
        }
    }
}

fn stopped(reason: &str) -> Failure {
    Failure::engine(format!(
        "the engine stopped: {reason}; queued jobs stay queued"
    ))
}

/// Runs the engine until every job in `ids` has ended, then prints their images.
/// If another engine already runs on this store, waits for it to finish them instead.
pub fn wait_for(ctx: &Context, ids: &[JobId]) -> CliResult<ExitCode> {
    let store = Arc::new(Store::open(&ctx.db_path).map_err(store_failure)?);
    runtime()?.block_on(async {
        let running = match start_engine(ctx).await {
            Ok(pair) => Some(pair),
            Err(EngineError::Locked { .. }) => {
                eprintln!("another wandash engine runs on this store; waiting for it to finish these jobs");
                None
            }
            Err(e) => return Err(engine_failure(e)),
        };
        let mut events = running.as_ref().map(|(_, handle)| handle.subscribe());
        let mut details = Vec::with_capacity(ids.len());
        let mut progress = WaitProgress::new(ctx, ids.len());
        // Jobs of `ids` the engine reported ended, in any order; `details` only grows in
        // the order of `ids`, so the bar counts these too.
        let waited_for: HashSet<JobId> = ids.iter().copied().collect();
        let mut ended: HashSet<JobId> = HashSet::new();
        let signal = shutdown_signal();
        tokio::pin!(signal);
        let outcome = loop {
            if let (Some((_, handle)), Some(rx)) = (&running, events.as_mut())
                && handle.is_stopped() {
                    break Err(stopped(&stop_reason(rx)));
                }
            match collect_ended(&store, ids, &mut details).await {
                Ok(None) => break Ok(()),
                Ok(Some((waiting, paused))) => {
                    progress.update(details.len().max(ended.len()), &waiting, paused);
                }
                Err(e) => break Err(e),
            }
            tokio::select! {
                _ = &mut signal => break Err(Failure::other(
                    "interrupted; the jobs stay in the store and `wandash worker` finishes them",
                )),
                _ = tokio::time::sleep(STORE_POLL) => {}
                event = async { match events.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    match event {
                        Ok(EngineEvent::Stopped { reason }) => break Err(stopped(&reason)),
                        Ok(EngineEvent::JobChanged { id, state }) if state.is_final() && waited_for.contains(&id) => {
                            ended.insert(id);
                        }
                        Ok(event) => if let Some(line) = warning(&event) {
                            progress.say(&line);
                        },
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => events = None,
                    }
                }
            }
        };
        progress.finish();
        if let Some((backend, handle)) = running {
            handle.shutdown().await;
            drop(backend);
        }
        outcome?;
        // The paths printed are files on this host, whichever host's engine ran the jobs.
        let cache = ctx.image_cache();
        let reader = Arc::clone(&store);
        let (details, unavailable) = tokio::task::spawn_blocking(move || {
            let mut details = details;
            let unavailable: Vec<StoreError> = details
                .iter_mut()
                .flat_map(|detail| reader.images_here(detail, &cache))
                .collect();
            (details, unavailable)
        })
        .await
        .map_err(|e| Failure::other(format!("reading the images stopped: {e}")))?;
        for why in &unavailable {
            eprintln!("warning: {why}");
        }
        print_outcome(ctx, &details);
        let all_ok = details.iter().all(|d| d.summary.state() == JobState::Succeeded);
        Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(ExitKind::JobsFailed.code()) })
    })
}

/// Adds to `details` the jobs of `ids` that have ended, in order, stopping at the first
/// still active one (so each check reads only what is new), which it returns with the
/// pause that holds it, if one does; `None` once all have ended.
async fn collect_ended(
    store: &Arc<Store>,
    ids: &[JobId],
    details: &mut Vec<JobDetail>,
) -> CliResult<Option<(JobDetail, Option<PauseHold>)>> {
    let store = Arc::clone(store);
    let pending: Vec<JobId> = ids[details.len()..].to_vec();
    let (ended_now, waiting) = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        for id in pending {
            let detail = store
                .job(id)
                .map_err(store_failure)?
                .ok_or_else(|| Failure::other(format!("job {id} vanished from the store")))?;
            if !detail.summary.state().is_final() {
                let paused = match detail.summary.state() {
                    JobState::Queued => store
                        .pauses()
                        .map_err(store_failure)?
                        .holds(detail.summary.model),
                    _ => None,
                };
                return Ok::<_, Failure>((found, Some((detail, paused))));
            }
            found.push(detail);
        }
        Ok((found, None))
    })
    .await
    .map_err(|e| Failure::other(format!("store reader failed: {e}")))??;
    details.extend(ended_now);
    Ok(waiting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_is_told_at_once_with_its_reason_escaped() {
        // What `worker` and `submit --wait` print on stderr the moment the engine retries
        // (a poll cut at the request timeout, an answer no client can read).
        let event = EngineEvent::Retrying {
            id: JobId(7),
            reason: "poll timed out: \u{1b}]52;c;ZXZpbA==\u{7}the service trickled".into(),
        };
        let line = warning(&event).expect("a retry is told");
        assert!(line.starts_with("job 7: poll timed out"), "{line}");
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{7}'),
            "{line:?}"
        );
    }
}
