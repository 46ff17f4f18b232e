//! Calling ONE backend service well: a pooled HTTP client per service, every call bounded by
//! `min(per-call timeout, time left in the client's request)`, identity and request id
//! forwarded, bodies size-capped, and every failure classified (see `error`).
//!
//! Retries, circuit breaking, bulkheads and load balancing over several instances belong
//! here too and wrap `Upstream::execute`; fan-out over MANY services is `compose`'s job.

mod error;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{UpstreamError, UpstreamErrorKind};

use crate::auth::Identity;
use crate::config::UpstreamConfig;

/// The point in time by which a client's request must be answered.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn instant(&self) -> Instant {
        self.0
    }
}

/// What every backend call made on behalf of one client request carries with it.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub identity: Option<Arc<Identity>>,
    pub deadline: Deadline,
    pub request_id: Arc<str>,
}

impl CallContext {
    pub fn new(identity: Option<Arc<Identity>>, deadline: Deadline, request_id: Arc<str>) -> Self {
        Self {
            identity,
            deadline,
            request_id,
        }
    }

    /// The verified user id, for backends whose API takes it as a parameter.
    pub fn user_id(&self) -> Option<&str> {
        self.identity.as_deref().and_then(Identity::user_id)
    }
}

/// Header carrying the caller's remaining budget, so a backend can give up when we will.
pub const REQUEST_TIMEOUT_HEADER: &str = "x-request-timeout-ms";

/// One backend service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Upstream(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    name: String,
    /// Base URL without a trailing slash; `None` when the BFF's config does not name it.
    base: Option<String>,
    client: reqwest::Client,
    timeout: Duration,
    max_body: u64,
}

