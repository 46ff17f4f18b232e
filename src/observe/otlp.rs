//! Span export over OTLP/HTTP with protobuf bodies (`POST {endpoint}/v1/traces`,
//! `application/x-protobuf`). The few messages needed (ExportTraceServiceRequest ->
//! ResourceSpans -> ScopeSpans -> Span) are encoded by hand: no protoc, no prost, and no
//! second OpenTelemetry stack next to `tracing`. Spans queue in a bounded channel; when it is
//! full they are dropped and counted, never waited for.

use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::metrics::Counter;
use crate::config::{ClientTlsConfig, ClientTlsError};
use crate::outbound::OutboundClient;
use crate::request::trace::{AttrValue, SpanKind, SpanRecord};

/// Spans sent in one request at most.
const MAX_BATCH: usize = 512;

/// The sending half, held by the observer.
#[derive(Debug)]
pub struct SpanExporter {
    queue: mpsc::Sender<SpanRecord>,
    pub dropped: Counter,
}

/// Counters of the export task.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub exported: Counter,
    pub failed_batches: Counter,
}

impl SpanExporter {
    /// Starts the export task on the current runtime. Fails only when the collector's CA
    /// file in `tls` cannot be loaded.
    pub fn spawn(
        endpoint: &str,
        tls: &ClientTlsConfig,
        service_name: String,
        interval: Duration,
        max_queue: usize,
        stats: std::sync::Arc<ExportStats>,
    ) -> Result<Self, ClientTlsError> {
        let (queue, mut spans) = mpsc::channel(max_queue.max(1));
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let client = OutboundClient::new(tls, Duration::from_secs(2), Duration::from_secs(5))?;
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            // Ends when the exporter (hence the gateway) is dropped and the queue is empty.
            while spans.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let body = encode(&service_name, &batch);
                let sent = client.post(&url, "application/x-protobuf", body).await;
                match sent {
                    Ok(status) if status.is_success() => {
                        for _ in 0..batch.len() {
                            stats.exported.inc();
                        }
                    }
                    Ok(status) => {
                        stats.failed_batches.inc();
                        tracing::debug!(%status, "OTLP export refused");
                    }
                    Err(e) => {
                        stats.failed_batches.inc();
                        tracing::debug!(error = %e, "OTLP export failed");
                    }
                }
                batch.clear();
                tokio::time::sleep(interval).await;
            }
        });
        Ok(Self {
            queue,
            dropped: Counter::default(),
        })
    }

    pub fn send(&self, span: SpanRecord) {
        if self.queue.try_send(span).is_err() {
            self.dropped.inc();
        }
    }
}

/// An `ExportTraceServiceRequest` holding `spans`.
pub fn encode(service_name: &str, spans: &[SpanRecord]) -> Vec<u8> {
    let mut resource = Vec::new();
    key_value(
        &mut resource,
        1,
        "service.name",
        &AttrValue::Str(service_name.into()),
    );
    let mut scope = Vec::new();
    string(&mut scope, 1, "manifold");
    string(&mut scope, 2, env!("CARGO_PKG_VERSION"));
    let mut scope_spans = Vec::new();
    message(&mut scope_spans, 1, &scope);
    for span in spans {
        message(&mut scope_spans, 2, &encode_span(span));
    }
    let mut resource_spans = Vec::new();
    message(&mut resource_spans, 1, &resource);
    message(&mut resource_spans, 2, &scope_spans);
    let mut request = Vec::new();
    message(&mut request, 1, &resource_spans);
    request
}

fn encode_span(span: &SpanRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    bytes(&mut out, 1, &span.trace_id.to_be_bytes());
    bytes(&mut out, 2, &span.span_id.to_be_bytes());
    if let Some(parent) = span.parent_id {
        bytes(&mut out, 4, &parent.to_be_bytes());
    }
    string(&mut out, 5, &span.name);
    let kind = match span.kind {
        SpanKind::Server => 2,
        SpanKind::Client => 3,
    };
    tag(&mut out, 6, 0);
    varint(&mut out, kind);
    fixed64(&mut out, 7, nanos(span.start));
    fixed64(&mut out, 8, nanos(span.end));
    for (key, value) in &span.attributes {
        key_value(&mut out, 9, key, value);
    }
    let mut status = Vec::new();
    tag(&mut status, 3, 0);
    varint(&mut status, if span.error { 2 } else { 1 });
    message(&mut out, 15, &status);
    out
}

fn nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &AttrValue) {
    let mut any = Vec::new();
    match value {
        AttrValue::Str(s) => string(&mut any, 1, s),
        AttrValue::Int(i) => {
            tag(&mut any, 3, 0);
            varint(&mut any, *i as u64);
        }
    }
    let mut kv = Vec::new();
    string(&mut kv, 1, key);
    message(&mut kv, 2, &any);
    message(out, field, &kv);
}

fn tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

fn message(out: &mut Vec<u8>, field: u32, m: &[u8]) {
    bytes(out, field, m);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_are_protobuf() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut out = Vec::new();
        string(&mut out, 5, "GET");
        assert_eq!(out, [0x2a, 3, b'G', b'E', b'T']);
        let mut out = Vec::new();
        fixed64(&mut out, 7, 1);
        assert_eq!(out, [0x39, 1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_span_carries_its_ids() {
        let span = SpanRecord {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0x00f067aa0ba902b7,
            parent_id: None,
            name: "GET accounts".into(),
            kind: SpanKind::Client,
            start: UNIX_EPOCH,
            end: UNIX_EPOCH + Duration::from_millis(3),
            error: false,
            attributes: vec![("manifold.upstream", AttrValue::Str("accounts".into()))],
        };
        let body = encode("bff-test", &[span]);
        let trace = 0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes();
        assert!(body.windows(16).any(|w| w == trace));
        assert!(body.windows(8).any(|w| w == b"bff-test"));
    }
}
