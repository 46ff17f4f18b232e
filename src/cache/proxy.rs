//! Proxy-route GETs through the cache. The proxy streams, so only what is small and
//! cacheable is ever buffered: a 200 whose `Content-Length` is known and under the entry cap
//! and whose headers allow storing. A fresh entry is replayed (with `ETag`, `Age`, and a 304
//! for a matching `If-None-Match`); a stale one stands in when the backend fails, with a
//! `Warning`. No coalescing here: a streamed exchange has no shareable result until done.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::time::Instant;

use super::http::{annotate, etag_of, none_match};
use super::store::{Entry, Freshness};
use super::{CacheMetrics, UpstreamCache, policy};
use crate::request::{CacheNotes, CallContext};
use crate::upstream::UpstreamError;

/// What the cache has for a proxied GET.
pub enum ProxyLookup {
    /// A fresh entry, already turned into the answer.
    Hit(Response),
    /// The backend must be asked; `stale` may stand in if it fails.
    Miss { stale: Option<Arc<Entry>> },
}

impl UpstreamCache {
    pub async fn proxy_lookup(
        &self,
        ctx: &CallContext,
        key: &str,
        request: &HeaderMap,
    ) -> ProxyLookup {
        let Some(entry) = self.lookup(key, ctx).await else {
            CacheMetrics::inc(&self.metrics().misses);
            return ProxyLookup::Miss { stale: None };
        };
        let now = Instant::now();
        if entry.freshness(now) == Freshness::Fresh {
            CacheMetrics::inc(&self.metrics().hits);
            let notes = CacheNotes::default();
            notes.served(entry.age(now));
            return ProxyLookup::Hit(replay(&entry, request, &notes));
        }
        CacheMetrics::inc(&self.metrics().misses);
        ProxyLookup::Miss { stale: Some(entry) }
    }

    /// The stale entry's answer instead of `error`, when it may stand in.
    pub fn proxy_stale(
        &self,
        ctx: &CallContext,
        error: &UpstreamError,
        stale: Option<&Arc<Entry>>,
        request: &HeaderMap,
    ) -> Option<Response> {
        let entry = stale.filter(|e| self.stands_in(error, e))?;
        self.served_on_error(ctx, error, entry);
        let notes = CacheNotes::default();
        notes.served_on_error(
            entry.age(Instant::now()),
            &error.service,
            error.code().as_str(),
        );
        Some(replay(entry, request, &notes))
    }

    /// Whether an answer is worth buffering to store: a 200 of known, small length whose
    /// headers allow storing, not content-encoded (it is replayed with its type only), and
    /// varying on nothing but the identity headers (the only request headers the key sees).
    pub fn proxy_storable(
        &self,
        ctx: &CallContext,
        status: StatusCode,
        headers: &HeaderMap,
        length: Option<u64>,
    ) -> bool {
        let Some(length) = length.filter(|l| *l <= self.cache.0.max_entry) else {
            return false;
        };
        let identity_headers = ctx
            .identity
            .as_deref()
            .map(|id| id.forwarded_headers())
            .unwrap_or_default();
        let vary_ok = policy::vary_names(headers).is_some_and(|names| {
            names
                .iter()
                .all(|n| identity_headers.iter().any(|(h, _)| h == n))
        });
        status == StatusCode::OK
            && vary_ok
            && !headers.contains_key(header::CONTENT_ENCODING)
            && policy::lifetime(
                headers,
                length as usize,
                self.cache.0.max_entry,
                &self.policy,
            )
            .is_some()
    }

    /// Stores a buffered answer and replays it.
    pub async fn proxy_store(
        &self,
        ctx: &CallContext,
        key: &str,
        headers: &HeaderMap,
        body: Bytes,
        request: &HeaderMap,
    ) -> Response {
        self.put(key, ctx, None, headers, body.clone()).await;
        let mut response = Response::new(Body::from(body.clone()));
        *response.headers_mut() = headers.clone();
        set_etag(&mut response, &body, request);
        response
    }
}

fn replay(entry: &Entry, request: &HeaderMap, notes: &CacheNotes) -> Response {
    let mut response = Response::new(Body::from(entry.body.clone()));
    if let Some(ct) = &entry.content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, ct.clone());
    }
    annotate(response.headers_mut(), notes);
    set_etag(&mut response, &entry.body, request);
    response
}

/// `ETag`, and a 304 without body when `If-None-Match` matches it.
fn set_etag(response: &mut Response, body: &[u8], request: &HeaderMap) {
    let etag = etag_of(body);
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| none_match(v, &etag));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if matches {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.body_mut() = Body::empty();
        response.headers_mut().remove(header::CONTENT_LENGTH);
        response.headers_mut().remove(header::CONTENT_TYPE);
    }
}
