//! What every service shares around its own endpoints: `/healthz`, `/_echo`, the stats and
//! chaos endpoints and middleware, the JSON 404 fallback and the service's `Cache-Control`.
//! The layer order is written down once, in [`wrap`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::chaos::{self, Chaos};
use crate::error::ApiError;
use crate::stats::{self, Stats};

/// Wraps a service's own routes (`domain`) in the shared shell.
pub(crate) fn wrap(
    domain: Router,
    cache_control: Option<&'static str>,
    shutdown: watch::Sender<bool>,
) -> Router {
    let stats = Arc::new(Stats::default());
    let chaos = Arc::new(Chaos::new(shutdown));

    // Caching hints belong to the service's own successful answers only: a cached 404 or an
    // injected 503 would outlive the condition that caused it.
    let domain = match cache_control {
        Some(policy) => domain.layer(map_response(move |response: Response| async move {
            with_cache_control(response, policy)
        })),
        None => domain,
    };

    Router::new()
        .route("/healthz", get(healthz))
        .route("/_echo", post(echo))
        .merge(stats::routes(stats.clone()))
        .merge(chaos::routes(chaos.clone()))
        .merge(domain)
        .fallback(unknown_route)
        // Inner: faults apply to everything but `/_stats` and `/_chaos`.
        .layer(from_fn_with_state(chaos, chaos::inject))
        // Outer: counts every request that arrives, faulted or not, and the bytes of
        // whatever answer (real or injected) leaves.
        .layer(from_fn_with_state(stats, stats::count))
}

fn with_cache_control(mut response: Response, policy: &'static str) -> Response {
    if response.status().is_success() {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    response
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// Streams the request body back as it arrives, never buffering it: proxies' streaming paths
/// are tested against this.
async fn echo(request: Request) -> Response {
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let mut response = Body::from_stream(request.into_body().into_data_stream()).into_response();
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

async fn unknown_route(request: Request) -> ApiError {
    ApiError::not_found(
        "route",
        &format!("{} {}", request.method(), request.uri().path()),
    )
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves the data valid, so
/// a panic elsewhere must not take a service down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
