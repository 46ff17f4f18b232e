//! Serving over TLS: accept TCP, complete the handshake (bounded by `tls.handshake_timeout`),
//! then serve HTTP/1.1 or HTTP/2 (ALPN `h2`) on the connection with hyper-util, with the
//! peer address as `ConnectInfo<SocketAddr>` like the plain listener. On the stop signal it
//! stops accepting, asks every connection to finish gracefully, and aborts what is still
//! running when the grace period is over. Certificates and their reload are `server::tls`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::tls::Tls;
use crate::config::LimitsConfig;

/// Serves `app` over TLS until `signal` resolves to the grace period, then drains for at
/// most that long.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Tls,
    signal: impl Future<Output = Duration> + Send + 'static,
    limits: &LimitsConfig,
) -> io::Result<()> {
    let reload = AbortOnDrop(tokio::spawn(tls.reload_task()));
    let builder = Arc::new(super::http_builder(limits));
    let graceful = GracefulShutdown::new();
    // Tells handshakes still in progress to give up once the listener stops.
    let (stopping, stopping_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut signal = std::pin::pin!(signal);
    let grace = loop {
        tokio::select! {
            grace = &mut signal => break grace,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(serve_connection(Connection {
                        tcp,
                        peer,
                        acceptor: tls.acceptor().clone(),
                        handshake_timeout: tls.handshake_timeout(),
                        app: app.clone(),
                        builder: builder.clone(),
                        // Taken now, not after the handshake, so a shutdown that starts
                        // meanwhile still reaches this connection.
                        watcher: graceful.watcher(),
                        stopping: stopping_rx.clone(),
                    }));
                }
                Err(e) => accept_failed(e).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };
    drop(listener);
    drop(reload);
    let _ = stopping.send(true);
    let drained = async {
        tokio::join!(graceful.shutdown(), async {
            while connections.join_next().await.is_some() {}
        });
    };
    // The hard deadline: counted from the signal, whatever clients are still doing.
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            ?grace,
            "shutdown grace period over; closing the remaining connections"
        );
    }
    // Dropping the set aborts the connections still open.
    Ok(())
}

struct Connection {
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    stopping: watch::Receiver<bool>,
}

async fn serve_connection(c: Connection) {
    let Connection {
        tcp,
        peer,
        acceptor,
        handshake_timeout,
        app,
        builder,
        watcher,
        mut stopping,
    } = c;
    let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, ?handshake_timeout, "TLS handshake timed out");
                return;
            }
        },
        _ = stopping.wait_for(|stopping| *stopping) => return,
    };
    let service = app.map_request(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let service = TowerToHyperService::new(service);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Per-connection errors (the peer gave up before `accept`) are not the listener's problem;
/// anything else (e.g. out of file descriptors) gets a pause instead of a hot loop.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Aborts the background task when the listener stops, however it stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
