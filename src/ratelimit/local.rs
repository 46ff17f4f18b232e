//! Counters in this instance's memory: one governor keyed GCRA limiter per (rule, tier)
//! slot. Keys that have been idle long enough to be indistinguishable from fresh ones are
//! evicted by `evict_idle`, which the owner calls periodically, so memory follows the number
//! of recently active clients, not the number ever seen.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{Limit, Outcome, RateLimitKey};

type Keyed<C> =
    RateLimiter<RateLimitKey, DefaultKeyedStateStore<RateLimitKey>, C, StateInformationMiddleware>;

pub struct LocalStore<C: Clock = DefaultClock> {
    slots: Vec<(Limit, Keyed<C>)>,
    clock: C,
}

impl LocalStore<DefaultClock> {
    pub fn new(limits: &[Limit]) -> Self {
        Self::with_clock(limits, DefaultClock::default())
    }
}

impl<C: Clock + Clone> LocalStore<C> {
    /// One slot per entry of `limits`, in order.
    pub fn with_clock(limits: &[Limit], clock: C) -> Self {
        let slots = limits
            .iter()
            .map(|limit| {
                let burst = NonZeroU32::new(limit.limit).unwrap_or(NonZeroU32::MIN);
                // `per` was validated >= 1ms, so the quota exists; the fallback is never used.
                let quota = Quota::with_period(limit.per / burst.get())
                    .unwrap_or_else(|| Quota::per_second(burst))
                    .allow_burst(burst);
                let limiter: Keyed<C> =
                    RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock.clone());
                (*limit, limiter)
            })
            .collect();
        Self { slots, clock }
    }

    /// Charges `cost` (at most the slot's limit) to `key` in `slot`.
    pub fn check(&self, slot: usize, key: &RateLimitKey, cost: u32) -> Outcome {
        let Some((limit, limiter)) = self.slots.get(slot) else {
            return Outcome::unlimited();
        };
        let interval = limit.interval();
        let n = NonZeroU32::new(cost.clamp(1, limit.limit)).unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(key, n) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity().min(limit.limit);
                Outcome {
                    allowed: true,
                    remaining,
                    reset: interval * (limit.limit - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Outcome {
                    allowed: false,
                    remaining: 0,
                    reset: wait.max(interval),
                    retry_after: wait,
                }
            }
            // Cannot happen: the cost is clamped to the burst size.
            Err(_) => Outcome {
                allowed: false,
                remaining: 0,
                reset: limit.per,
                retry_after: limit.per,
            },
        }
    }

    /// Drops keys whose state is back to fresh, and returns how many keys remain.
    pub fn evict_idle(&self) -> usize {
        self.slots
            .iter()
            .map(|(_, limiter)| {
                limiter.retain_recent();
                limiter.shrink_to_fit();
                limiter.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::sync::Arc;

    fn user(id: &str) -> RateLimitKey {
        RateLimitKey::User(Arc::from(id))
    }

    fn store(limit: u32, per: Duration) -> (LocalStore<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            LocalStore::with_clock(&[Limit { limit, per }], clock.clone()),
            clock,
        )
    }

    #[test]
    fn the_limit_plus_first_request_is_refused_until_a_slot_frees() {
        let (store, clock) = store(3, Duration::from_secs(60));
        let remaining: Vec<u32> = (0..3)
            .map(|_| store.check(0, &user("a"), 1))
            .inspect(|o| assert!(o.allowed))
            .map(|o| o.remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = store.check(0, &user("a"), 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        // Another key has its own budget.
        assert!(store.check(0, &user("b"), 1).allowed);
        clock.advance(Duration::from_secs(20));
        assert!(store.check(0, &user("a"), 1).allowed);
        assert!(!store.check(0, &user("a"), 1).allowed);
    }

    #[test]
    fn a_cost_spends_several_units_and_is_capped_at_the_limit() {
        let (store, _clock) = store(10, Duration::from_secs(10));
        let o = store.check(0, &user("a"), 4);
        assert!(o.allowed);
        assert_eq!(o.remaining, 6);
        assert_eq!(o.reset, Duration::from_secs(4));
        assert!(!store.check(0, &user("a"), 100).allowed);
        clock_free_check(&store);
    }

    fn clock_free_check(store: &LocalStore<FakeRelativeClock>) {
        // An unknown slot limits nothing.
        assert!(store.check(7, &user("a"), 1).allowed);
    }

    #[test]
    fn idle_keys_are_evicted() {
        let (store, clock) = store(2, Duration::from_secs(1));
        for i in 0..100 {
            store.check(0, &user(&i.to_string()), 1);
        }
        assert_eq!(store.evict_idle(), 100);
        clock.advance(Duration::from_secs(2));
        store.check(0, &user("fresh"), 1);
        assert_eq!(store.evict_idle(), 1);
    }
}
