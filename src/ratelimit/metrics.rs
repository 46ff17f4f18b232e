//! Counters of rate-limit decisions (a refusal by a quota is a refusal, and counted by the
//! quota's name too), and the log lines when the shared store goes away or comes back (one
//! line per transition, not one per request).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use std::sync::Arc;

use super::{Decisions, QuotaState, RateLimiter, RedisStoreError};
use crate::config::OnRedisError;
use crate::observe::exposition::{Exposition, MetricFamilies};
use crate::sharing::SharedCallError;

#[derive(Debug, Default)]
pub struct RateLimitMetrics {
    allowed: AtomicU64,
    refused: AtomicU64,
    /// Decisions taken with local counters because Redis could not be used.
    fallback: AtomicU64,
    /// Requests refused (503) because Redis could not be used.
    unavailable: AtomicU64,
    /// Redis calls that failed (timeouts, connection errors), not counting skipped ones.
    redis_errors: AtomicU64,
    /// Redis round trips that answered, and the time they took in total.
    redis_calls: AtomicU64,
    redis_micros: AtomicU64,
    degraded: AtomicBool,
    /// Requests refused by each quota, by its name (in config order).
    quota_exhausted: Box<[(Arc<str>, AtomicU64)]>,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub allowed: u64,
    pub refused: u64,
    pub fallback: u64,
    pub unavailable: u64,
    pub redis_errors: u64,
    pub redis_calls: u64,
    /// Total time of the answered Redis round trips, in microseconds.
    pub redis_micros: u64,
    /// Whether the shared store is currently out of use.
    pub degraded: bool,
}

impl RateLimitMetrics {
    /// Counters for a limiter with these quotas.
    pub fn new(quotas: impl IntoIterator<Item = Arc<str>>) -> Self {
        Self {
            quota_exhausted: quotas
                .into_iter()
                .map(|name| (name, AtomicU64::new(0)))
                .collect(),
            ..Self::default()
        }
    }

    /// Requests each quota refused, by name, in config order.
    pub fn quota_exhausted(&self) -> Vec<(Arc<str>, u64)> {
        self.quota_exhausted
            .iter()
            .map(|(name, n)| (name.clone(), n.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            allowed: self.allowed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            fallback: self.fallback.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            redis_errors: self.redis_errors.load(Ordering::Relaxed),
            redis_calls: self.redis_calls.load(Ordering::Relaxed),
            redis_micros: self.redis_micros.load(Ordering::Relaxed),
            degraded: self.degraded.load(Ordering::Relaxed),
        }
    }

    /// Counts one charge's verdict: allowed, or refused (and by which quotas).
    pub(super) fn count(&self, decisions: &Decisions, allowed: bool) {
        if allowed {
            self.allowed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        for decision in &decisions.quotas {
            if decision.outcome.state != QuotaState::Exhausted {
                continue;
            }
            if let Some((_, n)) = self
                .quota_exhausted
                .iter()
                .find(|(name, _)| *name == decision.quota)
            {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn shared_ok(&self, took: Duration) {
        self.redis_calls.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.redis_micros.fetch_add(micros, Ordering::Relaxed);
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("rate limits: Redis is reachable again; limits are shared");
        }
    }

    pub(super) fn shared_failed(&self, error: &RedisStoreError, policy: OnRedisError) {
        if !matches!(error, RedisStoreError::Shared(SharedCallError::Resting)) {
            self.redis_errors.fetch_add(1, Ordering::Relaxed);
        }
        match policy {
            OnRedisError::Local => self.fallback.fetch_add(1, Ordering::Relaxed),
            OnRedisError::Refuse => self.unavailable.fetch_add(1, Ordering::Relaxed),
        };
        if !self.degraded.swap(true, Ordering::Relaxed) {
            match policy {
                OnRedisError::Local => tracing::warn!(
                    %error,
                    "rate limits: Redis unreachable; falling back to local limits (each instance counts alone)"
                ),
                OnRedisError::Refuse => tracing::warn!(
                    %error,
                    "rate limits: Redis unreachable; refusing limited requests until it is back"
                ),
            }
        }
    }
}

/// The rate limits' metric families; all zero when no rule is configured.
pub struct LimitFamilies(pub Option<Arc<RateLimiter>>);

impl MetricFamilies for LimitFamilies {
    fn write(&self, o: &mut Exposition) {
        let snapshot = self
            .0
            .as_ref()
            .map(|l| l.metrics().snapshot())
            .unwrap_or_default();
        o.header(
            "manifold_ratelimit_decisions_total",
            "counter",
            "Rate-limit decisions: allowed, refused (429), unavailable (503, shared store down).",
        );
        for (decision, n) in [
            ("allowed", snapshot.allowed),
            ("refused", snapshot.refused),
            ("unavailable", snapshot.unavailable),
        ] {
            o.line(
                "manifold_ratelimit_decisions_total",
                &[("decision", decision)],
                n,
            );
        }
        o.header(
            "manifold_ratelimit_quota_exhausted_total",
            "counter",
            "Requests refused (429) because a quota was used up, by quota.",
        );
        for (quota, n) in self
            .0
            .as_ref()
            .map(|l| l.metrics().quota_exhausted())
            .unwrap_or_default()
        {
            o.line(
                "manifold_ratelimit_quota_exhausted_total",
                &[("quota", &quota)],
                n,
            );
        }
        o.header(
            "manifold_ratelimit_local_fallback_total",
            "counter",
            "Decisions taken on local counters because Redis could not be used.",
        );
        o.line(
            "manifold_ratelimit_local_fallback_total",
            &[],
            snapshot.fallback,
        );
        o.header(
            "manifold_ratelimit_store_degraded",
            "gauge",
            "1 while the shared rate-limit store is out of use.",
        );
        o.line(
            "manifold_ratelimit_store_degraded",
            &[],
            u8::from(snapshot.degraded),
        );
    }
}
