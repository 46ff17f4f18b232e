//! The connection watchdog: what one connection has been doing (bytes read, a request head
//! under way, requests in flight, a write the client does not take) and the closes that
//! follow from it: a connection that never starts a request, takes too long over a head,
//! idles between requests, or does not read its answers. Heads are timed here rather than
//! by hyper's `header_read_timeout`, whose timer every request armed and dropped (~900
//! instructions and a timer-wheel entry of each proxied request): the head's start is noted
//! by `server::framing` from the bytes, without waking the watchdog, which for that looks
//! at least every `header_read` and so still closes a slow head at its deadline.
//! `WatchedIo` wraps the socket (under TLS, so handshake bytes count), `InFlight` marks a
//! request from its head to the end of its response, and `watch` resolves when a timeout
//! is over: the caller then drops the connection.
//!
//! When hyper closes a connection itself (after `Connection: close`), `WatchedIo` closes
//! lingering: it sends its FIN, then reads and discards what the client is still sending,
//! for at most `LINGER_TIME` and `LINGER_BYTES`, before the socket is closed. A socket closed
//! with unread bytes is reset, and a reset destroys an answer still on its way: a client
//! refused in the middle of sending a large body would never read its 413.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use super::caps::ConnectionStats;
use crate::config::LimitsConfig;

/// The watchdog's timeouts, from `[limits]`.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub first_byte: Duration,
    pub header_read: Duration,
    pub idle: Duration,
    pub write: Duration,
}

impl Timeouts {
    pub fn new(limits: &LimitsConfig) -> Self {
        Self {
            first_byte: limits.first_byte_timeout,
            header_read: limits.header_read_timeout,
            idle: limits.idle_timeout,
            write: limits.write_timeout,
        }
    }
}

/// Why the watchdog closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Nothing arrived within `first_byte_timeout` of the accept.
    FirstByte,
    /// A request head began but was not complete within `header_read_timeout`.
    HeaderRead,
    /// No request in flight and nothing read for `idle_timeout`.
    Idle,
    /// A write to the client made no progress for `write_timeout`.
    Write,
}

impl Closed {
    pub fn count(self, stats: &ConnectionStats) {
        ConnectionStats::inc(match self {
            Closed::FirstByte => &stats.closed_first_byte,
            Closed::HeaderRead => &stats.closed_header_read,
            Closed::Idle => &stats.closed_idle,
            Closed::Write => &stats.closed_write,
        });
    }
}

/// The most time a closing connection keeps reading what the client still sends.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// The most it reads (and discards) meanwhile.
const LINGER_BYTES: usize = 1024 * 1024;

/// Marks "not blocked" in `write_blocked_since`, and "no head under way" in `head_started`.
const NOT_BLOCKED: u64 = u64::MAX;

/// What one connection has been doing. Times are milliseconds since the accept.
#[derive(Debug)]
pub struct Activity {
    accepted: Instant,
    read_any: AtomicBool,
    /// The last byte read, or the end of the last response, whichever is later.
    last_active: AtomicU64,
    /// When the request head being read began, `NOT_BLOCKED` while none is.
    head_started: AtomicU64,
    in_flight: AtomicUsize,
    write_blocked_since: AtomicU64,
    /// Requests begun, and the first (counted from 0) whose head held a bare LF
    /// (`server::framing`), `u64::MAX` while there is none.
    requests: AtomicU64,
    flawed_head: AtomicU64,
    /// Wakes the watchdog when a write starts to block (its deadline moves closer).
    changed: Notify,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            accepted: Instant::now(),
            read_any: AtomicBool::new(false),
            last_active: AtomicU64::new(0),
            head_started: AtomicU64::new(NOT_BLOCKED),
            in_flight: AtomicUsize::new(0),
            write_blocked_since: AtomicU64::new(NOT_BLOCKED),
            requests: AtomicU64::new(0),
            flawed_head: AtomicU64::new(u64::MAX),
            changed: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(NOT_BLOCKED - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.accepted + Duration::from_millis(millis)
    }

    fn read(&self) {
        self.read_any.store(true, Ordering::Relaxed);
        self.last_active.store(self.now(), Ordering::Relaxed);
    }

