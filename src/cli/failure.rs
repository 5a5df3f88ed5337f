//! Exit codes scripts can rely on, and one-line errors that say what to do.

use std::fmt;
use std::process::ExitCode;

/// Why the CLI stopped; each maps to a documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// 1: anything not covered below (I/O, an unexpected answer).
    Failure,
    /// 2: bad usage or a job that breaks a rule (clap uses 2 for usage errors too).
    Usage,
    /// 3: the engine or backend cannot run: bad API key, arrears, store locked or unreadable,
    /// data directory not writable.
    Engine,
    /// 4: with --wait, at least one job ended failed, cancelled, expired or needs attention.
    JobsFailed,
}

impl ExitKind {
    /// The name scripts see in a JSON error's `kind`.
    pub fn name(self) -> &'static str {
        match self {
            ExitKind::Failure => "failure",
            ExitKind::Usage => "usage",
            ExitKind::Engine => "engine",
            ExitKind::JobsFailed => "jobs_failed",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            ExitKind::Failure => 1,
            ExitKind::Usage => 2,
            ExitKind::Engine => 3,
            ExitKind::JobsFailed => 4,
        }
    }
}

/// The help text's section on exit codes.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0  success
  1  generic failure (I/O, unexpected answer)
  2  usage or validation error (the message names the field and the limit)
  3  engine or backend error (bad API key, arrears, store locked or unreadable,
     data directory not writable)
  4  with --wait: a job ended failed, cancelled, expired or needing attention";

/// A CLI error: one line for the terminal, and the exit code.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: ExitKind,
    pub message: String,
    /// The option or job field at fault, when there is one (`seed`, `prompt`...).
    pub field: Option<String>,
}

impl Failure {
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            field: None,
        }
    }
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(ExitKind::Usage, message)
    }
    pub fn engine(message: impl Into<String>) -> Self {
        Failure::new(ExitKind::Engine, message)
    }
    pub fn other(message: impl Into<String>) -> Self {
        Failure::new(ExitKind::Failure, message)
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.kind.code())
    }

    /// `{"error": {"kind", "message", "field"}}`, what `--json` prints on stdout.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "kind": self.kind.name(),
            "message": self.to_string(),
            "field": self.field,
        }})
    }
}

/// A command line clap refused: its own message on stderr, and with `--json` the same as
/// a JSON error on stdout; clap's exit code. `--help` and `--version` print as usual.
pub fn usage_error(error: clap::Error, json: bool) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let is_output = matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let exit_code = ExitCode::from(error.exit_code().clamp(0, 255) as u8);
    error.print().ok();
    if is_output || !json {
        return exit_code;
    }
    let rendered = error.render().to_string();
    let first_line = rendered.lines().next().unwrap_or_default();
    let mut failure = Failure::usage(first_line.trim_start_matches("error: "));
    // `--seed <SEED>` names the field `seed`, as the job's own rules do; `<ID>`, `id`.
    if let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) {
        let name = arg.trim_start_matches('-');
        let name = name.split([' ', '=']).next().unwrap_or(name);
        let name = name.trim_matches(['<', '>']).to_lowercase();
        failure = failure.with_field(name.replace('-', "_"));
    }
    println!("{}", failure.to_json());
    exit_code
}

/// Rust ignores SIGPIPE, so `println!` to a reader that has gone (`wandash list --json |
/// head -1`) panics with "failed printing to stdout: Broken pipe". Resetting the signal
/// needs `unsafe`; instead such a panic ends the process at once, quietly and with
/// success, as a program killed by SIGPIPE would have: nobody reads what is left. Every
/// other panic keeps the default report.
pub fn end_quietly_on_closed_pipe() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the source put in it.
        f.write_str(&crate::text::sanitize(&self.message))
    }
}

pub type CliResult<T = ()> = Result<T, Failure>;
