//! The HTTP client under every backend call: hyper's pooled client, over plain TCP for an
//! upstream whose instances are all `http://` (HTTP/1.1, exactly as cheap as before TLS
//! existed), or over `outbound::https_connector` when any is `https://` (rustls with the
//! upstream's `tls` block, HTTP/2 where the backend's ALPN offers it, one `ClientConfig` per
//! upstream so TLS sessions resume across its connections), with nothing on top; a pool per
//! thread (`HttpClient`). Each instance's address is parsed once (`Origin`), so a call only
//! joins a path; the pipeline in `mod.rs` adds the
//! deadline, retries and breakers itself. A general-purpose client (URL parsing and IDNA per
//! request, redirect and retry layers) was a third of the proxy route's instructions.

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
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use thread_local::ThreadLocal;
use tokio::time::Sleep;

use super::{UpstreamError, UpstreamErrorKind};
use crate::config::{ClientTlsError, UpstreamConfig};
use crate::outbound::{Alpn, https_connector};

/// A pooled client for one upstream's instances. Cheap to clone. Every thread that sends
/// keeps a pool of its own, made on its first call: under `server.runtime = "thread-per-core"`
/// a backend connection is driven by the worker whose requests use it and never handed
/// across threads (Envoy's per-worker pools); under work stealing each worker's pool serves
/// the requests it happens to poll.
#[derive(Clone)]
pub(crate) struct HttpClient(Arc<PerThread>);

struct PerThread {
    connector: Connector,
    pool_max_idle: usize,
    pools: ThreadLocal<Pool>,
}

/// How a pool connects: made once per upstream (TLS files are read once, and one
/// `ClientConfig` resumes sessions across every thread's connections).
#[derive(Clone)]
enum Connector {
    /// Every instance is `http://`.
    Plain(HttpConnector),
    /// Some instance is `https://` (an `http://` one still goes over plain TCP).
    Tls(HttpsConnector<HttpConnector>),
}

/// One thread's pooled connections.
#[derive(Clone)]
enum Pool {
    Plain(Client<HttpConnector, Body>),
    Tls(Client<HttpsConnector<HttpConnector>, Body>),
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("tls", &matches!(self.0.connector, Connector::Tls(_)))
            .field("pool_max_idle", &self.0.pool_max_idle)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// The client `config`'s instances need, keeping at most `pool_max_idle` idle
    /// connections per instance and thread. Fails only when the `tls` block's files do not
    /// load.
    pub fn new(config: &UpstreamConfig, pool_max_idle: usize) -> Result<Self, ClientTlsError> {
        let connector = if config.uses_tls() {
            let tls = config.tls.clone().unwrap_or_default();
            Connector::Tls(https_connector(
                tls.client_config()?,
                tls.server_name()?,
                config.connect_timeout,
                Alpn::Http2AndHttp1,
            ))
        } else {
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(config.connect_timeout));
            connector.set_nodelay(true);
            Connector::Plain(connector)
        };
        Ok(Self::with(connector, pool_max_idle))
    }

    fn with(connector: Connector, pool_max_idle: usize) -> Self {
        Self(Arc::new(PerThread {
            connector,
            pool_max_idle,
            pools: ThreadLocal::new(),
        }))
    }

    /// A client that cannot be used for anything (an unconfigured service fails fast
    /// before it gets here).
    pub fn unconfigured() -> Self {
        Self::with(Connector::Plain(HttpConnector::new()), 0)
    }

    /// This thread's pool.
    fn pool(&self) -> &Pool {
        self.0.pools.get_or(|| {
            let mut builder = Client::builder(TokioExecutor::new());
            builder
                .pool_max_idle_per_host(self.0.pool_max_idle)
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_timer(TokioTimer::new());
            match &self.0.connector {
                Connector::Plain(c) => Pool::Plain(builder.build(c.clone())),
                Connector::Tls(c) => Pool::Tls(builder.build(c.clone())),
            }
        })
    }

    /// Sends `request` and waits for the response head; the body is left to the caller, and
    /// so is the deadline.
    pub async fn send(
        &self,
        service: &str,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        // The response future owns what it needs: nothing of this thread's pool is borrowed
        // across the await (the task may move threads).
        let response = match self.pool() {
            Pool::Plain(client) => client.request(request),
            Pool::Tls(client) => client.request(request),
        };
        response.await.map_err(|e| transport_error(service, &e))
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
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    pub fn new(inner: Incoming, deadline: Pin<Box<Sleep>>) -> Self {
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

/// Classifies a body that could not be read: a malformed message or a broken connection.
pub(crate) fn body_error(service: &str, e: &hyper::Error) -> UpstreamError {
    let kind = if e.is_parse() || e.is_parse_status() {
        UpstreamErrorKind::BadResponse
    } else {
        UpstreamErrorKind::Reset
    };
    UpstreamError::new(service, kind, error_chain(e))
}

/// `e` and its sources, so logs show the root cause ("connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
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
