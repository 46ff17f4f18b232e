//! Span export with the OpenTelemetry SDK's OTLP exporter, decoded by a collector that reads
//! what a real one would (gzip, then the protobuf `ExportTraceServiceRequest`): the resource
//! names the BFF, the server span continues the client's trace and each backend call is its
//! child, configured headers arrive, probes are never exported, the sampler keeps the share
//! asked for while a client's sampled trace is always kept, and no secret is on any span.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_keeps_the_share_asked_for_and_every_sampled_client_trace() {
    let (url, received) = collector().await;
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.tracing.otlp_endpoint = Some(url);
        config.tracing.export_interval = Duration::from_millis(20);
        config.tracing.sample_ratio = 0.25;
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    // 200 new traces: about a quarter are exported (binomial: 50 +- 6; 20..80 is > 5 sigma).
    let query = serde_json::json!({ "query": "{ __typename }" });
    for _ in 0..200 {
        let response = stack
            .http
            .post(stack.url("/graphql"))
            .bearer_auth(&token)
            .json(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
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
    assert!(
        (20..=80).contains(&new_traces),
        "{new_traces} of 200 new traces exported at a ratio of 0.25"
    );
}
