//! Serving connections with hyper directly (axum::serve cannot bound request heads): the
//! HTTP/1.1 + HTTP/2 builder configured from `[limits]` (head size, header count, header read
//! timeout, HTTP/2 streams), the policy every accepted connection gets (caps, watchdog,
//! request body timeout), the plain accept loop, and graceful shutdown of the open connections.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::activity::{Activity, Timeouts, WatchedIo, until_closed, watch};
use super::caps::{ConnectionCaps, ConnectionStats, Permit};
use super::exchange::{Exchange, ExchangeParts};
use super::framing::ScannedIo;
use super::{App, Gate};
use crate::config::LimitsConfig;
use crate::request::PeerCertificate;

/// hyper refuses read buffers smaller than this.
const MIN_BUF: usize = 8192;
/// The header count hyper allows when none is set. Set explicitly, even to this, hyper
/// fills a 100-entry array for every request head it parses (2% of a proxied request's
/// instructions); left unset, the array is never written before use.
const HYPER_MAX_HEADERS: usize = 100;

/// The connection builder every listener uses. hyper answers 431 when a request head does not
/// fit `max_uri + max_header_bytes` (plus room for the request line) or has more than
/// `max_headers` fields; the exact per-limit checks (414, 431) are in `edge::hygiene`. A head
/// that takes longer than `header_read_timeout` is the watchdog's (`server::activity`), not
/// hyper's: hyper's timer cost every request a timer of its own.
pub fn http_builder(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let head = limits
        .max_uri
        .bytes()
        .saturating_add(limits.max_header_bytes.bytes())
        // Request line, header separators, line ends.
        .saturating_add(4 * limits.max_headers as u64 + 64);
    let head = usize::try_from(head).unwrap_or(usize::MAX).max(MIN_BUF);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(head);
    if limits.max_headers != HYPER_MAX_HEADERS {
        builder.http1().max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(head).unwrap_or(u32::MAX));
    builder
}

/// What a listener applies to every connection it accepts: the caps at accept, the HTTP
/// builder, the watchdog's timeouts and the request body timeout.
pub(super) struct ConnectionPolicy {
    builder: auto::Builder<TokioExecutor>,
    caps: Arc<ConnectionCaps>,
    timeouts: Timeouts,
    body_read_timeout: Duration,
    gate: Option<Gate>,
}

impl ConnectionPolicy {
    pub fn new(
        limits: &LimitsConfig,
        stats: Arc<ConnectionStats>,
        gate: Option<Gate>,
    ) -> Arc<Self> {
        Arc::new(Self {
            gate,
            builder: http_builder(limits),
            caps: ConnectionCaps::new(limits, stats),
            timeouts: Timeouts::new(limits),
            body_read_timeout: limits.body_read_timeout,
        })
    }

    pub fn builder(&self) -> &auto::Builder<TokioExecutor> {
        &self.builder
    }

    /// A place for a connection from `peer`, or `None`: the caller drops the socket, which
    /// closes it before anything is read.
    pub fn admit(&self, peer: SocketAddr) -> Option<Permit> {
        self.caps
            .admit(peer.ip())
            .inspect_err(|refusal| tracing::debug!(%peer, ?refusal, "connection refused at accept"))
            .ok()
    }

    /// The hyper service of one connection (`client_cert`: the names of a verified client
    /// certificate, over TLS).
    pub fn service(
        &self,
        app: App,
        peer: SocketAddr,
        activity: &Arc<Activity>,
        client_cert: Option<Arc<PeerCertificate>>,
    ) -> Exchange {
        Exchange::new(ExchangeParts {
            app,
            peer,
            client_cert,
            activity: activity.clone(),
            body_read_timeout: self.body_read_timeout,
            stats: self.caps.stats().clone(),
            gate: self.gate.clone(),
        })
    }

    /// Runs `connection` until it ends, or until the watchdog closes it (then drops it:
    /// nothing is in flight, or the client is not reading anyway).
    pub async fn supervise<F: Future>(
        &self,
        peer: SocketAddr,
        activity: &Activity,
        connection: F,
    ) -> Option<F::Output> {
        match until_closed(connection, watch(activity, &self.timeouts)).await {
            Ok(done) => Some(done),
            Err(closed) => {
                closed.count(self.caps.stats());
                tracing::debug!(%peer, ?closed, "connection closed by its watchdog");
                None
            }
        }
    }
}

/// Accepts connections (asking `gate` about each request before the app) until `signal`
/// resolves to the grace period, then asks every open connection to finish (HTTP/1.1: close
/// after the current response; HTTP/2: GOAWAY), waits for them for at most that grace, and
/// closes the rest.
pub async fn serve(
    listener: TcpListener,
    app: App,
    signal: impl Future<Output = Duration> + Send + 'static,
    limits: &LimitsConfig,
    stats: Arc<ConnectionStats>,
    gate: Option<Gate>,
) -> io::Result<()> {
    let policy = ConnectionPolicy::new(limits, stats, gate);
    let connections = GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    let grace = loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            grace = &mut signal => break grace,
        };
        let Some(permit) = policy.admit(peer) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = WatchedIo::new(stream, activity.clone());
        let io = TokioIo::new(ScannedIo::new(io, activity.clone()));
        let service = policy.service(app.clone(), peer, &activity, None);
        let connection = policy
            .builder()
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let connection = connections.watch(connection);
        let policy = policy.clone();
        tokio::spawn(async move {
            if let Some(Err(e)) = policy.supervise(peer, &activity, connection).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    };
    drop(listener);
    tokio::select! {
        () = connections.shutdown() => Ok(()),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "shutdown grace period over; closing the remaining connections");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The status a server built by `http_builder(limits)` answers to a GET with `headers`
    /// extra header fields (its app answers 200 to anything it is given).
    async fn status_with(limits: &LimitsConfig, headers: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let builder = http_builder(limits);
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let app = hyper::service::service_fn(|_| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
            });
            let _ = builder.serve_connection(TokioIo::new(stream), app).await;
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let fields: String = (0..headers).map(|i| format!("x-h{i}: v\r\n")).collect();
        let head = format!("GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n{fields}\r\n");
        client.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        server.abort();
        String::from_utf8_lossy(&answer[..12.min(answer.len())]).into_owned()
    }

    #[tokio::test]
    async fn the_header_count_limit_holds_at_hypers_default_and_at_any_other() {
        let default = LimitsConfig::default();
        assert_eq!(default.max_headers, HYPER_MAX_HEADERS);
        assert_eq!(status_with(&default, 90).await, "HTTP/1.1 200");
        assert_eq!(status_with(&default, 120).await, "HTTP/1.1 431");
        let fewer = LimitsConfig {
            max_headers: 10,
            ..LimitsConfig::default()
        };
        assert_eq!(status_with(&fewer, 5).await, "HTTP/1.1 200");
        assert_eq!(status_with(&fewer, 12).await, "HTTP/1.1 431");
        let more = LimitsConfig {
            max_headers: 200,
            ..LimitsConfig::default()
        };
        assert_eq!(status_with(&more, 150).await, "HTTP/1.1 200");
    }
}
