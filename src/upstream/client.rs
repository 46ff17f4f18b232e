//! The HTTP client under every backend call. For an upstream whose instances are all
//! `http://`: HTTP/1.1 connections owned by the requests that use them (`owned`), nothing
//! spawned per connection. When any is `https://`: hyper-util's pooled client over
//! `outbound::https_connector` (rustls with the upstream's `tls` block, HTTP/2 where the
//! backend's ALPN offers it, one `ClientConfig` per upstream so TLS sessions resume across
//! its connections). Each instance's address is parsed once (`Origin`), so a call only joins
//! a path; the pipeline in `mod.rs` adds the deadline, retries and breakers itself. A
//! general-purpose client (URL parsing and IDNA per request, redirect and retry layers) was
//! a third of the proxy route's instructions.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body::{Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use thread_local::ThreadLocal;
use tokio::time::Sleep;

use super::owned::{ExchangeError, Failure, Leased, Pools};
use super::{UpstreamError, UpstreamErrorKind};
use crate::config::{ClientTlsError, UpstreamConfig};
use crate::outbound::{Alpn, https_connector};

/// The client of one upstream's instances. Cheap to clone. When every instance is
/// `http://`, connections are owned by the requests that use them ([`owned`]); otherwise
/// hyper-util's pooled client over rustls. Either way every thread keeps idle connections
/// of its own: under `server.runtime = "thread-per-core"` a backend connection is driven by
/// the worker whose requests use it and never handed across threads (Envoy's per-worker
/// pools); under work stealing each worker's pool serves the requests it happens to poll.
#[derive(Clone)]
pub(crate) struct HttpClient(Kind);

#[derive(Clone)]
enum Kind {
    /// Every instance is `http://`.
    Plain(Arc<Pools>),
    /// Some instance is `https://` (an `http://` one still goes over plain TCP).
    Tls(Arc<TlsPools>),
}

/// hyper-util's pooled client, one per thread, made from one connector (TLS files are read
/// once, and one `ClientConfig` resumes sessions across every thread's connections).
struct TlsPools {
    connector: HttpsConnector<HttpConnector>,
    pool_max_idle: usize,
    pools: ThreadLocal<Client<HttpsConnector<HttpConnector>, Body>>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("tls", &matches!(self.0, Kind::Tls(_)))
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// The client `config`'s instances need, keeping at most `pool_max_idle` idle
    /// connections per instance and thread. Fails only when the `tls` block's files do not
    /// load.
    pub fn new(config: &UpstreamConfig, pool_max_idle: usize) -> Result<Self, ClientTlsError> {
        if !config.uses_tls() {
            let pools = Pools::new(config.connect_timeout, pool_max_idle);
            return Ok(Self(Kind::Plain(Arc::new(pools))));
        }
        let tls = config.tls.clone().unwrap_or_default();
        let connector = https_connector(
            tls.client_config()?,
            tls.server_name()?,
            config.connect_timeout,
            Alpn::Http2AndHttp1,
        );
        Ok(Self(Kind::Tls(Arc::new(TlsPools {
            connector,
            pool_max_idle,
            pools: ThreadLocal::new(),
        }))))
    }

    /// A client that cannot be used for anything (an unconfigured service fails fast
    /// before it gets here).
    pub fn unconfigured() -> Self {
        Self(Kind::Plain(Arc::new(Pools::new(Duration::ZERO, 0))))
    }

    /// The owned connections, when every instance is `http://`: a buffered call writes
    /// its head for them itself (`Pools::send_written`).
    pub fn owned(&self) -> Option<&Arc<Pools>> {
        match &self.0 {
            Kind::Plain(pools) => Some(pools),
            Kind::Tls(_) => None,
        }
    }

