//! The entity and response cache in front of backend GETs (DESIGN.md's `cache`): a local
//! tier bounded by bytes (`store`), the backend's `Cache-Control` and `Vary` deciding what
//! may be stored, where and how long (`policy`), per-id lookups for batch endpoints
//! (`batch`), ETag / `If-None-Match` / `Age` / `Warning` on REST answers (`http`), purge by
//! key prefix or tag (`admin`), and counters (`metrics`). It wraps `upstream`, which knows
//! nothing of it: typed clients and proxy routes call a `CachedUpstream` (`upstream`), which
//! asks the cache first and its `Upstream` only for what the cache cannot answer.
//!
//! A GET meets it in this order (`UpstreamCache::get`): a fresh entry answers at once; an
//! entry within stale-while-revalidate answers at once and starts ONE background refresh;
//! anything else is a miss, and concurrent misses of one key share ONE backend call (a
//! flight); when that call fails for a reason that is the backend's (or its open circuit),
//! an entry within stale-if-error answers instead, and the request's `CacheNotes` say so.
//! What it never stores: errors (only successful answers are offered), `Set-Cookie`,
//! `no-store`, `no-cache`, `Vary: *`, bodies over the size cap; and an answer that is not
//! explicitly `public` is stored only in the caller's own partition.
//!
//! With a shared tier (`shared`, Redis), a purge also reaches every other instance's local
//! tier (`broadcast`).

mod batch;
mod broadcast;
pub mod http;
mod metrics;
pub mod policy;
mod proxy;
mod shared;
mod store;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderMap, header};
use bytes::Bytes;
use futures_util::FutureExt;
use tokio::time::Instant;

pub use metrics::{CacheMetrics, CacheStats};
pub use upstream::{CachedUpstream, Exchange};

use crate::config::{CacheConfig, CachePolicyConfig};
use crate::request::{CallContext, Deadline};
use crate::upstream::{Upstream, UpstreamError, UpstreamErrorKind};
use broadcast::PurgeBroadcast;
use policy::Sharing;
use shared::SharedTier;
use store::{Entry, Freshness, Store};

/// The cache of one BFF instance, shared by every cached upstream. Cheap to clone.
#[derive(Clone)]
pub struct EntityCache(Arc<Inner>);

struct Inner {
    store: Store,
    /// The Redis tier, when `cache.redis_url` is set.
    shared: Option<Arc<SharedTier>>,
    /// Purges to and from the other instances, with the Redis tier.
    broadcast: Option<PurgeBroadcast>,
    metrics: Arc<CacheMetrics>,
    max_entry: u64,
}

impl std::fmt::Debug for EntityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityCache").finish_non_exhaustive()
    }
}

impl EntityCache {
    /// Does not connect to Redis (the first lookup does); fails only on a bad URL.
    pub fn new(config: &CacheConfig) -> Result<Self, redis::RedisError> {
        let metrics = Arc::new(CacheMetrics::default());
        let shared = match config.redis() {
            Some(endpoint) => Some(Arc::new(SharedTier::new(
                &endpoint,
                &config.redis_prefix,
                config.redis_timeout,
            )?)),
            None => None,
        };
        Ok(EntityCache(Arc::new_cyclic(
            |this: &std::sync::Weak<Inner>| {
                // Another instance's purge drops the same entries here (the local tier only:
                // the purging instance cleared the shared one).
                let this = this.clone();
                let apply = move |prefix, tag| {
                    if let Some(inner) = this.upgrade() {
                        inner.store.purge(prefix, tag);
                    }
                };
                Inner {
                    store: Store::new(config.max_bytes.bytes(), metrics.clone()),
                    broadcast: shared
                        .clone()
                        .map(|tier| PurgeBroadcast::start(tier, apply)),
                    shared,
                    metrics,
                    max_entry: config.max_entry_bytes.bytes(),
                }
            },
        )))
    }

    /// The handle one upstream's GETs go through.
    pub fn for_upstream(&self, policy: &CachePolicyConfig) -> UpstreamCache {
        UpstreamCache {
            cache: self.clone(),
            policy: Arc::new(policy.clone()),
        }
    }

    pub fn metrics(&self) -> &CacheMetrics {
        &self.0.metrics
    }

    /// Counters and the bytes held (approximate until `settle`).
    pub fn stats(&self) -> CacheStats {
        let store = &self.0.store;
        self.0
            .metrics
            .snapshot(store.bytes_used(), store.entry_count())
    }

    /// Applies pending evictions and invalidations, so `stats` is exact.
    pub async fn settle(&self) {
        self.0.store.sync().await;
    }

