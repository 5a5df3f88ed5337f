//! Pacing: token buckets for creates (per model) and task queries (per account), and the
//! backoff after failures.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::EngineConfig;

/// Exponential backoff with jitter: how long to wait after a failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub fn of(config: &EngineConfig) -> Self {
        Backoff {
            base: config.backoff_base,
            cap: config.backoff_cap,
        }
    }

    /// The wait after the `attempt`th failure: `base` doubled for each failure after the
    /// first, at most `cap`, then scaled by `jitter` (in [0, 1)) to between half and all
    /// of that, so that jobs failing together do not retry together.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let doubled = self.base.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let capped = doubled.min(self.cap.as_secs_f64());
        Duration::from_secs_f64(capped * (0.5 + 0.5 * jitter))
    }
}

/// A bucket of `capacity` tokens refilled at `rate` per second.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// Starts full, like the service's bucket after a quiet period.
    pub(crate) fn new(rate: f64, capacity: f64) -> Self {
        let rate = rate.max(0.01);
        let capacity = capacity.max(1.0);
        TokenBucket {
            capacity,
            rate,
            tokens: capacity,
            refilled_at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled_at = now;
    }

    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available.
    pub(crate) fn wait_time(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    /// Changes the refill rate (after a 429, or while recovering from one).
    pub(crate) fn set_rate(&mut self, rate: f64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(0.01);
    }

    /// Empties the bucket: after a 429 the service's bucket is empty too.
    pub(crate) fn drain(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = 0.0;
    }
}

/// The account-wide budget for task queries (polls, lists, cancels), shared by all tasks.
#[derive(Debug)]
pub(crate) struct QueryBudget {
    bucket: Mutex<TokenBucket>,
}

impl QueryBudget {
    /// A small burst keeps any one-second window under `rate` + burst, which the caller
    /// picks below the service's 20 per second.
    pub(crate) fn new(per_second: f64) -> Self {
        let (rate, burst) = Self::shape(per_second);
        QueryBudget {
            bucket: Mutex::new(TokenBucket::new(rate, burst)),
        }
    }

    /// The bucket's refill rate and capacity for `per_second` queries: a fifth of a
    /// second's worth of burst.
    pub(crate) fn shape(per_second: f64) -> (f64, f64) {
        (per_second, (per_second / 5.0).floor())
    }

    pub(crate) async fn acquire(&self) {
        loop {
            let wait = {
                let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                if bucket.try_take(now) {
                    return;
                }
                bucket.wait_time(now)
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

/// Creates are sent a hair under the quota, and one of the service's bucket tokens is kept
/// in reserve (our burst is one smaller than its), so that a create arriving a little
/// early because of network jitter finds a spare token instead of a 429. The reserve
/// costs one create's spacing at the start of a batch; a wider rate margin would cost
/// that on every create.
const RATE_MARGIN: f64 = 0.99;

/// One model's create pace: the service's bucket, halved after a 429 and recovering
/// step by step with each accepted create (additive increase, multiplicative decrease).
#[derive(Debug)]
pub(crate) struct CreateRate {
    state: Mutex<(TokenBucket, f64)>,
    full_rate: f64,
}

impl CreateRate {
    pub(crate) fn new(submit_per_second: f64) -> Self {
        let (full_rate, burst) = Self::shape(submit_per_second);
        let bucket = TokenBucket::new(full_rate, burst);
        CreateRate {
            state: Mutex::new((bucket, 1.0)),
            full_rate,
        }
    }

    /// The bucket's refill rate and capacity for a quota of `submit_per_second`: a hair
    /// under the rate, one token less than the service's bucket, which holds
    /// `submit_per_second` tokens (at least one).
    pub(crate) fn shape(submit_per_second: f64) -> (f64, f64) {
        let burst = (submit_per_second.max(1.0) - 1.0).max(1.0);
        (submit_per_second * RATE_MARGIN, burst)
    }

    /// Waits for a create token. Taken right before sending (not when the job is
    /// claimed), so that the service sees creates spaced as the bucket spaced them.
    pub(crate) async fn acquire(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                if state.0.try_take(now) {
                    return;
                }
                state.0.wait_time(now)
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Returns the current speed (1.0 = full rate).
    pub(crate) fn throttled(&self) -> f64 {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        state.1 = (state.1 * 0.5).max(0.1);
        let rate = self.full_rate * state.1;
        state.0.set_rate(rate, now);
        // After a 429 the service's bucket is empty too.
        state.0.drain(now);
        state.1
    }

    pub(crate) fn accepted(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.1 < 1.0 {
            state.1 = (state.1 + 0.1).min(1.0);
            let rate = self.full_rate * state.1;
            state.0.set_rate(rate, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 2.0);
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert_eq!(bucket.wait_time(start), Duration::from_millis(500));
        assert!(bucket.try_take(start + Duration::from_millis(500)));
        assert!(!bucket.try_take(start + Duration::from_millis(600)));
        // Never more than the capacity, however long it was idle.
        let later = start + Duration::from_secs(60);
        assert!(bucket.try_take(later) && bucket.try_take(later) && !bucket.try_take(later));
        bucket.set_rate(1.0, later);
        assert_eq!(bucket.wait_time(later), Duration::from_secs(1));
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_its_cap_and_jitters_down_to_half() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        let longest = |attempt| backoff.delay(attempt, 1.0);
        assert_eq!(longest(0), Duration::from_secs(1));
        assert_eq!(longest(1), Duration::from_secs(1));
        assert_eq!(longest(2), Duration::from_secs(2));
        assert_eq!(longest(4), Duration::from_secs(8));
        assert_eq!(longest(7), Duration::from_secs(60), "capped");
        assert_eq!(longest(u32::MAX), Duration::from_secs(60), "no overflow");
        assert_eq!(
            backoff.delay(4, 0.0),
            Duration::from_secs(4),
            "half at the least"
        );
        assert_eq!(backoff.delay(4, 0.5), Duration::from_secs(6));
    }
}
