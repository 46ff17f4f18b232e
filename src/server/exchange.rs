//! One request on an accepted connection, around the app: the listener's `Gate` asked first
//! (a request it refuses never reaches the app; its small body is read so the connection
//! stays usable), the peer address as `ConnectInfo` (and the client certificate's names, over
//! TLS), the request marked in flight until its response is sent (the watchdog leaves busy
//! connections alone), and `limits.body_read_timeout` on the request body. A body that has
//! not fully arrived by then is answered 408 (`REQUEST_TIMEOUT`) whatever the handler was
//! doing with it, and over HTTP/1.1 the connection is closed after the answer (over HTTP/2
//! the stream is reset; the connection's other streams go on).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Request, Version, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::activity::{Activity, InFlight};
use super::caps::ConnectionStats;
use super::{App, Gate};
use crate::error::{Code, Problem};
use crate::request::PeerCertificate;

/// What every request on one connection shares, behind one reference count: each request's
/// future holds a copy, and a copy of each part was a reference count per part (the app,
/// the gate, the connection counters: the same for every connection) written by both cores.
#[derive(Clone)]
pub struct Exchange(Arc<ExchangeParts>);

impl Exchange {
    pub fn new(parts: ExchangeParts) -> Self {
        Exchange(Arc::new(parts))
    }
}

impl std::ops::Deref for Exchange {
    type Target = ExchangeParts;

    fn deref(&self) -> &ExchangeParts {
        &self.0
    }
}

pub struct ExchangeParts {
    pub app: App,
    pub peer: SocketAddr,
    /// The names of the connection's verified client certificate, if it presented one.
    pub client_cert: Option<Arc<PeerCertificate>>,
    pub activity: Arc<Activity>,
    pub body_read_timeout: Duration,
    pub stats: Arc<ConnectionStats>,
    /// Asked before the app (see `Gate`).
    pub gate: Option<Gate>,
}

impl hyper::service::Service<Request<Incoming>> for Exchange {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let exchange = self.clone();
        Box::pin(async move { Ok(exchange.serve(request).await) })
    }
}

impl Exchange {
    /// Serves one request with `app`.
    async fn serve(self, request: Request<Incoming>) -> Response {
        let (in_flight, flawed) = self.activity.begin();
        let response = if flawed {
            ConnectionStats::inc(&self.stats.flawed_heads);
            tracing::debug!(peer = %self.peer, "request head with a bare LF refused");
            let detail = "a header line ends in a bare LF (without CR)";
            closing(Problem::new(Code::BadRequest, detail).into_response())
        } else if let Some(refused) = self.gate.as_ref().and_then(|gate| gate(&request)) {
            keep_alive_after(request, refused).await
        } else if request.body().is_end_stream() {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(self.peer));
            if let Some(cert) = &self.client_cert {
                request.extensions_mut().insert(cert.clone());
            }
            self.app.call(request).await
        } else {
            self.with_body(request).await
        };
        response.map(|body| {
            Body::new(Tracked {
                body,
                _in_flight: in_flight,
            })
        })
    }

    async fn with_body(self, request: Request<Incoming>) -> Response {
        let deadline = Instant::now() + self.body_read_timeout;
        let progress = Arc::new(BodyProgress::default());
        let http1 = request.version() < Version::HTTP_2;
        let mut request = request.map(|body| {
            Body::new(TimedBody {
                body,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                progress: progress.clone(),
            })
        });
        request.extensions_mut().insert(ConnectInfo(self.peer));
        if let Some(cert) = &self.client_cert {
            request.extensions_mut().insert(cert.clone());
        }
        // A handler that stops reading (or never starts) is not waited for either.
        let expired = async {
            tokio::time::sleep_until(deadline).await;
            if progress.complete.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        let answered = tokio::select! {
            response = self.app.call(request) => Some(response),
            () = expired => None,
        };
        match answered {
            // The handler saw the body fail; what it made of that is not the answer.
            Some(response) if !progress.expired.load(Ordering::Relaxed) => response,
            _ => {
                ConnectionStats::inc(&self.stats.body_timeouts);
                tracing::debug!(peer = %self.peer, timeout = ?self.body_read_timeout, "request body timed out");
                body_timed_out(self.body_read_timeout, http1)
            }
        }
    }
}

/// The most of a refused request's body read before the gate's answer, so the connection
/// stays usable for the client's next request; and the most time that may take (a refusal is
/// meant to be quick: a body that has not arrived by then costs the connection instead).
const GATE_DRAIN_BYTES: u64 = 64 * 1024;
const GATE_DRAIN_TIME: Duration = Duration::from_millis(50);

/// `refused`, after reading `request`'s body if it is small and arrives at once (hyper can
/// take the connection's next request only once the body is read); else with
/// `Connection: close`, so the client knows.
async fn keep_alive_after(request: Request<Incoming>, refused: Response) -> Response {
    let mut body = request.into_body();
    if body.is_end_stream() {
        return refused;
    }
    if body
        .size_hint()
        .upper()
        .is_none_or(|len| len > GATE_DRAIN_BYTES)
    {
        return closing(refused);
    }
    let drained = tokio::time::timeout(GATE_DRAIN_TIME, async {
        while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
            frame.ok()?;
        }
        Some(())
    });
    match drained.await {
        Ok(Some(())) => refused,
        _ => closing(refused),
    }
}

fn body_timed_out(timeout: Duration, http1: bool) -> Response {
    let detail = format!(
        "the request body did not arrive within {}",
        humantime::format_duration(timeout)
    );
    let response = Problem::new(Code::RequestTimeout, detail).into_response();
    if http1 { closing(response) } else { response }
}

/// `response` with `Connection: close`: hyper closes an HTTP/1.1 connection after it.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[derive(Debug, Default)]
struct BodyProgress {
    complete: AtomicBool,
    expired: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

/// A request body that fails once its deadline passes before its end.
struct TimedBody {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    progress: Arc<BodyProgress>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() || this.body.is_end_stream() {
                    this.progress.complete.store(true, Ordering::Relaxed);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => {
                this.progress.expired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyTimedOut.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that keeps its request in flight until it is sent (or dropped).
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
