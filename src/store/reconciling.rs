//! Exactly once while an engine looks up unanswered creates (adopted from an engine that
//! is gone, or its own that timed out) next to engines that live: the "reconciling model
//! M" marker.
//!
//! Recovery takes the service's tasks that no job records as the candidates for the lost
//! creates. A live engine's create whose answer is on its way (or whose task id is not
//! written yet) is such a task too. So the adopter first holds a marker for the model,
//! which stops every engine from sending a create of it (`mark_sending` checks it in its
//! statement), then waits until no create of the model is on the wire anywhere
//! (`creates_on_the_wire`), and only then looks at the list.
//!
//! The marker lasts while its engine's lease holds and until `until_ms` (the database's
//! clock), renewed while the engine works: a reconciler that died or hung blocks nobody
//! for long. Whether a marker blocks is `marker_blocks`, pure; the SQL mirrors it.

use std::time::Duration;

use super::db::{Dialect, params};
use super::team::now_ms;
use super::work::EngineStore;
use super::{JobId, StoreError};
use crate::dashscope::Model;

/// A model's marker as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Marker {
    /// The engine reconciling.
    engine_id: i64,
    /// ms since the epoch, the database's clock: the marker lapses after it.
    until_ms: i64,
    /// The engine's lease holds.
    holder_alive: bool,
}

/// Whether `marker` keeps engine `me` from taking the model's marker at `now` (ms): it
/// is another engine's, alive, and not yet lapsed.
fn marker_blocks(marker: Option<Marker>, me: i64, now: i64) -> bool {
    marker.is_some_and(|m| m.engine_id != me && m.holder_alive && now <= m.until_ms)
}

/// The condition, on a job of model `?{model}`, "no marker of its model holds" (see
/// `marker_blocks`: here the holder's own creates are held too, since it reconciles).
pub(super) fn no_marker_holds(dialect: Dialect, model: usize) -> String {
    let now = now_ms(dialect);
    format!(
        "NOT EXISTS (SELECT 1 FROM reconciling r JOIN engines e ON e.id = r.engine_id
           WHERE r.model = ?{model} AND r.until_ms >= {now}
             AND e.heartbeat_at + e.lease_ms >= {now})"
    )
}

/// Takes turns with `mark_sending` on PostgreSQL: a marker is written only once the
/// stamps already under way have committed, so that the wait that follows sees them.
pub(super) fn marker_lock(model: Model) -> String {
    format!("wandash reconciling {}", model.id())
}

