//! Listeners and lifecycle: serve an app on a bound listener (HTTP/1.1 and HTTP/2, plain or
//! over TLS, request heads bounded per `[limits]`), stop on SIGTERM/SIGINT by finishing
//! in-flight requests up to a hard deadline. Plain connections are `conn`; TLS termination is
//! `https` (connections) and `tls` (certificates and their reload); both use the one
//! `http_builder`.

mod conn;
mod https;
pub mod tls;

pub use conn::http_builder;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use https::serve_tls;
use tls::Tls;

use crate::config::LimitsConfig;

/// A server running on the current runtime.
pub struct RunningServer {
    addr: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    /// Starts serving `app` on `listener`, over TLS when `tls` is given. It stops when
    /// `shutdown()` is called (or the handle is dropped), finishing in-flight requests for at
    /// most `grace`.
    pub fn spawn(
        listener: TcpListener,
        app: Router,
        tls: Option<Tls>,
        grace: Duration,
        limits: &LimitsConfig,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = async move {
            let _ = stopped.await;
        };
        let is_tls = tls.is_some();
        let limits = limits.clone();
        let task = match tls {
            Some(tls) => {
                tokio::spawn(
                    async move { serve_tls(listener, app, tls, signal, grace, &limits).await },
                )
            }
            None => tokio::spawn(async move { serve(listener, app, signal, grace, &limits).await }),
        };
        Ok(Self {
            addr,
            tls: is_tls,
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https` when the listener terminates TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace period), and waits.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves plain HTTP until `signal` resolves, then drains for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    signal: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: &LimitsConfig,
) -> io::Result<()> {
    conn::serve(listener, app, signal, grace, limits).await
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