    /// Drops every entry whose key starts with `prefix` (`inventory GET /items`) or that
    /// carries `tag` (`item:i1`), locally, in the shared tier and (told through Redis) in
    /// every other instance's local tier. False when any refused (the purge should then be
    /// repeated; applying it twice is harmless).
    pub async fn purge(&self, prefix: Option<String>, tag: Option<String>) -> bool {
        let shared_ok = match &self.0.shared {
            Some(shared) => match shared.purge(prefix.as_deref(), tag.as_deref()).await {
                Ok(()) => true,
                Err(e) => {
                    CacheMetrics::inc(&self.0.metrics.shared_errors);
                    tracing::warn!(error = %e, "cache purge did not reach the shared tier");
                    false
                }
            },
            None => true,
        };
        // The others after the shared tier, so they cannot copy back what it still held.
        let broadcast_ok = match &self.0.broadcast {
            Some(broadcast) => match broadcast.publish(prefix.as_deref(), tag.as_deref()).await {
                Ok(()) => true,
                Err(e) => {
                    CacheMetrics::inc(&self.0.metrics.shared_errors);
                    tracing::warn!(error = %e, "cache purge was not broadcast to the other instances");
                    false
                }
            },
            None => true,
        };
        // Local last, so nothing the shared tier still held can be copied back meanwhile.
        let local_ok = self.0.store.purge(prefix, tag);
        self.0.store.sync().await;
        shared_ok && broadcast_ok && local_ok
    }
}

/// One upstream's way into the cache: the shared store under that upstream's policy.
#[derive(Clone)]
pub struct UpstreamCache {
    cache: EntityCache,
    policy: Arc<CachePolicyConfig>,
}