impl EngineStore {
    /// Takes (or renews) the marker of `model` for this engine, to last `hold` from now
    /// unless renewed; false, writing nothing, while another live engine holds it. A
    /// handle outside the team (the store's tests) runs alone and needs none.
    pub(crate) fn begin_reconciling(
        &self,
        model: Model,
        hold: Duration,
    ) -> Result<bool, StoreError> {
        let Some(me) = self.membership() else {
            return Ok(true);
        };
        let mut conn = self.conn();
        let dialect = conn.dialect();
        let now = now_ms(dialect);
        conn.in_write_tx(|tx| {
            tx.lock_until_commit(&marker_lock(model), false)?;
            let at: i64 = tx.query_row(&format!("SELECT {now}"), params![], |row| row.get(0))?;
            let marker = tx.query_opt(
                &format!(
                    "SELECT r.engine_id, r.until_ms, EXISTS (SELECT 1 FROM engines e
                       WHERE e.id = r.engine_id AND e.heartbeat_at + e.lease_ms >= {now})
                     FROM reconciling r WHERE r.model = ?1"
                ),
                params![model.id()],
                |row| {
                    Ok(Marker {
                        engine_id: row.get(0)?,
                        until_ms: row.get(1)?,
                        holder_alive: row.get(2)?,
                    })
                },
            )?;
            if marker_blocks(marker, me.id, at) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO reconciling (model, engine_id, until_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (model) DO UPDATE SET engine_id = excluded.engine_id,
                   until_ms = excluded.until_ms",
                params![model.id(), me.id, at + hold.as_millis() as i64],
            )?;
            Ok(true)
        })
    }

    /// Gives up this engine's marker of `model`, if it holds it.
    pub(crate) fn end_reconciling(&self, model: Model) -> Result<(), StoreError> {
        if let Some(me) = self.membership() {
            self.conn().execute(
                "DELETE FROM reconciling WHERE model = ?1 AND engine_id = ?2",
                params![model.id(), me.id],
            )?;
        }
        Ok(())
    }

    /// The models whose marker holds (any engine's, this one's too): the scheduler
    /// claims none of their jobs meanwhile, since none could be sent.
    pub(crate) fn reconciling_models(&self) -> Result<Vec<Model>, StoreError> {
        let mut conn = self.conn();
        let now = now_ms(conn.dialect());
        let ids: Vec<String> = conn.query_map(
            &format!(
                "SELECT r.model FROM reconciling r JOIN engines e ON e.id = r.engine_id
                 WHERE r.until_ms >= {now} AND e.heartbeat_at + e.lease_ms >= {now}"
            ),
            params![],
            |row| row.get(0),
        )?;
        // A model this build does not know is none of its business.
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Creates of `model` that may be on the wire, on any live engine: jobs stamped as
    /// sending, with no task recorded, that their engine sent itself (adopted ones wait
    /// to be looked up, they are not being answered).
    pub(crate) fn creates_on_the_wire(&self, model: Model) -> Result<u32, StoreError> {
        let mut conn = self.conn();
        let now = now_ms(conn.dialect());
        let n: i64 = conn.query_row(
            &format!(
                "SELECT COUNT(*) FROM jobs j
                 WHERE j.model = ?1 AND j.state = 'submitting' AND j.submitted_at IS NOT NULL
                   AND j.task_id IS NULL AND j.adopted_unanswered = 0
                   AND EXISTS (SELECT 1 FROM engines e
                     WHERE e.id = j.engine_id AND e.heartbeat_at + e.lease_ms >= {now})"
            ),
            params![model.id()],
            |row| row.get(0),
        )?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Sets this engine's own job `id`, whose create went unanswered, to be looked up like
    /// an adopted one: no engine waits for its answer any more (`creates_on_the_wire`),
    /// and if the look-up is put off the next adoption round makes it
    /// (`adopted_unanswered`). False if the job is no longer this engine's sent,
    /// unanswered create. A handle outside the team has no rounds and sets nothing.
    pub(crate) fn await_lookup(&self, id: JobId) -> Result<bool, StoreError> {
        let Some(me) = self.membership() else {
            return Ok(false);
        };
        let changed = self.conn().execute(
            "UPDATE jobs SET adopted_unanswered = 1
             WHERE id = ?1 AND engine_id = ?2 AND state = 'submitting'
               AND submitted_at IS NOT NULL AND task_id IS NULL",
            params![id.0, me.id],
        )?;
        Ok(changed == 1)
    }

    /// Makes this engine the runner of every unanswered create of `model` that no live
    /// engine waits an answer for (set to await a look-up, or left by an engine that is
    /// gone) and returns them all, this engine's own too. Only under this engine's marker
    /// and once `creates_on_the_wire` is 0: they are then every lost create a look-up of
    /// the model must pair with the service's unrecorded tasks at once, and an engine
    /// whose look-up was put off holds no place for its job meanwhile.
    pub(crate) fn gather_awaiting_lookup(&self, model: Model) -> Result<Vec<JobId>, StoreError> {
        let Some(me) = self.membership() else {
            return Ok(Vec::new());
        };
        let mut conn = self.conn();
        let now = now_ms(conn.dialect());
        conn.in_write_tx(|tx| {
            let mut ids = tx.query_map(
                &format!(
                    "UPDATE jobs SET engine_id = ?1, adopted_unanswered = 1
                     WHERE model = ?2 AND state = 'submitting' AND submitted_at IS NOT NULL
                       AND task_id IS NULL
                       AND (adopted_unanswered = 1 OR engine_id IS NULL OR NOT EXISTS (
                         SELECT 1 FROM engines e
                         WHERE e.id = jobs.engine_id AND e.heartbeat_at + e.lease_ms >= {now}))
                     RETURNING id"
                ),
                params![me.id, model.id()],
                |row| row.get(0).map(JobId),
            )?;
            ids.sort();
            Ok(ids)
        })
    }

    /// This engine's jobs adopted with their create unanswered and not yet looked up in
    /// the service's task list (an earlier look was put off): the next round looks again.
    pub(crate) fn adopted_unanswered(&self) -> Result<Vec<JobId>, StoreError> {
        let Some(me) = self.membership() else {
            return Ok(Vec::new());
        };
        self.conn().query_map(
            "SELECT id FROM jobs WHERE engine_id = ?1 AND adopted_unanswered = 1
               AND state = 'submitting' AND submitted_at IS NOT NULL AND task_id IS NULL
             ORDER BY id",
            params![me.id],
            |row| row.get(0).map(JobId),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: i64 = 1;
    const OTHER: i64 = 2;

    fn marker(engine_id: i64, until_ms: i64, holder_alive: bool) -> Option<Marker> {
        Some(Marker {
            engine_id,
            until_ms,
            holder_alive,
        })
    }

    #[test]
    fn no_marker_blocks_nobody() {
        assert!(!marker_blocks(None, ME, 1_000));
    }

    #[test]
    fn a_live_engines_marker_blocks_the_others_until_it_lapses() {
        assert!(marker_blocks(marker(OTHER, 2_000, true), ME, 1_000));
        assert!(marker_blocks(marker(OTHER, 2_000, true), ME, 2_000));
        assert!(!marker_blocks(marker(OTHER, 2_000, true), ME, 2_001));
    }

    #[test]
    fn a_dead_engines_marker_blocks_nobody() {
        assert!(!marker_blocks(marker(OTHER, 2_000, false), ME, 1_000));
    }

    #[test]
    fn the_holder_renews_its_own_marker() {
        assert!(!marker_blocks(marker(ME, 2_000, true), ME, 1_000));
    }
}
