//! Serving connections with hyper directly (axum::serve cannot bound request heads): the
//! HTTP/1.1 + HTTP/2 builder configured from `[limits]` (head size, header count, header read
//! timeout), the accept loop, and graceful shutdown of the open connections.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::config::LimitsConfig;

/// hyper refuses read buffers smaller than this.
const MIN_BUF: usize = 8192;

/// The connection builder every listener uses. hyper answers 431 when a request head does not
/// fit `max_uri + max_header_bytes` (plus room for the request line) or has more than
/// `max_headers` fields, and closes connections whose head takes longer than
/// `header_read_timeout`; the exact per-limit checks (414, 431) are in `edge::hygiene`.
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
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(head)
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(head).unwrap_or(u32::MAX));
    builder
}

/// Accepts connections until `signal` resolves to the grace period, then asks every open
/// connection to finish (HTTP/1.1: close after the current response; HTTP/2: GOAWAY), waits
/// for them for at most that grace, and closes the rest.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    signal: impl Future<Output = Duration> + Send + 'static,
    limits: &LimitsConfig,
) -> io::Result<()> {
    let builder = http_builder(limits);
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
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
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
