//! The local tier: a moka cache bounded by BYTES (a weigher counts key and body), each entry
//! kept as long as any of its windows (fresh, stale-while-revalidate, stale-if-error) may
//! still use it; and the flights that make concurrent misses of one key share one backend
//! call. What an entry means (fresh? stale?) is decided by `Entry`'s methods, against tokio's
//! clock so unit tests can pause time.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http::HeaderName;
use moka::notification::RemovalCause;
use tokio::time::Instant;

use super::metrics::CacheMetrics;
use super::policy::Lifetime;
use crate::upstream::{UpstreamError, UpstreamErrorKind};

/// One stored answer (or, when `vary` is not empty, the marker saying which headers the
/// answers at this key vary on; they are stored under the narrowed key).
#[derive(Debug)]
pub struct Entry {
    pub body: Bytes,
    /// The answer's `Content-Type` (proxied answers are replayed with it).
    pub content_type: Option<http::HeaderValue>,
    pub stored_at: Instant,
    /// What the entry's age was when it was stored (the backend's `Age`, or the shared
    /// tier's age).
    pub initial_age: Duration,
    pub lifetime: Lifetime,
    pub tags: Box<[String]>,
    pub vary: Box<[HeaderName]>,
}

/// What an entry may be used for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Past its freshness, within stale-while-revalidate: serve, and refresh in background.
    Revalidate,
    /// Past both: only a failing backend may make it useful again (if within stale-if-error).
    Stale,
}

impl Entry {
    pub fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored_at)
    }

    pub fn freshness(&self, now: Instant) -> Freshness {
        let past = now.saturating_duration_since(self.stored_at);
        if past < self.lifetime.fresh {
            Freshness::Fresh
        } else if past < self.lifetime.fresh + self.lifetime.stale_while_revalidate {
            Freshness::Revalidate
        } else {
            Freshness::Stale
        }
    }

    /// Whether it may stand in for a failed backend call.
    pub fn serves_on_error(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at)
            < self.lifetime.fresh + self.lifetime.stale_if_error
    }

    fn weight(key: &str, entry: &Entry) -> u32 {
        let tags: usize = entry.tags.iter().map(String::len).sum();
        // A fixed overhead for the entry's own fields and moka's bookkeeping.
        u32::try_from(key.len() + entry.body.len() + tags + 160).unwrap_or(u32::MAX)
    }
}

/// Keeps each entry exactly as long as some window may still use it.
struct KeepWhileUseful;

impl moka::Expiry<String, Arc<Entry>> for KeepWhileUseful {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.lifetime.keep())
    }
}

pub type FlightResult = Result<Bytes, UpstreamError>;
type Flight = Shared<BoxFuture<'static, FlightResult>>;

/// The local tier plus the in-flight backend calls by key.
#[derive(Clone)]
pub struct Store {
    entries: moka::future::Cache<String, Arc<Entry>>,
    flights: Arc<Mutex<HashMap<String, Flight>>>,
    metrics: Arc<CacheMetrics>,
}

impl Store {
    pub fn new(max_bytes: u64, metrics: Arc<CacheMetrics>) -> Self {
        let evictions = metrics.clone();
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Arc<Entry>| Entry::weight(key, entry))
            .expire_after(KeepWhileUseful)
            .eviction_listener(move |_key, _value, cause| {
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    evictions.evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .support_invalidation_closures()
            .build();
        Self {
            entries,
            flights: Arc::default(),
            metrics,
        }
    }

    pub async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.entries.get(key).await
    }

    pub async fn insert(&self, key: String, entry: Arc<Entry>) {
        self.metrics.stores.fetch_add(1, Ordering::Relaxed);
        self.entries.insert(key, entry).await;
    }

