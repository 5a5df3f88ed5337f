//! What a shell and a packager need from the binary itself: completion scripts, the
//! manual page, and the example config.

use std::io::Write;

use clap::{Arg, Args};

use super::failure::{CliResult, Failure};

/// The example config the README points at, carried by the binary so that it matches it.
pub const EXAMPLE_CONFIG: &str = include_str!("../../config.example.toml");

/// `wandash completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) -> CliResult {
    let mut command = super::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "wandash", &mut out);
    write_stdout(&out)
}

/// `wandash man`: the manual page (roff) on stdout, e.g. for `man -l -`.
pub fn man() -> CliResult {
    let mut out = Vec::new();
    clap_mangen::Man::new(super::command())
        .render(&mut out)
        .map_err(|e| Failure::other(format!("cannot render the manual page: {e}")))?;
    write_stdout(&out)
}

/// `wandash config --example`.
pub fn example_config() -> CliResult {
    write_stdout(EXAMPLE_CONFIG.as_bytes())
}

fn write_stdout(bytes: &[u8]) -> CliResult {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        // The reader took what it wanted (`| head`): not a failure.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::other(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// The simulator uses none of the global options (store, config, service, --json): hidden
/// copies of them in `sim` keep them out of its help, because clap does not add a global
/// option to a subcommand that already has one of the same name. They are still accepted,
/// and ignored as before.
pub fn without_global_options_in_help(sim: clap::Command) -> clap::Command {
    let globals: Vec<Arg> = super::GlobalArgs::augment_args(clap::Command::new("globals"))
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .map(|arg| arg.clone().global(false).hide(true))
        .collect();
    sim.args(globals)
}
