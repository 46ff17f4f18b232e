//! What one client request leaves behind, collected while it runs (`RequestRecord`: its
//! GraphQL operation, its backend calls and which were slow or failed, its cache outcome, the
//! spans it made) and turned into metrics, one access-log line, a recent-error entry and a
//! server span when it ends (`track`, the middleware).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::Observer;
use super::access_log::AccessLine;
use super::metrics::{NO_OPERATION, UNMATCHED};
use super::trace::{AttrValue, SpanKind, SpanRecord, TraceContext};
use crate::edge::RequestId;
use crate::gateway::Gateway;

/// One backend call a request made (all its tries together).
#[derive(Clone, Debug)]
pub struct BackendCall {
    pub upstream: Arc<str>,
    pub took: Duration,
    /// The failure's `extensions.code`, when it failed.
    pub error: Option<&'static str>,
}

/// Collected during one request; shared with every backend call it makes.
#[derive(Debug, Default)]
pub struct RequestRecord {
    operation: Mutex<Option<Arc<str>>>,
    calls: AtomicU32,
    backends: Mutex<Vec<BackendCall>>,
    cache: Mutex<Option<&'static str>>,
    /// Spans are kept only when an exporter will send them.
    keep_spans: bool,
    spans: Mutex<Vec<SpanRecord>>,
}

impl RequestRecord {
    pub fn new(keep_spans: bool) -> Self {
        Self {
            keep_spans,
            ..Self::default()
        }
    }

    /// The GraphQL operation, as a bounded label (`RequestMetrics::operation_label`).
    pub fn set_operation(&self, label: Arc<str>) {
        *self.operation.lock().unwrap_or_else(|e| e.into_inner()) = Some(label);
    }

    pub fn operation(&self) -> Option<Arc<str>> {
        self.operation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The cache outcome of the request (`hit`, `miss`, `stale`); the cache reports every
    /// lookup and the request keeps the one that says most: stale over miss over hit.
    pub fn set_cache(&self, outcome: &'static str) {
        let rank = |o: Option<&str>| match o {
            Some("stale") => 3,
            Some("miss") => 2,
            Some("hit") => 1,
            _ => 0,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if rank(Some(outcome)) > rank(*cache) {
            *cache = Some(outcome);
        }
    }

    pub fn backend_call(&self, call: BackendCall) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    pub fn wants_spans(&self) -> bool {
        self.keep_spans
    }

    pub fn add_span(&self, span: SpanRecord) {
        if self.keep_spans {
            self.spans
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(span);
        }
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    fn backends(&self) -> Vec<BackendCall> {
        self.backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn take_spans(&self) -> Vec<SpanRecord> {
        std::mem::take(&mut *self.spans.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

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
pub async fn track(gateway: &Gateway, mut request: Request, next: Next) -> Response {
    let observer = gateway.observer().clone();
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
    let response = if span.is_disabled() {
        next.run(request).await
    } else {
        next.run(request).instrument(span).await
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
    } else if response.headers().contains_key(crate::ratelimit::RATELIMIT) {
        "allowed"
    } else {
        "none"
    };
    let line = AccessLine {
        request_id: &request_id,
        method: method.as_str(),
        route: &route,
        operation: operation.as_deref(),
        status,
        took,
        backend_calls: record.calls(),
        cache: *record.cache.lock().unwrap_or_else(|e| e.into_inner()),
        limit,
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
