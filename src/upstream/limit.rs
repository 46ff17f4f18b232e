//! An adaptive concurrency limit (additive increase, multiplicative decrease, driven by
//! latency, as Netflix's concurrency limits and Envoy's adaptive concurrency are). Two
//! latencies are followed: the best recently seen (it falls at once and creeps back up
//! slowly) and the recent one (a short moving average, so one hiccup is not a trend). While
//! the recent latency stays within `tolerance` times the best, the limit grows by one per
//! limit's worth of answers, but only while it is being used; when it is slower than that (and
//! by more than `NOISE`, so sub-millisecond jitter is not a slowdown), or when an answer says
//! the other side is overloaded, it shrinks by a tenth, at most once per best latency. Used by
//! each upstream's bulkhead and by the edge's admission control.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A recent latency this close to the best is never a slowdown, whatever the ratio.
const NOISE: Duration = Duration::from_millis(2);

/// How pressed the limited resource is, for `AdaptiveLimit::learn_pressure`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pressure {
    /// Past its target, by this many times it (at least 1): shrink by a tenth, or by more
    /// the further past (at most by half, at 5 times the target).
    Over(f64),
    /// Below the target, but not by far: grow slowly.
    Near,
    /// Far below the target: grow quickly.
    Clear,
}

/// The bounds and the tolerance of one limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitBounds {
    pub initial: u32,
    pub min: u32,
    pub max: u32,
    /// Answers slower than this many times the best recent latency shrink the limit.
    pub tolerance: f64,
}

/// The limit, learnt from finished work. Cheap to read; learning takes a short lock.
#[derive(Debug)]
pub struct AdaptiveLimit {
    bounds: LimitBounds,
    state: Mutex<State>,
    /// `state.value` as a whole number, read without the lock.
    current: AtomicU32,
}

#[derive(Debug)]
struct State {
    value: f64,
    /// The best latency recently seen: falls at once, creeps back up slowly.
    best: Option<Duration>,
    /// A moving average of the latest latencies (weight 1/8 each).
    recent: Option<Duration>,
    last_decrease: Option<Instant>,
}

impl AdaptiveLimit {
    pub fn new(bounds: LimitBounds) -> Self {
        Self {
            bounds,
            state: Mutex::new(State {
                value: f64::from(bounds.initial),
                best: None,
                recent: None,
                last_decrease: None,
            }),
            current: AtomicU32::new(bounds.initial),
        }
    }

    /// The limit now (whole units of work).
    pub fn current(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// Learns from one finished unit of work: how long it took, whether it said "overloaded",
    /// and how many were in progress (the limit grows only while at least half is used).
    pub fn learn(&self, took: Duration, overloaded: bool, in_flight: u32) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let best = match state.best {
            Some(best) if took >= best => best + (took - best) / 256,
            _ => took,
        };
        state.best = Some(best);
        let recent = match state.recent {
            Some(recent) if took >= recent => recent + (took - recent) / 8,
            Some(recent) => recent - (recent - took) / 8,
            None => took,
        };
        state.recent = Some(recent);
        let slow = recent > best + NOISE
            && recent.as_secs_f64() > best.as_secs_f64() * self.bounds.tolerance;
        let (min, max) = (f64::from(self.bounds.min), f64::from(self.bounds.max));
        if slow || overloaded {
            let now = Instant::now();
            let spacing = best.max(Duration::from_millis(10));
            if state.last_decrease.is_none_or(|at| now >= at + spacing) {
                state.value = (state.value * 0.9).max(min);
                state.last_decrease = Some(now);
            }
        } else if f64::from(in_flight) * 2.0 >= state.value {
            // An idle limit keeps what it knows.
            state.value = (state.value + 1.0 / state.value).min(max);
        }
        self.current.store(state.value as u32, Ordering::Relaxed);
    }

    /// Learns from a measure of pressure rather than from an answer (the edge's admission
    /// control samples the workers' scheduling delay). `Over` shrinks the limit by a tenth or
    /// more (a sudden overload is met in a few steps), at most once per `spacing`; while at least half of it is in use, `Near` grows it by one per
    /// limit's worth of samples (it settles where pressure is rare, not where it is half the
    /// time) and `Clear` by one each sample (plenty of room: grow back quickly).
    pub fn learn_pressure(&self, pressure: Pressure, in_flight: u32, spacing: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (min, max) = (f64::from(self.bounds.min), f64::from(self.bounds.max));
        let in_use = f64::from(in_flight) * 2.0 >= state.value;
        match pressure {
            Pressure::Over(times) => {
                let now = Instant::now();
                if state.last_decrease.is_none_or(|at| now >= at + spacing) {
                    let factor = (1.0 - 0.1 * times).clamp(0.5, 0.9);
                    state.value = (state.value * factor).max(min);
                    state.last_decrease = Some(now);
                }
            }
            Pressure::Near if in_use => {
                state.value = (state.value + 1.0 / state.value).min(max);
            }
            Pressure::Clear if in_use => state.value = (state.value + 1.0).min(max),
            Pressure::Near | Pressure::Clear => {}
        }
        self.current.store(state.value as u32, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn value(&self) -> f64 {
        self.state.lock().unwrap().value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(initial: u32) -> AdaptiveLimit {
        AdaptiveLimit::new(LimitBounds {
            initial,
            min: 1,
            max: 100,
            tolerance: 2.5,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn slow_answers_shrink_the_limit_and_fast_ones_in_use_grow_it() {
        let limit = limit(40);
        // A baseline of 10 ms answers, then answers ten times slower: the limit falls.
        limit.learn(Duration::from_millis(10), false, 0);
        for _ in 0..30 {
            tokio::time::advance(Duration::from_millis(20)).await;
            limit.learn(Duration::from_millis(100), false, 0);
        }
        let shrunk = limit.current();
        assert!(shrunk < 5, "{shrunk}");
        // Fast answers while the limit is in use: it grows again, one per limit's worth...
        for _ in 0..200 {
            limit.learn(Duration::from_millis(10), false, shrunk);
        }
        let grown = limit.current();
        assert!(grown > shrunk, "{grown}");
        // ...but no further than twice what is in use.
        assert!(grown <= 2 * shrunk + 1, "{grown}");
        // "Overloaded" shrinks it, however fast.
        let before = limit.value();
        tokio::time::advance(Duration::from_millis(20)).await;
        limit.learn(Duration::from_millis(1), true, 0);
        assert!(
            limit.value() < before * 0.95,
            "{before} -> {}",
            limit.value()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_doubled_latency_shrinks_a_limit_with_tolerance_below_two() {
        let limit = AdaptiveLimit::new(LimitBounds {
            initial: 64,
            min: 4,
            max: 64,
            tolerance: 1.5,
        });
        for _ in 0..50 {
            limit.learn(Duration::from_millis(20), false, 10);
        }
        assert_eq!(limit.current(), 64);
        for _ in 0..50 {
            tokio::time::advance(Duration::from_millis(40)).await;
            limit.learn(Duration::from_millis(40), false, 10);
        }
        assert!(limit.current() < 32, "{}", limit.current());
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_stays_within_its_bounds() {
        let limit = limit(3);
        for _ in 0..100 {
            tokio::time::advance(Duration::from_secs(1)).await;
            limit.learn(Duration::from_secs(1), true, 0);
        }
        assert_eq!(limit.current(), 1);
    }
}
