//! The engine as one of a team on a PostgreSQL store: it keeps its lease, stops when it
//! finds the lease lost (others may run its jobs by then), and takes each create and task
//! query from the store's shared buckets as well as from its own pace, so that all the
//! engines together keep to the account's limits. On SQLite (one engine) the shared
//! buckets are skipped: the engine's own pace is the account's.

use std::time::Duration;

use super::ctx::{Ctx, Report};
use super::limits::{CreateRate, QueryBudget};
use crate::dashscope::Model;
use crate::store::{Claim, EngineIdentity, EngineStore, JobId, StoreError};

/// Who runs this engine, for the store's `engines` table: the host name (the kernel's,
/// else `$HOSTNAME`), the process id and the user.
pub(crate) fn identity() -> EngineIdentity {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    EngineIdentity {
        host,
        pid: std::process::id(),
        user,
    }
}

/// How often a lease is renewed: three times per lease, so that one late renewal does
/// not lose it.
pub(crate) fn renewal_interval(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(10))
}

/// Renews the engine's lease until the engine stops. A renewal that finds the lease
/// expired stops the engine: other engines may have adopted its jobs, and two engines
/// following one job could create it twice. A store that cannot be reached is retried;
/// if that lasts past the lease, the next renewal finds it lost.
pub(crate) async fn keep_lease(ctx: std::sync::Arc<Ctx>) {
    let Some(me) = ctx.store.membership() else {
        return;
    };
    let every = renewal_interval(me.lease);
    loop {
        tokio::select! {
            () = ctx.stopping.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match ctx.db(EngineStore::renew_lease).await {
            Ok(true) => {}
            Ok(false) => {
                ctx.report(Report::StopAll(format!(
                    "this engine's lease on the store expired (it was held up for more than {:?}); other engines may run its jobs now",
                    me.lease
                )));
                return;
            }
            Err(e) => tracing::warn!("cannot renew the engine's lease: {e}"),
        }
    }
}

/// Runs `work`, what the engine does before its lease keeper starts (reading the
/// account's limits, up to `quotas_timeout`), renewing the lease meanwhile: a lease
/// shorter than that read would otherwise have run out by the keeper's first renewal,
/// which then stops the engine. What a renewal finds is left to the keeper.
pub(crate) async fn renewing_lease<T>(
    store: &std::sync::Arc<EngineStore>,
    work: impl Future<Output = T>,
) -> T {
    let Some(me) = store.membership() else {
        return work.await;
    };
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            () = tokio::time::sleep(renewal_interval(me.lease)) => {
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.renew_lease()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("cannot renew the engine's lease: {e}"),
                    Err(e) => tracing::warn!("the lease renewal stopped: {e}"),
                }
            }
        }
    }
}

/// Claims queued job `id` of `model`: in a team within the in-flight limit counted over
/// every engine's jobs; alone, the scheduler's own count keeps to the limit.
pub(crate) async fn claim(
    ctx: &Ctx,
    id: JobId,
    model: Model,
    in_flight_limit: u32,
    share: bool,
) -> Result<Claim, StoreError> {
    if ctx.store.membership().is_some_and(|m| m.shared) {
        ctx.db(move |s| s.claim_within(id, model, in_flight_limit, share))
            .await
    } else {
        let claimed = ctx.db(move |s| s.claim_for_submit(id)).await?;
        Ok(claimed.map_or(Claim::Gone, |job| Claim::Claimed(Box::new(job))))
    }
}

/// How often an engine waiting for a place of a model held by other engines looks again.
pub(crate) const PLACE_POLL: Duration = Duration::from_millis(50);

/// Whether no engine of the store runs a job: a team's engine is idle only with the whole
/// store (another engine's jobs may yet come to it, should that engine go).
pub(crate) async fn store_idle(ctx: &Ctx) -> bool {
    match ctx.db(EngineStore::active_anywhere).await {
        Ok(active) => active == 0,
        Err(e) => {
            tracing::error!("cannot count the store's running jobs: {e}");
            false
        }
    }
}

