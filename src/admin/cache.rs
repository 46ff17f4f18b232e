//! The cache's operator endpoints, served on the admin listener (`admin`), never on
//! the public one: `POST /admin/cache/purge?prefix=...` or `?tag=item:i123` drops
//! entries (here, in the shared tier, and through Redis in every other instance's local
//! tier: `cache::broadcast`), `GET /admin/cache/stats` reads the counters. Every call needs the configured
//! token in `X-Admin-Token`; without a cache and a token they answer 404.

use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cache::EntityCache;
use crate::error::{Code, Problem};

pub const ADMIN_TOKEN_HEADER: &str = "x-admin-token";

/// One gateway's cache, and the token that guards its endpoints.
pub struct Admin {
    cache: EntityCache,
    /// SHA-256 of the token: compared digest to digest, in constant time.
    token_digest: [u8; 32],
}

#[derive(Deserialize)]
pub struct PurgeQuery {
    prefix: Option<String>,
    tag: Option<String>,
}

impl Admin {
    /// The endpoints of `cache`, when there is one and a token guards it.
    pub fn new(cache: Option<&EntityCache>, token: Option<&str>) -> Option<Self> {
        Some(Self {
            cache: cache?.clone(),
            token_digest: Sha256::digest(token?.as_bytes()).into(),
        })
    }

    /// `POST /admin/cache/purge`.
    pub async fn purge(
        &self,
        headers: &HeaderMap,
        query: Result<Query<PurgeQuery>, QueryRejection>,
    ) -> Response {
        if let Err(p) = self.authorize(headers) {
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
        if !self.cache.purge(prefix, tag).await {
            return Problem::new(Code::PurgeFailed, "the cache refused the purge; try again")
                .into_response();
        }
        Json(serde_json::json!({ "purged": true })).into_response()
    }

    /// `GET /admin/cache/stats`.
    pub async fn stats(&self, headers: &HeaderMap) -> Response {
        if let Err(p) = self.authorize(headers) {
            return p.into_response();
        }
        self.cache.settle().await;
        Json(self.cache.stats()).into_response()
    }

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
                Code::Unauthenticated,
                "a valid X-Admin-Token is required",
            ))
        }
    }
}
