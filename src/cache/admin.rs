//! The cache's operator endpoints, as a router of their own so they can move to an admin
//! listener: `POST /admin/cache/purge?prefix=...` or `?tag=product:p123` drops entries,
//! `GET /admin/cache/stats` reads the counters. Every call needs the configured token in
//! `X-Admin-Token`; the router is mounted only when a token is configured.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::EntityCache;
use crate::rest::Problem;

pub const ADMIN_TOKEN_HEADER: &str = "x-admin-token";

#[derive(Clone)]
struct Admin {
    cache: EntityCache,
    /// SHA-256 of the token: compared digest to digest, in constant time.
    token_digest: Arc<[u8; 32]>,
}

/// `/admin/cache/purge` and `/admin/cache/stats`, guarded by `token`.
pub fn admin_routes(cache: EntityCache, token: &str) -> Router {
    let state = Admin {
        cache,
        token_digest: Arc::new(Sha256::digest(token.as_bytes()).into()),
    };
    Router::new()
        .route("/admin/cache/purge", post(purge))
        .route("/admin/cache/stats", get(stats))
        .with_state(state)
}

#[derive(Deserialize)]
struct PurgeQuery {
    prefix: Option<String>,
    tag: Option<String>,
}

async fn purge(
    State(admin): State<Admin>,
    headers: HeaderMap,
    query: Result<Query<PurgeQuery>, QueryRejection>,
) -> Response {
    if let Err(p) = admin.authorize(&headers) {
        return p.into_response();
    }
    let Ok(Query(q)) = query else {
        return Problem::bad_request("invalid query string").into_response();
    };
    let prefix = q.prefix.filter(|p| !p.is_empty());
    let tag = q.tag.filter(|t| !t.is_empty());
    if prefix.is_none() && tag.is_none() {
        return Problem::bad_request("give a non-empty prefix or tag").into_response();
    }
    if !admin.cache.purge(prefix, tag).await {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "PURGE_FAILED",
            "the cache refused the purge; try again",
        )
        .into_response();
    }
    Json(serde_json::json!({ "purged": true })).into_response()
}

async fn stats(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    if let Err(p) = admin.authorize(&headers) {
        return p.into_response();
    }
    admin.cache.settle().await;
    Json(admin.cache.stats()).into_response()
}

impl Admin {
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let given = headers
            .get(ADMIN_TOKEN_HEADER)
            .map(|v| Sha256::digest(v.as_bytes()));
        let ok = given.is_some_and(|g| {
            g.iter()
                .zip(self.token_digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        });
        if ok {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "a valid X-Admin-Token is required",
            ))
        }
    }
}
