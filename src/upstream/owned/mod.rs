//! Plain HTTP/1.1 backend connections owned by the request that uses them (Pingora's shape).
//!
//! hyper-util's pooled client runs every connection in a task of its own and hands each
//! request to it over a channel, and each response back: two task wake-ups per exchange,
//! on another worker thread as often as not. Here the request's task takes a connection
//! from its thread's idle list, writes the request and reads the answer's head itself (in
//! HTTP/1.1 of its own: `request`, `answer`, `conn`), and the response body ([`Leased`])
//! reads the rest until the body ends, when the connection goes back to the idle list of the
//! thread the task is on. Nothing is spawned and nothing crosses tasks.
//! A task often ends its exchange on another thread than it began on (the backend's answer
//! wakes it where the I/O driver ran), so a thread whose own list is empty takes another
//! thread's idle connection before it opens one: else one list fills while another thread
//! keeps connecting, and the full one closes what it is given (measured: 63 connections
//! open after 1,000 calls in turn, 3,600 closed in 230,000 calls of 64 clients). Only on a
//! multi-thread runtime, where every thread's connections are on the one I/O driver: under
//! thread-per-core, a worker's connections answer to its own runtime alone.
//!
//! An idle connection is not watched: one the backend closed is found when it is next
//! taken (the I/O driver has seen it readable) and the request goes to the next idle
//! connection or a new one. One the backend closed as the request went out answers nothing:
//! a request without a body and with an idempotent method is sent again on the next (as
//! Go's and hyper's clients do); any other fails. A connection whose body was not read to
//! its end (a dropped or failed exchange) is closed, never reused.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Method, Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use thread_local::ThreadLocal;
use tokio::net::TcpStream;
use tokio::time::Instant;

use answer::Framing;
use conn::Conn;
pub(crate) use conn::ExchangeError;
pub(crate) use head::Head;
use request::Upload;
pub(super) use request::{HeadWriter, Sending};

mod answer;
mod conn;
mod head;
mod request;

/// How long a connection may sit idle before it is closed instead of reused (the backend's
/// own keep-alive timeout is usually shorter; one it closed is found on reuse anyway).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One upstream's plain connections: an idle list per thread and instance. A thread's lists
/// are behind a lock only so that another thread can take from them when its own are empty
/// (uncontended otherwise).
pub(super) struct Pools {
    connect_timeout: Duration,
    max_idle: usize,
    threads: ThreadLocal<Mutex<Vec<Idle>>>,
}

/// One instance's idle connections on one thread, most recently used last. Boxed: a
/// connection is moved from list to call to body and back on every exchange (~200 bytes
/// copied each time, three times a call, inline).
struct Idle {
    authority: Authority,
    host: HeaderValue,
    conns: VecDeque<Box<Conn>>,
}

impl Idle {
    /// This thread's entry for `authority`, made on first use (with its `Host` header).
    fn of<'a>(idle: &'a mut Vec<Idle>, authority: &Authority) -> &'a mut Idle {
        // The bytes, not `Authority`'s case-blind comparison (~250 instructions a lookup):
        // every caller's authority comes from the same parsed instance address.
        match idle
            .iter()
            .position(|i| i.authority.as_str() == authority.as_str())
        {
            Some(at) => &mut idle[at],
            None => {
                let host = HeaderValue::from_str(authority.as_str())
                    .unwrap_or(HeaderValue::from_static("localhost"));
                idle.push(Idle {
                    authority: authority.clone(),
                    host,
                    conns: VecDeque::new(),
                });
                idle.last_mut().expect("just pushed")
            }
        }
    }

    /// The most recently used connection; older ones past the idle timeout are closed on
    /// the way.
    fn pop(&mut self) -> Option<Box<Conn>> {
        let now = Instant::now();
        while let Some(conn) = self.conns.pop_back() {
            if now.duration_since(conn.idle_since) < IDLE_TIMEOUT {
                return Some(conn);
            }
        }
        None
    }
}

/// Why an exchange failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// No connection could be made; nothing was sent.
    Connect(String),
    /// The connection broke or the answer was not HTTP.
    Exchange(ExchangeError),
}

