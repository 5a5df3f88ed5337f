//! `wandash watch`: progress until the queue drains (done / total, rate, ETA).
//!
//! It only reads the store, so it works beside a worker in another process. On a terminal
//! one line is redrawn in place; otherwise a plain line is printed whenever progress moves.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::store::StateCounts;

use super::Context;
use super::estimate::human_duration;
use super::failure::CliResult;
use super::jobs::{STORE_POLL, open_store, store_failure};

/// Progress of the jobs that were active when watching began, plus any queued since.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Jobs per minute since watching began.
    pub rate_per_min: f64,
    pub eta: Option<Duration>,
}

impl Progress {
    /// `baseline`: counts when watching began (jobs already ended then are not counted).
    pub fn new(baseline: &StateCounts, now: &StateCounts, elapsed: Duration) -> Progress {
        let ended_before = baseline.total() - baseline.active();
        let total = now.total().saturating_sub(ended_before);
        let done = total.saturating_sub(now.active());
        let minutes = elapsed.as_secs_f64() / 60.0;
        let rate_per_min = if minutes > 0.0 {
            done as f64 / minutes
        } else {
            0.0
        };
        let remaining = total - done;
        let eta = (rate_per_min > 0.0)
            .then(|| Duration::from_secs_f64(remaining as f64 / rate_per_min * 60.0));
        let problems = |c: &StateCounts| c.failed + c.cancelled + c.expired + c.needs_attention;
        Progress {
            done,
            total,
            succeeded: now.succeeded.saturating_sub(baseline.succeeded),
            failed: problems(now).saturating_sub(problems(baseline)),
            rate_per_min,
            eta,
        }
    }

    pub fn line(&self) -> String {
        let eta = match (self.eta, self.done == self.total) {
            (_, true) => "done".to_string(),
            (Some(eta), _) => format!("ETA {}", human_duration(eta)),
            (None, _) => "ETA unknown".to_string(),
        };
        format!(
            "{}/{} jobs done ({} succeeded, {} not), {:.1} jobs/min, {eta}",
            self.done, self.total, self.succeeded, self.failed, self.rate_per_min
        )
    }

    fn bar(&self, width: usize) -> String {
        let filled = if self.total == 0 {
            width
        } else {
            (self.done as usize * width) / self.total as usize
        };
        format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
    }
}

pub fn watch(ctx: &Context) -> CliResult {
    let store = open_store(ctx)?;
    let baseline = store.counts_by_state().map_err(store_failure)?;
    let start = Instant::now();
    let tty = std::io::stdout().is_terminal() && !ctx.json;
    let mut last_done = None;
    loop {
        let now = store.counts_by_state().map_err(store_failure)?;
        let progress = Progress::new(&baseline, &now, start.elapsed());
        let finished = now.active() == 0;
        if tty {
            print!("\r\x1b[2K{} {}", progress.bar(30), progress.line());
            std::io::stdout().flush().ok();
        } else if last_done != Some(progress.done) || finished {
            if ctx.json {
                let eta = progress.eta.map(|d| d.as_secs_f64());
                println!(
                    "{}",
                    json!({"done": progress.done, "total": progress.total, "succeeded": progress.succeeded,
                           "failed": progress.failed, "rate_per_min": progress.rate_per_min, "eta_seconds": eta})
                );
            } else {
                println!("{}", progress.line());
            }
            last_done = Some(progress.done);
        }
        if finished {
            if tty {
                println!();
            }
            return Ok(());
        }
        std::thread::sleep(STORE_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_ignores_jobs_that_ended_before_watching() {
        let baseline = StateCounts {
            succeeded: 100,
            queued: 10,
            ..Default::default()
        };
        let now = StateCounts {
            succeeded: 104,
            failed: 1,
            queued: 5,
            ..Default::default()
        };
        let p = Progress::new(&baseline, &now, Duration::from_secs(60));
        assert_eq!((p.done, p.total, p.succeeded, p.failed), (5, 10, 4, 1));
        assert_eq!(p.rate_per_min, 5.0);
        assert_eq!(p.eta, Some(Duration::from_secs(60)));
    }
}
