//! What can go wrong calling a backend, classified once: whose fault it is, whether a retry
//! may help, and the stable code clients see. The two mappings to client-facing errors
//! (GraphQL in `graphql`, problem+json in `From<UpstreamError> for Problem` below) read only
//! this classification.

use std::fmt;
use std::time::Duration;

use crate::error::{Code, Problem};

/// A failed backend call. Carries the service name (clients see it) and an internal detail
/// (logged only: it may hold a backend URL).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{service}: {kind}")]
pub struct UpstreamError {
    pub service: String,
    pub kind: UpstreamErrorKind,
    /// For logs, never for clients.
    pub detail: String,
    /// The service's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// The call (or the request's budget) ran out of time.
    Timeout,
    /// The request's budget was spent before the call could start; it was never sent.
    DeadlineExceeded,
    /// No connection could be made.
    Connect,
    /// The connection broke mid-exchange.
    Reset,
    /// The service answered with a 5xx (or 429).
    ServerError(u16),
    /// The service says the thing asked for does not exist.
    NotFound,
    /// The service refused the request as invalid (4xx other than 404/429): our bug or the
    /// client's input, never worth a retry.
    Rejected(u16),
    /// Unparseable or oversized body.
    BadResponse,
    /// The BFF's config does not name this service.
    NotConfigured,
    /// Every instance's circuit breaker is open: failing fast instead of calling.
    CircuitOpen,
    /// The upstream's concurrency cap (bulkhead) is reached: failing fast instead of queueing.
    Saturated,
}

impl fmt::Display for UpstreamErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out"),
            Self::DeadlineExceeded => f.write_str("request deadline exceeded"),
            Self::Connect => f.write_str("connection failed"),
            Self::Reset => f.write_str("connection reset"),
            Self::ServerError(s) => write!(f, "server error {s}"),
            Self::NotFound => f.write_str("not found"),
            Self::Rejected(s) => write!(f, "rejected with {s}"),
            Self::BadResponse => f.write_str("bad response"),
            Self::NotConfigured => f.write_str("not configured"),
            Self::CircuitOpen => f.write_str("circuit open"),
            Self::Saturated => f.write_str("saturated"),
        }
    }
}

impl UpstreamError {
    pub fn new(service: &str, kind: UpstreamErrorKind, detail: impl Into<String>) -> Self {
        Self {
            service: service.to_owned(),
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The stable, client-facing code (`extensions.code` in GraphQL, `code` in problem+json).
    pub fn code(&self) -> Code {
        match self.kind {
            UpstreamErrorKind::Timeout | UpstreamErrorKind::DeadlineExceeded => {
                Code::UpstreamTimeout
            }
            UpstreamErrorKind::Connect
            | UpstreamErrorKind::Reset
            | UpstreamErrorKind::ServerError(_)
            | UpstreamErrorKind::NotConfigured => Code::UpstreamUnavailable,
            UpstreamErrorKind::NotFound => Code::NotFound,
            UpstreamErrorKind::Rejected(_) => Code::UpstreamRejected,
            UpstreamErrorKind::BadResponse => Code::UpstreamBadResponse,
            UpstreamErrorKind::CircuitOpen => Code::CircuitOpen,
            UpstreamErrorKind::Saturated => Code::UpstreamSaturated,
        }
    }

    /// Whether the same call may succeed if tried again (on an idempotent request).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            UpstreamErrorKind::Timeout
                | UpstreamErrorKind::Connect
                | UpstreamErrorKind::Reset
                | UpstreamErrorKind::ServerError(_)
        )
    }

    /// Whether this failure is the instance's fault, for its circuit breaker and outlier
    /// detection: server faults and timeouts count, a client's bad request does not.
    pub fn is_instance_fault(&self) -> bool {
        matches!(
            self.kind,
            UpstreamErrorKind::Timeout
                | UpstreamErrorKind::Connect
                | UpstreamErrorKind::Reset
                | UpstreamErrorKind::ServerError(_)
                | UpstreamErrorKind::BadResponse
        )
    }

