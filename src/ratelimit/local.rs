//! Counters in this instance's memory: GCRA per (rule, tier) slot and key, the same
//! arithmetic the Redis script does, on tokio's clock. Each key holds one number, its
//! theoretical arrival time (TAT); the maps are sharded so that callers rarely wait for one
//! another. A charge can be given back (`refund`) and a key read without charging (cost 0),
//! which is how a request is charged to several keys all or nothing and how a caller reads
//! its usage. Keys that have been idle long enough to be indistinguishable from fresh ones
//! are evicted by `evict_idle`, which the owner calls periodically, so memory follows the
//! number of recently active clients, not the number ever seen.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use foldhash::fast::RandomState;
use tokio::time::Instant;

use super::{Limit, Outcome, RateLimitKey};

/// Enough shards that concurrent requests of different callers seldom share a lock.
const SHARDS: usize = 32;

/// Nanoseconds since the store's origin, on tokio's clock.
type Nanos = u64;

type Shard = Mutex<HashMap<RateLimitKey, Nanos, RandomState>>;

pub struct LocalStore {
    /// Per slot: its limit, and the TAT of each key in the shard the key's hash picks.
    slots: Vec<(Limit, Box<[Shard]>)>,
    hasher: RandomState,
    origin: Instant,
}

impl LocalStore {
    /// One slot per entry of `limits`, in order.
    pub fn new(limits: &[Limit]) -> Self {
        Self {
            slots: limits
                .iter()
                .map(|limit| (*limit, (0..SHARDS).map(|_| Shard::default()).collect()))
                .collect(),
            hasher: RandomState::default(),
            origin: Instant::now(),
        }
    }

    /// Charges `cost` (at most the slot's limit; 0 only reads) to `key` in `slot`.
    pub fn check(&self, slot: usize, key: &RateLimitKey, cost: u32) -> Outcome {
        let Some((limit, shards)) = self.slots.get(slot) else {
            return Outcome::unlimited();
        };
        let now = self.now();
        let interval = nanos(limit.interval());
        let tolerance = interval.saturating_mul(u64::from(limit.limit));
        let cost = cost.min(limit.limit);
        let mut shard = self.shard(shards, key);
        let tat = shard.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat.saturating_add(interval.saturating_mul(u64::from(cost)));
        let allow_at = new_tat.saturating_sub(tolerance);
        if allow_at > now {
            return Outcome {
                allowed: false,
                remaining: 0,
                reset: duration(tat - now),
                retry_after: duration(allow_at - now),
            };
        }
        if cost > 0 {
            match shard.get_mut(key) {
                Some(held) => *held = new_tat,
                None => {
                    shard.insert(key.clone(), new_tat);
                }
            }
        }
        allowed(*limit, new_tat - now)
    }

    /// Gives back `cost` units `check` charged to `key` (another limit refused the request).
    /// Answers what is left afterwards, as not charged.
    pub fn refund(&self, slot: usize, key: &RateLimitKey, cost: u32) -> Outcome {
        let Some((limit, shards)) = self.slots.get(slot) else {
            return Outcome::unlimited();
        };
        let now = self.now();
        let interval = nanos(limit.interval());
        let mut shard = self.shard(shards, key);
        let tat = shard.get(key).copied().unwrap_or(now);
        let tat = tat.saturating_sub(interval.saturating_mul(u64::from(cost.min(limit.limit))));
        match shard.get_mut(key) {
            Some(held) if tat > now => *held = tat,
            Some(_) => {
                shard.remove(key);
            }
            None => {}
        }
        Outcome {
            allowed: false,
            ..allowed(*limit, tat.saturating_sub(now))
        }
    }

    /// Drops keys whose state is back to fresh, and returns how many keys remain.
    pub fn evict_idle(&self) -> usize {
        let now = self.now();
        self.slots
            .iter()
            .flat_map(|(_, shards)| shards.iter())
            .map(|shard| {
                let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
                shard.retain(|_, tat| *tat > now);
                shard.shrink_to_fit();
                shard.len()
            })
            .sum()
    }

    fn now(&self) -> Nanos {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard<'a>(
        &self,
        shards: &'a [Shard],
        key: &RateLimitKey,
    ) -> MutexGuard<'a, HashMap<RateLimitKey, Nanos, RandomState>> {
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // A panic while holding a shard cannot leave a TAT half written: keep using it.
        shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An allowed outcome whose key is whole again in `until_whole` nanoseconds.
fn allowed(limit: Limit, until_whole: Nanos) -> Outcome {
    let interval = nanos(limit.interval());
    let used = until_whole.div_ceil(interval);
    Outcome {
        allowed: true,
        remaining: u32::try_from(u64::from(limit.limit).saturating_sub(used)).unwrap_or(0),
        reset: duration(until_whole),
        retry_after: Duration::ZERO,
    }
}

/// An interval in nanoseconds, at least one (a zero interval would divide by zero).
fn nanos(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

fn duration(n: Nanos) -> Duration {
    Duration::from_nanos(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn user(id: &str) -> RateLimitKey {
        RateLimitKey::User(Arc::from(id))
    }

    fn store(limit: u32, per: Duration) -> LocalStore {
        LocalStore::new(&[Limit { limit, per }])
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_plus_first_request_is_refused_until_a_slot_frees() {
        let store = store(3, Duration::from_secs(60));
        let remaining: Vec<u32> = (0..3)
            .map(|_| store.check(0, &user("a"), 1))
            .inspect(|o| assert!(o.allowed))
            .map(|o| o.remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = store.check(0, &user("a"), 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        assert_eq!(refused.reset, Duration::from_secs(60));
        // Another key has its own budget.
        assert!(store.check(0, &user("b"), 1).allowed);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(store.check(0, &user("a"), 1).allowed);
        assert!(!store.check(0, &user("a"), 1).allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cost_spends_several_units_and_is_capped_at_the_limit() {
        let store = store(10, Duration::from_secs(10));
        let o = store.check(0, &user("a"), 4);
        assert!(o.allowed);
        assert_eq!(o.remaining, 6);
        assert_eq!(o.reset, Duration::from_secs(4));
        assert!(!store.check(0, &user("a"), 100).allowed);
        // An unknown slot limits nothing.
        assert!(store.check(7, &user("a"), 1).allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_charges_nothing_and_a_refund_gives_back() {
        let store = store(10, Duration::from_secs(10));
        assert_eq!(store.check(0, &user("a"), 0).remaining, 10);
        store.check(0, &user("a"), 3);
        let read = store.check(0, &user("a"), 0);
        assert!(read.allowed);
        assert_eq!(read.remaining, 7);
        assert_eq!(store.check(0, &user("a"), 0).remaining, 7, "reads are free");
        let refunded = store.refund(0, &user("a"), 3);
        assert!(!refunded.allowed);
        assert_eq!(refunded.remaining, 10);
        assert_eq!(store.check(0, &user("a"), 0).remaining, 10);
        assert_eq!(store.evict_idle(), 0, "a refunded key is fresh again");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_are_evicted() {
        let store = store(2, Duration::from_secs(1));
        for i in 0..100 {
            store.check(0, &user(&i.to_string()), 1);
        }
        assert_eq!(store.evict_idle(), 100);
        tokio::time::advance(Duration::from_secs(2)).await;
        store.check(0, &user("fresh"), 1);
        assert_eq!(store.evict_idle(), 1);
    }
}
