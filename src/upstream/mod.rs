//! Calling ONE backend service well, and knowing nothing of what sits in front of it (the
//! cache wraps an `Upstream`; fan-out over many services is `compose`'s job). Every buffered
//! call runs one pipeline (`pipeline`: deadline, bulkhead, instance choice and circuit
//! breaker, tries bounded by the time left, retries within a budget); the proxy's exchange
//! streams (`stream`); `wire` builds what goes out and reads what comes back. Every failure
//! is classified once (`error`).

mod breaker;
mod client;
mod error;
mod instances;
pub mod limit;
mod metrics;
mod owned;
mod pipeline;
mod retry;
mod span;
mod stats;
mod stream;
mod text;
mod wire;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use breaker::BreakerState;
pub use error::{UpstreamError, UpstreamErrorKind};
pub use instances::InstanceStatus;
pub use metrics::UpstreamFamilies;
pub use stats::UpstreamStats;
pub use text::Text;
pub use wire::{REQUEST_TIMEOUT_HEADER, decode_json, path_query, path_segment, query};

use client::HttpClient;
use instances::Instances;
use limit::{AdaptiveLimit, LimitBounds};
use pipeline::Call;
use retry::{Backoff, RetryBudget};
use stats::Counters;

use crate::config::{ClientTlsError, UpstreamConfig};
use crate::request::CallContext;

/// One backend service. Cheap to clone.
#[derive(Clone)]
pub struct Upstream(Arc<Inner>);

struct Inner {
    name: String,
    /// `None` when the BFF's config does not name this service.
    instances: Option<Arc<Instances>>,
    client: HttpClient,
    timeout: Duration,
    max_body: u64,
    attempts: u32,
    backoff: Backoff,
    budget: RetryBudget,
    bulkhead: Bulkhead,
    counters: Counters,
}

/// The concurrency cap: fixed, or adaptive within its bounds.
enum Bulkhead {
    Fixed(usize),
    Adaptive(AdaptiveLimit),
}

impl Bulkhead {
    fn new(config: &crate::config::BulkheadConfig) -> Self {
        if !config.adaptive {
            return Bulkhead::Fixed(config.max_concurrent);
        }
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let max = clamp(config.max_concurrent);
        Bulkhead::Adaptive(AdaptiveLimit::new(LimitBounds {
            initial: max,
            min: clamp(config.min_concurrent).min(max),
            max,
            tolerance: config.tolerance,
        }))
    }

    fn limit(&self) -> usize {
        match self {
            Bulkhead::Fixed(n) => *n,
            Bulkhead::Adaptive(limit) => limit.current() as usize,
        }
    }

    /// One try ended after `took`; `overloaded` when the backend timed out or said so.
    fn learn(&self, took: Duration, overloaded: bool, in_flight: usize) {
        if let Bulkhead::Adaptive(limit) = self {
            let in_flight = u32::try_from(in_flight).unwrap_or(u32::MAX);
            limit.learn(took, overloaded, in_flight);
        }
    }
}

/// A successful backend answer: its head, whose headers the cache reads, and the whole body.
#[derive(Clone, Debug)]
pub struct Fetched {
    head: FetchedHead,
    pub body: Bytes,
}

#[derive(Clone, Debug)]
enum FetchedHead {
    /// As read on an owned connection: a header map is built only when asked for.
    Read(owned::Head),
    /// hyper's (an `https://` upstream's).
    Map(HeaderMap),
}

impl Fetched {
    /// The answer's headers: built from the head as it was read on an owned connection (the
    /// cache asks for them only for what it stores; a call that wants the body alone never
    /// pays for a map).
    pub fn headers(&self) -> Cow<'_, HeaderMap> {
        self.head.headers()
    }
}

impl FetchedHead {
    fn headers(&self) -> Cow<'_, HeaderMap> {
        match self {
            FetchedHead::Read(head) => Cow::Owned(head.header_map(0)),
            FetchedHead::Map(headers) => Cow::Borrowed(headers),
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.0.name)
            .finish_non_exhaustive()
    }
}

/// How a call may be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// Safe to send twice: GET/HEAD, or a write the backend deduplicates.
    Idempotent,
    /// Sent once, whatever happens.
    Once,
}

impl Upstream {
    /// Builds the client and starts health checks. Must run inside a tokio runtime. Fails
    /// only when the files of the `tls` block cannot be loaded (validation reads them too).
    pub fn new(name: &str, config: &UpstreamConfig) -> Result<Self, ClientTlsError> {
        // Redirects are never followed (a gateway must not chase them on a client's behalf:
        // they pass through), and nothing retries below the pipeline.
        let client = HttpClient::new(config, config.pool_max_idle)?;
        let instances = Instances::new(config);
        if config.health.enabled {
            instances.spawn_health_checks(client.clone(), config.health.clone());
        }
        Ok(Self::with(name, Some(instances), client, config))
    }

