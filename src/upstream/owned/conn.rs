//! HTTP/1.1 on an owned connection, written and read by the request's own task: the
//! request written as `request` frames it while the answer's head and then its body are read
//! as `answer` parses and frames them. hyper's client dispatcher did this through a state
//! machine built for every feature of HTTP/1 (~13.5k instructions an exchange, about a fifth
//! of a proxied request); a gateway's calls need this much of it (~7k).
//!
//! What it does not do: upgrades (a `101` is a malformed answer here) and pipelining.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::answer::{self, Framing, MAX_HEAD, Step};
use super::head::{self, Head};
use super::request::Upload;
use crate::upstream::client::error_chain;

/// The first read's room; it doubles each time a read fills all of it, up to `MAX_READ`.
const FIRST_READ: usize = 8 * 1024;
const MAX_READ: usize = 128 * 1024;

/// One HTTP/1.1 connection and the bytes read from it that no exchange has used yet.
pub(super) struct Conn {
    io: TcpStream,
    buf: BytesMut,
    read_size: usize,
    /// False once the connection cannot carry another exchange (the backend said `close`,
    /// the body ran to the connection's end, or something went wrong).
    reusable: bool,
    /// The request still being written, and whether writing it failed.
    upload: Option<Upload>,
    upload_failed: bool,
    pub(super) idle_since: Instant,
}

/// Why an exchange broke.
#[derive(Debug)]
pub(crate) struct ExchangeError {
    kind: ErrorKind,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    /// The answer was not HTTP/1.1 this client reads.
    Malformed,
    /// The connection broke.
    Broken,
    /// The connection closed before a byte of the answer came: on a reused connection
    /// the backend may have closed it as the request went out.
    Unanswered,
    /// The request's own body failed (the client sending it went away, say).
    RequestBody,
}

impl ExchangeError {
    pub(super) fn malformed(detail: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Malformed,
            detail: detail.into(),
        }
    }

    pub(super) fn broken(what: &str, e: &io::Error) -> Self {
        Self {
            kind: ErrorKind::Broken,
            detail: format!("{what}: {e}"),
        }
    }

    /// The answer could not be read as HTTP.
    pub fn is_malformed(&self) -> bool {
        self.kind == ErrorKind::Malformed
    }

    /// An answer the connection's end cut short: the connection broke (as hyper classes
    /// an incomplete message), so the call may be tried again.
    fn cut_off(detail: &str) -> Self {
        Self {
            kind: ErrorKind::Broken,
            detail: detail.to_owned(),
        }
    }

    /// The request's own body failed (or was not the length it said).
    pub(super) fn request_body(detail: String) -> Self {
        Self {
            kind: ErrorKind::RequestBody,
            detail,
        }
    }

    fn unanswered(detail: String) -> Self {
        Self {
            kind: ErrorKind::Unanswered,
            detail,
        }
    }

    /// Nothing was answered before the connection closed.
    pub(super) fn is_unanswered(&self) -> bool {
        self.kind == ErrorKind::Unanswered
    }

    /// A body error of hyper's (a TLS upstream's pooled connections).
    pub fn from_hyper(e: &hyper::Error) -> Self {
        let kind = if e.is_parse() || e.is_parse_status() {
            ErrorKind::Malformed
        } else {
            ErrorKind::Broken
        };
        Self {
            kind,
            detail: error_chain(e),
        }
    }
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ExchangeError {}