impl Pools {
    pub fn new(connect_timeout: Duration, max_idle: usize) -> Self {
        Self {
            connect_timeout,
            max_idle,
            threads: ThreadLocal::new(),
        }
    }

    /// Sends `request` (its URI absolute) and waits for the response head. The body it
    /// returns reads the rest of the answer and gives the connection back at its end.
    pub async fn send(
        self: &Arc<Self>,
        request: Request<Body>,
    ) -> Result<Response<Leased>, Failure> {
        let (parts, body) = request.into_parts();
        let authority = parts
            .uri
            .authority()
            .ok_or_else(|| Failure::Connect("the URI has no host".to_owned()))?;
        let head = |host: &HeaderValue, sending| request::head(&parts, host, sending);
        let (head, body) = self
            .send_written(authority, &parts.method, head, body)
            .await?;
        Ok(head.into_response(body))
    }

    /// Sends the request whose head `head` writes (given the instance's `Host` value and
    /// how `body` is sent, which it frames) to `authority`, and waits for the answer's
    /// head: as read (a header map is built from it only if asked), with the body that reads
    /// the rest. `head` is called again only for a request sent again.
    pub async fn send_written(
        self: &Arc<Self>,
        authority: &Authority,
        method: &Method,
        mut head: impl FnMut(&HeaderValue, Sending) -> Vec<u8>,
        mut body: Body,
    ) -> Result<(Head, Leased), Failure> {
        let (host, mut idle) = self.checkout(authority);
        let sending = Sending::of(&body);
        let replayable = sending == Sending::Length(0) && method.is_idempotent();
        loop {
            let (mut conn, reused) = match idle.take().or_else(|| self.take(authority)) {
                Some(conn) => (conn, true),
                None => (self.connect(authority).await?, false),
            };
            // Closed by the backend while idle, or sent something unasked.
            if reused && !conn.is_quiet() {
                continue;
            }
            let upload = Upload::new(head(&host, sending), body, sending);
            match conn.exchange(method, upload).await {
                Ok((answer, framing)) => {
                    let leased = Leased::owned(conn, framing, Arc::clone(self), authority.clone());
                    return Ok((answer, leased));
                }
                // Closed as the request went out, unanswered: safe to send again, on the next.
                Err(e) if reused && replayable && e.is_unanswered() => body = Body::empty(),
                Err(e) => return Err(Failure::Exchange(e)),
            }
        }
    }

    /// The head [`Self::send`] writes for `request` to an instance whose `Host` is `host`.
    #[cfg(test)]
    pub fn head_of(request: &Request<Body>, host: &HeaderValue) -> Vec<u8> {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = request.method().clone();
        parts.uri = request.uri().clone();
        parts.headers = request.headers().clone();
        request::head(&parts, host, Sending::of(request.body()))
    }

