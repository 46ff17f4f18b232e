//! What every request passes first: request hygiene (`hygiene`: URI and header limits, one
//! path normalisation, before routing), CORS for browser clients (`cors`), then per request
//! a request id (the client's, when it is sane, else a new one, echoed in the response), its
//! W3C trace context (the client's `traceparent` continued, else a new trace), its deadline,
//! and the removal of any identity header a client tried to set. `client_ip` resolves the
//! client's address behind trusted proxies. Also the `CallContext` extractor handlers use to
//! call backends.

pub mod client_ip;
pub mod cors;
pub mod hygiene;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request};
use axum::response::Response;
use http::request::Parts;
use http::{HeaderName, HeaderValue};

use crate::auth::{ClientHeaderStrip, Identity};
use crate::observe::trace::TRACEPARENT;
use crate::observe::{RequestRecord, TraceContext};
use crate::upstream::{CallContext, Deadline};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request id, as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// Per-BFF settings of the edge middleware.
#[derive(Clone, Debug)]
pub struct EdgePolicy {
    pub request_timeout: Duration,
    /// Client headers that never get past the edge.
    pub strip: Arc<ClientHeaderStrip>,
}

/// The first step of every routed request (`gateway` runs it in its one per-request layer):
/// the deadline starts, client identity headers go, and the request id and trace context
/// are set. Returns the id, for `echo_id` on the response.
pub fn admit(policy: &EdgePolicy, request: &mut Request) -> Arc<str> {
    let deadline = Deadline::after(policy.request_timeout);
    policy.strip.apply(request.headers_mut());
    let id: Arc<str> = match request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_id(v))
    {
        Some(v) => v.into(),
        None => new_request_id().into(),
    };
    let trace = TraceContext::from_header(
        request
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok()),
    );
    let extensions = request.extensions_mut();
    extensions.insert(trace);
    extensions.insert(deadline);
    extensions.insert(RequestId(id.clone()));
    id
}

/// The last step: the response carries the request's id.
pub fn echo_id(response: &mut Response, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
}

/// A client-chosen id is kept only when short and plain, so it is safe in logs and headers.
fn is_sane_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn new_request_id() -> String {
    crate::observe::trace::hex32(fastrand::u128(..))
}

impl<S: Send + Sync> FromRequestParts<S> for CallContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

impl CallContext {
    /// The context of the request these parts belong to (identity set by `auth::require`,
    /// deadline and id by `edge`). Outside that stack it gets a fresh default budget.
    pub fn from_parts(parts: &Parts) -> Self {
        let identity = parts.extensions.get::<Arc<Identity>>().cloned();
        let deadline = parts
            .extensions
            .get::<Deadline>()
            .copied()
            .unwrap_or_else(|| Deadline::after(Duration::from_secs(3)));
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| new_request_id().into());
        let mut ctx = CallContext::new(identity, deadline, request_id);
        if let Some(trace) = parts.extensions.get::<TraceContext>() {
            ctx.trace = *trace;
        }
        ctx.record = parts.extensions.get::<Arc<RequestRecord>>().cloned();
        // A facade that reports what the cache did (`cache::http`) put its notes here.
        if let Some(notes) = parts.extensions.get::<Arc<crate::cache::CacheNotes>>() {
            ctx.cache_notes = notes.clone();
        }
        ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_request_ids_are_kept() {
        assert!(is_sane_id("abc-123_x.y:z"));
        assert!(!is_sane_id(""));
        assert!(!is_sane_id("a b"));
        assert!(!is_sane_id(&"x".repeat(200)));
        assert_eq!(new_request_id().len(), 32);
    }
}
