//! Listeners and lifecycle: serve an app on a bound listener (HTTP/1.1 and HTTP/2, request
//! heads bounded per `[limits]`, see `conn`), stop on SIGTERM/SIGINT by finishing in-flight
//! requests up to a hard deadline.

mod conn;

pub use conn::http_builder;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::LimitsConfig;

/// A server running on the current runtime.
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    /// Starts serving `app` on `listener`. It stops when `shutdown()` is called (or the
    /// handle is dropped), finishing in-flight requests for at most `grace`.
    pub fn spawn(
        listener: TcpListener,
        app: Router,
        grace: Duration,
        limits: &LimitsConfig,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = limits.clone();
        let task = tokio::spawn(async move {
            serve(
                listener,
                app,
                async move {
                    let _ = stopped.await;
                },
                grace,
                &limits,
            )
            .await
        });
        Ok(Self {
            addr,
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
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

/// Serves until `signal` resolves, then drains for at most `grace`.
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