    /// Sends `request` (its URI absolute) and waits for the response head; the body is left
    /// to the caller, and so is the deadline.
    pub async fn send(
        &self,
        service: &str,
        request: Request<Body>,
    ) -> Result<Response<Leased>, UpstreamError> {
        match &self.0 {
            Kind::Plain(pools) => pools.send(request).await.map_err(|e| failure(service, e)),
            Kind::Tls(tls) => {
                // The response future owns what it needs: nothing of this thread's pool is
                // borrowed across the await (the task may move threads).
                let response = tls.pool().request(request);
                let response = response.await.map_err(|e| transport_error(service, &e))?;
                Ok(response.map(Leased::pooled))
            }
        }
    }
}

/// An owned connection's failure as the call's error.
pub(super) fn failure(service: &str, failure: Failure) -> UpstreamError {
    match failure {
        Failure::Connect(detail) => UpstreamError::new(service, UpstreamErrorKind::Connect, detail),
        Failure::Exchange(e) => body_error(service, &e),
    }
}

impl TlsPools {
    /// This thread's pool.
    fn pool(&self) -> &Client<HttpsConnector<HttpConnector>, Body> {
        self.pools.get_or(|| {
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(self.pool_max_idle)
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_timer(TokioTimer::new())
                .build(self.connector.clone())
        })
    }
}

/// The scheme, authority and path prefix of one instance's base URL, parsed once.
#[derive(Debug)]
pub(crate) struct Origin {
    scheme: Scheme,
    authority: Authority,
    /// The base URL's path without its trailing slash (usually empty).
    prefix: String,
}

impl Origin {
    /// `None` for a base that is not an absolute `http(s)://` URL (config validation refuses
    /// those before a client is built).
    pub fn parse(base: &str) -> Option<Self> {
        let uri: Uri = base.parse().ok()?;
        let parts = uri.into_parts();
        Some(Self {
            scheme: parts.scheme?,
            authority: parts.authority?,
            prefix: parts
                .path_and_query
                .map(|p| p.path().trim_end_matches('/').to_owned())
                .unwrap_or_default(),
        })
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The base URL's path, put before every call's (usually empty).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URI of `path_and_query` (which starts with `/`) on this instance.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let path: PathAndQuery = if self.prefix.is_empty() {
            path_and_query.parse()?
        } else {
            format!("{}{path_and_query}", self.prefix).parse()?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
    }
}

/// A response body that fails once the exchange's deadline fires: a backend that sends
/// its head in time and then stalls the body still ends within the budget.
pub(crate) struct DeadlineBody {
    inner: Leased,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    pub fn new(inner: Leased, deadline: Pin<Box<Sleep>>) -> Self {
        Self { inner, deadline }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err("the backend's body timed out".into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pub(crate) fn timed_out(service: &str) -> UpstreamError {
    UpstreamError::new(service, UpstreamErrorKind::Timeout, "timed out")
}

/// Classifies a failed exchange: no connection, or a connection that broke.
fn transport_error(service: &str, e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let kind = if e.is_connect() {
        UpstreamErrorKind::Connect
    } else {
        UpstreamErrorKind::Reset
    };
    UpstreamError::new(service, kind, error_chain(e))
}

/// Classifies an exchange or a body that broke after the connection was made: a malformed
/// answer or a broken connection.
pub(crate) fn body_error(service: &str, e: &ExchangeError) -> UpstreamError {
    let kind = if e.is_malformed() {
        UpstreamErrorKind::BadResponse
    } else {
        UpstreamErrorKind::Reset
    };
    UpstreamError::new(service, kind, e.to_string())
}

/// `e` and its sources, so logs show the root cause ("connection refused").
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_joins_paths_under_its_prefix() {
        let plain = Origin::parse("http://127.0.0.1:9201").unwrap();
        assert_eq!(
            plain.uri("/accounts/1?x=1").unwrap().to_string(),
            "http://127.0.0.1:9201/accounts/1?x=1"
        );
        let prefixed = Origin::parse("http://backend.internal/api/").unwrap();
        assert_eq!(
            prefixed.uri("/accounts/1").unwrap().to_string(),
            "http://backend.internal/api/accounts/1"
        );
        assert!(Origin::parse("not a url").is_none());
        assert!(plain.uri("/bad path").is_err());
    }
}
