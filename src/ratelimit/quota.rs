//! Quotas: a caller's allowance per calendar day or month (`[[rate_limit.quotas]]`), charged
//! with the rules, all or nothing. Here: what a quota's verdict on one request is, and the
//! counters of this instance (one per quota, caller and window; a new window starts from
//! zero and the old one is dropped). The shared counters are in `shared`, in the same Redis
//! script as the rules.
//!
//! Clock: the local counters take their window from this instance's UTC wall clock
//! (`window::unix_now`); the shared ones from Redis' `TIME`, so that every instance turns
//! the day at the same instant.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use super::RateLimitKey;
use super::window::Window;
use crate::config::{CostKind, KeyKind, Period};

/// A compiled `[[rate_limit.quotas]]` entry.
pub(super) struct Quota {
    pub name: Arc<str>,
    pub key: KeyKind,
    pub period: Period,
    pub cost: CostKind,
    /// `quota:{name}`: the middle of its Redis keys (rule names cannot hold a `:`).
    pub redis_name: String,
}

/// A quota that applies to a request: which counter, under which key.
#[derive(Clone)]
pub(super) struct QuotaTarget {
    pub quota: usize,
    /// `quota * (tiers + 1) + tier`, as for rules.
    pub slot: usize,
    pub key: RateLimitKey,
    /// Built only when the store is Redis.
    pub redis_key: Option<String>,
}

/// What a quota says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaState {
    /// Charged (or read, at cost 0).
    Allowed,
    /// Would have allowed, but another limit refused the request: nothing was charged.
    Spared,
    /// Used up: this quota refuses the request.
    Exhausted,
}

/// What a store answered for one quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaOutcome {
    pub state: QuotaState,
    /// Units used in the window, this request's included when it was charged.
    pub used: u64,
    pub window: Window,
    /// When it was decided, Unix seconds by the clock of the store that decided.
    pub now: u64,
}

/// One quota's verdict on one request.
#[derive(Clone, Debug)]
pub struct QuotaDecision {
    pub quota: Arc<str>,
    pub period: Period,
    /// The caller's limit (its tier applied).
    pub limit: u32,
    /// What a unit is: a request, or a GraphQL operation's estimated cost.
    pub cost: CostKind,
    pub outcome: QuotaOutcome,
}

impl QuotaDecision {
    pub fn remaining(&self) -> u64 {
        u64::from(self.limit).saturating_sub(self.outcome.used)
    }

    /// Seconds until the window ends and the quota is whole again.
    pub fn resets_in(&self) -> u64 {
        self.outcome.window.resets_in(self.outcome.now)
    }
}

/// One counter of this instance.
#[derive(Clone, Copy)]
struct Count {
    window: Window,
    used: u64,
}

/// Enough shards that concurrent requests of different callers seldom share a lock.
const SHARDS: usize = 32;

type Shard = Mutex<HashMap<(usize, RateLimitKey), Count>>;

/// The quota counters of this instance, by (slot, key), each in the shard its key's hash
/// picks.
pub(super) struct LocalQuotas {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl LocalQuotas {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Charges `cost` (0 only reads) in the `period` window holding `now` (Unix seconds).
    pub fn charge(
        &self,
        target: &QuotaTarget,
        limit: u32,
        period: Period,
        cost: u32,
        now: u64,
    ) -> QuotaOutcome {
        let window = Window::containing(period, now);
        let cost = u64::from(cost.min(limit));
        let mut shard = self.shard(&target.key);
        let entry = (target.slot, target.key.clone());
        let used = shard
            .get(&entry)
            .filter(|c| c.window == window)
            .map_or(0, |c| c.used);
        let state = if cost > 0 && used + cost > u64::from(limit) {
            QuotaState::Exhausted
        } else {
            QuotaState::Allowed
        };
        let used = match state {
            QuotaState::Allowed if cost > 0 => {
                let used = used + cost;
                shard.insert(entry, Count { window, used });
                used
            }
            _ => used,
        };
        QuotaOutcome {
            state,
            used,
            window,
            now,
        }
    }

