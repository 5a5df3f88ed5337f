//! A team of engines on one store: each engine registers with a lease it renews, runs the
//! jobs it claimed, adopts those of engines whose lease expired, and draws from quotas
//! kept as rows (`rate_buckets`) so that every engine on the account keeps to one limit.
//!
//! On PostgreSQL any number of engines share the store. On SQLite one engine runs at a
//! time (a file lock says so), so it adopts every job left by an earlier one at once and
//! keeps its quotas in memory.
//!
//! Times are the database's clock in ms since the epoch: hosts need not agree on the time.
//! The decisions (token refill, whether a claim fits the in-flight limit) are the pure
//! functions at the end, the SQL is the edge.

use std::time::Duration;

use super::db::{Db, Dialect, params};
use super::work::{EngineStore, claim_in};
use super::{JobDetail, JobId, Store, StoreError};
use crate::dashscope::Model;

/// Who runs an engine, as its row in `engines` tells a person looking at the team.
#[derive(Debug, Clone)]
pub struct EngineIdentity {
    pub host: String,
    pub pid: u32,
    pub user: String,
}

/// An engine's place in the team: its row in `engines` and how long its lease lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Membership {
    pub id: i64,
    pub lease: Duration,
    /// Other engines may run on this store at the same time (PostgreSQL): claims count
    /// the in-flight jobs of all of them, quotas are the store's rows, and only jobs of
    /// expired engines are adopted.
    pub shared: bool,
}

/// What a claim came to.
#[derive(Debug)]
pub(crate) enum Claim {
    Claimed(Box<JobDetail>),
    /// No longer queued: cancelled, or claimed by another engine meanwhile.
    Gone,
    /// The model's in-flight limit is reached across the engines: try again later.
    Full,
    /// A place is free, but this engine has its share of them and another engine may be
    /// about to take it: try again later, then without sharing.
    LeftForOthers,
}

/// The states of a job some engine is running.
const ACTIVE: &str = "('submitting', 'submitted', 'running')";

