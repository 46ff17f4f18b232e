//! The middleware that turns one routed request's `RequestRecord` into metrics, one
//! access-log line, a recent-error entry and a server span when it ends.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use http::HeaderName;
use tokio::time::Instant;
use tracing::Instrument;

use super::Observer;
use super::access_log::AccessLine;
use super::metrics::{NO_OPERATION, UNMATCHED};
use crate::request::trace::{AttrValue, SpanKind, SpanRecord, TraceContext};
use crate::request::{BackendCall, RequestId, RequestRecord};

/// The header the rate limits answer with (RFC draft `RateLimit`): its presence says the
/// request was charged and allowed.
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Counts a request in flight until dropped (also when the client goes away mid-request).
struct InFlight(Arc<Observer>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests.in_flight.add(-1);
    }
}

/// Runs a routed request (after `edge::admit` set its id and trace context): records the
/// route's metrics, writes the access-log line, remembers failures for the dashboard and
/// exports the request's spans.
pub async fn track<F, Fut>(observer: &Arc<Observer>, mut request: Request, run: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let observer = observer.clone();
    observer.requests.in_flight.add(1);
    let _in_flight = InFlight(observer.clone());
    let started = Instant::now();
    let wall_start = SystemTime::now();
    let route: Arc<str> = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED.into(), |m| m.as_str().into());
    let trace = request
        .extensions()
        .get::<TraceContext>()
        .copied()
        .unwrap_or_else(TraceContext::new_root);
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| Arc::from(""), |r| r.0.clone());
    let method = request.method().clone();
    let record = Arc::new(RequestRecord::new(
        observer.exporter().is_some() && trace.sampled,
    ));
    request.extensions_mut().insert(record.clone());

    // Log lines inside the request carry its id, route and trace at debug level. At info,
    // the access log line has them, and the span (its fields formatted for every request)
    // would be 7% of the proxy route's instructions.
    let span = tracing::debug_span!(
        "request",
        request_id = %request_id,
        route = %route,
        trace_id = %trace.trace_id_hex()
    );
    // Not even wrapped when disabled: the wrapper costs a move of the whole request future.
    let running = run(request);
    let response = if span.is_disabled() {
        running.await
    } else {
        running.instrument(span).await
    };

    let took = started.elapsed();
    let status = response.status().as_u16();
    let operation = record.operation();
    let operation_label = operation.as_deref().unwrap_or(NO_OPERATION);
    observer
        .requests
        .series(&route, operation_label)
        .record(status, took);
    let backends = record.backends();
    let slowest = backends.iter().max_by_key(|c| c.took);
    let failed: Vec<&BackendCall> = backends.iter().filter(|c| c.error.is_some()).collect();
    let limit = if status == 429 {
        "refused"
    } else if response.headers().contains_key(RATELIMIT) {
        "allowed"
    } else {
        "none"
    };
    let line = AccessLine {
        request_id: &request_id,
        method: method.as_str(),
        route: &route,
        operation: operation.as_deref(),
        cost: record.cost().unwrap_or(0),
        status,
        took,
        backend_calls: record.calls(),
        cache: record.cache_outcome(),
        limit,
        admission: record.admitted().as_str(),
        slowest,
        failed: &failed,
        trace_id: trace.trace_id,
    };
    if observer.log.access_log {
        line.write();
    }
    if status >= 500 || !failed.is_empty() {
        observer.remember_error(&line);
    }
    if let Some(exporter) = observer.exporter().filter(|_| trace.sampled) {
        let mut attributes = vec![
            ("http.request.method", AttrValue::Str(method.to_string())),
            ("http.route", AttrValue::Str(route.to_string())),
            ("http.response.status_code", AttrValue::Int(status.into())),
            (
                "manifold.backend_calls",
                AttrValue::Int(record.calls().into()),
            ),
        ];
        if let Some(op) = &operation {
            attributes.push(("graphql.operation.name", AttrValue::Str(op.to_string())));
        }
        let name = match &operation {
            Some(op) => format!("{method} {route} {op}"),
            None => format!("{method} {route}"),
        };
        exporter.send(SpanRecord {
            trace_id: trace.trace_id,
            span_id: trace.span_id,
            parent_id: trace.parent_id,
            name,
            kind: SpanKind::Server,
            start: wall_start,
            end: wall_start + took,
            error: status >= 500,
            attributes,
        });
        for span in record.take_spans() {
            exporter.send(span);
        }
    }
    response
}