    /// Gives back what `charge` charged for a request another limit refused.
    pub fn refund(&self, target: &QuotaTarget, charged: QuotaOutcome, cost: u64) -> QuotaOutcome {
        let mut shard = self.shard(&target.key);
        let entry = (target.slot, target.key.clone());
        let mut used = charged.used.saturating_sub(cost);
        if let Some(count) = shard.get_mut(&entry).filter(|c| c.window == charged.window) {
            count.used = count.used.saturating_sub(cost);
            used = count.used;
        }
        QuotaOutcome {
            state: QuotaState::Spared,
            used,
            ..charged
        }
    }

    /// Drops the counters of windows that ended by `now`; returns how many remain.
    pub fn evict_ended(&self, now: u64) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
                shard.retain(|_, count| count.window.end > now);
                shard.shrink_to_fit();
                shard.len()
            })
            .sum()
    }

    fn shard(&self, key: &RateLimitKey) -> MutexGuard<'_, HashMap<(usize, RateLimitKey), Count>> {
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // A counter is one plain write: a panic elsewhere cannot leave it half done.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_29_NOON: u64 = 1_795_953_600; // 2026-11-29T12:00:00Z

    fn target(slot: usize, id: &str) -> QuotaTarget {
        QuotaTarget {
            quota: 0,
            slot,
            key: RateLimitKey::ApiKey(Arc::from(id)),
            redis_key: None,
        }
    }

    #[test]
    fn a_quota_counts_to_its_limit_then_refuses_until_the_window_turns() {
        let quotas = LocalQuotas::new();
        let key = target(0, "acme");
        let charge = |cost, now| quotas.charge(&key, 3, Period::Day, cost, now);
        let used: Vec<u64> = (0..3)
            .map(|_| charge(1, NOV_29_NOON))
            .inspect(|o| assert_eq!(o.state, QuotaState::Allowed))
            .map(|o| o.used)
            .collect();
        assert_eq!(used, [1, 2, 3]);
        let refused = charge(1, NOV_29_NOON + 3_600);
        assert_eq!(refused.state, QuotaState::Exhausted);
        assert_eq!(refused.used, 3, "a refusal charges nothing");
        assert_eq!(refused.window.resets_in(refused.now), 11 * 3_600);
        // A read is never refused, and reads what is used.
        let read = charge(0, NOV_29_NOON);
        assert_eq!((read.state, read.used), (QuotaState::Allowed, 3));
        // Another key, another slot (tier): counters of their own.
        assert_eq!(
            quotas
                .charge(&target(0, "other"), 3, Period::Day, 1, NOV_29_NOON)
                .used,
            1
        );
        assert_eq!(
            quotas
                .charge(&target(1, "acme"), 3, Period::Day, 1, NOV_29_NOON)
                .used,
            1
        );
        // At midnight the day is whole again; the old window's count is replaced.
        let next_day = charge(1, NOV_29_NOON + 12 * 3_600);
        assert_eq!((next_day.state, next_day.used), (QuotaState::Allowed, 1));
    }

    #[test]
    fn a_refund_gives_back_and_ended_windows_are_evicted() {
        let quotas = LocalQuotas::new();
        let key = target(0, "acme");
        quotas.charge(&key, 10, Period::Month, 4, NOV_29_NOON);
        let charged = quotas.charge(&key, 10, Period::Month, 2, NOV_29_NOON);
        assert_eq!(charged.used, 6);
        let refunded = quotas.refund(&key, charged, 2);
        assert_eq!((refunded.state, refunded.used), (QuotaState::Spared, 4));
        assert_eq!(
            quotas.charge(&key, 10, Period::Month, 0, NOV_29_NOON).used,
            4
        );
        // A cost over the whole quota spends it all, like a rule's.
        let big = quotas.charge(&target(0, "big"), 10, Period::Month, 50, NOV_29_NOON);
        assert_eq!((big.state, big.used), (QuotaState::Allowed, 10));
        assert_eq!(quotas.evict_ended(NOV_29_NOON), 2);
        // November ends on the 30th at midnight.
        assert_eq!(quotas.evict_ended(NOV_29_NOON + 36 * 3_600), 0);
    }
}
