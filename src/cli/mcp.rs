//! `wandash mcp`: the command line's side of the MCP server. It turns the global flags
//! and the config into plain settings and runs `mcp::serve` on them, so the server knows
//! nothing of the command line.

use std::process::ExitCode;
use std::time::Duration;

use crate::dashscope::ApiKey;
use crate::mcp::{McpSetup, serve};

use super::context::Context;
use super::failure::{CliResult, Failure};
use super::run::runtime;

/// The global flags pick the store, config and backend as for every command.
pub fn command(ctx: &Context) -> CliResult<ExitCode> {
    let setup = McpSetup {
        db_path: ctx.db_path.clone(),
        data_dir: ctx.data_dir.clone(),
        image_cache: ctx.image_cache(),
        engine: ctx.config.engine_config(&ctx.data_dir),
        backend: ctx.config.backend_settings(
            ApiKey::from_env(),
            ctx.base_url.clone(),
            ctx.region,
            &ctx.data_dir,
        ),
    };
    let runtime = runtime()?;
    let outcome = runtime.block_on(serve(setup));
    // A read of stdin may still be pending on a blocking thread; do not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome.map_err(Failure::engine)?;
    Ok(ExitCode::SUCCESS)
}
