//! Listeners and lifecycle: serve an app on a bound listener (HTTP/1.1 and HTTP/2, plain or
//! over TLS, request heads, bodies, idle time, writes and connection counts bounded per
//! `[limits]`), stop on SIGTERM/SIGINT by finishing in-flight requests up to a hard deadline.
//! Plain connections are `conn`; TLS termination is `https` (connections), `tls`
//! (certificates and their reload) and `client_auth` (client certificates); both apply the one `ConnectionPolicy`: the caps at accept
//! (`caps`), the watchdog (`activity`) and the per-request body timeout (`exchange`).

mod activity;
mod caps;
mod client_auth;
mod conn;
mod exchange;
mod framing;
mod https;
pub mod tls;

pub use caps::ConnectionStats;

/// Asked about each request on a listener before the app sees it: an answer to send at once
/// (admission control's 503 under overload: a refusal that costs no routing), or `None` to
/// serve it.
pub type Gate = Arc<
    dyn Fn(&http::Request<hyper::body::Incoming>) -> Option<axum::response::Response> + Send + Sync,
>;

/// Serves plain HTTP until its signal resolves, then drains.
pub use conn::{http_builder, serve};

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
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
    stop: Option<oneshot::Sender<Duration>>,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    /// Starts serving `app` on `listener`, over TLS when `tls` is given, counting its
    /// connections in `stats`, asking `gate` about each request first. It stops when
    /// `shutdown(grace)` is called, finishing in-flight requests for at most `grace`, or
    /// when the handle is dropped, finishing them for at most `DROP_GRACE`.
    pub fn spawn(
        listener: TcpListener,
        app: Router,
        tls: Option<Tls>,
        limits: &LimitsConfig,
        stats: Arc<ConnectionStats>,
        gate: Option<Gate>,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<Duration>();
        let signal = async move { stopped.await.unwrap_or(DROP_GRACE) };
        let is_tls = tls.is_some();
        let limits = limits.clone();
        let task = match tls {
            Some(tls) => tokio::spawn(async move {
                serve_tls(listener, app, tls, signal, &limits, stats, gate).await
            }),
            None => {
                tokio::spawn(
                    async move { serve(listener, app, signal, &limits, stats, gate).await },
                )
            }
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

    /// Stops accepting, lets in-flight requests finish for at most `grace` (then cuts them
    /// off), and waits.
    pub async fn shutdown(mut self, grace: Duration) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(grace);
        }
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}

/// How long in-flight requests may finish when a server is dropped without `shutdown`.
const DROP_GRACE: Duration = Duration::from_secs(10);

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(DROP_GRACE);
        }
    }
}

/// Resolves at each SIGHUP (ask for a config reload); never on platforms without it.
pub struct HangupSignal {
    #[cfg(unix)]
    inner: Option<tokio::signal::unix::Signal>,
}

impl HangupSignal {
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let inner = signal(SignalKind::hangup())
                .inspect_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP"))
                .ok();
            Self { inner }
        }
        #[cfg(not(unix))]
        Self {}
    }

    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.inner
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }
}

impl Default for HangupSignal {
    fn default() -> Self {
        Self::new()
    }
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    TerminationSignal::new().wait().await;
}

/// SIGTERM or Ctrl-C, listened for from `new` on: made before the listener serves, a
/// SIGTERM that comes the moment the instance is ready (an orchestrator that changed its
/// mind) drains it instead of killing it.
pub struct TerminationSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl TerminationSignal {
    pub fn new() -> Self {
        Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    pub async fn wait(mut self) {
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl Default for TerminationSignal {
    fn default() -> Self {
        Self::new()
    }
}
