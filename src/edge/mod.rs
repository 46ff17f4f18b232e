//! What every request passes first: request hygiene (`hygiene`: URI and header limits, one
//! path normalisation, before routing), CORS for browser clients (`cors`), then per request
//! a request id (the client's, when it is sane, else a new one, echoed in the response), its
//! W3C trace context (the client's `traceparent` continued, else a new trace), its deadline,
//! and the removal of any identity header a client tried to set. `client_ip` resolves the
//! client's address behind trusted proxies; `admission` sheds what is over the instance's
//! adaptive limit of requests in progress. What the request carries from here on is
//! `request`'s.

pub mod admission;
pub mod client_ip;
pub mod compress;
pub mod cors;
pub mod hygiene;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use http::HeaderValue;

use crate::auth::ClientHeaderStrip;
use crate::request::id::{REQUEST_ID_HEADER, RequestId, is_sane_id, new_request_id};
use crate::request::trace::TRACEPARENT;
use crate::request::{Deadline, Stamp, TraceContext};

/// Per-BFF settings of the edge middleware.
#[derive(Clone, Debug)]
pub struct EdgePolicy {
    pub request_timeout: Duration,
    /// Client headers that never get past the edge.
    pub strip: Arc<ClientHeaderStrip>,
    /// The share of new traces recorded (`[tracing] sample_ratio`).
    pub sample_ratio: f64,
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
    let mut trace = TraceContext::from_header(
        request
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok()),
    );
    // A client's trace keeps the client's decision; a new one is sampled by its id.
    if trace.parent_id.is_none() {
        trace.sampled = crate::observe::otlp::sampled(policy.sample_ratio, trace.trace_id);
    }
    request
        .extensions_mut()
        .insert(Stamp::new(RequestId(id.clone()), trace, deadline));
    id
}

/// The last step: the response carries the request's id.
pub fn echo_id(response: &mut Response, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
}
