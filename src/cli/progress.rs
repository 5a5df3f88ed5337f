//! What `submit --wait` and `batch --wait` draw on a terminal while the engine works: for
//! one job a spinner with its state, for several a bar with done / total, rate and ETA.
//! Either also says why the job in front waits (the service unreachable, an unexpected
//! answer) and when the engine tries again, and it ticks, so nothing looks frozen. Off a
//! terminal, or with `--json`, nothing is drawn and lines go to stderr as before.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use crate::dashscope::Timestamp;
use crate::store::{JobDetail, PauseHold};
use crate::text::sanitize;

use super::Context;

const TICK: Duration = Duration::from_millis(120);

pub struct WaitProgress {
    bar: Option<ProgressBar>,
    /// The last reason a job waits that was said above the bar, so it is said once.
    last_trouble: Option<String>,
}

impl WaitProgress {
    pub fn new(ctx: &Context, jobs: usize) -> WaitProgress {
        let drawn = std::io::stderr().is_terminal() && !ctx.json;
        let bar = drawn.then(|| {
            let bar = if jobs == 1 {
                ProgressBar::new_spinner().with_style(style("{spinner} {elapsed:>4} {wide_msg}"))
            } else {
                ProgressBar::new(jobs as u64).with_style(style(
                    "{spinner} [{bar:30}] {pos}/{len} jobs, {rate}, ETA {eta}  {wide_msg}",
                ))
            };
            bar.enable_steady_tick(TICK);
            bar
        });
        WaitProgress {
            bar,
            last_trouble: None,
        }
    }

    /// `ended` jobs have ended; `waiting` is the first that has not.
    pub fn update(&mut self, ended: usize, waiting: &JobDetail, paused: Option<PauseHold>) {
        let Some(bar) = &self.bar else { return };
        bar.set_position(ended as u64);
        let summary = &waiting.summary;
        let mut message = format!("job {} {}", summary.id, summary.state());
        if let Some(hold) = paused {
            message.push_str(" (paused)");
            let trouble = hold.to_string();
            if self.last_trouble.as_deref() != Some(trouble.as_str()) {
                bar.println(format!("warning: job {} waits: {trouble}", summary.id));
                self.last_trouble = Some(trouble);
            }
        } else if let Some(error) = summary.error() {
            let code = error.kind.code();
            let trouble = format!("{}: {}", sanitize(code), sanitize(&error.message));
            let retry = retry_in(summary.status.next_attempt_at())
                .map_or_else(String::new, |secs| {
                    format!("; the engine tries again in {secs} s")
                });
            // The short form on the bar's one line; the whole reason is said above it.
            message.push_str(&format!(" ({}{retry})", sanitize(code)));
            // Said once above the bar too, so that it stays on screen once it is over.
            if self.last_trouble.as_deref() != Some(trouble.as_str()) {
                bar.println(format!(
                    "warning: job {} waits: {trouble}{retry}",
                    summary.id
                ));
                self.last_trouble = Some(trouble.clone());
            }
        }
        bar.set_message(message);
    }

    /// A line for the user: above the bar on a terminal, else on stderr.
    pub fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Clears the bar before the outcome is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the progress templates are valid")
        .progress_chars("#>-")
        // Jobs take tens of seconds: per minute reads better than `0.2491/s`.
        .with_key(
            "rate",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                write!(out, "{:.1} jobs/min", state.per_sec() * 60.0).ok();
            },
        )
}

/// Whole seconds until `next_attempt_at` (epoch milliseconds), if it is still ahead.
fn retry_in(next_attempt_at: Option<Timestamp>) -> Option<i64> {
    let now_ms = Timestamp::now().as_millis();
    next_attempt_at
        .map(|at| (at.as_millis() - now_ms + 999) / 1000)
        .filter(|&secs| secs > 0)
}
