//! The operator's view of one BFF. Health and readiness on the public listener: `/healthz`
//! says the process is alive, `/readyz` whether it should get traffic (config loaded, JWKS
//! keys loaded, not shutting down). Everything else is on the admin listener (`admin`):
//! Prometheus text at `/metrics` (`metrics`, `prometheus`), the JSON admin API and the
//! dashboard page. Per request (`request::track`): route metrics, one access-log line
//! (`access_log`), W3C trace context (`trace`) and spans exported over OTLP (`otlp`).
//! Upstream and rate-limit counters are owned by `upstream` and `ratelimit`; this module only
//! reads them.

pub mod access_log;
pub mod admin;
pub mod metrics;
pub mod otlp;
mod prometheus;
pub mod request;
pub mod trace;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::config::{Config, LogConfig};
use crate::gateway::Gateway;
use access_log::{AccessLine, RecentError};
use metrics::RequestMetrics;
use otlp::{ExportStats, SpanExporter};

pub use request::{BackendCall, RequestRecord, track};
pub use trace::TraceContext;

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
    pub export_stats: Arc<ExportStats>,
}

impl Observer {
    /// Must run inside a tokio runtime when `[tracing] otlp_endpoint` is set.
    pub fn new(config: &Config) -> Self {
        let export_stats = Arc::new(ExportStats::default());
        let exporter = config.tracing.otlp_endpoint.as_deref().map(|endpoint| {
            SpanExporter::spawn(
                endpoint,
                config
                    .tracing
                    .service_name
                    .clone()
                    .unwrap_or_else(|| "manifold".into()),
                config.tracing.export_interval,
                config.tracing.max_queue,
                export_stats.clone(),
            )
        });
        Self {
            requests: RequestMetrics::default(),
            log: config.log.clone(),
            started: Instant::now(),
            name: OnceLock::new(),
            recent_errors: Mutex::new(VecDeque::with_capacity(RECENT_ERRORS)),
            exporter,
            export_stats,
        }
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

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
}

async fn readyz(State(gateway): State<Gateway>) -> impl IntoResponse {
    let mut waiting = Vec::new();
    if !gateway.authenticator().is_ready() {
        waiting.push("jwks");
    }
    if gateway.is_draining() {
        waiting.push("draining");
    }
    if waiting.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "waiting_for": waiting })),
        )
    }
}
