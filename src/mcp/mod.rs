//! `wandash mcp`: a Model Context Protocol server over stdio, so that AI assistants can
//! generate and edit images through the same durable queue as the dashboard and the CLI.
//!
//! Every request becomes a job in the shared store; the engine runs in this process if
//! it can take the engine lock, otherwise whoever holds it (a `wandash worker`, the
//! dashboard) runs the job and this server watches the store for its end. Stdout carries
//! nothing but protocol: logs go to the log file through `tracing`.
//!
//! The command line builds an `McpSetup` from its flags and calls `serve` (`cli/mcp.rs`):
//! nothing here reads flags or imports the command line.

mod answer;
mod args;
mod jobs;
mod schema;
mod server;

use std::sync::Arc;

use rmcp::ServiceExt;

pub use jobs::McpSetup;
pub use server::WandashMcp;

/// Serves MCP on stdin/stdout until the client closes the connection or a signal comes.
pub async fn serve(setup: McpSetup) -> Result<(), String> {
    let offer = schema::Offer::in_region(setup.backend.region, &setup.engine.prices);
    let jobs = Arc::new(jobs::Jobs::open(setup).await?);
    // Start the engine (or find the one running elsewhere) now, so that jobs left queued
    // by an earlier session move even before the first request.
    if let Err(e) = jobs.ensure_engine().await {
        tracing::warn!("MCP: {e}; tools will report it");
    }
    let service = WandashMcp::new(Arc::clone(&jobs), offer)
        .serve(rmcp::transport::stdio_pipes())
        .await
        .map_err(|e| format!("the MCP handshake failed: {e}"))?;
    tracing::info!("MCP: serving on stdio");
    let cancel = service.cancellation_token();
    tokio::select! {
        outcome = service.waiting() => {
            if let Err(e) = outcome {
                tracing::warn!("MCP: the session ended abnormally: {e}");
            }
        }
        () = terminate_signal() => cancel.cancel(),
    }
    jobs.shutdown().await;
    tracing::info!("MCP: stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn terminate_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}