    /// Bytes held, by the weigher's count (moka settles it lazily; `sync` first for an exact
    /// figure).
    pub fn bytes_used(&self) -> u64 {
        self.entries.weighted_size()
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    pub async fn sync(&self) {
        self.entries.run_pending_tasks().await;
    }

    /// Drops every entry whose key starts with `prefix` or that carries `tag`.
    pub fn purge(&self, prefix: Option<String>, tag: Option<String>) -> bool {
        let result = self.entries.invalidate_entries_if(move |key, entry| {
            prefix.as_deref().is_some_and(|p| key.starts_with(p))
                || tag
                    .as_deref()
                    .is_some_and(|t| entry.tags.iter().any(|x| x == t))
        });
        result.is_ok()
    }

    pub fn is_in_flight(&self, key: &str) -> bool {
        self.flights
            .lock()
            .map(|f| f.contains_key(key))
            .unwrap_or(false)
    }

    /// Joins the call in flight for `key`, or starts `fetch` as that call. The call runs in
    /// its own task, so a caller that goes away cancels nothing the others wait for; it
    /// leaves the flight table only after it stored what it fetched, so a caller arriving
    /// later finds either the flight or the entry.
    pub fn flight(
        &self,
        key: &str,
        service: &str,
        fetch: impl FnOnce() -> BoxFuture<'static, FlightResult>,
    ) -> Flight {
        let Ok(mut flights) = self.flights.lock() else {
            // A poisoned table only loses coalescing, never correctness.
            return fetch().shared();
        };
        if let Some(flight) = flights.get(key) {
            self.metrics.coalesced_waits.fetch_add(1, Ordering::Relaxed);
            return flight.clone();
        }
        let fetch = fetch();
        let table = self.flights.clone();
        let owned_key = key.to_owned();
        let task = tokio::spawn(async move {
            let result = fetch.await;
            if let Ok(mut flights) = table.lock() {
                flights.remove(&owned_key);
            }
            result
        });
        let service = service.to_owned();
        let flight = async move {
            task.await.unwrap_or_else(|e| {
                Err(UpstreamError::new(
                    &service,
                    UpstreamErrorKind::Reset,
                    format!("cache fill task failed: {e}"),
                ))
            })
        }
        .boxed()
        .shared();
        flights.insert(key.to_owned(), flight.clone());
        flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::Sharing;
    use futures_util::future::join_all;
    use std::sync::atomic::AtomicU64;

    fn entry(fresh: u64, swr: u64, sie: u64) -> Entry {
        Entry {
            body: Bytes::from_static(b"{}"),
            content_type: None,
            stored_at: Instant::now(),
            initial_age: Duration::from_secs(1),
            lifetime: Lifetime {
                sharing: Sharing::Shared,
                fresh: Duration::from_secs(fresh),
                stale_while_revalidate: Duration::from_secs(swr),
                stale_if_error: Duration::from_secs(sie),
            },
            tags: Box::new([]),
            vary: Box::new([]),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_moves_through_its_windows() {
        let e = entry(10, 5, 30);
        let at = |s: u64| e.stored_at + Duration::from_secs(s);
        assert_eq!(e.freshness(at(9)), Freshness::Fresh);
        assert_eq!(e.freshness(at(12)), Freshness::Revalidate);
        assert_eq!(e.freshness(at(15)), Freshness::Stale);
        assert!(e.serves_on_error(at(39)));
        assert!(!e.serves_on_error(at(40)));
        assert_eq!(e.age(at(4)), Duration::from_secs(5));
        assert_eq!(e.lifetime.keep(), Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_flights_of_one_key_share_one_call_and_its_failure() {
        let store = Store::new(1 << 20, Arc::default());
        let calls = Arc::new(AtomicU64::new(0));
        let flights = (0..50).map(|_| {
            let calls = calls.clone();
            store.flight("k", "inventory", move || {
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(UpstreamError::new(
                        "inventory",
                        UpstreamErrorKind::Timeout,
                        "slow",
                    ))
                }
                .boxed()
            })
        });
        let results = join_all(flights).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| {
            r.as_ref()
                .is_err_and(|e| e.kind == UpstreamErrorKind::Timeout)
        }));
        assert_eq!(store.metrics.coalesced_waits.load(Ordering::Relaxed), 49);
        // Over: the next miss starts a call of its own.
        assert!(!store.is_in_flight("k"));
    }

    #[tokio::test]
    async fn the_store_is_bounded_by_bytes() {
        let store = Store::new(10_000, Arc::default());
        for i in 0..100 {
            let mut e = entry(60, 0, 0);
            e.body = Bytes::from(vec![b'x'; 1000]);
            store.insert(format!("k{i}"), Arc::new(e)).await;
        }
        store.sync().await;
        assert!(store.bytes_used() <= 10_000, "{}", store.bytes_used());
        assert!(store.metrics.evictions.load(Ordering::Relaxed) > 0);
    }
}
