//! Serving over TLS: accept TCP, complete the handshake (bounded by `tls.handshake_timeout`),
//! then serve HTTP/1.1 or HTTP/2 (ALPN `h2`) on the connection with hyper-util, under the
//! same `ConnectionPolicy` (caps, watchdog, body timeout) as the plain listener; a verified
//! client certificate's names go with every request on the connection. On the stop signal it
//! stops accepting, asks every connection to finish gracefully, and aborts what is still
//! running when the grace period is over. Certificates and their reload are `server::tls`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::App;
use super::activity::{Activity, WatchedIo};
use super::caps::{ConnectionStats, Permit};
use super::client_auth::peer_certificate;
use super::conn::ConnectionPolicy;
use super::framing::ScannedIo;
use super::tls::Tls;
use crate::config::LimitsConfig;

/// Serves `app` over TLS until `signal` resolves to the grace period, then drains for at
/// most that long.
pub async fn serve_tls(
    listener: TcpListener,
    app: App,
    tls: Tls,
    signal: impl Future<Output = Duration> + Send + 'static,
    limits: &LimitsConfig,
    stats: Arc<ConnectionStats>,
    gate: Option<super::Gate>,
) -> io::Result<()> {
    let reload = tls
        .reloads
        .then(|| AbortOnDrop(tokio::spawn(tls.reload_task())));
    let policy = ConnectionPolicy::new(limits, stats, gate);
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
                    // Over a cap: dropped before the handshake.
                    let Some(permit) = policy.admit(peer) else { continue };
                    connections.spawn(serve_connection(Connection {
                        tcp,
                        peer,
                        permit,
                        acceptor: tls.acceptor().clone(),
                        handshake_timeout: tls.handshake_timeout(),
                        app: app.clone(),
                        policy: policy.clone(),
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
    permit: Permit,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    app: App,
    policy: Arc<ConnectionPolicy>,
    watcher: Watcher,
    stopping: watch::Receiver<bool>,
}

/// The handshake and the HTTP that follows, under the connection's watchdog (handshake
/// bytes are its first bytes).
async fn serve_connection(c: Connection) {
    let activity = Activity::new();
    let (policy, peer) = (c.policy.clone(), c.peer);
    policy
        .supervise(peer, &activity, handshake_and_serve(c, &activity))
        .await;
}

async fn handshake_and_serve(c: Connection, activity: &Arc<Activity>) {
    let Connection {
        tcp,
        peer,
        permit,
        acceptor,
        handshake_timeout,
        app,
        policy,
        watcher,
        mut stopping,
    } = c;
    let tcp = WatchedIo::new(tcp, activity.clone());
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
    // The names of the partner's certificate, read once for every request on the connection.
    let client_cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(<[_]>::first)
        .and_then(peer_certificate)
        .map(Arc::new);
    let service = policy.service(app, peer, activity, client_cert);
    let connection = policy.builder().serve_connection_with_upgrades(
        TokioIo::new(ScannedIo::new(stream, activity.clone())),
        service,
    );
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
    drop(permit);
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