impl Upstream {
    pub fn new(name: &str, config: &UpstreamConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.pool_max_idle)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            // A gateway must not chase redirects on a client's behalf: pass them through.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Upstream(Arc::new(Inner {
            name: name.to_owned(),
            base: Some(config.url.trim_end_matches('/').to_owned()),
            client,
            timeout: config.timeout,
            max_body: config.max_response_body.bytes(),
        })))
    }

    /// A service this BFF's config does not name: every call fails fast.
    pub fn unconfigured(name: &str) -> Self {
        Upstream(Arc::new(Inner {
            name: name.to_owned(),
            base: None,
            client: reqwest::Client::new(),
            timeout: Duration::ZERO,
            max_body: 0,
        }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// `GET path_and_query`, decoded as JSON into `T`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        ctx: &CallContext,
        path_and_query: &str,
    ) -> Result<T, UpstreamError> {
        let body = self
            .execute(ctx, Method::GET, path_and_query, None, &[])
            .await?;
        self.decode(&body)
    }

    /// A call with a JSON body (and extra headers such as `Idempotency-Key`), decoded as JSON.
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        ctx: &CallContext,
        method: Method,
        path_and_query: &str,
        body: &B,
        headers: &[(&'static str, &str)],
    ) -> Result<T, UpstreamError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            UpstreamError::new(self.name(), UpstreamErrorKind::BadResponse, e.to_string())
        })?;
        let body = self
            .execute(ctx, method, path_and_query, Some(bytes.into()), headers)
            .await?;
        self.decode(&body)
    }

    /// Time this call may take: its own timeout, cut to what is left of the request.
    /// Fails without calling when nothing is left.
    pub fn call_timeout(
        &self,
        ctx: &CallContext,
        own: Duration,
    ) -> Result<Duration, UpstreamError> {
        let left = ctx.deadline.remaining();
        if left.is_zero() {
            return Err(UpstreamError::new(
                self.name(),
                UpstreamErrorKind::DeadlineExceeded,
                "no time left in the request",
            ));
        }
        Ok(own.min(left))
    }

    /// Starts a request to `path_and_query` with the context's identity, request id and
    /// remaining budget set. The proxy builds on this; typed clients use `get_json`.
    pub(crate) fn request(
        &self,
        ctx: &CallContext,
        method: Method,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        let base = self.0.base.as_deref().ok_or_else(|| {
            UpstreamError::new(
                self.name(),
                UpstreamErrorKind::NotConfigured,
                "no [upstreams] entry",
            )
        })?;
        let timeout = self.call_timeout(ctx, timeout)?;
        let mut builder = self
            .0
            .client
            .request(method, format!("{base}{path_and_query}"))
            .timeout(timeout)
            .header("x-request-id", &*ctx.request_id)
            .header(REQUEST_TIMEOUT_HEADER, timeout.as_millis().to_string());
        if let Some(identity) = &ctx.identity {
            for (name, value) in identity.forwarded_headers() {
                builder = builder.header(name, value);
            }
        }
        Ok(builder)
    }

    async fn execute(
        &self,
        ctx: &CallContext,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        headers: &[(&'static str, &str)],
    ) -> Result<Bytes, UpstreamError> {
        let mut builder = self.request(ctx, method, path_and_query, self.0.timeout)?;
        builder = builder.header(http::header::ACCEPT, "application/json");
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|_| {
                UpstreamError::new(
                    self.name(),
                    UpstreamErrorKind::Rejected(400),
                    format!("invalid value for header {name}"),
                )
            })?;
            builder = builder.header(*name, value);
        }
        if let Some(body) = body {
            builder = builder
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let result = async {
            let response = builder
                .send()
                .await
                .map_err(|e| UpstreamError::from_transport(self.name(), &e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(UpstreamError::from_status(self.name(), status));
            }
            self.read_capped(response).await
        }
        .await;
        if let Err(e) = &result {
            tracing::debug!(service = %self.name(), path = %path_and_query, code = e.code(), detail = %e.detail, "upstream call failed");
        }
        result
    }

    /// Reads a whole body, refusing one over the service's size cap.
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Bytes, UpstreamError> {
        let max = self.0.max_body;
        let too_large = |seen: u64| {
            UpstreamError::new(
                self.name(),
                UpstreamErrorKind::BadResponse,
                format!("body of {seen} bytes exceeds the cap of {max}"),
            )
        };
        let declared = response.content_length();
        if let Some(len) = declared.filter(|len| *len > max) {
            return Err(too_large(len));
        }
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(8 * 1024) as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| UpstreamError::from_transport(self.name(), &e))?
        {
            if (buf.len() + chunk.len()) as u64 > max {
                return Err(too_large((buf.len() + chunk.len()) as u64));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, UpstreamError> {
        serde_json::from_slice(body).map_err(|e| {
            UpstreamError::new(
                self.name(),
                UpstreamErrorKind::BadResponse,
                format!("invalid JSON: {e}"),
            )
        })
    }
}

/// Percent-encodes one path segment (an id from a client can hold `/`, `..` or `?`).
pub fn path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` are still path navigation even when every byte is unreserved.
    match out.as_str() {
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        _ => out,
    }
}

/// Encodes a query string from pairs (values from clients included).
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&path_segment(k));
        out.push('=');
        out.push_str(&path_segment(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(path_segment("p12"), "p12");
        assert_eq!(path_segment("../admin"), "..%2Fadmin");
        assert_eq!(path_segment(".."), "%2E%2E");
        assert_eq!(path_segment("a b?c"), "a%20b%3Fc");
        assert_eq!(
            query(&[("ids", "p1,p2"), ("q", "x&y")]),
            "?ids=p1%2Cp2&q=x%26y"
        );
    }

    #[tokio::test]
    async fn a_spent_deadline_fails_before_calling() {
        let config: UpstreamConfig = toml::from_str("url = \"http://127.0.0.1:9\"").unwrap();
        let upstream = Upstream::new("users", &config).unwrap();
        let ctx = CallContext::new(None, Deadline::after(Duration::ZERO), "t".into());
        let err = upstream
            .get_json::<serde_json::Value>(&ctx, "/users/1")
            .await
            .unwrap_err();
        assert_eq!(err.kind, UpstreamErrorKind::DeadlineExceeded);
    }
}
