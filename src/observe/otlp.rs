//! Span export with the OpenTelemetry SDK and its OTLP exporter (http/protobuf): the SDK's
//! span model, resource and `ParentBased(TraceIdRatioBased)` sampler; the exporter's gzip,
//! headers, timeout and retry with backoff, and the standard `OTEL_EXPORTER_OTLP_*`,
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` variables. The bytes go out through the
//! core's own hyper client (`outbound`: rustls with ring, `[tracing] otlp_ca_file`).
//!
//! A request records its spans cheaply while it runs (`request::trace::SpanRecord`: ids,
//! times, a few bounded attributes) and `track` hands them over when it ends; here they
//! become SDK spans with the same ids (the ids the backends saw in `traceparent`). Finished
//! spans wait in a bounded queue drained by one task in batches: when the queue is full a
//! span is dropped and counted (`manifold_spans_dropped_total`), never waited for — the SDK's
//! own batch processor drops silently, with no count an alert could read.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind as OtelKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Compression, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, ShouldSample, SpanData, SpanEvents, SpanExporter as _, SpanLinks,
};
use tokio::sync::mpsc;

use super::metrics::Counter;
use crate::config::{ClientTlsConfig, ClientTlsError, OtlpCompression, TracingConfig};
use crate::outbound::OutboundClient;
use crate::request::trace::{AttrValue, SpanKind, SpanRecord};

/// Spans sent in one export at most.
const MAX_BATCH: usize = 512;
/// A collector's answer is read up to this size (it is a small status message).
const MAX_ANSWER: usize = 64 * 1024;

/// The exporting side, held by the observer.
#[derive(Debug)]
pub struct SpanExporter {
    settings: Settings,
    /// Started at the first span (the BFF's name is known by then, for `service.name`).
    queue: OnceLock<mpsc::Sender<SpanData>>,
    scope: InstrumentationScope,
    stats: Arc<ExportStats>,
    pub dropped: Counter,
}

/// Counters of the export: every span handed over is exported, dropped (queue full) or in
/// a failed batch, so an alert can tell traces are incomplete and by how much.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub finished: Counter,
    pub exported: Counter,
    pub failed: Counter,
    pub failed_batches: Counter,
}

/// What the export task is built from.
#[derive(Debug)]
struct Settings {
    config: TracingConfig,
    client: OutboundClient,
}

impl SpanExporter {
    /// Checks the settings; the export task starts with the first span, on the runtime that
    /// sends it. Fails only when the collector's CA file cannot be loaded.
    pub fn new(config: &TracingConfig, stats: Arc<ExportStats>) -> Result<Self, ClientTlsError> {
        let tls = ClientTlsConfig::with_ca(config.otlp_ca_file.as_deref());
        let client = OutboundClient::new(&tls, Duration::from_secs(2), config.timeout)?;
        Ok(Self {
            settings: Settings {
                config: config.clone(),
                client,
            },
            queue: OnceLock::new(),
            scope: InstrumentationScope::builder("manifold")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            stats,
            dropped: Counter::default(),
        })
    }

    /// Queues a finished span for export (dropped and counted when the queue is full).
    /// `service` names the BFF when `[tracing] service_name` and `OTEL_SERVICE_NAME` do not.
    pub fn send(&self, span: SpanRecord, service: &'static str) {
        self.stats.finished.inc();
        let queue = self.queue.get_or_init(|| self.start(service));
        let data = SpanData {
            span_context: SpanContext::new(
                TraceId::from(span.trace_id),
                SpanId::from(span.span_id),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: span.parent_id.map_or(SpanId::INVALID, SpanId::from),
            // The server span's parent is the client's; a backend call's is ours.
            parent_span_is_remote: span.kind == SpanKind::Server && span.parent_id.is_some(),
            span_kind: match span.kind {
                SpanKind::Server => OtelKind::Server,
                SpanKind::Client => OtelKind::Client,
            },
            name: Cow::Owned(span.name),
            start_time: span.start,
            end_time: span.end,
            attributes: span
                .attributes
                .into_iter()
                .map(|(key, value)| {
                    let key = opentelemetry::Key::from_static_str(key);
                    match value {
                        AttrValue::Str(s) => KeyValue::new(key, s),
                        AttrValue::Int(i) => KeyValue::new(key, i),
                    }
                })
                .collect(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: if span.error {
                Status::error("")
            } else {
                Status::Unset
            },
            instrumentation_scope: self.scope.clone(),
        };
        if queue.try_send(data).is_err() {
            self.dropped.inc();
        }
    }

    /// The queue, and the task that drains it into the OTLP exporter.
    fn start(&self, service: &'static str) -> mpsc::Sender<SpanData> {
        let config = &self.settings.config;
        let (queue, spans) = mpsc::channel(config.max_queue.max(1));
        match exporter(&self.settings) {
            Ok(mut exporter) => {
                exporter.set_resource(&resource(config, service));
                tokio::spawn(drain(
                    exporter,
                    spans,
                    config.export_interval,
                    self.stats.clone(),
                ));
            }
            Err(e) => tracing::warn!(error = %e, "OTLP exporter not started: spans are dropped"),
        }
        queue
    }
}

/// Whether a new trace (no client `traceparent`) with `trace_id` is recorded at `ratio`:
/// the SDK's `TraceIdRatioBased` (a client's trace follows the client's flag, as
/// `ParentBased` would). The edge asks once per request, so what backends are told in
/// `traceparent` and what is exported agree.
pub fn sampled(ratio: f64, trace_id: u128) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let decision = Sampler::TraceIdRatioBased(ratio).should_sample(
        None,
        TraceId::from(trace_id),
        "",
        &OtelKind::Server,
        &[],
        &[],
    );
    decision.decision == SamplingDecision::RecordAndSample
}

/// `service.name` (`[tracing] service_name`, else `OTEL_SERVICE_NAME`, else the BFF's name),
/// `service.version`, `deployment.environment`, `host.name`, and `OTEL_RESOURCE_ATTRIBUTES`.
fn resource(config: &TracingConfig, service: &'static str) -> Resource {
    let name = config
        .service_name
        .clone()
        .or_else(|| std::env::var("OTEL_SERVICE_NAME").ok())
        .unwrap_or_else(|| service.to_owned());
    let mut attributes = vec![KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))];
    if let Some(environment) = &config.environment {
        attributes.push(KeyValue::new("deployment.environment", environment.clone()));
    }
    if let Some(host) = host_name() {
        attributes.push(KeyValue::new("host.name", host));
    }
    Resource::builder()
        .with_service_name(name)
        .with_attributes(attributes)
        .build()
}

fn host_name() -> Option<String> {
    std::env::var("HOSTNAME").ok().or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
    })
}

/// The OTLP/HTTP exporter: `[tracing]` settings first, the `OTEL_EXPORTER_OTLP_*` variables
/// for what they leave open (the SDK reads those itself).
fn exporter(
    settings: &Settings,
) -> Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError> {
    let config = &settings.config;
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Outbound(settings.client.clone()))
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(config.timeout);
    if let Some(endpoint) = &config.otlp_endpoint {
        builder = builder.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    }
    if config.compression == OtlpCompression::Gzip {
        builder = builder.with_compression(Compression::Gzip);
    }
    if !config.headers.is_empty() {
        let headers: HashMap<String, String> = config
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().to_owned()))
            .collect();
        builder = builder.with_headers(headers);
    }
    builder.build()
}

/// Sends batches from the queue until every sender is gone: a full batch at once, a partial
/// one after waiting `interval` for more (so a busy gateway exports as fast as the collector
/// takes spans, and a quiet one sends a few requests, not one per span).
async fn drain(
    exporter: opentelemetry_otlp::SpanExporter,
    mut spans: mpsc::Receiver<SpanData>,
    interval: Duration,
    stats: Arc<ExportStats>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while spans.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() < MAX_BATCH {
            let more = async {
                while batch.len() < MAX_BATCH {
                    let room = MAX_BATCH - batch.len();
                    if spans.recv_many(&mut batch, room).await == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(interval, more).await;
        }
        let count = batch.len();
        match exporter.export(std::mem::take(&mut batch)).await {
            Ok(()) => stats.exported.add(count as u64),
            Err(e) => {
                stats.failed.add(count as u64);
                stats.failed_batches.inc();
                tracing::debug!(error = %e, "OTLP export failed");
            }
        }
        batch.reserve(MAX_BATCH);
    }
}

/// The exporter's HTTP client: the core's own.
#[derive(Debug)]
struct Outbound(OutboundClient);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Outbound {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        self.0
            .send(request, MAX_ANSWER)
            .await
            .map_err(|e| Cow::<'static, str>::Owned(e).into())
    }
}
