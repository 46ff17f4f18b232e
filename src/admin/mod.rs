//! The operator's side of one BFF, on the assembled gateway: the admin listener's app, behind
//! its bearer token when one is set (`auth`): `/metrics` (Prometheus text), `/admin/reload`
//! (the last config reloads), the JSON admin API
//! (`/admin/api/status`: upstreams with instances, health and breaker states, per-route and
//! per-upstream rates and latencies, rate-limit and cache counters, recent errors;
//! `/admin/api/config`: the loaded config with secrets redacted), the cache's purge and stats
//! endpoints (`cache`, behind their own token) and the dashboard page at `/` — plain
//! HTML, CSS and JavaScript embedded in the binary, no build step. Prometheus text
//! is what each component writes of itself (`observe::exposition`).

mod auth;
mod cache;

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
use crate::observe::exposition;
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
        .route("/admin/reload", get(reload_status))
        .layer(axum::middleware::from_fn_with_state(
            current.clone(),
            auth::guard,
        ))
        .with_state(current)
}

/// `GET /admin/reload`: the last config reload results (generation, counts, the last
/// refusal's errors). Only here, never on the public listener.
async fn reload_status(State(current): State<CurrentGateway>) -> Response {
    Json(current().lifecycle().reloads().snapshot()).into_response()
}

/// The serving gateway's cache endpoints (`cache`), or 404 without a cache and token.
fn cache_admin(current: &CurrentGateway) -> Result<cache::Admin, StatusCode> {
    let gateway = current();
    let token = gateway
        .config()
        .cache
        .admin_token
        .as_ref()
        .map(crate::config::Secret::expose);
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

/// `/metrics` in the format the scraper asks for (`exposition::Format::negotiate`).
async fn metrics_page(
    State(current): State<CurrentGateway>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let gateway = current();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = exposition::Format::negotiate(accept);
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        gateway.metrics().render_as(format),
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
                    "2xx": s.class("2xx"), "3xx": s.class("3xx"),
                    "4xx": s.class("4xx"), "5xx": s.class("5xx"),
                },
                "by_code": s.codes().map(|(c, n)| (c.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
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

/// The loaded config as JSON. Credentials are `Secret`s, which serialise as a redaction, so
/// none can appear here however the config is laid out.
async fn config(State(current): State<CurrentGateway>) -> Response {
    let gateway = current();
    match serde_json::to_value(gateway.config()) {
        Ok(config) => Json(json!({ "config": config })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise the config for the admin API");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_shown_config_holds_no_secret() {
        let hash = "5f7b2ed74a9736a538a6fb5a5a1a76afdcdd0d177d7fc6e79c6b6843527d848d";
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\
             [upstreams.accounts]\nurl = \"http://127.0.0.1:9201\"\n\
             [auth.api_keys.acme]\nsha256 = \"{hash}\"\n\
             [cache]\nadmin_token = \"an-admin-token-of-some-length\"\n\
             redis_url = \"redis://:hunter2@127.0.0.1:6379/0\"\n"
        );
        let config = Config::parse(&text, "test", Vec::new(), &[]).expect("valid");
        let shown = serde_json::to_value(&config).expect("serialisable");
        let text = shown.to_string();
        for secret in [hash, "an-admin-token", "hunter2"] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
        assert_eq!(
            shown["upstreams"]["accounts"]["url"],
            "http://127.0.0.1:9201"
        );
        assert_eq!(
            shown["cache"]["redis_url"],
            "redis://:<redacted>@127.0.0.1:6379/0"
        );
        assert_eq!(shown["cache"]["admin_token"], "<redacted>");
        assert_eq!(shown["auth"]["api_keys"]["acme"]["sha256"], "<redacted>");
        assert_eq!(shown["server"]["request_timeout"], "3s");
    }
}