/// The most images whose bytes one engine start uploads (see `backfill_image_blobs`),
/// and the most images without bytes it looks at to find them: a store with a long
/// history is caught up over several starts rather than holding up one.
const BACKFILL_UPLOADS: u32 = 100;
const BACKFILL_SCANNED: u32 = 5_000;

/// Uploads to a PostgreSQL store the bytes of images saved before it kept them, where
/// their files are on this host, so that the other hosts can show them; a bounded batch
/// per start. Spawned beside the scheduler: nothing waits for it.
pub(crate) async fn backfill_image_blobs(ctx: std::sync::Arc<Ctx>) {
    let max_bytes = ctx.config.download_max_bytes;
    let backfill = ctx
        .db(move |s| s.backfill_image_blobs(BACKFILL_UPLOADS, BACKFILL_SCANNED, max_bytes))
        .await;
    let report = match backfill {
        Ok(report) => report,
        Err(e) => {
            tracing::warn!("cannot upload the bytes of earlier images to the store: {e}");
            return;
        }
    };
    for image in &report.mismatched {
        tracing::warn!(
            job = %image.job,
            index = image.index,
            path = %image.path.display(),
            recorded = %image.recorded,
            actual = %image.actual,
            "an image file here does not hash to its recorded sha256; its bytes are not uploaded"
        );
    }
    for why in &report.refused {
        tracing::warn!("an earlier image's bytes are not uploaded: {why}");
    }
    if report.uploaded > 0 || !report.mismatched.is_empty() || !report.refused.is_empty() {
        tracing::info!(
            uploaded = report.uploaded,
            mismatched = report.mismatched.len(),
            refused = report.refused.len(),
            elsewhere = report.not_here,
            "uploaded the bytes of earlier images saved on this host, for the other hosts"
        );
    }
}

/// How long to wait before asking again after the store failed to hand out a token.
const TOKEN_RETRY: Duration = Duration::from_millis(200);

impl Ctx {
    /// Waits for a create token of `model`: this engine's pace (slowed after a 429), then,
    /// in a team, the store's bucket of the model, shared by every engine.
    pub(crate) async fn create_token(&self, model: Model) {
        self.create_rates[&model].acquire().await;
        let (rate, burst) = CreateRate::shape(self.config.limits_for(model).submit_per_second);
        self.shared_token(&format!("create {}", model.id()), rate, burst)
            .await;
    }

    /// Waits for a task-query token: this engine's budget, then, in a team, the store's
    /// `query` bucket, the account's budget shared by every engine.
    pub(crate) async fn query_token(&self) {
        self.queries.acquire().await;
        let (rate, burst) = QueryBudget::shape(self.config.queries_per_second);
        self.shared_token("query", rate, burst).await;
    }

    /// After a 429 on a create of `model` made this engine slow to `speed`: in a team,
    /// puts the store's bucket of the model in debt too (see `Bucket::throttled`), so that
    /// every engine backs off, not only the one the service refused.
    pub(crate) async fn throttle_team(&self, model: Model, speed: f64) {
        if !self.store.membership().is_some_and(|m| m.shared) {
            return;
        }
        let (rate, burst) = CreateRate::shape(self.config.limits_for(model).submit_per_second);
        let name = format!("create {}", model.id());
        let throttled = self
            .db(move |s| s.throttle_bucket(&name, rate, burst, speed))
            .await;
        if let Err(e) = throttled {
            tracing::warn!(%model, "cannot slow the other engines of the team after a 429: {e}");
        }
    }

    async fn shared_token(&self, bucket: &str, rate: f64, capacity: f64) {
        if !self.store.membership().is_some_and(|m| m.shared) {
            return;
        }
        loop {
            let name = bucket.to_string();
            let wait = match self.db(move |s| s.take_token(&name, rate, capacity)).await {
                Ok(None) => return,
                Ok(Some(wait)) => wait,
                Err(e) => {
                    tracing::warn!(bucket, "cannot take a token from the store: {e}");
                    TOKEN_RETRY
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_renewed_three_times_over() {
        assert_eq!(
            renewal_interval(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            renewal_interval(Duration::from_millis(3)),
            Duration::from_millis(10),
            "never spinning"
        );
    }
}
