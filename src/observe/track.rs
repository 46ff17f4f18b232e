//! The middleware that turns one routed request's `RequestRecord` into metrics, one
//! access-log line, a recent-error entry and a server span when it ends.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use http::{HeaderName, HeaderValue, header};
use http_body::Body as _;
use tokio::time::Instant;
use tracing::Instrument;

use super::Observer;
use super::access_log::AccessLine;
use super::metrics::{NO_OPERATION, UNMATCHED};
use super::otlp::SpanExporter;
use crate::request::trace::{AttrValue, SpanKind, SpanRecord, TraceContext};
use crate::request::{BackendCall, RequestRecord, Stamp};

/// The header the rate limits answer with (RFC draft `RateLimit`): its presence says the
/// request was charged and allowed.
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Marks a response to a health or readiness probe (a response extension): probes are
/// neither logged (unless `[log] probes`) nor exported as spans, as they come every few
/// seconds from every balancer and say nothing about the traffic.
#[derive(Clone, Copy, Debug)]
pub struct Probe;

/// The `extensions.code` of each error in a GraphQL answer (a response extension, set by
/// the GraphQL endpoint): counted by operation and code when the request ends.
#[derive(Clone, Debug, Default)]
pub struct GraphqlErrors(pub Vec<Option<String>>);

/// A failed backend call whose part of an answer is absent by design, not missing: the
/// backend said the thing does not exist.
const ABSENT: &str = "NOT_FOUND";

/// The longest `User-Agent` the access log keeps (the rest is cut).
const MAX_USER_AGENT: usize = 256;

/// What the access line reads from the request before it is handed on.
struct Seen {
    client_ip: Option<IpAddr>,
    user_agent: Option<HeaderValue>,
    bytes_in: Option<u64>,
}

impl Seen {
    fn of(request: &Request) -> Self {
        let headers = request.headers();
        let bytes_in = match headers.get(header::CONTENT_LENGTH) {
            Some(length) => length.to_str().ok().and_then(|l| l.parse().ok()),
            None if headers.contains_key(header::TRANSFER_ENCODING) => None,
            None => Some(0),
        };
        Self {
            client_ip: Stamp::of(request.extensions()).and_then(|s| Some(s.client?.0)),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            bytes_in,
        }
    }

    fn user_agent(&self) -> Option<&str> {
        let agent = self.user_agent.as_ref()?.to_str().ok()?;
        let mut end = agent.len().min(MAX_USER_AGENT);
        while !agent.is_char_boundary(end) {
            end -= 1;
        }
        Some(&agent[..end])
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
/// exports the request's spans. The route is `route` when given (what serves a request the
/// router matched to no route: a proxy route), else the router's matched path.
pub async fn track<F, Fut>(
    observer: &Arc<Observer>,
    mut request: Request,
    route: Option<Arc<str>>,
    run: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let observer = observer.clone();
    observer.requests.in_flight.add(1);
    let _in_flight = InFlight(observer.clone());
    let started = Instant::now();
    let wall_start = SystemTime::now();
    let route: Arc<str> = route.unwrap_or_else(|| {
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED.into(), |m| m.as_str().into())
    });
    let stamp = Stamp::of(request.extensions());
    let trace = stamp.map_or_else(TraceContext::new_root, |s| s.trace);
    let request_id = stamp.map_or_else(|| Arc::from(""), |s| s.id.0.clone());
    let method = request.method().clone();
    let seen = observer.log.access_log.then(|| Seen::of(&request));
    let record = Arc::new(RequestRecord::new(
        observer.exporter().is_some() && trace.sampled,
    ));
    // Where the layers inside find it (a request the edge did not stamp has no layers).
    if let Some(stamp) = request.extensions_mut().get_mut::<Stamp>() {
        stamp.record = Some(record.clone());
    }

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
    let probe = response.extensions().get::<Probe>().is_some();
    let exported = observer.exporter().is_some() && trace.sampled && !probe;
    // A latency bucket links to this request's trace when the trace goes somewhere.
    observer.requests.series(&route, operation_label).record(
        status,
        took,
        exported.then_some(trace.trace_id),
    );
    let backends = record.backends();
    let slowest = backends.iter().max_by_key(|c| c.took);
    let failed: Vec<&BackendCall> = backends.iter().filter(|c| c.error.is_some()).collect();
    count_answer(
        observer.as_ref(),
        &route,
        operation.as_ref(),
        &response,
        &failed,
    );
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
        client_ip: seen.as_ref().and_then(|s| s.client_ip),
        caller: record.caller(),
        user_agent: seen.as_ref().and_then(Seen::user_agent),
        bytes_in: seen.as_ref().and_then(|s| s.bytes_in),
        bytes_out: response.body().size_hint().exact(),
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
    if observer.log.access_log && (!probe || observer.log.probes) {
        line.write();
    }
    if status >= 500 || !failed.is_empty() {
        observer.remember_error(&line);
    }
    if let Some(exporter) = observer.exporter().filter(|_| exported) {
        export(
            exporter,
            observer.name(),
            &trace,
            &record,
            &line,
            wall_start,
        );
    }
    response
}

/// The GraphQL errors of the answer by code, and, for an answer served (2xx) though
/// backend calls for it failed, each of those backends once.
fn count_answer(
    observer: &Observer,
    route: &Arc<str>,
    operation: Option<&Arc<str>>,
    response: &Response,
    failed: &[&BackendCall],
) {
    let requests = &observer.requests;
    if let Some(GraphqlErrors(codes)) = response.extensions().get::<GraphqlErrors>() {
        let labels: Vec<Arc<str>> = codes
            .iter()
            .map(|code| requests.error_code_label(code.as_deref()))
            .collect();
        let operation = operation.cloned().unwrap_or_else(|| NO_OPERATION.into());
        requests.graphql_errors(&operation, &labels);
    }
    if !response.status().is_success() {
        return;
    }
    let mut services: Vec<&Arc<str>> = failed
        .iter()
        .filter(|call| call.error != Some(ABSENT))
        .map(|call| &call.upstream)
        .collect();
    services.sort();
    services.dedup();
    for service in services {
        requests.partial_response(route, service);
    }
}

/// The request's server span (a child of the client's, when it sent one) and the spans its
/// backend calls recorded.
fn export(
    exporter: &SpanExporter,
    service: &'static str,
    trace: &TraceContext,
    record: &RequestRecord,
    line: &AccessLine<'_>,
    start: SystemTime,
) {
    let (method, route) = (line.method, line.route);
    let mut attributes = vec![
        ("http.request.method", AttrValue::Str(method.to_owned())),
        ("http.route", AttrValue::Str(route.to_owned())),
        (
            "http.response.status_code",
            AttrValue::Int(line.status.into()),
        ),
        (
            "manifold.backend_calls",
            AttrValue::Int(line.backend_calls.into()),
        ),
    ];
    if let Some(op) = line.operation {
        attributes.push(("graphql.operation.name", AttrValue::Str(op.to_owned())));
    }
    let name = match line.operation {
        Some(op) => format!("{method} {route} {op}"),
        None => format!("{method} {route}"),
    };
    let server = SpanRecord {
        trace_id: trace.trace_id,
        span_id: trace.span_id,
        parent_id: trace.parent_id,
        name,
        kind: SpanKind::Server,
        start,
        end: start + line.took,
        error: line.status >= 500,
        attributes,
    };
    exporter.send(server, service);
    for span in record.take_spans() {
        exporter.send(span, service);
    }
}
