//! `CachedUpstream`: a backend as typed clients and proxy routes call it. It holds the
//! `Upstream` and, when `[cache]` caches that service, its `UpstreamCache`; GETs ask the
//! cache first and the upstream only for what the cache cannot answer, everything else goes
//! straight to the upstream. The upstream never learns that a cache exists.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::UpstreamCache;
use super::policy::{self, BatchEndpoint};
use super::proxy::ProxyLookup;
use crate::request::CallContext;
use crate::upstream::{
    Idempotency, Upstream, UpstreamError, UpstreamErrorKind, UpstreamStats, decode_json,
};

/// A proxied request as the client sent it, bound for `target` on the backend.
pub struct Exchange<'a> {
    pub method: Method,
    /// Path and query on the backend.
    pub target: &'a str,
    /// The client's request headers.
    pub headers: HeaderMap,
    pub body: Body,
    /// Bounds the whole exchange, the response body included.
    pub timeout: Duration,
}

/// One backend, cached where its config says so. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CachedUpstream {
    upstream: Upstream,
    /// `None` when `[cache]` does not cache this service.
    cache: Option<UpstreamCache>,
}

impl CachedUpstream {
    pub fn new(upstream: Upstream, cache: Option<UpstreamCache>) -> Self {
        Self { upstream, cache }
    }

    /// A service this BFF's config does not name: every call fails fast.
    pub fn unconfigured(name: &str) -> Self {
        Self::new(Upstream::unconfigured(name), None)
    }

    pub fn name(&self) -> &str {
        self.upstream.name()
    }

    /// The service itself, without the cache.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The cache in front of this service's GETs, when `[cache]` caches it.
    pub fn cache(&self) -> Option<&UpstreamCache> {
        self.cache.as_ref()
    }

    /// The upstream's counters and instance states.
    pub fn stats(&self) -> UpstreamStats {
        self.upstream.stats()
    }

    /// `GET path_and_query`, decoded as JSON into `T`: from the cache when this service is
    /// cached and the answer may be, else through the upstream's pipeline.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        ctx: &CallContext,
        path_and_query: &str,
    ) -> Result<T, UpstreamError> {
        let Some(cache) = &self.cache else {
            return self.upstream.get_json(ctx, path_and_query).await;
        };
        let key = policy::request_key(self.name(), path_and_query);
        let body = cache
            .get(&self.upstream, ctx, key, None, path_and_query)
            .await?;
        decode_json(self.name(), &body)
    }

    /// `get_json` for one entity known by `tag` (`item:i1`): cached under the tag, so single
    /// and batch loads of one entity share an entry, and a purge by tag finds it.
    pub async fn get_entity_json<T: DeserializeOwned>(
        &self,
        ctx: &CallContext,
        tag: &str,
        path_and_query: &str,
    ) -> Result<T, UpstreamError> {
        let Some(cache) = &self.cache else {
            return self.upstream.get_json(ctx, path_and_query).await;
        };
        let key = policy::entity_key(self.name(), tag);
        let body = cache
            .get(&self.upstream, ctx, key, Some(tag), path_and_query)
            .await?;
        decode_json(self.name(), &body)
    }

    /// A batch endpoint (`{"items": [...]}`) for `ids`: each id is looked up in the cache
    /// first (as the entity `{kind}:{id}`), and only the misses are fetched, in ONE call
    /// built by `batch.path`; each item fetched is stored as its own entity, found by its
    /// `id_field`. Items come back in the order of `ids`, unknown ids left out.
    pub async fn get_batch_json<T: DeserializeOwned>(
        &self,
        ctx: &CallContext,
        batch: &BatchEndpoint<'_>,
        ids: &[&str],
    ) -> Result<Vec<T>, UpstreamError> {
        let Some(cache) = &self.cache else {
            let items: BatchItems<T> = self.upstream.get_json(ctx, &(batch.path)(ids)).await?;
            return Ok(items.items);
        };
        let bodies = cache.get_batch(&self.upstream, ctx, batch, ids).await?;
        bodies
            .iter()
            .map(|body| decode_json(self.name(), body))
            .collect()
    }

    /// A call with a JSON body, never cached (see `Upstream::send_json`).
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        ctx: &CallContext,
        method: Method,
        path_and_query: &str,
        body: &B,
        headers: &[(&'static str, &str)],
        idempotency: Idempotency,
    ) -> Result<T, UpstreamError> {
        self.upstream
            .send_json(ctx, method, path_and_query, body, headers, idempotency)
            .await
    }

    /// A proxied exchange, streamed. A plain GET of a cached service may be answered from
    /// the cache (`ETag`, `Age`, a 304 for a matching `If-None-Match`), a small cacheable
    /// answer is stored on its way through, and when the backend fails (or answers 5xx) a
    /// stale entry may stand in. `outgoing` turns the client's headers into what the backend
    /// receives.
    pub async fn forward(
        &self,
        ctx: &CallContext,
        exchange: Exchange<'_>,
        outgoing: impl FnOnce(HeaderMap) -> HeaderMap,
    ) -> Result<Response, UpstreamError> {
        let Exchange {
            method,
            target,
            headers: client,
            body,
            timeout,
        } = exchange;
        let cache = self
            .cache
            .as_ref()
            .filter(|_| method == Method::GET && !client.contains_key(header::RANGE));
        let Some(cache) = cache else {
            return self
                .upstream
                .stream(ctx, method, target, outgoing(client), body, timeout)
                .await;
        };
        // The client's headers are kept for the cache (conditions, `Vary`); what the backend
        // is sent is known first, as the forwarded host and scheme are part of the key.
        let sent = outgoing(client.clone());
        let key = policy::forwarded_key(&policy::request_key(self.name(), target), &sent);
        let stale = match cache.proxy_lookup(ctx, &key, &client).await {
            ProxyLookup::Hit(response) => return Ok(response),
            ProxyLookup::Miss { stale } => stale,
        };
        let sent = self
            .upstream
            .stream(ctx, method, target, sent, body, timeout)
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                return cache.proxy_stale(ctx, &e, stale.as_ref(), &client).ok_or(e);
            }
        };
        let (head, body) = response.into_parts();
        if head.status.is_server_error() {
            let e = UpstreamError::from_status(self.name(), head.status);
            if let Some(answer) = cache.proxy_stale(ctx, &e, stale.as_ref(), &client) {
                return Ok(answer);
            }
        } else if cache.proxy_storable(
            ctx,
            head.status,
            &head.headers,
            declared_length(&head.headers),
        ) {
            // Small and known-length (checked above): buffering it is bounded.
            let bytes = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
                UpstreamError::new(self.name(), UpstreamErrorKind::Reset, e.to_string())
            })?;
            return Ok(cache
                .proxy_store(ctx, &key, &head.headers, bytes, &client)
                .await);
        }
        Ok(Response::from_parts(head, body))
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The `{"items": [...]}` envelope of batch endpoints.
#[derive(serde::Deserialize)]
struct BatchItems<T> {
    items: Vec<T>,
}
