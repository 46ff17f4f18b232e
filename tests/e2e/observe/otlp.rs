//! Span export with the OpenTelemetry SDK's OTLP exporter, decoded by a collector that reads
//! what a real one would (gzip, then the protobuf `ExportTraceServiceRequest`): the resource
//! names the BFF, the server span continues the client's trace and each backend call is its
//! child, configured headers arrive, probes are never exported, the sampler keeps the share
//! asked for while a client's sampled trace is always kept, no secret is on any span, and an
//! exported request's latency bucket links to its trace (an OpenMetrics exemplar).

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use manifold::axum::{Router, body::Bytes, extract::State, routing::post};
use manifold::config::Secret;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use prost::Message;
use tokio::time::Instant;

use super::logs::{assert_no_secrets, request_with_secrets};
use super::{CLIENT_SPAN, CLIENT_TRACE};
use crate::harness::Stack;
use crate::mobile::HOME;

/// One export as the collector got it.
struct Export {
    headers: http::HeaderMap,
    /// The body after `Content-Encoding` was undone.
    body: Vec<u8>,
    request: ExportTraceServiceRequest,
}

type Received = Arc<Mutex<Vec<Export>>>;

/// An OTLP/HTTP collector on a free port: its base URL and what it received.
async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(got): State<Received>, headers: http::HeaderMap, body: Bytes| async move {
                    let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
                    let body = if gzip {
                        let mut out = Vec::new();
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_end(&mut out)
                            .expect("valid gzip");
                        out
                    } else {
                        body.to_vec()
                    };
                    let request =
                        ExportTraceServiceRequest::decode(&body[..]).expect("a protobuf export");
                    got.lock().unwrap().push(Export {
                        headers,
                        body,
                        request,
                    });
                    ""
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { manifold::axum::serve(listener, app).await });
    (url, received)
}

fn text(value: &Option<AnyValue>) -> Option<&str> {
    match value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(&kv.value))
}

/// Every span received so far.
fn spans(received: &Received) -> Vec<Span> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|e| &e.request.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect()
}

