//! When to try again: exponential backoff with full jitter, and a retry budget per upstream
//! so that retries can add only a bounded fraction to the load clients cause — an outage
//! never multiplies the traffic on the failing service.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RetryConfig;

/// Waits between tries: the n-th retry waits a uniformly random time in
/// `[0, min(max, base * 2^(n-1))]` ("full jitter"), so synchronized clients spread out.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            base: config.backoff_base,
            max: config.backoff_max,
        }
    }

    /// The wait before retry number `retry` (1-based), given a jitter draw in `[0, 1)`.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let exp = self.base.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        exp.min(self.max).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Calls and retries counted over a sliding window of time slots.
pub struct RetryBudget {
    ratio: f64,
    /// Retries always allowed per window, however few calls there were.
    floor: f64,
    slot: Duration,
    slots: usize,
    counts: Mutex<VecDeque<Slot>>,
}

/// A slot's times are kept as the instants they end at, so that a call compares instants
/// instead of measuring durations (two subtractions a call, ~100 instructions).
#[derive(Clone, Copy)]
struct Slot {
    /// When the next slot begins.
    ends: Instant,
    /// When the slot leaves the window.
    expires: Instant,
    calls: u64,
    retries: u64,
}

const SLOTS: u32 = 10;

impl RetryBudget {
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            ratio: config.budget_ratio,
            floor: config.budget_min_per_second as f64 * config.budget_window.as_secs_f64(),
            slot: config.budget_window / SLOTS,
            slots: SLOTS as usize,
            counts: Mutex::new(VecDeque::with_capacity(SLOTS as usize + 1)),
        }
    }

    /// A call a client caused (first tries only), as of `now`.
    pub fn deposit(&self, now: Instant) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate(&mut counts, now);
        if let Some(current) = counts.back_mut() {
            current.calls += 1;
        }
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        self.rotate(&mut counts, Instant::now());
        let (calls, retries) = counts
            .iter()
            .fold((0, 0), |(c, r), s| (c + s.calls, r + s.retries));
        let allowed = self.ratio * calls as f64 + self.floor;
        if (retries + 1) as f64 > allowed {
            return false;
        }
        if let Some(current) = counts.back_mut() {
            current.retries += 1;
        }
        true
    }

    /// Drops slots older than the window and makes sure the newest slot is current.
    fn rotate(&self, counts: &mut VecDeque<Slot>, now: Instant) {
        while counts.front().is_some_and(|s| now >= s.expires) {
            counts.pop_front();
        }
        let current = counts.back().is_some_and(|s| now < s.ends);
        if !current {
            counts.push_back(Slot {
                ends: now + self.slot,
                expires: now + self.slot * self.slots as u32,
                calls: 0,
                retries: 0,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RetryConfig {
        RetryConfig {
            attempts: 3,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(200),
            budget_ratio: 0.2,
            budget_min_per_second: 1,
            budget_window: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_grows_exponentially_with_full_jitter_and_a_cap() {
        let b = Backoff::new(&config());
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(10));
        assert_eq!(b.delay(2, 1.0), Duration::from_millis(20));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(40));
        assert_eq!(b.delay(10, 1.0), Duration::from_millis(200));
        assert_eq!(b.delay(40, 1.0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_capped_at_the_ratio_plus_the_floor() {
        let budget = RetryBudget::new(&config());
        for _ in 0..100 {
            budget.deposit(Instant::now());
        }
        // 20% of 100 calls + 1/s over 10 s = 30 retries, no more.
        let granted = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(granted, 30);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_refills_as_the_window_slides() {
        let budget = RetryBudget::new(&config());
        for _ in 0..50 {
            budget.deposit(Instant::now());
        }
        while budget.withdraw() {}
        assert!(!budget.withdraw());
        tokio::time::advance(Duration::from_secs(11)).await;
        // Old calls and retries left the window: only the floor remains.
        let granted = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(granted, 10);
    }
}