    fn wrote(&self, progress: bool) {
        let blocked = self.write_blocked_since.load(Ordering::Relaxed);
        if progress && blocked != NOT_BLOCKED {
            self.write_blocked_since
                .store(NOT_BLOCKED, Ordering::Relaxed);
        } else if !progress && blocked == NOT_BLOCKED {
            self.write_blocked_since
                .store(self.now(), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// A request has arrived; it is in flight until the guard (moved into its response
    /// body) is dropped. Also says whether its head was flawed (see `flawed_head`).
    pub fn begin(self: &Arc<Self>) -> (InFlight, bool) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let index = self.requests.fetch_add(1, Ordering::Relaxed);
        let flawed = index >= self.flawed_head.load(Ordering::Relaxed);
        (InFlight(self.clone()), flawed)
    }

    /// Whether the bytes just read leave a request head under way (`server::framing` says,
    /// after each read). A head that arrives whole in one read is never timed.
    pub fn reading_head(&self, reading: bool) {
        let started = self.head_started.load(Ordering::Relaxed);
        if reading != (started != NOT_BLOCKED) {
            // `last_active` is this read's time: `WatchedIo`, below the scan, just noted it.
            let at = if reading {
                self.last_active.load(Ordering::Relaxed)
            } else {
                NOT_BLOCKED
            };
            self.head_started.store(at, Ordering::Relaxed);
        }
    }

    /// The connection's head number `head` (counted from 0) held a bare LF: that request,
    /// and any after it, is refused.
    pub fn flawed_head(&self, head: u64) {
        self.flawed_head.fetch_min(head, Ordering::Relaxed);
    }

    /// The timeout that is over at `now`, or when to look again.
    fn check(&self, now: Instant, t: &Timeouts) -> Result<Instant, Closed> {
        // A head starts without waking the watchdog: looking at least every `header_read`,
        // it sees a head within that time of its start, and closes it at its deadline.
        let mut next = (now + t.idle).min(now + t.header_read);
        let mut due = |at: Instant, closed: Closed| {
            if now >= at {
                return Err(closed);
            }
            next = next.min(at);
            Ok(())
        };
        let blocked = self.write_blocked_since.load(Ordering::Relaxed);
        if blocked != NOT_BLOCKED {
            due(self.at(blocked) + t.write, Closed::Write)?;
        }
        // A request in flight may take as long as its handler does: the request timeout
        // and the write timeout bound it, not these.
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            if self.read_any.load(Ordering::Relaxed) {
                let last = self.last_active.load(Ordering::Relaxed);
                due(self.at(last) + t.idle, Closed::Idle)?;
            } else {
                due(self.accepted + t.first_byte, Closed::FirstByte)?;
            }
            let head = self.head_started.load(Ordering::Relaxed);
            if head != NOT_BLOCKED {
                due(self.at(head) + t.header_read, Closed::HeaderRead)?;
            }
        }
        Ok(next)
    }
}

/// Resolves when one of the connection's timeouts is over.
pub async fn watch(activity: &Activity, timeouts: &Timeouts) -> Closed {
    loop {
        let next = match activity.check(Instant::now(), timeouts) {
            Ok(next) => next,
            Err(closed) => return closed,
        };
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = activity.changed.notified() => {}
        }
    }
}

/// `connection` until it ends, or `Err` with what `watchdog` (`watch`) closed it for. Unlike a
/// `select!`, which polls both each time the task wakes, the watchdog is polled only when its
/// own timer or notification woke the task: its `Sleep` and `Notified`, polled on each of the
/// connection's several wakes per request, were ~1,000 instructions of a proxied request.
pub async fn until_closed<F: Future>(
    connection: F,
    watchdog: impl Future<Output = Closed>,
) -> Result<F::Output, Closed> {
    let mut connection = pin!(connection);
    let mut watchdog = pin!(watchdog);
    // Set at first, so the first poll arms the watchdog's timer with its own waker.
    let woke = Arc::new(WatchdogWoke {
        fired: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    let waker = Waker::from(woke.clone());
    poll_fn(|cx| {
        // Registered before the flag is read: a wake in between is not lost.
        woke.task.register(cx.waker());
        if woke.fired.swap(false, Ordering::AcqRel)
            && let Poll::Ready(closed) = watchdog.as_mut().poll(&mut Context::from_waker(&waker))
        {
            return Poll::Ready(Err(closed));
        }
        connection.as_mut().poll(cx).map(Ok)
    })
    .await
}

/// The waker the watchdog runs with: it notes that the watchdog has something to look at,
/// then wakes the connection's task.
struct WatchdogWoke {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WatchdogWoke {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The idle time counts from the end of the last response, and so does the time of a
        // head that came in behind it (pipelined): until now the server was busy, not the
        // client slow.
        let now = self.0.now();
        self.0.last_active.store(now, Ordering::Relaxed);
        if self.0.head_started.load(Ordering::Relaxed) != NOT_BLOCKED {
            self.0.head_started.store(now, Ordering::Relaxed);
        }
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that reports reads and stalled writes to its connection's `Activity`.
pub struct WatchedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    /// Set once our FIN is sent: the lingering close's deadline and what it may still read.
    linger: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<T> WatchedIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            linger: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        poll_read_seen(&mut this.inner, cx, buf, |_| this.activity.read())
    }
}

/// `inner.poll_read` into `buf`, then `seen` with the bytes it read, when it read some: how
/// the socket wrappers that watch a connection's reads read.
pub(super) fn poll_read_seen<T: AsyncRead + Unpin>(
    inner: &mut T,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
    seen: impl FnOnce(&[u8]),
) -> Poll<io::Result<()>> {
    let before = buf.filled().len();
    let polled = Pin::new(inner).poll_read(cx, buf);
    let read = &buf.filled()[before..];
    if !read.is_empty() {
        seen(read);
    }
    polled
}

impl<T: AsyncRead + AsyncWrite + Unpin> WatchedIo<T> {
    fn noted<R>(&self, polled: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        self.activity.wrote(polled.is_ready());
        polled
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.noted(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.noted(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.noted(polled)
    }

    /// Our FIN, then the lingering close: done once the client's FIN arrives, its bytes or
    /// the time run out, or the socket fails.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            let deadline = Box::pin(tokio::time::sleep(LINGER_TIME));
            this.linger = Some((deadline, LINGER_BYTES));
        }
        let Some((deadline, left)) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 4096];
        loop {
            if *left == 0 || deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    *left = left.saturating_sub(buf.filled().len());
                }
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests;
