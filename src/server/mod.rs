//! Listeners and lifecycle: serve an app on a bound listener (HTTP/1.1 and HTTP/2, plain or
//! over TLS, request heads, bodies, idle time, writes and connection counts bounded per
//! `[limits]`), stop on SIGTERM/SIGINT by finishing in-flight requests up to a hard deadline.
//! Plain connections are `conn`; TLS termination is `https` (connections), `tls`
//! (certificates and their reload) and `client_auth` (client certificates); both apply the one `ConnectionPolicy`: the caps at accept
//! (`caps`), the watchdog (`activity`) and the per-request body timeout (`exchange`).
//! A server runs on the current runtime, or on each of the `workers` with a listener each.
//! Layers of the app that are one async function around the rest of it are `around`.

mod activity;
pub mod around;
mod caps;
mod client_auth;
mod conn;
mod exchange;
mod framing;
mod https;
pub mod tls;
pub mod workers;

pub use caps::ConnectionStats;

/// Asked about each request on a listener before the app sees it: an answer to send at once
/// (admission control's 503 under overload: a refusal that costs no routing), or `None` to
/// serve it.
pub type Gate = Arc<
    dyn Fn(&http::Request<hyper::body::Incoming>) -> Option<axum::response::Response> + Send + Sync,
>;

/// Serves plain HTTP until its signal resolves, then drains.
pub use conn::{http_builder, serve};

/// What a listener serves: one function from a request to its answer. A `Router` becomes
/// one (`App::from`); a service that picks the app per request (a config reload's
/// generations) is one itself, with no router around it that would cost every request a
/// routing step and a boxed future.
#[derive(Clone)]
pub struct App(Arc<dyn Fn(Request<Body>) -> BoxFuture<'static, Response> + Send + Sync>);

impl App {
    pub fn new(
        serve: impl Fn(Request<Body>) -> BoxFuture<'static, Response> + Send + Sync + 'static,
    ) -> Self {
        App(Arc::new(serve))
    }

    pub(crate) fn call(&self, request: Request<Body>) -> BoxFuture<'static, Response> {
        (self.0)(request)
    }
}

impl From<Router> for App {
    fn from(router: Router) -> Self {
        App::new(move |request| {
            let router = router.clone();
            Box::pin(async move {
                match tower::ServiceExt::oneshot(router, request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            })
        })
    }
}

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use futures_util::future::BoxFuture;
use http::Request;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use https::serve_tls;
use tls::Tls;

use crate::config::LimitsConfig;

/// A server running on the current runtime, or one listener per worker runtime.
pub struct RunningServer {
    addr: SocketAddr,
    tls: bool,
    stops: Vec<oneshot::Sender<Duration>>,
    tasks: Vec<JoinHandle<io::Result<()>>>,
}

/// What every listener of one server serves.
#[derive(Clone)]
pub struct Serving {
    pub app: App,
    pub tls: Option<Tls>,
    pub limits: LimitsConfig,
    pub stats: Arc<ConnectionStats>,
    pub gate: Option<Gate>,
}

impl Serving {
    /// Serves on `listener` until `stopped` says how long in-flight requests may finish.
    fn run(
        self,
        listener: TcpListener,
        stopped: oneshot::Receiver<Duration>,
    ) -> impl Future<Output = io::Result<()>> + Send + 'static {
        let signal = async move { stopped.await.unwrap_or(DROP_GRACE) };
        async move {
            let Serving {
                app,
                tls,
                limits,
                stats,
                gate,
            } = self;
            match tls {
                Some(tls) => serve_tls(listener, app, tls, signal, &limits, stats, gate).await,
                None => serve(listener, app, signal, &limits, stats, gate).await,
            }
        }
    }
}

impl RunningServer {
    /// Starts serving `app` on `listener`, over TLS when `tls` is given, counting its
    /// connections in `stats`, asking `gate` about each request first. It stops when
    /// `shutdown(grace)` is called, finishing in-flight requests for at most `grace`, or
    /// when the handle is dropped, finishing them for at most `DROP_GRACE`.
    pub fn spawn(
        listener: TcpListener,
        app: App,
        tls: Option<Tls>,
        limits: &LimitsConfig,
        stats: Arc<ConnectionStats>,
        gate: Option<Gate>,
    ) -> io::Result<Self> {
        let serving = Serving {
            tls,
            app,
            limits: limits.clone(),
            stats,
            gate,
        };
        Self::start(listener, serving)
    }

    /// `serving` on `listener`, on the current runtime.
    pub fn start(listener: TcpListener, serving: Serving) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let is_tls = serving.tls.is_some();
        let (stop, stopped) = oneshot::channel::<Duration>();
        let task = tokio::spawn(serving.run(listener, stopped));
        Ok(Self {
            addr,
            tls: is_tls,
            stops: vec![stop],
            tasks: vec![task],
        })
    }

    /// `serving` on each of `workers`, each accepting on a listener of its own bound to
    /// `addr` with `SO_REUSEPORT` (the kernel spreads connections over them): a connection
    /// lives on one worker thread, from accept to close.
    pub fn spawn_per_worker(
        addr: SocketAddr,
        serving: Serving,
        workers: &[tokio::runtime::Handle],
    ) -> io::Result<Self> {
        let mut bound = addr;
        let mut stops = Vec::with_capacity(workers.len());
        let mut tasks = Vec::with_capacity(workers.len());
        for (i, worker) in workers.iter().enumerate() {
            let listener = reuse_port_listener(bound)?;
            bound = listener.local_addr()?;
            let (stop, stopped) = oneshot::channel::<Duration>();
            let mut serving = serving.clone();
            if i > 0 {
                serving.tls = serving.tls.as_ref().map(Tls::follower);
            }
            let task = worker.spawn(async move {
                let listener = TcpListener::from_std(listener)?;
                serving.run(listener, stopped).await
            });
            stops.push(stop);
            tasks.push(task);
        }
        Ok(Self {
            addr: bound,
            tls: serving.tls.is_some(),
            stops,
            tasks,
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
        for stop in self.stops.drain(..) {
            let _ = stop.send(grace);
        }
        let mut result = Ok(());
        for task in &mut self.tasks {
            let done = task.await.unwrap_or_else(|e| Err(io::Error::other(e)));
            if result.is_ok() {
                result = done;
            }
        }
        result
    }
}

/// A listening socket on `addr` that others may bind too (`SO_REUSEPORT`), not yet tied to
/// a runtime.
fn reuse_port_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

/// How long in-flight requests may finish when a server is dropped without `shutdown`.
const DROP_GRACE: Duration = Duration::from_secs(10);

impl Drop for RunningServer {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
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
