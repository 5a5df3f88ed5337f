//! Rate limiting: token buckets for creates (per model) and task queries (per account).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

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
        QueryBudget {
            bucket: Mutex::new(TokenBucket::new(per_second, (per_second / 5.0).floor())),
        }
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
        let full_rate = submit_per_second * RATE_MARGIN;
        // The service's bucket holds `submit_per_second` tokens (at least one).
        let burst = (submit_per_second.max(1.0) - 1.0).max(1.0);
        let bucket = TokenBucket::new(full_rate, burst);
        CreateRate {
            state: Mutex::new((bucket, 1.0)),
            full_rate,
        }
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
}
