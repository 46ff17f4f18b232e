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
struct Count {
    quota: Arc<str>,
    window: Window,
    used: u64,
}

/// Enough shards that concurrent requests of different callers seldom share a lock.
const SHARDS: usize = 32;

/// A caller's counters, one per quota it has used.
type Shard = Mutex<HashMap<RateLimitKey, Vec<Count>>>;

/// The quota counters of this instance, by caller (each in the shard its hash picks) and
/// quota name: not by tier, as in Redis, so a caller whose tier changes keeps its usage; and
/// not by the quota's place in the config, so a reload can hand them to the next limiter
/// (a new config is no new day).
pub(super) struct LocalQuotas {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl Default for LocalQuotas {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl LocalQuotas {
    /// Charges `cost` (0 only reads) to `key`'s count of `quota`, in the `period` window
    /// holding `now` (Unix seconds).
    pub fn charge(
        &self,
        quota: &Arc<str>,
        key: &RateLimitKey,
        limit: u32,
        period: Period,
        cost: u32,
        now: u64,
    ) -> QuotaOutcome {
        let window = Window::containing(period, now);
        let cost = u64::from(cost.min(limit));
        let mut shard = self.shard(key);
        let counts = shard.get_mut(key);
        let held = counts
            .as_ref()
            .and_then(|counts| counts.iter().find(|c| c.quota == *quota))
            .filter(|c| c.window == window)
            .map_or(0, |c| c.used);
        let state = if cost > 0 && held + cost > u64::from(limit) {
            QuotaState::Exhausted
        } else {
            QuotaState::Allowed
        };
        if state == QuotaState::Exhausted || cost == 0 {
            return QuotaOutcome {
                state,
                used: held,
                window,
                now,
            };
        }
        let used = held + cost;
        let count = Count {
            quota: quota.clone(),
            window,
            used,
        };
        // A count of an older window is replaced: that window is over.
        match counts {
            Some(counts) => match counts.iter_mut().find(|c| c.quota == *quota) {
                Some(old) => *old = count,
                None => counts.push(count),
            },
            None => {
                shard.insert(key.clone(), vec![count]);
            }
        }
        QuotaOutcome {
            state,
            used,
            window,
            now,
        }
    }

    /// Gives back what `charge` charged for a request another limit refused.
    pub fn refund(
        &self,
        quota: &Arc<str>,
        key: &RateLimitKey,
        charged: QuotaOutcome,
        cost: u64,
    ) -> QuotaOutcome {
        let mut shard = self.shard(key);
        let mut used = charged.used.saturating_sub(cost);
        let count = shard
            .get_mut(key)
            .and_then(|counts| counts.iter_mut().find(|c| c.quota == *quota))
            .filter(|c| c.window == charged.window);
        if let Some(count) = count {
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
                shard.retain(|_, counts| {
                    counts.retain(|c| c.window.end > now);
                    !counts.is_empty()
                });
                shard.shrink_to_fit();
                shard.values().map(Vec::len).sum::<usize>()
            })
            .sum()
    }

    fn shard(&self, key: &RateLimitKey) -> MutexGuard<'_, HashMap<RateLimitKey, Vec<Count>>> {
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // A counter is one plain write: a panic elsewhere cannot leave it half done.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_29_NOON: u64 = 1_795_953_600; // 2026-11-29T12:00:00Z

    fn key(id: &str) -> RateLimitKey {
        RateLimitKey::ApiKey(Arc::from(id))
    }

    #[test]
    fn a_quota_counts_to_its_limit_then_refuses_until_the_window_turns() {
        let quotas = LocalQuotas::default();
        let daily: Arc<str> = "daily".into();
        let charge = |cost, now| quotas.charge(&daily, &key("acme"), 3, Period::Day, cost, now);
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
        // Another key, another quota: counters of their own.
        let other = quotas.charge(&daily, &key("other"), 3, Period::Day, 1, NOV_29_NOON);
        assert_eq!(other.used, 1);
        let monthly: Arc<str> = "monthly".into();
        let month = quotas.charge(&monthly, &key("acme"), 3, Period::Month, 1, NOV_29_NOON);
        assert_eq!(month.used, 1);
        // At midnight the day is whole again; the old window's count is replaced.
        let next_day = charge(1, NOV_29_NOON + 12 * 3_600);
        assert_eq!((next_day.state, next_day.used), (QuotaState::Allowed, 1));
    }

    #[test]
    fn a_refund_gives_back_and_ended_windows_are_evicted() {
        let quotas = LocalQuotas::default();
        let monthly: Arc<str> = "monthly".into();
        let charge =
            |id, cost| quotas.charge(&monthly, &key(id), 10, Period::Month, cost, NOV_29_NOON);
        charge("acme", 4);
        let charged = charge("acme", 2);
        assert_eq!(charged.used, 6);
        let refunded = quotas.refund(&monthly, &key("acme"), charged, 2);
        assert_eq!((refunded.state, refunded.used), (QuotaState::Spared, 4));
        assert_eq!(charge("acme", 0).used, 4);
        // A cost over the whole quota spends it all, like a rule's.
        let big = charge("big", 50);
        assert_eq!((big.state, big.used), (QuotaState::Allowed, 10));
        let daily: Arc<str> = "daily".into();
        quotas.charge(&daily, &key("acme"), 10, Period::Day, 1, NOV_29_NOON);
        assert_eq!(quotas.evict_ended(NOV_29_NOON), 3);
        // The day ends at midnight, November on the 30th at midnight.
        assert_eq!(quotas.evict_ended(NOV_29_NOON + 12 * 3_600), 2);
        assert_eq!(quotas.evict_ended(NOV_29_NOON + 36 * 3_600), 0);
    }
}
