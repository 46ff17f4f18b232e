//! What the cache did for one client request, so the facade can say so: the age of the
//! oldest cached data used (REST `Age`), and the data served stale because a backend failed
//! (GraphQL `extensions.degraded`, REST `Warning`). One per request, carried by its
//! `CallContext`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Default)]
pub struct CacheNotes {
    /// Seconds; the oldest cached answer used.
    max_age: AtomicU64,
    from_cache: AtomicBool,
    revalidating: AtomicBool,
    degraded: Mutex<Vec<DegradedServe>>,
}

/// Data served from cache instead of a backend error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DegradedServe {
    pub service: String,
    /// The code the failure would have had (`CIRCUIT_OPEN`, `UPSTREAM_UNAVAILABLE`, ...).
    pub code: &'static str,
    /// Age of the data served, in seconds.
    pub age_seconds: u64,
}

impl CacheNotes {
    pub(crate) fn served(&self, age: Duration) {
        self.from_cache.store(true, Ordering::Relaxed);
        self.max_age.fetch_max(age.as_secs(), Ordering::Relaxed);
    }

    pub(crate) fn served_while_revalidating(&self, age: Duration) {
        self.served(age);
        self.revalidating.store(true, Ordering::Relaxed);
    }

    pub(crate) fn served_on_error(&self, age: Duration, service: &str, code: &'static str) {
        self.served(age);
        if let Ok(mut degraded) = self.degraded.lock() {
            let serve = DegradedServe {
                service: service.to_owned(),
                code,
                age_seconds: age.as_secs(),
            };
            if !degraded.contains(&serve) {
                degraded.push(serve);
            }
        }
    }

    /// The age of the oldest cached data used, when any was.
    pub fn age(&self) -> Option<u64> {
        self.from_cache
            .load(Ordering::Relaxed)
            .then(|| self.max_age.load(Ordering::Relaxed))
    }

    pub fn revalidating(&self) -> bool {
        self.revalidating.load(Ordering::Relaxed)
    }

    pub fn degraded(&self) -> Vec<DegradedServe> {
        self.degraded.lock().map(|d| d.clone()).unwrap_or_default()
    }
}