    /// The HTTP status a REST client gets for this failure.
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self.kind {
            UpstreamErrorKind::Timeout | UpstreamErrorKind::DeadlineExceeded => S::GATEWAY_TIMEOUT,
            UpstreamErrorKind::NotFound => S::NOT_FOUND,
            UpstreamErrorKind::NotConfigured
            | UpstreamErrorKind::CircuitOpen
            | UpstreamErrorKind::Saturated => S::SERVICE_UNAVAILABLE,
            UpstreamErrorKind::Connect
            | UpstreamErrorKind::Reset
            | UpstreamErrorKind::ServerError(_)
            | UpstreamErrorKind::Rejected(_)
            | UpstreamErrorKind::BadResponse => S::BAD_GATEWAY,
        }
    }

    /// Short text a client may see: no URLs, no internals.
    pub fn public_message(&self) -> String {
        match self.kind {
            UpstreamErrorKind::NotFound => "not found".to_owned(),
            kind => format!("the {} service {kind}", self.service),
        }
    }

    /// Classifies a non-success status, keeping the service's `Retry-After` (seconds).
    pub fn from_response(
        service: &str,
        status: http::StatusCode,
        headers: &http::HeaderMap,
    ) -> Self {
        let mut e = Self::from_status(service, status);
        e.retry_after = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        e
    }

    /// Classifies a non-success status.
    pub fn from_status(service: &str, status: http::StatusCode) -> Self {
        let kind = match status.as_u16() {
            404 => UpstreamErrorKind::NotFound,
            429 => UpstreamErrorKind::ServerError(429),
            s if s >= 500 => UpstreamErrorKind::ServerError(s),
            s => UpstreamErrorKind::Rejected(s),
        };
        Self::new(service, kind, format!("status {status}"))
    }
}

/// The one mapping from a failed backend call to a REST answer: the code, the status of the
/// failure, a message without internals, and the service.
impl From<UpstreamError> for Problem {
    fn from(e: UpstreamError) -> Self {
        let mut p = Problem::new(e.code(), e.public_message()).with_status(e.http_status());
        // Failing fast (a full bulkhead, every circuit open) is over soon; a backend's own
        // Retry-After is passed on.
        p.retry_after = match e.kind {
            UpstreamErrorKind::Saturated | UpstreamErrorKind::CircuitOpen => Some(1),
            _ => e.retry_after.map(|d| d.as_secs().max(1)),
        };
        p.service = Some(e.service);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_is_consistent() {
        let e = UpstreamError::from_status("accounts", http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code(), Code::UpstreamUnavailable);
        assert!(e.is_retryable());
        assert_eq!(e.http_status(), http::StatusCode::BAD_GATEWAY);

        let e = UpstreamError::from_status("accounts", http::StatusCode::NOT_FOUND);
        assert_eq!(e.code(), Code::NotFound);
        assert!(!e.is_retryable());

        let e = UpstreamError::from_status("invoices", http::StatusCode::BAD_REQUEST);
        assert!(!e.is_retryable());
        assert_eq!(e.code(), Code::UpstreamRejected);

        let e = UpstreamError::new("basket", UpstreamErrorKind::Timeout, "x");
        assert_eq!(e.http_status(), http::StatusCode::GATEWAY_TIMEOUT);
        assert!(!e.public_message().contains("http"));
    }

    #[test]
    fn upstream_failures_map_to_gateway_statuses_without_internals() {
        let e = UpstreamError::new(
            "backend-a",
            UpstreamErrorKind::Timeout,
            "http://10.0.0.1:9203/items timed out",
        );
        let p = Problem::from(e);
        assert_eq!(p.status, 504);
        assert_eq!(p.code, Code::UpstreamTimeout);
        assert_eq!(p.service.as_deref(), Some("backend-a"));
        assert!(!p.detail.contains("10.0.0.1"));
        let e = UpstreamError::new("backend-a", UpstreamErrorKind::NotConfigured, "x");
        assert_eq!(Problem::from(e).status, 503);
        // Failing fast says when to come back.
        let e = UpstreamError::new("backend-a", UpstreamErrorKind::Saturated, "full");
        let response = axum::response::IntoResponse::into_response(Problem::from(e));
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
    }
}