/// Waits until `done` holds for the spans received, for at most 5 s.
async fn wait_for_spans(received: &Received, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let all = spans(received);
        if done(&all) {
            return all;
        }
        assert!(Instant::now() < deadline, "spans never arrived: {all:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_out_through_the_sdk_exporter_with_the_clients_trace_and_no_secrets() {
    let (url, received) = collector().await;
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.tracing.otlp_endpoint = Some(url);
        config.tracing.export_interval = Duration::from_millis(20);
        config.tracing.environment = Some("e2e".into());
        config
            .tracing
            .headers
            .insert("x-collector-key".into(), Secret::new("collector-secret"));
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    // A probe first: never exported.
    let probe = stack.http.get(stack.url("/readyz")).send().await.unwrap();
    assert_eq!(probe.status(), 200);
    let response = request_with_secrets(&stack, &token).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();

    let server_name = "POST /graphql Home";
    let all = wait_for_spans(&received, |spans| {
        spans.iter().any(|s| s.name == server_name)
            && spans.iter().any(|s| s.name.starts_with("GET users"))
    })
    .await;

    let trace = u128::from_str_radix(CLIENT_TRACE, 16)
        .unwrap()
        .to_be_bytes();
    let client_span = u64::from_str_radix(CLIENT_SPAN, 16).unwrap().to_be_bytes();
    let server = all.iter().find(|s| s.name == server_name).unwrap();
    assert_eq!(server.trace_id, trace, "the client's trace is continued");
    assert_eq!(
        server.parent_span_id, client_span,
        "a child of the client's span"
    );
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(
        attribute(&server.attributes, "http.route"),
        Some("/graphql")
    );
    let calls: Vec<&Span> = all
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert!(calls.len() >= 7, "one span per backend call: {calls:?}");
    for call in &calls {
        assert_eq!(call.trace_id, trace);
        assert_eq!(call.parent_span_id, server.span_id, "{}", call.name);
    }
    assert!(
        !all.iter().any(|s| s.name.contains("/readyz")),
        "a probe was exported"
    );

    let exports = received.lock().unwrap();
    let export = &exports[0];
    assert_eq!(export.headers["content-type"], "application/x-protobuf");
    assert_eq!(export.headers["content-encoding"], "gzip");
    assert_eq!(export.headers["x-collector-key"], "collector-secret");
    let resource = export.request.resource_spans[0]
        .resource
        .as_ref()
        .expect("a resource");
    assert_eq!(
        attribute(&resource.attributes, "service.name"),
        Some("bff-mobile"),
        "the BFF's name"
    );
    assert_eq!(
        attribute(&resource.attributes, "service.version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        attribute(&resource.attributes, "deployment.environment"),
        Some("e2e")
    );
    assert!(attribute(&resource.attributes, "host.name").is_some());
    let body: Vec<u8> = exports.iter().flat_map(|e| e.body.clone()).collect();
    assert_no_secrets(&String::from_utf8_lossy(&body), &token);
}

/// `n` GraphQL requests, 16 at a time, each a new trace.
async fn traffic(stack: &Stack, token: &str, query: &str, n: usize) {
    let body = serde_json::json!({ "query": query });
    let statuses: Vec<u16> = futures_util::stream::iter(0..n)
        .map(|_| async {
            let response = stack
                .http
                .post(stack.url("/graphql"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            response.bytes().await.unwrap();
            status
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_keeps_the_share_asked_for_and_every_sampled_client_trace() {
    const REQUESTS: usize = 2000;
    const RATIO: f64 = 0.25;
    let (url, received) = collector().await;
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.tracing.otlp_endpoint = Some(url);
        config.tracing.export_interval = Duration::from_millis(20);
        config.tracing.sample_ratio = RATIO;
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    traffic(&stack, &token, "{ __typename }", REQUESTS).await;
    // Then one with a client's sampled traceparent: always exported (ParentBased).
    let response = stack
        .http
        .post(stack.url("/graphql"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&serde_json::json!({ "query": HOME }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let trace = u128::from_str_radix(CLIENT_TRACE, 16)
        .unwrap()
        .to_be_bytes();
    let all = wait_for_spans(&received, |spans| {
        spans
            .iter()
            .any(|s| s.trace_id == trace && s.kind == SpanKind::Server as i32)
    })
    .await;
    let new_traces = all
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32 && s.trace_id != trace)
        .count();
    // Within 5 points of the ratio (the binomial's sigma is about 1 point here).
    let share = new_traces as f64 / REQUESTS as f64;
    assert!(
        (share - RATIO).abs() <= 0.05,
        "{new_traces} of {REQUESTS} new traces exported at a ratio of {RATIO}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bff_names_itself_in_the_resource() {
    for spec in [&bff_mobile::SPEC, &bff_web::SPEC, &bff_partner::SPEC] {
        let (url, received) = collector().await;
        let stack = Stack::start_with(spec, |config| {
            config.tracing.otlp_endpoint = Some(url);
            config.tracing.export_interval = Duration::from_millis(20);
        })
        .await;
        // Any traced request: an unknown path is one on every BFF.
        let status = stack
            .http
            .get(stack.url("/nowhere"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{}", spec.name);
        wait_for_spans(&received, |spans| !spans.is_empty()).await;
        let exports = received.lock().unwrap();
        let resource = exports[0].request.resource_spans[0]
            .resource
            .as_ref()
            .unwrap();
        assert_eq!(
            attribute(&resource.attributes, "service.name"),
            Some(spec.name)
        );
    }
}

/// The export queue holds 4 spans: under a burst of home queries (9 spans each) most are
/// dropped, and the counters say exactly how many: finished = exported + dropped, and the
/// collector got what was counted as exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_spans_are_counted_exactly() {
    let (url, received) = collector().await;
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.tracing.otlp_endpoint = Some(url);
        config.tracing.export_interval = Duration::from_millis(50);
        config.tracing.max_queue = 4;
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    traffic(&stack, &token, HOME, 200).await;
    let counter = |samples: &super::prom::Samples, name: &str| {
        samples.value(name, &[]).unwrap_or_default() as usize
    };
    // Wait for the queue to drain: nothing more arrives for a while.
    let deadline = Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let samples = super::scrape(&stack).await;
        let settled = counter(&samples, "manifold_spans_exported_total")
            + counter(&samples, "manifold_spans_dropped_total")
            + counter(&samples, "manifold_spans_failed_total");
        if settled == counter(&samples, "manifold_spans_finished_total") {
            break samples;
        }
        assert!(Instant::now() < deadline, "the export queue never drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let finished = counter(&samples, "manifold_spans_finished_total");
    let dropped = counter(&samples, "manifold_spans_dropped_total");
    let exported = counter(&samples, "manifold_spans_exported_total");
    assert!(finished >= 200 * 2, "{finished} spans for 200 home queries");
    assert!(dropped > 0, "a queue of 4 dropped nothing");
    assert_eq!(counter(&samples, "manifold_spans_failed_total"), 0);
    assert_eq!(
        spans(&received).len(),
        exported,
        "the collector got what was counted"
    );
    assert_eq!(finished - exported, dropped, "the gap is the dropped count");
}

/// A scraper that asks for OpenMetrics (Prometheus asks for it first) gets a page that
/// prometheus_client's strict parser reads, and the latency bucket of an exported request
/// carries that request's trace id as an exemplar; a request whose client said "not
/// sampled" leaves none, and the Prometheus text page (which has no place for one) neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_requests_latency_bucket_links_to_its_trace() {
    let (url, _received) = collector().await;
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.tracing.otlp_endpoint = Some(url);
        config.tracing.export_interval = Duration::from_millis(20);
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    for flags in ["01", "00"] {
        let trace = if flags == "01" {
            CLIENT_TRACE
        } else {
            unsampled
        };
        let response = stack
            .http
            .post(stack.url("/graphql"))
            .bearer_auth(&token)
            .header("traceparent", format!("00-{trace}-{CLIENT_SPAN}-{flags}"))
            .json(&serde_json::json!({ "query": HOME }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }

    let scrape = |accept: &'static str| {
        let request = stack.http.get(stack.admin_url("/metrics"));
        async move {
            let response = request.header("accept", accept).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let kind = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            (kind, response.text().await.unwrap())
        }
    };
    let (kind, page) = scrape(crate::monitoring::PROMETHEUS_ACCEPT).await;
    assert_eq!(
        kind,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(page.ends_with("# EOF\n"), "{page}");
    assert!(
        page.contains("# TYPE manifold_http_requests counter\n"),
        "a counter family is named without _total"
    );
    let linked: Vec<&str> = page
        .lines()
        .filter(|l| {
            l.starts_with("manifold_http_request_duration_seconds_bucket{route=\"/graphql\"")
                && l.contains(&format!(" # {{trace_id=\"{CLIENT_TRACE}\"}} "))
        })
        .collect();
    assert_eq!(linked.len(), 1, "one bucket holds the request: {page}");
    assert!(!page.contains(unsampled), "an unsampled trace is linked");
    if let Some(checked) = crate::monitoring::openmetrics_check(&page) {
        let found = checked.unwrap_or_else(|e| panic!("{e}\n{page}"));
        assert!(!found.contains(" 0 exemplars"), "{found}");
    }

    let (kind, page) = scrape("text/plain").await;
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!page.contains("# EOF") && !page.contains("trace_id="));
    assert!(page.contains("# TYPE manifold_http_requests_total counter\n"));
}