/// The database's clock, ms since the epoch.
pub(super) fn now_ms(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

impl Store {
    /// This store as the engine's handle of a registered engine, whose lease lasts
    /// `lease` from each renewal. On SQLite the rows of earlier engines go (the file lock
    /// proves they are gone).
    pub(crate) fn into_team_engine(
        self,
        who: &EngineIdentity,
        lease: Duration,
    ) -> Result<EngineStore, StoreError> {
        let membership = {
            let mut conn = self.conn();
            let shared = conn.dialect() == Dialect::Postgres;
            let now = now_ms(conn.dialect());
            conn.in_write_tx(|tx| {
                if !shared {
                    tx.execute("DELETE FROM engines", params![])?;
                }
                let id: i64 = tx.query_row(
                    &format!(
                        "INSERT INTO engines (host, pid, os_user, lease_ms, started_at, heartbeat_at)
                         VALUES (?1, ?2, ?3, ?4, {now}, {now}) RETURNING id"
                    ),
                    params![who.host, who.pid, who.user, lease.as_millis() as i64],
                    |row| row.get(0),
                )?;
                Ok(Membership { id, lease, shared })
            })?
        };
        Ok(self.into_engine_as(membership))
    }
}

impl EngineStore {
    /// Renews this engine's lease; false if it had already expired (the engine was held
    /// up longer than its lease, and another engine may have adopted its jobs).
    pub(crate) fn renew_lease(&self) -> Result<bool, StoreError> {
        let Some(me) = self.membership() else {
            return Ok(true);
        };
        let mut conn = self.conn();
        let now = now_ms(conn.dialect());
        let renewed = conn.execute(
            &format!(
                "UPDATE engines SET heartbeat_at = {now}
                 WHERE id = ?1 AND heartbeat_at + lease_ms >= {now}"
            ),
            params![me.id],
        )?;
        Ok(renewed == 1)
    }

    /// Takes this engine off the team (a clean stop): the jobs it leaves running are
    /// adopted by the next engine that looks, without waiting for the lease to run out.
    pub(crate) fn leave_team(&self) -> Result<(), StoreError> {
        if let Some(me) = self.membership() {
            let mut conn = self.conn();
            conn.in_write_tx(|tx| {
                tx.execute("DELETE FROM engines WHERE id = ?1", params![me.id])?;
                // A look-up cut by the stop: its marker would hold nothing anyway.
                tx.execute(
                    "DELETE FROM reconciling WHERE engine_id = ?1",
                    params![me.id],
                )?;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Makes this engine the runner of every running job whose engine is gone (its lease
    /// expired, it left, or the job predates the team); returns them. A job whose create
    /// went unanswered is marked `adopted_unanswered` until it is claimed again: no
    /// engine waits for its answer (see `creates_on_the_wire`). One statement, so
    /// that of two engines adopting at once each job goes to one (PostgreSQL rechecks the
    /// condition on a row another transaction just changed).
    pub(crate) fn adopt_orphans(&self) -> Result<Vec<JobId>, StoreError> {
        let Some(me) = self.membership() else {
            return Ok(Vec::new());
        };
        let mut conn = self.conn();
        let now = now_ms(conn.dialect());
        let orphaned = if me.shared {
            format!(
                "(engine_id IS NULL OR (engine_id <> ?1 AND NOT EXISTS (
                    SELECT 1 FROM engines e
                    WHERE e.id = jobs.engine_id AND e.heartbeat_at + e.lease_ms >= {now})))"
            )
        } else {
            "(engine_id IS NULL OR engine_id <> ?1)".to_string()
        };
        conn.in_write_tx(|tx| {
            let adopted = tx.query_map(
                &format!(
                    "UPDATE jobs SET engine_id = ?1, adopted_unanswered = CASE
                       WHEN state = 'submitting' AND submitted_at IS NOT NULL AND task_id IS NULL
                       THEN 1 ELSE adopted_unanswered END
                     WHERE state IN {ACTIVE} AND {orphaned}
                     RETURNING id"
                ),
                params![me.id],
                |row| row.get(0).map(JobId),
            )?;
            // Expired engines have nothing left to run; their renewal finds them gone.
            tx.execute(
                &format!("DELETE FROM engines WHERE heartbeat_at + lease_ms < {now}"),
                params![],
            )?;
            Ok(adopted)
        })
    }

    /// Jobs some engine of the store is running (submitting, submitted or running).
    pub(crate) fn active_anywhere(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            &format!("SELECT COUNT(*) FROM jobs WHERE state IN {ACTIVE}"),
            params![],
            |row| row.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Claims queued job `id` (see `claim_for_submit`) if `model`'s jobs in flight, on
    /// every engine of the store, leave room for one more under `in_flight_limit` (and,
    /// with `share`, if this engine has fewer than its share of them: see `claim_fits`).
    /// The count and the claim are one transaction, and claims of one model take turns
    /// (an advisory lock on PostgreSQL, the write lock on SQLite), so two engines cannot
    /// both take the last place.
    pub(crate) fn claim_within(
        &self,
        id: JobId,
        model: Model,
        in_flight_limit: u32,
        share: bool,
    ) -> Result<Claim, StoreError> {
        let engine = self.membership().map(|m| m.id);
        let mut conn = self.conn();
        let dialect = conn.dialect();
        let now = now_ms(dialect);
        conn.in_write_tx(|tx| {
            tx.lock_until_commit(&format!("wandash in flight {}", model.id()), false)?;
            let engines: i64 = tx.query_row(
                &format!("SELECT COUNT(*) FROM engines WHERE heartbeat_at + lease_ms >= {now}"),
                params![],
                |row| row.get(0),
            )?;
            let in_flight = InFlight {
                total: in_flight_count(tx, model, None)?,
                mine: match engine {
                    Some(me) => in_flight_count(tx, model, Some(me))?,
                    None => 0,
                },
                engines: u32::try_from(engines).unwrap_or(u32::MAX),
            };
            match claim_fits(in_flight, in_flight_limit, share) {
                Fit::Fits => {}
                Fit::Full => return Ok(Claim::Full),
                Fit::LeftForOthers => return Ok(Claim::LeftForOthers),
            }
            let claim = match claim_in(tx, id, engine)? {
                Some(detail) => Claim::Claimed(Box::new(detail)),
                None => Claim::Gone,
            };
            Ok(claim)
        })
    }

    /// Takes a token from the shared bucket `name` (refilled at `rate` per second, holding
    /// `capacity` at most; created full); `None` when taken, else how long until one is
    /// there. A short transaction holding the bucket's row.
    pub(crate) fn take_token(
        &self,
        name: &str,
        rate: f64,
        capacity: f64,
    ) -> Result<Option<Duration>, StoreError> {
        self.change_bucket(name, capacity, |bucket, now| {
            bucket.take(now, rate, capacity)
        })
    }

    /// Applies a 429 one engine got to the shared bucket `name` (see `Bucket::throttled`),
    /// so that every engine of the team waits, not only the throttled one.
    pub(crate) fn throttle_bucket(
        &self,
        name: &str,
        rate: f64,
        capacity: f64,
        speed: f64,
    ) -> Result<(), StoreError> {
        self.change_bucket(name, capacity, |bucket, now| {
            (bucket.throttled(now, rate, capacity, speed), ())
        })
    }

    /// Reads the shared bucket `name` (created holding `capacity`), writes back what
    /// `change` makes of it at the database's time, and returns the rest of its answer:
    /// one transaction holding the bucket's row.
    fn change_bucket<T>(
        &self,
        name: &str,
        capacity: f64,
        change: impl Fn(Bucket, i64) -> (Bucket, T),
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let dialect = conn.dialect();
        let now = now_ms(dialect);
        conn.in_write_tx(|tx| {
            tx.execute(
                &format!(
                    "INSERT INTO rate_buckets (name, tokens, refilled_at) VALUES (?1, ?2, {now})
                     ON CONFLICT (name) DO NOTHING"
                ),
                params![name, capacity],
            )?;
            let lock = if dialect == Dialect::Postgres {
                "FOR UPDATE"
            } else {
                ""
            };
            let (bucket, at): (Bucket, i64) = tx.query_row(
                &format!(
                    "SELECT tokens, refilled_at, {now} FROM rate_buckets WHERE name = ?1 {lock}"
                ),
                params![name],
                |row| {
                    Ok((
                        Bucket {
                            tokens: row.get(0)?,
                            refilled_at: row.get(1)?,
                        },
                        row.get(2)?,
                    ))
                },
            )?;
            let (after, answer) = change(bucket, at);
            tx.execute(
                "UPDATE rate_buckets SET tokens = ?1, refilled_at = ?2 WHERE name = ?3",
                params![after.tokens, after.refilled_at, name],
            )?;
            Ok(answer)
        })
    }
}

/// Jobs of `model` whose task may still be on the service (claimed, sending, pending or
/// running there), of every engine or of `engine`: what its in-flight limit counts.
fn in_flight_count(tx: &mut Db, model: Model, engine: Option<i64>) -> Result<u32, StoreError> {
    let sql = format!(
        "SELECT COUNT(*) FROM jobs WHERE model = ?1 AND state IN {ACTIVE}
           AND (task_status IS NULL OR task_status IN ('PENDING', 'RUNNING', 'SUSPENDED'))"
    );
    let n: i64 = match engine {
        Some(engine) => tx.query_row(
            &format!("{sql} AND engine_id = ?2"),
            params![model.id(), engine],
            |row| row.get(0),
        )?,
        None => tx.query_row(&sql, params![model.id()], |row| row.get(0))?,
    };
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// A model's jobs in flight when an engine would claim one more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InFlight {
    /// Of every engine.
    pub total: u32,
    /// Of the engine claiming.
    pub mine: u32,
    /// Engines of the store whose lease holds (the claiming one among them).
    pub engines: u32,
}

/// Whether a claim fits a model's in-flight limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    Fits,
    Full,
    LeftForOthers,
}

/// Whether one more job of a model may go in flight under `limit`. With `share`, an
/// engine holding its share of the places (the limit over the live engines, rounded up)
/// leaves a free place to the others: the engine whose task just ended would otherwise
/// always take the place again before an engine that polls the store sees it. Asked
/// again without `share` (the place stayed free), it takes it: the others may have
/// nothing to send.
pub(crate) fn claim_fits(in_flight: InFlight, limit: u32, share: bool) -> Fit {
    let fair_share = limit.div_ceil(in_flight.engines.max(1)).max(1);
    if in_flight.total >= limit {
        Fit::Full
    } else if share && in_flight.mine >= fair_share {
        Fit::LeftForOthers
    } else {
        Fit::Fits
    }
}

/// A token bucket as its row keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    pub tokens: f64,
    /// ms since the epoch, the database's clock.
    pub refilled_at: i64,
}

impl Bucket {
    /// The bucket refilled up to `now` (ms) at `rate` per second, at most `capacity`, then
    /// one token taken if there is one: the bucket to write back, and `None` when a
    /// token was taken, else the wait until there is one. A clock that went back refills
    /// nothing (and keeps the later time).
    pub(crate) fn take(self, now: i64, rate: f64, capacity: f64) -> (Bucket, Option<Duration>) {
        let rate = rate.max(0.01);
        let Bucket {
            tokens,
            refilled_at,
        } = self.refilled(now, rate, capacity);
        if tokens >= 1.0 {
            (
                Bucket {
                    tokens: tokens - 1.0,
                    refilled_at,
                },
                None,
            )
        } else {
            let wait = Duration::from_secs_f64((1.0 - tokens) / rate);
            (
                Bucket {
                    tokens,
                    refilled_at,
                },
                Some(wait.max(Duration::from_millis(1))),
            )
        }
    }

    /// The bucket after an engine got a 429 and slowed its own pace to `speed` (of 1, see
    /// `CreateRate::throttled`): refilled up to `now`, then in debt, so that the next
    /// token is as far off at the bucket's full `rate` as the throttled engine's own next
    /// create at its slowed one, `1 / (rate * speed)` seconds; every engine of the team
    /// backs off as much as the one the service refused. A bucket already deeper in debt
    /// keeps it: engines throttled by one burst do not add up their penalties.
    pub(crate) fn throttled(self, now: i64, rate: f64, capacity: f64, speed: f64) -> Bucket {
        let speed = speed.clamp(0.01, 1.0);
        let refilled = self.refilled(now, rate.max(0.01), capacity);
        // (1 - tokens) / rate = 1 / (rate * speed)
        let in_debt = 1.0 - 1.0 / speed;
        Bucket {
            tokens: refilled.tokens.min(in_debt),
            ..refilled
        }
    }

    /// Refilled up to `now` at `rate` per second, at most `capacity`. A clock that went
    /// back refills nothing (and keeps the later time).
    fn refilled(self, now: i64, rate: f64, capacity: f64) -> Bucket {
        let elapsed = (now - self.refilled_at).max(0) as f64 / 1000.0;
        Bucket {
            tokens: (self.tokens + elapsed * rate).min(capacity.max(1.0)),
            refilled_at: now.max(self.refilled_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_gives_its_burst_then_its_rate() {
        let full = Bucket {
            tokens: 2.0,
            refilled_at: 1_000,
        };
        let (one, wait) = full.take(1_000, 2.0, 2.0);
        assert_eq!(wait, None);
        let (two, wait) = one.take(1_000, 2.0, 2.0);
        assert_eq!((two.tokens, wait), (0.0, None));
        let (empty, wait) = two.take(1_000, 2.0, 2.0);
        assert_eq!(wait, Some(Duration::from_millis(500)));
        assert_eq!(empty, two, "nothing taken");
        let (_, wait) = empty.take(1_500, 2.0, 2.0);
        assert_eq!(wait, None, "refilled at the rate");
    }

    #[test]
    fn a_long_quiet_refills_no_more_than_the_capacity() {
        let empty = Bucket {
            tokens: 0.0,
            refilled_at: 0,
        };
        let (after, wait) = empty.take(3_600_000, 2.0, 2.0);
        assert_eq!(wait, None);
        assert_eq!(after.tokens, 1.0);
        assert_eq!(after.refilled_at, 3_600_000);
    }

    #[test]
    fn a_clock_that_went_back_refills_nothing() {
        let half = Bucket {
            tokens: 0.5,
            refilled_at: 10_000,
        };
        let (after, wait) = half.take(9_000, 1.0, 2.0);
        assert_eq!(wait, Some(Duration::from_millis(500)));
        assert_eq!(
            after,
            Bucket {
                tokens: 0.5,
                refilled_at: 10_000
            }
        );
    }

    #[test]
    fn a_throttled_bucket_owes_what_the_throttled_engine_waits() {
        let full = Bucket {
            tokens: 2.0,
            refilled_at: 1_000,
        };
        // At half speed the engine's next create is 1 s off at 2 per s: so is the team's.
        let owing = full.throttled(1_000, 2.0, 2.0, 0.5);
        assert_eq!(owing.tokens, -1.0);
        let (_, wait) = owing.take(1_000, 2.0, 2.0);
        assert_eq!(wait, Some(Duration::from_secs(1)));
        let (_, wait) = owing.take(2_000, 2.0, 2.0);
        assert_eq!(wait, None, "paid off at the full rate");
        // A tenth of the speed: five seconds.
        let (_, wait) = full.throttled(1_000, 2.0, 2.0, 0.1).take(1_000, 2.0, 2.0);
        assert_eq!(wait, Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_second_throttle_of_one_burst_does_not_add_to_the_debt() {
        let empty = Bucket {
            tokens: 0.0,
            refilled_at: 0,
        };
        let once = empty.throttled(0, 1.0, 2.0, 0.25);
        assert_eq!(once.tokens, -3.0);
        assert_eq!(once.throttled(0, 1.0, 2.0, 0.5), once, "already deeper");
        let deeper = once.throttled(0, 1.0, 2.0, 0.125);
        assert_eq!(deeper.tokens, -7.0, "a slower engine's wait is longer");
        // Refilled first: time that passed counts before the debt is set.
        assert_eq!(once.throttled(10_000, 1.0, 2.0, 0.5).tokens, -1.0);
        assert_eq!(once.throttled(10_000, 1.0, 2.0, 0.5).refilled_at, 10_000);
    }

    fn in_flight(total: u32, mine: u32, engines: u32) -> InFlight {
        InFlight {
            total,
            mine,
            engines,
        }
    }

    #[test]
    fn a_claim_fits_below_the_limit_only() {
        for share in [false, true] {
            assert_eq!(claim_fits(in_flight(0, 0, 1), 2, share), Fit::Fits);
            assert_eq!(claim_fits(in_flight(1, 1, 1), 2, share), Fit::Fits);
            assert_eq!(claim_fits(in_flight(2, 0, 2), 2, share), Fit::Full);
            assert_eq!(
                claim_fits(in_flight(3, 1, 2), 2, share),
                Fit::Full,
                "over after a limit was lowered"
            );
            assert_eq!(claim_fits(in_flight(0, 0, 0), 0, share), Fit::Full);
        }
    }

    #[test]
    fn an_engine_with_its_share_leaves_a_free_place_once() {
        // Two engines, two places: one each.
        assert_eq!(claim_fits(in_flight(1, 1, 2), 2, true), Fit::LeftForOthers);
        assert_eq!(claim_fits(in_flight(1, 0, 2), 2, true), Fit::Fits);
        assert_eq!(claim_fits(in_flight(1, 1, 2), 2, false), Fit::Fits);
        // Three engines, two places: the share rounds up to one.
        assert_eq!(claim_fits(in_flight(1, 1, 3), 2, true), Fit::LeftForOthers);
        // Four places, three engines: two each at most while sharing.
        assert_eq!(claim_fits(in_flight(2, 1, 3), 4, true), Fit::Fits);
        assert_eq!(claim_fits(in_flight(3, 2, 3), 4, true), Fit::LeftForOthers);
        // No live engine counted yet (a lease read as expired): the whole limit.
        assert_eq!(claim_fits(in_flight(1, 1, 0), 2, true), Fit::Fits);
    }
}
