//! The cache's counters, plain atomics readable from the module (`EntityCache::metrics`);
//! exporting them (Prometheus) is `observe`'s job.

use std::sync::atomic::{AtomicU64, Ordering};

use super::EntityCache;
use crate::observe::exposition::{Exposition, MetricFamilies};
use serde::Serialize;

#[derive(Debug, Default)]
pub struct CacheMetrics {
    /// Lookups answered by a fresh entry.
    pub hits: AtomicU64,
    /// Lookups that had to call the backend (coalesced callers included).
    pub misses: AtomicU64,
    /// Entries served past their freshness: while revalidating, or instead of an error.
    pub stale_served: AtomicU64,
    /// Of those, served because the backend failed (stale-if-error).
    pub stale_on_error: AtomicU64,
    /// Callers that waited for a backend call another caller had started.
    pub coalesced_waits: AtomicU64,
    /// Background refreshes started (stale-while-revalidate).
    pub refreshes: AtomicU64,
    /// Entries stored.
    pub stores: AtomicU64,
    /// Entries dropped for room or because every window had passed.
    pub evictions: AtomicU64,
    /// Lookups answered by the shared (Redis) tier.
    pub shared_hits: AtomicU64,
    /// Shared-tier operations that failed or timed out (the local tier answered alone).
    pub shared_errors: AtomicU64,
}

/// A point-in-time copy of the counters, plus the bytes the local tier holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub stale_served: u64,
    pub stale_on_error: u64,
    pub coalesced_waits: u64,
    pub refreshes: u64,
    pub stores: u64,
    pub evictions: u64,
    pub shared_hits: u64,
    pub shared_errors: u64,
    pub bytes_used: u64,
    pub entries: u64,
}

impl CacheMetrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self, bytes_used: u64, entries: u64) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            stale_served: get(&self.stale_served),
            stale_on_error: get(&self.stale_on_error),
            coalesced_waits: get(&self.coalesced_waits),
            refreshes: get(&self.refreshes),
            stores: get(&self.stores),
            evictions: get(&self.evictions),
            shared_hits: get(&self.shared_hits),
            shared_errors: get(&self.shared_errors),
            bytes_used,
            entries,
        }
    }
}

impl MetricFamilies for EntityCache {
    fn write(&self, o: &mut Exposition) {
        let cache = self.stats();
        o.header(
            "manifold_cache_requests_total",
            "counter",
            "Entity cache lookups by result (stale: served past freshness, in a stale window).",
        );
        for (result, n) in [
            ("hit", cache.hits),
            ("miss", cache.misses),
            ("stale", cache.stale_served),
        ] {
            o.line("manifold_cache_requests_total", &[("result", result)], n);
        }
        for (name, help, kind, n) in [
            (
                "manifold_cache_coalesced_waits_total",
                "Lookups that waited for another's fetch.",
                "counter",
                cache.coalesced_waits,
            ),
            (
                "manifold_cache_evictions_total",
                "Entries evicted to stay within max_bytes.",
                "counter",
                cache.evictions,
            ),
            (
                "manifold_cache_bytes",
                "Bytes held by the local cache tier.",
                "gauge",
                cache.bytes_used,
            ),
        ] {
            o.header(name, kind, help);
            o.line(name, &[], n);
        }
    }
}