impl Conn {
    pub fn new(io: TcpStream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            read_size: FIRST_READ,
            reusable: true,
            upload: None,
            upload_failed: false,
            idle_since: Instant::now(),
        }
    }

    /// Whether the connection can carry another exchange now: nothing is left over from
    /// the last, and the backend has neither closed it nor sent anything unasked.
    pub fn is_quiet(&mut self) -> bool {
        if !self.reusable || !self.buf.is_empty() {
            return false;
        }
        // No system call unless the I/O driver has seen the socket become readable.
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Whether the I/O driver has the socket marked readable (a quiet check would then
    /// make a system call).
    #[cfg(test)]
    pub fn is_marked_readable(&self) -> bool {
        use futures_util::FutureExt;
        let ready = self.io.ready(tokio::io::Interest::READABLE);
        ready.now_or_never().is_some()
    }

    /// How much the next read makes room for.
    #[cfg(test)]
    pub fn read_size(&self) -> usize {
        self.read_size
    }

    /// Whether the exchange ended cleanly: the answer read to its end and nothing more,
    /// all of the request written, and the backend keeping the connection open.
    pub fn is_reusable(&self) -> bool {
        self.reusable && self.buf.is_empty() && self.upload.is_none() && !self.upload_failed
    }

    /// Sends the request (`upload`) and reads the answer's head; 1xx answers are skipped.
    /// The request's body goes on being written while the answer is read
    /// ([`Conn::poll_upload`]); the answer's body is read with [`Conn::poll_body`].
    pub async fn exchange(
        &mut self,
        method: &Method,
        upload: Upload,
    ) -> Result<(Head, Framing), ExchangeError> {
        self.reusable = false; // until the answer says otherwise
        self.upload = Some(upload);
        let mut answered = false;
        let mut write_failed = None;
        poll_fn(|cx| {
            if let Poll::Ready(Err(e)) = self.poll_upload(cx) {
                if e.kind == ErrorKind::RequestBody {
                    return Poll::Ready(Err(e));
                }
                // A backend may answer (a 413, say) and close before it has read the body.
                write_failed = Some(e);
            }
            let head = ready!(self.poll_head(method, &mut answered, cx));
            Poll::Ready(match (head, write_failed.take()) {
                (head, None) => head,
                (Ok(head), Some(_)) => Ok(head),
                // One that closed an idle connection as the request went out answers nothing.
                (Err(read), Some(write)) if read.is_unanswered() => {
                    Err(ExchangeError::unanswered(write.detail))
                }
                (Err(_), Some(write)) => Err(write),
            })
        })
        .await
    }

    /// Writes more of the request: ready when all of it is written or writing failed (the
    /// connection is then not reused).
    pub fn poll_upload(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        let Some(upload) = &mut self.upload else {
            return Poll::Ready(Ok(()));
        };
        let written = ready!(upload.poll(&mut self.io, cx));
        self.upload = None;
        self.upload_failed |= written.is_err();
        Poll::Ready(written)
    }

    /// Reads up to the end of the answer's head; `answered` says whether any of it came.
    fn poll_head(
        &mut self,
        method: &Method,
        answered: &mut bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Head, Framing), ExchangeError>> {
        loop {
            if !self.buf.is_empty() {
                match head::parse_head(&mut self.buf)? {
                    Some(head) if head.status() == StatusCode::SWITCHING_PROTOCOLS => {
                        let e = ExchangeError::malformed("101: upgrades are not supported");
                        return Poll::Ready(Err(e));
                    }
                    Some(head) if head.status().is_informational() => continue,
                    Some(head) => {
                        let (framing, keep_alive) = head.framing(method)?;
                        self.reusable = keep_alive;
                        return Poll::Ready(Ok((head, framing)));
                    }
                    None if self.buf.len() > MAX_HEAD => {
                        let e = ExchangeError::malformed("the answer's head is over 64 KiB");
                        return Poll::Ready(Err(e));
                    }
                    None => {}
                }
            }
            let e = match ready!(self.poll_fill(cx)) {
                Ok(0) if !*answered => {
                    ExchangeError::unanswered("the connection closed before an answer".to_owned())
                }
                Ok(0) => ExchangeError::cut_off("the connection closed mid-head"),
                Ok(_) => {
                    *answered = true;
                    continue;
                }
                Err(e) => ExchangeError::broken("reading the answer", &e),
            };
            return Poll::Ready(Err(e));
        }
    }

    /// Reads more of the connection into the buffer: how many bytes came (0 at its end).
    /// Read through tokio's `AsyncRead`, which after a read that did not fill its room (the
    /// socket drained) forgets the socket's readiness: the next exchange's quiet check then
    /// makes no system call unless the backend sent or closed something since (`try_read`
    /// left it set, and every reused exchange began with a `recvfrom` answering `EAGAIN`).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.buf
        ))?;
        // Only a whole read's room filled says the answers are big: the tail of a buffer
        // most of which earlier answers used says nothing.
        if n == room && room >= self.read_size && self.read_size < MAX_READ {
            self.read_size *= 2;
        }
        Poll::Ready(Ok(n))
    }

    /// The next piece of the answer's body (`None` at its end), framed as `framing` says.
    pub fn poll_body(
        &mut self,
        framing: &mut Framing,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, ExchangeError>>> {
        loop {
            match *framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(left) => {
                    if let Some(data) = answer::take(&mut self.buf, left) {
                        let left = left - data.len() as u64;
                        *framing = if left == 0 {
                            Framing::Done
                        } else {
                            Framing::Length(left)
                        };
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Framing::Close => {
                    if let Some(data) = answer::take(&mut self.buf, u64::MAX) {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Framing::Chunked(chunk) => match answer::chunked(&mut self.buf, chunk) {
                    Err(e) => return Poll::Ready(Some(Err(e))),
                    Ok(Step::Data(data, next)) => {
                        *framing = next;
                        return Poll::Ready(Some(Ok(data)));
                    }
                    Ok(Step::Next(next)) => {
                        *framing = next;
                        continue;
                    }
                    Ok(Step::More) => {}
                },
            }
            // The buffer holds nothing more of the body: read.
            match ready!(self.poll_fill(cx)) {
                Ok(0) if *framing == Framing::Close => {
                    *framing = Framing::Done;
                    self.reusable = false;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return Poll::Ready(Some(Err(ExchangeError::cut_off(
                        "the connection closed before the body's end",
                    ))));
                }
                Ok(_) => {}
                Err(e) => {
                    return Poll::Ready(Some(Err(ExchangeError::broken("reading the body", &e))));
                }
            }
        }
    }
}
