//! What a refused or failed request tells its client, in one place: the stable `Code` (the
//! string clients match on and its HTTP status), and the `Problem` body (RFC 9457
//! `application/problem+json`) that every refusal in the core and the BFFs is built from.
//! GraphQL errors carry the same codes in `extensions.code` (`graphql::error`).
//!
//! Which failure gets which code is decided by the module that knows the failure (`auth`,
//! `edge`, `ratelimit`, `upstream`, ...); this module only says what each code means on the
//! wire. It knows nothing of the request or of backends.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every code a client can see. Add one here, with its status, before using it anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The request is malformed (query string, body, parameters).
    BadRequest,
    /// A GraphQL argument a client gave is out of range or not one the API issued.
    BadUserInput,
    /// The path was refused at the edge (dot segments leaving the root, encoded slashes).
    BadPath,
    /// No credentials, or credentials that did not verify.
    Unauthenticated,
    /// Verified, but without the scope the route or field needs.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    UriTooLong,
    HeadersTooLarge,
    /// The client did not send its request body within `limits.body_read_timeout`.
    RequestTimeout,
    /// A request head refused at the edge: ambiguous framing (`Transfer-Encoding`,
    /// `Content-Length`), a duplicated or missing `Host`, a duplicated `Authorization`, or a
    /// header value with bytes no backend should have to interpret.
    BadHeader,
    /// The `Host` is not one this gateway serves (`[limits] allowed_hosts`).
    MisdirectedRequest,
    /// The request body is (declared or streamed) larger than the route accepts.
    PayloadTooLarge,
    /// Over a rate limit; `Retry-After` says when to come back.
    RateLimited,
    /// A quota (a caller's allowance per day or month) is used up until its window ends;
    /// the problem names the quota and the instant it resets.
    QuotaExceeded,
    /// The shared rate-limit store cannot be reached and the policy is to refuse.
    RateLimitUnavailable,
    /// A cache purge did not reach every tier.
    PurgeFailed,
    /// The instance is at its limit of requests in progress: retry shortly.
    Overloaded,
    /// A persisted query's hash this gateway does not know (yet): send the query with it.
    PersistedQueryNotFound,
    /// Automatic persisted queries are switched off.
    PersistedQueryNotSupported,
    /// Trusted documents only: the operation is not in the app's manifest.
    PersistedQueryNotInList,
    /// The query sent with a hash does not have that hash.
    PersistedQueryHashMismatch,
    /// A backend did not answer in time, or the request's budget ran out.
    UpstreamTimeout,
    /// A backend could not be reached, broke the connection, or answered 5xx.
    UpstreamUnavailable,
    /// A backend refused the request as invalid (a 4xx other than 404).
    UpstreamRejected,
    /// A backend's answer could not be read (malformed or oversized).
    UpstreamBadResponse,
    /// Every instance's circuit breaker is open: failing fast.
    CircuitOpen,
    /// The backend's concurrency cap is reached: failing fast instead of queueing.
    UpstreamSaturated,
}

impl Code {
    /// The string clients see (`code` in problem+json, `extensions.code` in GraphQL).
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "BAD_REQUEST",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::BadPath => "BAD_PATH",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Code::UriTooLong => "URI_TOO_LONG",
            Code::HeadersTooLarge => "HEADERS_TOO_LARGE",
            Code::RequestTimeout => "REQUEST_TIMEOUT",
            Code::BadHeader => "BAD_HEADER",
            Code::MisdirectedRequest => "MISDIRECTED_REQUEST",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::RateLimited => "RATE_LIMITED",
            Code::QuotaExceeded => "QUOTA_EXCEEDED",
            Code::RateLimitUnavailable => "RATE_LIMIT_UNAVAILABLE",
            Code::PurgeFailed => "PURGE_FAILED",
            Code::Overloaded => "OVERLOADED",
            Code::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Code::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            Code::PersistedQueryNotInList => "PERSISTED_QUERY_NOT_IN_LIST",
            Code::PersistedQueryHashMismatch => "PERSISTED_QUERY_HASH_MISMATCH",
            Code::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            Code::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Code::UpstreamRejected => "UPSTREAM_REJECTED",
            Code::UpstreamBadResponse => "UPSTREAM_BAD_RESPONSE",
            Code::CircuitOpen => "CIRCUIT_OPEN",
            Code::UpstreamSaturated => "UPSTREAM_SATURATED",
        }
    }

    /// The HTTP status a REST client gets with this code. A backend failure may pick a more
    /// precise one (`Problem::with_status`): an unconfigured backend is 503, not 502.
    pub const fn status(self) -> StatusCode {
        match self {
            Code::BadRequest
            | Code::BadUserInput
            | Code::BadPath
            | Code::BadHeader
            | Code::PersistedQueryNotSupported
            | Code::PersistedQueryNotInList
            | Code::PersistedQueryHashMismatch => StatusCode::BAD_REQUEST,
            // Not a failure for the client: it sends the query with its hash next.
            Code::PersistedQueryNotFound => StatusCode::OK,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::UriTooLong => StatusCode::URI_TOO_LONG,
            Code::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::RateLimited | Code::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Code::RateLimitUnavailable
            | Code::PurgeFailed
            | Code::Overloaded
            | Code::CircuitOpen
            | Code::UpstreamSaturated => StatusCode::SERVICE_UNAVAILABLE,
            Code::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Code::UpstreamUnavailable | Code::UpstreamRejected | Code::UpstreamBadResponse => {
                StatusCode::BAD_GATEWAY
            }
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An error response body. `detail` is safe to show a client; internals stay in the logs.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub code: Code,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// More members the refusal's module defines (RFC 9457 extension members), e.g. the
    /// quota that is used up and when it resets. Boxed: most problems have none, and a
    /// `Result<_, Problem>` stays small.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Box<Map<String, Value>>>,
    /// Seconds after which a retry may succeed, sent as `Retry-After`.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem with `code`'s own status.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        let status = code.status();
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code,
            detail: detail.into(),
            service: None,
            extensions: None,
            retry_after: None,
        }
    }

    /// The same problem with one more member (not one of the standard ones).
    pub fn with_extension(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.extensions
            .get_or_insert_default()
            .insert(name.to_owned(), value.into());
        self
    }

    /// The same problem answered with another status (a backend failure's precise one).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status.as_u16();
        self.title = status.canonical_reason().unwrap_or("Error");
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Code::NotFound, detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_carries_its_codes_string_and_status() {
        let p = Problem::new(Code::RateLimited, "slow down");
        assert_eq!(p.status, 429);
        assert_eq!(p.title, "Too Many Requests");
        let body = serde_json::to_value(&p).unwrap();
        assert_eq!(body["code"], "RATE_LIMITED");
        assert_eq!(body["type"], "about:blank");
        let p = Problem::new(Code::QuotaExceeded, "used up")
            .with_extension("quota", "daily")
            .with_extension("resetsAt", "2026-11-30T00:00:00Z");
        let body = serde_json::to_value(&p).unwrap();
        assert_eq!(body["status"], 429);
        assert_eq!(body["code"], "QUOTA_EXCEEDED");
        assert_eq!(body["quota"], "daily");
        assert_eq!(body["resetsAt"], "2026-11-30T00:00:00Z");
        let p = Problem::new(Code::UpstreamUnavailable, "x")
            .with_status(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!((p.status, p.title), (503, "Service Unavailable"));
    }
}
