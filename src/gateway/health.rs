//! Health and readiness on the public listener: `/healthz` says the process is alive,
//! `/readyz` whether it should get traffic (config loaded, JWKS keys loaded, not shutting
//! down). A load balancer's checks read these.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::Gateway;

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        // Not logged (unless `[log] probes`), never exported as spans.
        .route_layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                response.extensions_mut().insert(crate::observe::Probe);
                response
            },
        ))
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
