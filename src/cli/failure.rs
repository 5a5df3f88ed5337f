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
}

impl Failure {
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
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
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the source put in it.
        f.write_str(&crate::text::sanitize(&self.message))
    }
}

pub type CliResult<T = ()> = Result<T, Failure>;
