//! What `submit` and `batch` (and `batch --dry-run`) say up front: which of their jobs
//! will wait in the queue for the config's `[budget]`, and why.

use crate::dashscope::Model;
use crate::engine::{Spending, forecast, periods_now};
use crate::store::Store;
use crate::text::sanitize;

use super::Context;
use super::failure::CliResult;
use super::jobs::store_failure;

/// The jobs already queued, in the order the engine sends them.
pub fn queue(store: &Store) -> CliResult<Vec<(Model, u64)>> {
    store.queued_images().map_err(store_failure)
}

/// A note for the last `new` jobs of `queue` (model, images) if any of them will wait for
/// the budget; the jobs before them are sent first and count against it.
pub fn note(
    ctx: &Context,
    store: &Store,
    queue: &[(Model, u64)],
    new: usize,
) -> CliResult<Option<String>> {
    let budget = ctx.config.budget.budget();
    if !budget.is_set() || new == 0 {
        return Ok(None);
    }
    let source = super::stats::source(ctx);
    let price = |model: Model| source.price(model);
    let first = store.first_job_at().map_err(store_failure)?;
    let (periods, from) = periods_now(&budget, first);
    let rows = store.money_rows(&periods, from).map_err(store_failure)?;
    let holds = forecast(&budget, Spending::from_rows(&rows, price), queue, price);
    let new_holds: Vec<_> = holds[holds.len().saturating_sub(new)..]
        .iter()
        .flatten()
        .collect();
    let Some(first_hold) = new_holds.first() else {
        return Ok(None);
    };
    let reason = sanitize(&first_hold.to_string());
    Ok(Some(if new == 1 {
        format!("note: the job {reason}")
    } else {
        format!(
            "note: {} of the {new} jobs will wait for budget; the first {reason}",
            new_holds.len()
        )
    }))
}

/// Prints the note on stderr (stdout stays the command's answer, JSON or not).
pub fn say(note: Option<String>) {
    if let Some(note) = note {
        eprintln!("{note}");
    }
}