    /// A service this BFF's config does not name: every call fails fast.
    pub fn unconfigured(name: &str) -> Self {
        let config = UpstreamConfig::new("http://unconfigured.invalid");
        Self::with(name, None, HttpClient::unconfigured(), &config)
    }

    fn with(
        name: &str,
        instances: Option<Arc<Instances>>,
        client: HttpClient,
        config: &UpstreamConfig,
    ) -> Self {
        Upstream(Arc::new(Inner {
            name: name.to_owned(),
            instances,
            client,
            timeout: config.timeout,
            max_body: config.max_response_body.bytes(),
            attempts: config.retry.attempts,
            backoff: Backoff::new(&config.retry),
            budget: RetryBudget::new(&config.retry),
            bulkhead: Bulkhead::new(&config.bulkhead),
            counters: Counters::default(),
        }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Counters and instance states, for metrics and tests.
    pub fn stats(&self) -> UpstreamStats {
        let instances = self
            .0
            .instances
            .as_ref()
            .map(|i| i.statuses())
            .unwrap_or_default();
        self.0
            .counters
            .snapshot(&self.0.name, self.0.bulkhead.limit(), instances)
    }

    /// `GET path_and_query`, the whole answer. Retried when that is safe and useful.
    pub async fn get(
        &self,
        ctx: &CallContext,
        path_and_query: &str,
    ) -> Result<Fetched, UpstreamError> {
        let call = Call {
            method: Method::GET,
            path_and_query,
            body: None,
            headers: &[],
            idempotency: Idempotency::Idempotent,
        };
        self.execute(ctx, &call).await
    }

    /// `get`, decoded as JSON into `T`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        ctx: &CallContext,
        path_and_query: &str,
    ) -> Result<T, UpstreamError> {
        let fetched = self.get(ctx, path_and_query).await?;
        decode_json(self.name(), &fetched.body)
    }

    /// Time a background call (a cache refresh) may take: every try at full length.
    pub fn background_budget(&self) -> Duration {
        self.0.timeout * self.0.attempts.max(1)
    }

    /// A call with a JSON body (and extra headers such as `Idempotency-Key`), decoded as JSON.
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        ctx: &CallContext,
        method: Method,
        path_and_query: &str,
        body: &B,
        headers: &[(&'static str, &str)],
        idempotency: Idempotency,
    ) -> Result<T, UpstreamError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            UpstreamError::new(self.name(), UpstreamErrorKind::BadResponse, e.to_string())
        })?;
        let call = Call {
            method,
            path_and_query,
            body: Some(bytes.into()),
            headers,
            idempotency,
        };
        let fetched = self.execute(ctx, &call).await?;
        decode_json(self.name(), &fetched.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Deadline;

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(path_segment("p12"), "p12");
        assert_eq!(path_segment("../admin"), "..%2Fadmin");
        assert_eq!(path_segment(".."), "%2E%2E");
        assert_eq!(path_segment("a b?c"), "a%20b%3Fc");
        assert_eq!(path_segment("."), "%2E");
        assert_eq!(path_segment("Zoë/~"), "Zo%C3%AB%2F~");
        // Multi-byte characters at either end, alone, and next to each other.
        assert_eq!(path_segment("ëZ"), "%C3%ABZ");
        assert_eq!(path_segment("ë"), "%C3%AB");
        assert_eq!(path_segment("a€ë"), "a%E2%82%AC%C3%AB");
        assert_eq!(path_segment(""), "");
        assert_eq!(
            query(&[("ids", "p1,p2"), ("q", "x&y")]),
            "?ids=p1%2Cp2&q=x%26y"
        );
        // Path pieces are kept as they are, the query encoded after them.
        let id = path_segment("a/b");
        assert_eq!(
            path_query(&["/users/", &id], &[("fields", "id,name")]),
            "/users/a%2Fb?fields=id%2Cname"
        );
        assert_eq!(path_query(&["/orders"], &[]), "/orders");
    }

    /// The encoder against its rule written plainly (each byte kept when unreserved, else
    /// `%XX`): every string of up to three characters from a set mixing unreserved, reserved
    /// and multi-byte ones.
    #[test]
    fn encoding_keeps_unreserved_bytes_and_encodes_every_other() {
        fn by_bytes(raw: &str) -> String {
            let unreserved = |b: &u8| b.is_ascii_alphanumeric() || b"-._~".contains(b);
            raw.bytes()
                .map(|b| match unreserved(&b) {
                    true => char::from(b).to_string(),
                    false => format!("%{b:02X}"),
                })
                .collect()
        }
        let chars = ['a', 'Z', '0', '~', '.', ' ', '/', '%', ',', 'é', '€', '😀'];
        let mut tried = 0;
        for a in chars {
            for b in chars {
                for c in chars {
                    for raw in [format!("{a}{b}{c}"), format!("{a}{b}"), a.to_string()] {
                        if raw == "." || raw == ".." {
                            continue;
                        }
                        assert_eq!(path_segment(&raw), by_bytes(&raw), "{raw:?}");
                        tried += 1;
                    }
                }
            }
        }
        assert!(tried > 1_000);
    }

    /// Every string of up to three pieces from a mixed set encodes to unreserved bytes and
    /// `%HH` escapes only, and decodes back to itself.
    #[test]
    fn encoding_round_trips_and_leaves_only_unreserved_bytes() {
        let pieces = [
            "", "a", "Z9", "-._~", " ", "/", "%", "ë", "€", "😀", "a b", "?&=",
        ];
        let decode = |encoded: &str| {
            let bytes = encoded.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                } else {
                    assert!(bytes[i].is_ascii_alphanumeric() || b"-._~".contains(&bytes[i]));
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        };
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let raw = format!("{a}{b}{c}");
                    let encoded = query(&[("k", &raw)]);
                    assert_eq!(decode(&encoded["?k=".len()..]), raw, "{encoded}");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_spent_deadline_fails_before_calling() {
        let upstream =
            Upstream::new("accounts", &UpstreamConfig::new("http://127.0.0.1:9")).unwrap();
        let ctx = CallContext::new(None, Deadline::after(Duration::ZERO), "t".into());
        let err = upstream
            .get_json::<serde_json::Value>(&ctx, "/accounts/1")
            .await
            .unwrap_err();
        assert_eq!(err.kind, UpstreamErrorKind::DeadlineExceeded);
        assert_eq!(upstream.stats().attempts, 0);
    }

    /// A backend on a free port answering every request with `response`, raw.
    async fn raw_backend(response: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let _ = socket.write_all(response).await;
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn a_backend_whose_latency_doubles_shrinks_its_bulkhead() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let delay_ms = Arc::new(AtomicU64::new(10));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let delay = delay_ms.clone();
        let app = axum::Router::new().route(
            "/ping",
            axum::routing::get(move || {
                let ms = delay.load(Ordering::Relaxed);
                async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    axum::Json(serde_json::json!({}))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut config = UpstreamConfig::new(&url);
        config.bulkhead.max_concurrent = 64;
        config.bulkhead.min_concurrent = 4;
        let upstream = Upstream::new("accounts", &config).unwrap();
        for _ in 0..20 {
            upstream.get(&ctx(), "/ping").await.unwrap();
        }
        assert_eq!(upstream.stats().concurrency_limit, 64);
        delay_ms.store(20, Ordering::Relaxed);
        for _ in 0..30 {
            upstream.get(&ctx(), "/ping").await.unwrap();
        }
        let shrunk = upstream.stats().concurrency_limit;
        assert!(shrunk < 48, "{shrunk}");
    }

    fn capped(url: &str, max: u64) -> Upstream {
        let mut config = UpstreamConfig::new(url);
        config.max_response_body = crate::config::ByteSize(max);
        config.retry.attempts = 1;
        Upstream::new("accounts", &config).unwrap()
    }

    fn ctx() -> CallContext {
        CallContext::new(None, Deadline::after(Duration::from_secs(5)), "t".into())
    }

    #[tokio::test]
    async fn a_body_in_pieces_is_read_whole() {
        let url = raw_backend(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
              transfer-encoding: chunked\r\n\r\n\
              6\r\n{\"id\":\r\n5\r\n\"u1\",\r\na\r\n\"n\":\"Ada\"}\r\n0\r\n\r\n",
        )
        .await;
        let user: serde_json::Value = capped(&url, 1024)
            .get_json(&ctx(), "/accounts/u1")
            .await
            .unwrap();
        assert_eq!(user, serde_json::json!({"id": "u1", "n": "Ada"}));
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_declared_or_not() {
        let declared = raw_backend(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
              content-length: 17\r\n\r\n{\"id\":\"u1234567\"}",
        )
        .await;
        let chunked = raw_backend(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
              transfer-encoding: chunked\r\n\r\n\
              9\r\n{\"id\":\"u1\r\n8\r\n234567\"}\r\n0\r\n\r\n",
        )
        .await;
        for url in [declared, chunked] {
            let err = capped(&url, 16)
                .get_json::<serde_json::Value>(&ctx(), "/accounts/u1")
                .await
                .unwrap_err();
            assert_eq!(err.kind, UpstreamErrorKind::BadResponse, "{url}");
            assert!(
                err.detail.contains("exceeds the cap of 16"),
                "{}",
                err.detail
            );
            // At the cap exactly, the same body is fine.
            capped(&url, 17)
                .get_json::<serde_json::Value>(&ctx(), "/accounts/u1")
                .await
                .unwrap();
        }
    }
}
