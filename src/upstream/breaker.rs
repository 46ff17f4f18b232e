//! The circuit breaker of one upstream instance: a small state machine fed by classified
//! outcomes. Closed, it counts outcomes over a rolling window and opens on a failure ratio
//! (with a minimum of calls) or on N failures in a row. Open, it refuses calls until a
//! cool-down passes. Half-open, it lets a bounded number of probes through: their success
//! closes it, any failure opens it again for twice as long as the last time (jittered,
//! capped at `max_cool_down`), so a backend that stays down is probed less and less often.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BreakerConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// What a finished call means to the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A server fault or a timeout.
    Failure,
    /// Says nothing about the instance (never sent, cancelled, a client error).
    Ignored,
}

impl Outcome {
    /// What a call that ended with `error` (or without one) means to its instance: server
    /// faults and timeouts count against it, a client's bad request does not.
    pub fn of(error: Option<&super::UpstreamError>) -> Self {
        match error {
            None => Outcome::Success,
            Some(e) if e.is_instance_fault() => Outcome::Failure,
            Some(_) => Outcome::Ignored,
        }
    }
}

pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
    transitions: AtomicU64,
}

struct Inner {
    state: State,
    /// Outcomes while closed; reset whenever it closes again.
    window: Window,
    in_a_row: u32,
    /// Probes that failed since the breaker last closed: each doubles the cool-down.
    failed_probes: u32,
}

enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// Leave to make one call. Dropped without `finish`, it counts as `Outcome::Ignored`, so a
/// cancelled probe never leaves the breaker stuck half-open.
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    done: bool,
}

impl Permit<'_> {
    /// The call's outcome, known at `now`.
    pub fn finish(mut self, outcome: Outcome, now: Instant) {
        self.done = true;
        self.breaker.record(self.probe, outcome, now);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker
                .record(self.probe, Outcome::Ignored, Instant::now());
        }
    }
}

impl CircuitBreaker {
    pub fn new(config: &BreakerConfig) -> Self {
        Self {
            config: config.clone(),
            inner: Mutex::new(Inner {
                state: State::Closed,
                window: Window::new(config.window),
                in_a_row: 0,
                failed_probes: 0,
            }),
            transitions: AtomicU64::new(0),
        }
    }

