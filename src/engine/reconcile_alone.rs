//! Looking up unanswered creates with no other create of their model in the air: in a
//! team, the service's tasks no job records yet include those of live engines whose
//! answer is on its way, and recovery would take one of them for a lost create (of a job
//! adopted from an engine that is gone, or of this engine's own create that went
//! unanswered). So the engine holds the store's marker of the model (no engine sends a
//! create of it meanwhile), waits until the creates already sent are answered and
//! recorded, then looks. Alone (SQLite), nothing else is in the air when it looks.

use std::time::Duration;

use tokio::time::Instant;

use super::ctx::Ctx;
use super::recovery::{self, Resolution};
use crate::dashscope::Model;
use crate::store::{JobId, JobSummary, StoreError};

/// How long the marker lasts unless renewed: a reconciler that dies or hangs holds the
/// model's creates no longer (its lease ending frees them sooner).
const MARKER_HOLD: Duration = Duration::from_secs(30);

/// How often the store is asked whether the creates on the wire were answered.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Beyond the request timeout, for the answer to be written to the store.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// What to do after counting the creates of the model still on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Look {
    /// None is: every task of the model the list shows is recorded or lost.
    Reconcile,
    /// Some are, and may yet be answered.
    Wait,
    /// The engine is stopping, or they took longer than any answer may: the jobs to look
    /// up stay submitting, to be looked up in a later round.
    PutOff,
}

/// `on_the_wire` creates of the model are unanswered after `waited`; an answer comes
/// within `limit` or never.
pub(crate) fn after_look(
    on_the_wire: u32,
    waited: Duration,
    limit: Duration,
    stopping: bool,
) -> Look {
    if stopping {
        Look::PutOff
    } else if on_the_wire == 0 {
        Look::Reconcile
    } else if waited >= limit {
        Look::PutOff
    } else {
        Look::Wait
    }
}

/// Whether the look-up of `looking_up` covers every lost create of the model (`awaiting`,
/// any engine's): recovery pairs the lost creates it is given with the tasks no job
/// records, so a lost create left out would have its task taken for another's.
pub(crate) fn covers_every_lost_create(looking_up: &[JobId], awaiting: &[JobId]) -> bool {
    awaiting.iter().all(|id| looking_up.contains(id))
}

/// Reconciles `jobs` (of `model`, unanswered creates this engine runs, adopted or its
/// own: see `recovery::reconcile`); `None` when that was put off and they stay
/// submitting, awaiting the next adoption round. The caller holds the model's gate, so
/// no create of this engine is sent, nor set to await a look-up, meanwhile.
pub(super) async fn reconcile_unanswered(
    ctx: &Ctx,
    model: Model,
    jobs: Vec<JobSummary>,
) -> Result<Option<Vec<(JobId, Resolution)>>, StoreError> {
    if !ctx.store.membership().is_some_and(|m| m.shared) {
        return recovery::reconcile(ctx, model, jobs).await.map(Some);
    }
    for job in &jobs {
        // Adopted ones already await it; an own create no engine waits for from now on,
        // and a put-off look-up is made by the next adoption round.
        let id = job.id;
        if !ctx.db(move |s| s.await_lookup(id)).await? {
            tracing::warn!(job = %id, %model, "this unanswered create is no longer this engine's; not looking it up");
            return Ok(None);
        }
    }
    if !ctx
        .db(move |s| s.begin_reconciling(model, MARKER_HOLD))
        .await?
    {
        tracing::info!(%model, jobs = jobs.len(), "another engine is looking up unanswered creates of this model; these wait for the next round");
        return Ok(None);
    }
    let outcome = renewing_marker(ctx, model, async {
        if !answers_in(ctx, model).await? {
            return Ok(None);
        }
        let awaiting = ctx.db(move |s| s.gather_awaiting_lookup(model)).await?;
        let looking_up: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
        if !covers_every_lost_create(&looking_up, &awaiting) {
            tracing::info!(%model, jobs = jobs.len(), awaiting = awaiting.len(), "other unanswered creates of this model await a look-up; this engine took them over and looks all up together in its next round");
            return Ok(None);
        }
        recovery::reconcile(ctx, model, jobs).await.map(Some)
    })
    .await;
    if let Err(e) = ctx.db(move |s| s.end_reconciling(model)).await {
        tracing::warn!(%model, "cannot end the look-up of unanswered creates ({e}); other engines send again once it lapses");
    }
    outcome
}

/// Runs `work` while this engine's marker of `model` is kept from lapsing.
async fn renewing_marker<T>(
    ctx: &Ctx,
    model: Model,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep(MARKER_HOLD / 3) => {
                // Lost only with the lease, which stops the engine; a renewal the store
                // missed is made up by the next, two more before the marker lapses.
                match ctx.db(move |s| s.begin_reconciling(model, MARKER_HOLD)).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(%model, "another engine took over the look-up of unanswered creates"),
                    Err(e) => tracing::warn!(%model, "cannot renew the look-up of unanswered creates: {e}"),
                }
            }
        }
    }
}

/// Waits until no create of `model` is on the wire on any engine; false if that was
/// put off (see `Look::PutOff`).
async fn answers_in(ctx: &Ctx, model: Model) -> Result<bool, StoreError> {
    let limit = ctx.client.request_timeout() + ANSWER_MARGIN;
    let started = Instant::now();
    loop {
        let on_the_wire = ctx.db(move |s| s.creates_on_the_wire(model)).await?;
        match after_look(
            on_the_wire,
            started.elapsed(),
            limit,
            ctx.stopping.is_cancelled(),
        ) {
            Look::Reconcile => return Ok(true),
            Look::PutOff => {
                tracing::info!(%model, on_the_wire, "other creates are still unanswered; the unanswered ones of this engine are looked up in a later round");
                return Ok(false);
            }
            Look::Wait => {
                if started.elapsed() < LOOK_EVERY {
                    tracing::info!(%model, on_the_wire, "waiting for the answers to creates already sent before looking up the unanswered ones of this engine");
                }
                tokio::select! {
                    () = tokio::time::sleep(LOOK_EVERY) => {}
                    () = ctx.stopping.cancelled() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(65);

    #[test]
    fn nothing_on_the_wire_means_look_now() {
        assert_eq!(after_look(0, Duration::ZERO, LIMIT, false), Look::Reconcile);
        assert_eq!(after_look(0, LIMIT * 2, LIMIT, false), Look::Reconcile);
    }

    #[test]
    fn creates_on_the_wire_are_waited_for_up_to_the_limit() {
        assert_eq!(after_look(2, Duration::ZERO, LIMIT, false), Look::Wait);
        assert_eq!(
            after_look(1, LIMIT - Duration::from_millis(1), LIMIT, false),
            Look::Wait
        );
        assert_eq!(after_look(1, LIMIT, LIMIT, false), Look::PutOff);
    }

    #[test]
    fn a_look_up_must_cover_every_lost_create_awaiting_one() {
        let (own, adopted) = (JobId(7), JobId(3));
        assert!(covers_every_lost_create(&[own], &[own]));
        assert!(covers_every_lost_create(&[adopted, own], &[own, adopted]));
        assert!(
            !covers_every_lost_create(&[own], &[adopted, own]),
            "the adopted create's task could be taken for the own one's"
        );
        assert!(!covers_every_lost_create(&[adopted], &[adopted, own]));
    }

    #[test]
    fn a_stopping_engine_puts_the_look_off() {
        assert_eq!(after_look(0, Duration::ZERO, LIMIT, true), Look::PutOff);
        assert_eq!(after_look(3, Duration::ZERO, LIMIT, true), Look::PutOff);
    }
}
