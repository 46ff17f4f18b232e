//! The operator's side of one BFF, the top of the core: health and readiness on the public
//! listener (`health`), and the admin listener's app: `/metrics` (Prometheus text), the JSON admin API
//! (`/admin/api/status`: upstreams with instances, health and breaker states, per-route and
//! per-upstream rates and latencies, rate-limit and cache counters, recent errors;
//! `/admin/api/config`: the loaded config with secrets redacted), the cache's purge and stats
//! endpoints (`cache`, behind their own token) and the dashboard page at `/` — plain
//! HTML, CSS and JavaScript embedded in the binary, no build step. Prometheus text is
//! rendered here (`prometheus`) from what the gateway's components count.

mod cache;
mod health;
mod prometheus;

pub use health::routes as health_routes;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use std::sync::Arc;

use crate::gateway::Gateway;
use crate::observe::metrics::NO_OPERATION;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// How the admin pages find the gateway serving now (a config reload swaps it).
pub type CurrentGateway = Arc<dyn Fn() -> Gateway + Send + Sync>;

pub fn router(current: CurrentGateway) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/admin", get(|| async { Html(PAGE) }))
        .route(
            "/admin/dashboard.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], SCRIPT) }),
        )
        .route(
            "/admin/dashboard.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], STYLE) }),
        )
        .route("/metrics", get(metrics_page))
        .route("/admin/api/status", get(status))
        .route("/admin/api/config", get(config))
        .route("/admin/cache/purge", post(cache_purge))
        .route("/admin/cache/stats", get(cache_stats))
        .with_state(current)
}

/// The serving gateway's cache endpoints (`cache::admin`), or 404 without a cache and token.
fn cache_admin(current: &CurrentGateway) -> Result<cache::Admin, StatusCode> {
    let gateway = current();
    let token = gateway.config().cache.admin_token.as_deref();
    cache::Admin::new(gateway.cache(), token).ok_or(StatusCode::NOT_FOUND)
}

async fn cache_purge(
    State(current): State<CurrentGateway>,
    headers: HeaderMap,
    query: Result<Query<cache::PurgeQuery>, QueryRejection>,
) -> Response {
    match cache_admin(&current) {
        Ok(admin) => admin.purge(&headers, query).await,
        Err(status) => status.into_response(),
    }
}

async fn cache_stats(State(current): State<CurrentGateway>, headers: HeaderMap) -> Response {
    match cache_admin(&current) {
        Ok(admin) => admin.stats(&headers).await,
        Err(status) => status.into_response(),
    }
}

async fn metrics_page(State(current): State<CurrentGateway>) -> impl IntoResponse {
    let gateway = current();
    (
        [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(&gateway),
    )
}

/// Everything the dashboard shows, in one document (counters are totals; the page turns
/// two snapshots into rates).
async fn status(State(current): State<CurrentGateway>) -> Json<Value> {
    let gateway = current();
    let observer = gateway.observer();
    let routes: Vec<Value> = observer
        .requests
        .snapshot()
        .into_iter()
        .map(|(route, op, s)| {
            let latency = s.latency.snapshot();
            json!({
                "route": &*route,
                "operation": if &*op == NO_OPERATION { Value::Null } else { json!(&*op) },
                "requests": s.total(),
                "errors": s.errors(),
                "by_class": {
                    "2xx": s.by_class[1].get(), "3xx": s.by_class[2].get(),
                    "4xx": s.by_class[3].get(), "5xx": s.by_class[4].get(),
                },
                "latency_mean_ms": mean_ms(latency.sum_seconds, latency.count),
                "latency_p50_ms": latency.quantile(0.5).map(|s| s * 1000.0),
                "latency_p95_ms": latency.quantile(0.95).map(|s| s * 1000.0),
            })
        })
        .collect();
    let upstreams: Vec<Value> = gateway
        .upstreams()
        .values()
        .map(|u| {
            let s = u.stats();
            let mut v = json!(s);
            v["latency_mean_ms"] = json!(mean_ms(s.latency.sum_seconds, s.latency.count));
            v["latency_p95_ms"] = json!(s.latency.quantile(0.95).map(|s| s * 1000.0));
            v
        })
        .collect();
    let limits = gateway.rate_limiter().map(|l| l.metrics().snapshot());
    let cache = gateway.cache().map(|c| c.stats());
    let reloads = gateway.lifecycle().reloads();
    Json(json!({
        "bff": observer.name(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": observer.started.elapsed().as_secs(),
        "ready": gateway.is_ready(),
        "draining": gateway.is_draining(),
        "in_flight": observer.requests.in_flight.get(),
        "routes": routes,
        "upstreams": upstreams,
        "rate_limit": limits.map(|l| json!({
            "enabled": true,
            "allowed": l.allowed, "refused": l.refused, "unavailable": l.unavailable,
            "fallback": l.fallback, "degraded": l.degraded,
        })).unwrap_or_else(|| json!({ "enabled": false, "allowed": 0, "refused": 0 })),
        "cache": cache.map(|c| json!({
            "hit": c.hits, "miss": c.misses, "stale": c.stale_served, "bytes": c.bytes_used,
        })).unwrap_or_else(|| json!({ "hit": 0, "miss": 0, "stale": 0, "bytes": 0 })),
        "config_reloads": { "success": reloads.succeeded_total(), "failure": reloads.failed_total() },
        "recent_errors": observer.recent_errors(),
    }))
}

fn mean_ms(sum_seconds: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| sum_seconds * 1000.0 / count as f64)
}

async fn config(State(current): State<CurrentGateway>) -> Json<Value> {
    let gateway = current();
    Json(json!({ "config": redacted(&format!("{:#?}", gateway.config())) }))
}

/// The config as text with secrets taken out. Secret-bearing types already redact their
/// `Debug` (API key hashes); on top of that, passwords in URLs (`redis://:pw@host`) and any
/// field whose name says it is a secret are blanked, so a new secret key is covered too.
pub fn redacted(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len());
    for line in debug.lines() {
        let key = line
            .trim_start()
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let secret_key = ["password", "secret", "token", "sha256", "api_key", "cookie"]
            .iter()
            .any(|s| key.contains(s));
        if secret_key && line.contains(':') {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}{key}: \"<redacted>\",\n"));
            continue;
        }
        out.push_str(&redact_url_password(line));
        out.push('\n');
    }
    out
}

/// `scheme://user:password@host` -> `scheme://user:<redacted>@host`, everywhere in `line`.
fn redact_url_password(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c == '"' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":<redacted>");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_blanked() {
        let text = "Config {\n    redis_url: Some(\n        \"redis://:hunter2@127.0.0.1:6379/0\",\n    ),\n    client_secret: \"abc\",\n    url: \"http://127.0.0.1:9101\",\n}";
        let out = redacted(text);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("abc"), "{out}");
        assert!(
            out.contains("redis://:<redacted>@127.0.0.1:6379/0"),
            "{out}"
        );
        assert!(out.contains("http://127.0.0.1:9101"), "{out}");
    }
}