    /// Leave to call, or `None` while open (or half-open with all probe slots taken).
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        if !self.config.enabled {
            return Some(self.permit(false));
        }
        let mut inner = self.lock();
        match &mut inner.state {
            State::Closed => Some(self.permit(false)),
            State::Open { until } => {
                if Instant::now() < *until {
                    return None;
                }
                inner.state = State::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                };
                self.transitions.fetch_add(1, Ordering::Relaxed);
                Some(self.permit(true))
            }
            State::HalfOpen { in_flight, .. } => {
                if *in_flight >= self.config.half_open_probes {
                    return None;
                }
                *in_flight += 1;
                Some(self.permit(true))
            }
        }
    }

    pub fn state(&self) -> BreakerState {
        match &self.lock().state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How often the state changed, for metrics.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    fn permit(&self, probe: bool) -> Permit<'_> {
        Permit {
            breaker: self,
            probe,
            done: false,
        }
    }

    fn record(&self, probe: bool, outcome: Outcome, now: Instant) {
        if !self.config.enabled {
            return;
        }
        let mut inner = self.lock();
        let Inner {
            state,
            window,
            in_a_row,
            failed_probes,
        } = &mut *inner;
        let next = match state {
            State::Closed => {
                let (calls, failures) = match outcome {
                    Outcome::Success => {
                        *in_a_row = 0;
                        window.add(false, now)
                    }
                    Outcome::Failure => {
                        *in_a_row += 1;
                        window.add(true, now)
                    }
                    Outcome::Ignored => window.totals(now),
                };
                let ratio_tripped = calls >= u64::from(self.config.min_calls)
                    && failures as f64 >= self.config.failure_ratio * calls as f64;
                (ratio_tripped || *in_a_row >= self.config.consecutive_failures)
                    .then(|| self.open(0))
            }
            // A call admitted before the breaker opened: its outcome is old news.
            State::Open { .. } => None,
            State::HalfOpen {
                in_flight,
                successes,
            } => {
                if probe {
                    *in_flight = in_flight.saturating_sub(1);
                }
                match outcome {
                    Outcome::Failure => {
                        *failed_probes = failed_probes.saturating_add(1);
                        Some(self.open(*failed_probes))
                    }
                    Outcome::Success if probe => {
                        *successes += 1;
                        (*successes >= self.config.half_open_probes).then_some(State::Closed)
                    }
                    _ => None,
                }
            }
        };
        if let Some(next) = next {
            if matches!(next, State::Closed) {
                *window = Window::new(self.config.window);
                *in_a_row = 0;
                *failed_probes = 0;
            }
            *state = next;
            self.transitions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Open for the cool-down, doubled for each of `failed_probes`, capped; a reopening is
    /// jittered by up to 20% down, so instances that opened together do not probe together.
    fn open(&self, failed_probes: u32) -> State {
        let doubled = self
            .config
            .cool_down
            .saturating_mul(1u32 << failed_probes.min(20))
            .min(self.config.max_cool_down);
        let cool_down = if failed_probes == 0 {
            doubled
        } else {
            doubled.mul_f64(1.0 - 0.2 * fastrand::f64())
        };
        State::Open {
            until: Instant::now() + cool_down,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Outcome counts over a rolling window of ten buckets: `(bucket number, calls, failures)`,
/// where a bucket number is the count of bucket spans since the window was made. Every call
/// adds to it and reads its totals at the call's own clock reading: one 64-bit division for both.
struct Window {
    epoch: Instant,
    bucket_nanos: u64,
    buckets: [(u64, u64, u64); 10],
    /// The newest bucket counted in.
    newest: u64,
}

impl Window {
    fn new(span: Duration) -> Self {
        let bucket = (span / 10).max(Duration::from_millis(1));
        Self {
            epoch: Instant::now(),
            bucket_nanos: u64::try_from(bucket.as_nanos()).unwrap_or(u64::MAX),
            buckets: [(0, 0, 0); 10],
            newest: 0,
        }
    }

    /// The bucket of `now`, never one before the newest counted in: a call reads the clock
    /// before it takes the breaker's lock, so of two calls ending together the one read
    /// first may come second, and then counts in the newer bucket.
    fn current(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch);
        (u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX) / self.bucket_nanos).max(self.newest)
    }

    /// Counts a call in the current bucket; the window's totals after it.
    fn add(&mut self, failure: bool, now: Instant) -> (u64, u64) {
        let n = self.current(now);
        self.newest = n;
        let b = &mut self.buckets[(n % 10) as usize];
        if b.0 != n {
            *b = (n, 0, 0);
        }
        b.1 += 1;
        b.2 += u64::from(failure);
        self.totals_at(n)
    }

    fn totals(&self, now: Instant) -> (u64, u64) {
        self.totals_at(self.current(now))
    }

    /// Calls and failures in the ten buckets up to bucket `n`.
    fn totals_at(&self, n: u64) -> (u64, u64) {
        self.buckets
            .iter()
            .filter(|b| n - b.0 < 10 && (b.1 > 0))
            .fold((0, 0), |(c, f), b| (c + b.1, f + b.2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_older_than_the_newest_bucket_counts_in_it() {
        let mut window = Window::new(Duration::from_secs(10));
        let at = |ms| window.epoch + Duration::from_millis(ms);
        let (later, earlier) = (at(1_500), at(900));
        assert_eq!(window.add(false, later), (1, 0));
        // A call whose clock was read before the one above, in the bucket before it.
        assert_eq!(window.add(true, earlier), (2, 1));
        assert_eq!(window.totals(earlier), (2, 1));
        assert_eq!(window.buckets[1], (1, 2, 1));
    }

    fn config() -> BreakerConfig {
        BreakerConfig {
            enabled: true,
            failure_ratio: 0.5,
            min_calls: 10,
            window: Duration::from_secs(10),
            consecutive_failures: 5,
            cool_down: Duration::from_secs(5),
            max_cool_down: Duration::from_secs(30),
            half_open_probes: 2,
        }
    }

    fn call(b: &CircuitBreaker, outcome: Outcome) -> bool {
        match b.try_acquire() {
            Some(p) => {
                p.finish(outcome, Instant::now());
                true
            }
            None => false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_a_row_and_fails_fast() {
        let b = CircuitBreaker::new(&config());
        for _ in 0..4 {
            assert!(call(&b, Outcome::Failure));
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(call(&b, Outcome::Failure));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_failure_ratio_once_enough_calls_were_seen() {
        let b = CircuitBreaker::new(&config());
        for i in 0..9 {
            // F S F S ... never four failures in a row.
            let outcome = if i % 2 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert!(call(&b, outcome));
        }
        // 5 failures of 9 calls: over the ratio but under the minimum of 10 calls.
        assert_eq!(b.state(), BreakerState::Closed);
        // The tenth call, a success, still leaves 5 of 10 failed: at the ratio, so it opens.
        assert!(call(&b, Outcome::Success));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_and_cancelled_calls_do_not_count() {
        let b = CircuitBreaker::new(&config());
        for _ in 0..50 {
            assert!(call(&b, Outcome::Ignored));
            drop(b.try_acquire());
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_bounded_probes_and_closes_on_their_success() {
        let b = CircuitBreaker::new(&config());
        for _ in 0..5 {
            call(&b, Outcome::Failure);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let p1 = b.try_acquire().expect("first probe");
        let p2 = b.try_acquire().expect("second probe");
        assert!(b.try_acquire().is_none(), "only two probes at once");
        p1.finish(Outcome::Success, Instant::now());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        p2.finish(Outcome::Success, Instant::now());
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(call(&b, Outcome::Success));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_longer_than_the_cool_down() {
        let b = CircuitBreaker::new(&config());
        for _ in 0..5 {
            call(&b, Outcome::Failure);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(call(&b, Outcome::Failure));
        assert_eq!(b.state(), BreakerState::Open);
        // Not the same 5 s again: 10 s, less up to 20% jitter.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.try_acquire().is_none());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.try_acquire().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_its_slot() {
        let b = CircuitBreaker::new(&config());
        for _ in 0..5 {
            call(&b, Outcome::Failure);
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(b.try_acquire());
        drop(b.try_acquire());
        assert!(
            b.try_acquire().is_some(),
            "dropped probes must not hold their slots"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window() {
        let b = CircuitBreaker::new(&config());
        for _ in 0..4 {
            call(&b, Outcome::Failure);
            call(&b, Outcome::Success);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..6 {
            call(&b, Outcome::Success);
        }
        for _ in 0..4 {
            call(&b, Outcome::Failure);
            call(&b, Outcome::Success);
        }
        // 4 failures of 14 calls in the window: the old 4 are gone.
        assert_eq!(b.state(), BreakerState::Closed);
    }

    /// Opens `b` (five failures in a row), lets the cool-down pass, and fails one probe.
    fn fail_a_probe(b: &CircuitBreaker) {
        let probe = b
            .try_acquire()
            .expect("a probe once the cool-down has passed");
        probe.finish(Outcome::Failure, Instant::now());
        assert_eq!(b.state(), BreakerState::Open);
    }

    /// Half-open again only after `at_least`, and by `at_most`.
    async fn reopens_between(b: &CircuitBreaker, at_least: Duration, at_most: Duration) {
        tokio::time::advance(at_least - Duration::from_millis(1)).await;
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "half-open before {at_least:?}"
        );
        tokio::time::advance(at_most - at_least + Duration::from_millis(1)).await;
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "still open after {at_most:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn each_failed_probe_doubles_the_cool_down_up_to_its_cap_and_closing_resets_it() {
        let b = CircuitBreaker::new(&config());
        for _ in 0..5 {
            call(&b, Outcome::Failure);
        }
        // The first opening lasts the cool-down exactly.
        reopens_between(&b, Duration::from_secs(5), Duration::from_secs(5)).await;
        // Then 10 s, 20 s (less up to 20% jitter), then the 30 s cap.
        fail_a_probe(&b);
        reopens_between(&b, Duration::from_secs(8), Duration::from_secs(10)).await;
        fail_a_probe(&b);
        reopens_between(&b, Duration::from_secs(16), Duration::from_secs(20)).await;
        fail_a_probe(&b);
        reopens_between(&b, Duration::from_secs(24), Duration::from_secs(30)).await;
        fail_a_probe(&b);
        reopens_between(&b, Duration::from_secs(24), Duration::from_secs(30)).await;
        // Two successful probes close it; the next opening is back to the plain cool-down.
        assert!(call(&b, Outcome::Success));
        assert!(call(&b, Outcome::Success));
        assert_eq!(b.state(), BreakerState::Closed);
        for _ in 0..5 {
            call(&b, Outcome::Failure);
        }
        reopens_between(&b, Duration::from_secs(5), Duration::from_secs(5)).await;
    }
}
