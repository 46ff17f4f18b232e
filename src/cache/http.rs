//! What a REST facade's GET answers say about caching: a strong `ETag` (a digest of the
//! body) with `If-None-Match` -> 304 and no body; `Age` when cached data was used; and
//! `Warning` when that data was stale (110 while revalidating, 111 when a backend failed and
//! stale data stood in for its answer). The data itself comes from the entity cache; this
//! layer only reads the request's `CacheNotes`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body::Body as _;
use sha2::{Digest, Sha256};

use crate::request::CacheNotes;

/// Bodies up to this size get an ETag; larger ones pass through untouched, unbuffered.
const MAX_TAGGED_BODY: u64 = 1 << 20;

/// Middleware for the GET routes of a REST facade (`axum::middleware::from_fn`).
pub async fn conditional(mut request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return next.run(request).await;
    }
    let notes = Arc::new(CacheNotes::default());
    request.extensions_mut().insert(notes.clone());
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    annotate(&mut parts.headers, &notes);
    let size = body.size_hint().exact();
    if parts.status != StatusCode::OK || size.is_none_or(|n| n > MAX_TAGGED_BODY) {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_TAGGED_BODY as usize).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let etag = etag_of(&bytes);
    let matches = if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| none_match(v, &etag));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        parts.headers.insert(header::ETAG, value);
    }
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_TYPE);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// `Age` and `Warning` from what the cache did for the request.
pub fn annotate(headers: &mut HeaderMap, notes: &CacheNotes) {
    let Some(age) = notes.age() else { return };
    headers.insert(header::AGE, HeaderValue::from(age));
    let degraded = notes.degraded();
    if !degraded.is_empty() {
        headers.append(
            header::WARNING,
            HeaderValue::from_static("111 - \"Revalidation Failed\""),
        );
    }
    if !degraded.is_empty() || notes.revalidating() {
        headers.append(
            header::WARNING,
            HeaderValue::from_static("110 - \"Response is Stale\""),
        );
    }
}

/// A strong validator: the first 128 bits of the body's SHA-256.
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for b in &digest[..16] {
        tag.push_str(&format!("{b:02x}"));
    }
    tag.push('"');
    tag
}

/// `If-None-Match` semantics (RFC 9110 §13.1.2): `*`, or a list of tags compared weakly.
pub(super) fn none_match(header: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    header.trim() == "*" || header.split(',').any(|t| strip(t) == strip(etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly() {
        let tag = etag_of(b"{}");
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"other\"", &tag));
        assert_ne!(etag_of(b"a"), etag_of(b"b"));
    }
}
