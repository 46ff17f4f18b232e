//! Per-request recording, low in the core so every component can use it: the request series
//! by route and operation (`metrics`, with the counter and histogram primitives other
//! components count with), one access-log line per request (`access_log`), spans exported
//! over OTLP (`otlp`), and `track`, the middleware that turns a finished request's record
//! into all of these. The operator's surfaces that read them (Prometheus text, admin API,
//! dashboard) are `admin`'s.

pub mod access_log;
mod connections;
pub mod exposition;
pub mod metrics;
pub mod otlp;
pub mod process;
pub mod track;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::time::Instant;

use crate::config::{ClientTlsError, Config, LogConfig, TracingConfig};
use access_log::{AccessLine, RecentError};
use exposition::{Exposition, MetricFamilies};
use metrics::RequestMetrics;
use metrics::status_class;
use otlp::{ExportStats, SpanExporter};

pub use track::{GraphqlErrors, Probe, track};
/// Failed or partial requests kept for the dashboard.
const RECENT_ERRORS: usize = 50;

/// Per-BFF observation state: request series, recent errors, the span exporter.
#[derive(Debug)]
pub struct Observer {
    pub requests: RequestMetrics,
    pub log: LogConfig,
    pub started: Instant,
    name: OnceLock<&'static str>,
    recent_errors: Mutex<VecDeque<RecentError>>,
    exporter: Option<SpanExporter>,
    sample_ratio: f64,
    pub export_stats: Arc<ExportStats>,
}

/// Whether spans are exported: an endpoint in `[tracing]` or in the standard variables.
fn exports(config: &TracingConfig) -> bool {
    config.otlp_endpoint.is_some()
        || [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

impl Observer {
    /// Must run inside a tokio runtime when `[tracing] otlp_endpoint` is set. Fails only
    /// when `[tracing] otlp_ca_file` cannot be loaded.
    pub fn new(config: &Config) -> Result<Self, ClientTlsError> {
        let export_stats = Arc::new(ExportStats::default());
        let tracing = &config.tracing;
        let exporter = exports(tracing)
            .then(|| SpanExporter::new(tracing, export_stats.clone()))
            .transpose()?;
        Ok(Self {
            requests: RequestMetrics::default(),
            log: config.log.clone(),
            started: Instant::now(),
            name: OnceLock::new(),
            recent_errors: Mutex::new(VecDeque::with_capacity(RECENT_ERRORS)),
            exporter,
            sample_ratio: config.tracing.sample_ratio,
            export_stats,
        })
    }

    /// Whether spans of new traces are kept: `[tracing] sample_ratio` of them, when
    /// exporting.
    pub fn sample_ratio(&self) -> f64 {
        self.sample_ratio
    }

    /// The BFF's name (`bff-mobile`), set once at start.
    pub fn set_name(&self, name: &'static str) {
        let _ = self.name.set(name);
    }

    pub fn name(&self) -> &'static str {
        self.name.get().copied().unwrap_or("manifold")
    }

    pub fn exporter(&self) -> Option<&SpanExporter> {
        self.exporter.as_ref()
    }

    fn remember_error(&self, line: &AccessLine<'_>) {
        let mut recent = self.recent_errors.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_ERRORS {
            recent.pop_front();
        }
        recent.push_back(RecentError::from(line));
    }

    /// Newest first.
    pub fn recent_errors(&self) -> Vec<RecentError> {
        let recent = self.recent_errors.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().rev().cloned().collect()
    }
}

impl MetricFamilies for Observer {
    /// The process, the client requests by route and operation, and span export.
    fn write(&self, o: &mut Exposition) {
        let observer = self;
        o.header("manifold_build_info", "gauge", "Build of this process.");
        o.line(
            "manifold_build_info",
            &[
                ("bff", observer.name()),
                ("version", env!("CARGO_PKG_VERSION")),
            ],
            1,
        );
        o.header("manifold_uptime_seconds", "gauge", "Seconds since start.");
        o.line(
            "manifold_uptime_seconds",
            &[],
            observer.started.elapsed().as_secs(),
        );

        o.header(
            "manifold_http_requests_in_flight",
            "gauge",
            "Client requests being served.",
        );
        o.line(
            "manifold_http_requests_in_flight",
            &[],
            observer.requests.in_flight.get(),
        );
        let series = observer.requests.snapshot();
        o.header(
            "manifold_http_requests_total",
            "counter",
            "Client requests by route template, GraphQL operation, status code and its class.",
        );
        for (route, op, s) in &series {
            for (code, n) in s.codes() {
                let labels = [
                    ("route", &**route),
                    ("operation", op),
                    ("code", &code.to_string()),
                    ("class", status_class(code)),
                ];
                o.line("manifold_http_requests_total", &labels, n);
            }
        }
        o.header(
            "manifold_http_request_duration_seconds",
            "histogram",
            "Client request latency by route template and GraphQL operation.",
        );
        for (route, op, s) in &series {
            o.histogram_with_exemplars(
                "manifold_http_request_duration_seconds",
                &[("route", route), ("operation", op)],
                &s.latency.snapshot(),
                &s.exemplars.snapshot(),
            );
        }
        answers(o, &observer.requests);
        if self.exporter().is_some() {
            spans(o, self);
        }
    }
}

/// What went wrong inside answers: GraphQL errors by code, parts missing by backend.
fn answers(o: &mut Exposition, requests: &RequestMetrics) {
    o.header(
        "manifold_graphql_errors_total",
        "counter",
        "Errors in GraphQL answers by operation and extensions.code.",
    );
    for ((op, code), n) in requests.graphql_error_counts() {
        let labels = [("operation", &*op), ("code", &*code)];
        o.line("manifold_graphql_errors_total", &labels, n);
    }
    o.header(
        "manifold_partial_responses_total",
        "counter",
        "Answers served (2xx) though a backend call for them failed, by route and service.",
    );
    for ((route, service), n) in requests.partial_counts() {
        let labels = [("route", &*route), ("service", &*service)];
        o.line("manifold_partial_responses_total", &labels, n);
    }
}

fn spans(o: &mut Exposition, observer: &Observer) {
    let stats = &observer.export_stats;
    let families = [
        (
            "manifold_spans_finished_total",
            "Spans handed to the exporter.",
            stats.finished.get(),
        ),
        (
            "manifold_spans_exported_total",
            "Spans the collector accepted.",
            stats.exported.get(),
        ),
        (
            "manifold_spans_dropped_total",
            "Spans dropped: export queue full.",
            observer.exporter().map_or(0, |e| e.dropped.get()),
        ),
        (
            "manifold_spans_failed_total",
            "Spans in exports that failed after their retries.",
            stats.failed.get(),
        ),
    ];
    for (name, help, value) in families {
        o.header(name, "counter", help);
        o.line(name, &[], value);
    }
}