impl std::fmt::Debug for UpstreamCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCache")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl UpstreamCache {
    fn store(&self) -> &Store {
        &self.cache.0.store
    }

    fn metrics(&self) -> &CacheMetrics {
        &self.cache.0.metrics
    }

    /// Counts a lookup and tells the request's access-log record what the cache did.
    fn count(
        &self,
        ctx: &CallContext,
        outcome: &'static str,
        counter: &std::sync::atomic::AtomicU64,
    ) {
        CacheMetrics::inc(counter);
        if let Some(record) = &ctx.record {
            record.set_cache(outcome);
        }
    }

    /// The body of `GET path_and_query`, cached under `base` (see the module doc).
    pub(crate) async fn get(
        &self,
        upstream: &Upstream,
        ctx: &CallContext,
        base: String,
        tag: Option<&str>,
        path_and_query: &str,
    ) -> Result<Bytes, UpstreamError> {
        let found = self.lookup(&base, ctx).await;
        if let Some(entry) = &found {
            let now = Instant::now();
            match entry.freshness(now) {
                Freshness::Fresh => {
                    self.count(ctx, "hit", &self.metrics().hits);
                    ctx.cache_notes.served(entry.age(now));
                    return Ok(entry.body.clone());
                }
                Freshness::Revalidate => {
                    self.count(ctx, "stale", &self.metrics().stale_served);
                    ctx.cache_notes.served_while_revalidating(entry.age(now));
                    self.refresh(upstream, ctx, &base, tag, path_and_query);
                    return Ok(entry.body.clone());
                }
                Freshness::Stale => {}
            }
        }
        self.count(ctx, "miss", &self.metrics().misses);
        let result = self.fill(upstream, ctx, &base, tag, path_and_query).await;
        match (result, found) {
            (Ok(body), _) => Ok(body),
            (Err(e), Some(entry)) if self.stands_in(&e, &entry) => {
                self.served_on_error(ctx, &e, &entry);
                Ok(entry.body.clone())
            }
            (Err(e), _) => Err(e),
        }
    }

    /// The entry for `base` this caller may see: the shared one (only public answers are
    /// stored there), else the one in the caller's own partition; through a `Vary` marker
    /// to the variant for the caller's headers.
    async fn lookup(&self, base: &str, ctx: &CallContext) -> Option<Arc<Entry>> {
        for key in [base.to_owned(), policy::identity_key(base, ctx)] {
            let Some(entry) = self.entry(&key).await else {
                continue;
            };
            if entry.vary.is_empty() {
                return Some(entry);
            }
            let varied = policy::varied_key(&key, &entry.vary, ctx);
            if let Some(entry) = self.entry(&varied).await {
                return Some(entry);
            }
        }
        None
    }

    /// The entry at `key`: the local tier's, else the shared tier's (copied locally).
    async fn entry(&self, key: &str) -> Option<Arc<Entry>> {
        if let Some(entry) = self.store().get(key).await {
            return Some(entry);
        }
        let shared = self.cache.0.shared.as_ref()?;
        match shared.get(key).await {
            Ok(Some(entry)) => {
                CacheMetrics::inc(&self.metrics().shared_hits);
                let entry = Arc::new(entry);
                self.store().insert(key.to_owned(), entry.clone()).await;
                Some(entry)
            }
            Ok(None) => None,
            Err(e) => {
                CacheMetrics::inc(&self.metrics().shared_errors);
                tracing::debug!(error = %e, "shared cache tier unavailable; local only");
                None
            }
        }
    }

    /// Stores locally, and in the shared tier in the background (never delaying an answer).
    async fn keep(&self, key: String, entry: Arc<Entry>) {
        if let Some(shared) = &self.cache.0.shared {
            let (shared, key, entry) = (shared.clone(), key.clone(), entry.clone());
            let metrics = self.cache.0.metrics.clone();
            tokio::spawn(async move {
                if shared.put(&key, &entry).await.is_err() {
                    CacheMetrics::inc(&metrics.shared_errors);
                }
            });
        }
        self.store().insert(key, entry).await;
    }

    /// Stores a successful answer under `base` if its headers allow, where they allow.
    async fn put(
        &self,
        base: &str,
        ctx: &CallContext,
        tag: Option<&str>,
        headers: &HeaderMap,
        body: Bytes,
    ) {
        let Some(lifetime) =
            policy::lifetime(headers, body.len(), self.cache.0.max_entry, &self.policy)
        else {
            return;
        };
        let key = match lifetime.sharing {
            Sharing::Shared => base.to_owned(),
            Sharing::PerIdentity => policy::identity_key(base, ctx),
        };
        let initial_age = headers
            .get(header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or_default();
        let tags: Box<[String]> = tag.map(str::to_owned).into_iter().collect();
        let vary = policy::vary_names(headers).unwrap_or_default();
        let entry = |body: Bytes, vary: Box<[_]>| {
            Arc::new(Entry {
                body,
                content_type: headers.get(header::CONTENT_TYPE).cloned(),
                stored_at: Instant::now(),
                initial_age,
                lifetime,
                tags: tags.clone(),
                vary,
            })
        };
        if vary.is_empty() {
            self.keep(key, entry(body, Box::new([]))).await;
        } else {
            let varied = policy::varied_key(&key, &vary, ctx);
            self.keep(key, entry(Bytes::new(), vary.into())).await;
            self.keep(varied, entry(body, Box::new([]))).await;
        }
    }

    /// The backend call for `base`, shared by every concurrent caller of the same
    /// partition; what it fetches is stored before the flight ends.
    fn fill(
        &self,
        upstream: &Upstream,
        ctx: &CallContext,
        base: &str,
        tag: Option<&str>,
        path_and_query: &str,
    ) -> impl Future<Output = Result<Bytes, UpstreamError>> + use<> {
        let flight_key = policy::identity_key(base, ctx);
        let (this, upstream, ctx) = (self.clone(), upstream.clone(), ctx.clone());
        let (base, tag, path) = (
            base.to_owned(),
            tag.map(str::to_owned),
            path_and_query.to_owned(),
        );
        let service = upstream.name().to_owned();
        self.store().flight(&flight_key, &service, move || {
            async move {
                let fetched = upstream.get(&ctx, &path).await?;
                this.put(
                    &base,
                    &ctx,
                    tag.as_deref(),
                    &fetched.headers(),
                    fetched.body.clone(),
                )
                .await;
                Ok(fetched.body)
            }
            .boxed()
        })
    }

    /// Starts ONE background refresh of `base` (none when a call for it is in flight). It
    /// runs on a budget of its own: the request that triggered it may be answered already.
    fn refresh(
        &self,
        upstream: &Upstream,
        ctx: &CallContext,
        base: &str,
        tag: Option<&str>,
        path_and_query: &str,
    ) {
        if self.store().is_in_flight(&policy::identity_key(base, ctx)) {
            return;
        }
        CacheMetrics::inc(&self.metrics().refreshes);
        let mut background = ctx.clone();
        background.deadline = Deadline::after(upstream.background_budget());
        background.cache_notes = Arc::default();
        // The flight runs in its own task; nobody needs to wait for it.
        drop(self.fill(upstream, &background, base, tag, path_and_query));
    }

    /// Whether `entry` may answer instead of `error`: the failure is the backend's (down,
    /// slow, broken, circuit open, saturated), not a verdict about the data (404, 4xx), and
    /// the entry is within its stale-if-error window.
    fn stands_in(&self, error: &UpstreamError, entry: &Entry) -> bool {
        let backend_failed = error.is_instance_fault()
            || matches!(
                error.kind,
                UpstreamErrorKind::CircuitOpen
                    | UpstreamErrorKind::Saturated
                    | UpstreamErrorKind::DeadlineExceeded
            );
        backend_failed && entry.serves_on_error(Instant::now())
    }

    fn served_on_error(&self, ctx: &CallContext, error: &UpstreamError, entry: &Entry) {
        let age = entry.age(Instant::now());
        self.count(ctx, "stale", &self.metrics().stale_served);
        CacheMetrics::inc(&self.metrics().stale_on_error);
        ctx.cache_notes
            .served_on_error(age, &error.service, error.code().as_str());
        tracing::warn!(service = %error.service, code = %error.code(), age_s = age.as_secs(), detail = %error.detail, "served stale data instead of an error");
    }
}
