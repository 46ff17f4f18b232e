//! Shared REST plumbing: errors as `application/problem+json` (RFC 9457) with a stable
//! `code`, and the one mapping from a failed backend call to an HTTP status.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::upstream::UpstreamError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response body. `detail` is safe to show a client; internals stay in the logs.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code,
            detail: detail.into(),
            service: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", detail)
    }
}

impl From<UpstreamError> for Problem {
    fn from(e: UpstreamError) -> Self {
        let mut p = Problem::new(e.http_status(), e.code(), e.public_message());
        p.service = Some(e.service);
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamErrorKind;

    #[test]
    fn upstream_failures_map_to_gateway_statuses_without_internals() {
        let e = UpstreamError::new(
            "catalog",
            UpstreamErrorKind::Timeout,
            "http://10.0.0.1:9103/products timed out",
        );
        let p = Problem::from(e);
        assert_eq!(p.status, 504);
        assert_eq!(p.code, "UPSTREAM_TIMEOUT");
        assert_eq!(p.service.as_deref(), Some("catalog"));
        assert!(!p.detail.contains("10.0.0.1"));
    }
}