    /// This thread's idle lists.
    fn local(&self) -> MutexGuard<'_, Vec<Idle>> {
        lock(self.threads.get_or_default())
    }

    /// The `Host` header for `authority` and the most recently used idle connection to it
    /// on this thread, else on another.
    fn checkout(&self, authority: &Authority) -> (HeaderValue, Option<Box<Conn>>) {
        let (host, conn) = {
            let mut idle = self.local();
            let entry = Idle::of(&mut idle, authority);
            (entry.host.clone(), entry.pop())
        };
        (host, conn.or_else(|| self.steal(authority)))
    }

    /// The next idle connection to `authority` (after a stale one): this thread's, else
    /// another's.
    fn take(&self, authority: &Authority) -> Option<Box<Conn>> {
        let conn = Idle::of(&mut self.local(), authority).pop();
        conn.or_else(|| self.steal(authority))
    }

    /// An idle connection to `authority` from another thread's list, on a multi-thread
    /// runtime.
    fn steal(&self, authority: &Authority) -> Option<Box<Conn>> {
        let shared = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if !shared {
            return None;
        }
        let mine = self.threads.get_or_default();
        self.threads
            .iter()
            .filter(|other| !std::ptr::eq(*other, mine))
            .find_map(|other| {
                lock(other)
                    .iter_mut()
                    .find(|i| i.authority.as_str() == authority.as_str())?
                    .pop()
            })
    }

    /// Puts a connection whose exchange ended back on the idle list of the thread the task
    /// is on now, or closes it when the list is full.
    fn give_back(&self, authority: &Authority, mut conn: Box<Conn>) {
        if !conn.is_reusable() {
            return;
        }
        let mut idle = self.local();
        let entry = Idle::of(&mut idle, authority);
        if entry.conns.len() >= self.max_idle {
            return;
        }
        conn.idle_since = Instant::now();
        // The oldest goes when it has idled too long: a quiet spell after a burst does not
        // keep the burst's connections open.
        if entry
            .conns
            .front()
            .is_some_and(|c| c.idle_since + IDLE_TIMEOUT < conn.idle_since)
        {
            entry.conns.pop_front();
        }
        entry.conns.push_back(conn);
    }

    async fn connect(&self, authority: &Authority) -> Result<Box<Conn>, Failure> {
        let port = authority.port_u16().unwrap_or(80);
        // An IPv6 literal comes bracketed (`[::1]`); the socket address wants it bare.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| Failure::Connect(format!("connect to {authority} timed out")))?
            .map_err(|e| Failure::Connect(format!("connect to {authority}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| Failure::Connect(format!("connect to {authority}: {e}")))?;
        Ok(Box::new(Conn::new(stream)))
    }
}

/// A thread's idle lists, locked (a panic while they were held left nothing half-changed
/// that matters: at worst a connection is lost).
fn lock(lists: &Mutex<Vec<Idle>>) -> MutexGuard<'_, Vec<Idle>> {
    lists.lock().unwrap_or_else(|e| e.into_inner())
}

/// A response body: the rest of an owned connection's answer, the connection given back
/// to its thread's idle list when the body has been read to its end (dropped before that,
/// the connection closes); or the body of a connection nobody owns (hyper-util's pooled
/// client, for TLS).
pub(crate) struct Leased(Source);

enum Source {
    Owned {
        /// `None` once given back or failed.
        conn: Option<Box<Conn>>,
        framing: Framing,
        pools: Arc<Pools>,
        authority: Authority,
    },
    Pooled(Incoming),
}

impl Leased {
    fn owned(conn: Box<Conn>, framing: Framing, pools: Arc<Pools>, authority: Authority) -> Self {
        let mut leased = Self(Source::Owned {
            conn: Some(conn),
            framing,
            pools,
            authority,
        });
        // A body that is already complete (no content, a HEAD) may never be polled.
        if framing == Framing::Done {
            leased.give_back();
        }
        leased
    }

    pub(super) fn pooled(body: Incoming) -> Self {
        Self(Source::Pooled(body))
    }

    fn give_back(&mut self) {
        if let Source::Owned {
            conn,
            pools,
            authority,
            ..
        } = &mut self.0
            && let Some(conn) = conn.take()
        {
            pools.give_back(authority, conn);
        }
    }
}

impl http_body::Body for Leased {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = self.get_mut();
        let (conn, framing) = match &mut this.0 {
            Source::Pooled(body) => {
                return Pin::new(body)
                    .poll_frame(cx)
                    .map_err(|e| ExchangeError::from_hyper(&e));
            }
            Source::Owned { conn, framing, .. } => (conn, framing),
        };
        let Some(open) = conn else {
            return Poll::Ready(None);
        };
        // The request may still be going out (an upload the backend echoes as it reads);
        // a failed write only keeps the connection from being reused.
        let _ = open.poll_upload(cx);
        let piece = std::task::ready!(open.poll_body(framing, cx));
        match &piece {
            Some(Err(_)) => *conn = None,
            None => this.give_back(),
            Some(Ok(_)) if *framing == Framing::Done => this.give_back(),
            Some(Ok(_)) => {}
        }
        Poll::Ready(piece.map(|p| p.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Source::Pooled(body) => body.is_end_stream(),
            Source::Owned { framing, .. } => *framing == Framing::Done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Source::Pooled(body) => body.size_hint(),
            Source::Owned { framing, .. } => match framing {
                Framing::Done => SizeHint::with_exact(0),
                Framing::Length(left) => SizeHint::with_exact(*left),
                _ => SizeHint::default(),
            },
        }
    }
}

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod tests;
