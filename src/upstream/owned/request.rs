//! The request's side of an owned connection's HTTP/1.1: its head written straight from
//! the request's parts, and its body framed (by length, or chunked when its length is not
//! known) and written as it comes, while the answer is read: a backend that streams its
//! answer as the body arrives (an echo, an upload with progress) is not held up.

use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use http::{HeaderValue, Method, header, request};
use http_body::Body as _;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::conn::ExchangeError;

/// A request body is framed in pieces of about this size before they are written.
const WRITE_CHUNK: usize = 64 * 1024;

/// How a request's body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::upstream) enum Sending {
    /// This many bytes, announced by `content-length` (none at all for `0` on a method
    /// that carries no body).
    Length(u64),
    Chunked,
}

impl Sending {
    pub fn of(body: &Body) -> Self {
        if body.is_end_stream() {
            return Self::Length(0);
        }
        body.size_hint().exact().map_or(Self::Chunked, Self::Length)
    }
}

/// The request head: request line, `host` when the request names none, the headers, and
/// the body's framing (the request's own `content-length` and `transfer-encoding` are
/// replaced by the framing it is sent with).
pub(super) fn head(parts: &request::Parts, host: &HeaderValue, sending: Sending) -> Vec<u8> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = Vec::with_capacity(128 + parts.headers.len() * 48);
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    if !parts.headers.contains_key(header::HOST) {
        push_header(&mut head, b"host", host.as_bytes());
    }
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            push_header(&mut head, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    frame(&mut head, &parts.method, sending);
    head.extend_from_slice(b"\r\n");
    head
}

/// The header that frames a body sent as `sending` says: its length (none for an empty
/// body on a method that carries none), or chunked.
fn frame(head: &mut Vec<u8>, method: &Method, sending: Sending) {
    match sending {
        Sending::Length(0) if !carries_body(method) => {}
        Sending::Length(n) => {
            push_header(
                head,
                b"content-length",
                itoa::Buffer::new().format(n).as_bytes(),
            );
        }
        Sending::Chunked => push_header(head, b"transfer-encoding", b"chunked"),
    }
}

/// A request head written straight from its parts, without `http`'s request, URI and header
/// map (a buffered backend call's head; building those types and writing them out was 7% of
/// the mobile home's instructions). The caller has checked every part it passes: a path
/// and values without control characters, valid header names.
pub(in crate::upstream) struct HeadWriter(Vec<u8>);

impl HeadWriter {
    /// The request line of `method` on `prefix` + `path`, then `host`.
    pub fn new(method: &Method, prefix: &str, path: &str, host: &HeaderValue) -> Self {
        let mut head = Vec::with_capacity(320 + prefix.len() + path.len());
        head.extend_from_slice(method.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(prefix.as_bytes());
        head.extend_from_slice(path.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        push_header(&mut head, b"host", host.as_bytes());
        Self(head)
    }

    pub fn header(&mut self, name: &str, value: &[u8]) {
        push_header(&mut self.0, name.as_bytes(), value);
    }

    /// The head, ended with the framing of a body sent as `sending` says (as [`head`]
    /// frames it).
    pub fn framed(mut self, method: &Method, sending: Sending) -> Vec<u8> {
        frame(&mut self.0, method, sending);
        self.0.extend_from_slice(b"\r\n");
        self.0
    }
}

fn push_header(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    head.extend_from_slice(name);
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// Methods whose empty body is still announced (`content-length: 0`), as browsers and
/// hyper do.
fn carries_body(method: &Method) -> bool {
    *method == Method::POST || *method == Method::PUT || *method == Method::PATCH
}

/// A request on its way out: framed bytes not yet written, and the body still to frame.
pub(super) struct Upload {
    out: Vec<u8>,
    /// How much of `out` is written.
    at: usize,
    /// `None` once the body's end is framed.
    body: Option<Body>,
    sending: Sending,
    /// Body bytes framed so far.
    framed: u64,
}

impl Upload {
    /// `head` (from [`head`]), then `body` framed as `sending` says.
    pub fn new(head: Vec<u8>, body: Body, sending: Sending) -> Self {
        Self {
            out: head,
            at: 0,
            body: (sending != Sending::Length(0)).then_some(body),
            sending,
            framed: 0,
        }
    }

    /// Writes what is framed and frames more of the body: ready when all of the request is
    /// written, pending while the socket or the body has to wait.
    pub fn poll(
        &mut self,
        io: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ExchangeError>> {
        loop {
            while self.at < self.out.len() {
                let written = ready!(Pin::new(&mut *io).poll_write(cx, &self.out[self.at..]))
                    .map_err(|e| ExchangeError::broken("writing the request", &e))?;
                if written == 0 {
                    let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                    return Poll::Ready(Err(ExchangeError::broken("writing the request", &e)));
                }
                self.at += written;
            }
            self.out.clear();
            self.at = 0;
            if self.body.is_none() {
                return Poll::Ready(Ok(()));
            }
            // What the body has ready (up to a piece) goes out in one write.
            while self.out.len() < WRITE_CHUNK {
                let Some(body) = &mut self.body else { break };
                match Pin::new(body).poll_frame(cx) {
                    Poll::Pending if self.out.is_empty() => return Poll::Pending,
                    Poll::Pending => break,
                    Poll::Ready(None) => self.finish()?,
                    Poll::Ready(Some(Err(e))) => {
                        let detail = format!("the request's body failed: {e}");
                        return Poll::Ready(Err(ExchangeError::request_body(detail)));
                    }
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        // Trailers are not sent; empty frames say nothing.
                        Ok(data) if !data.is_empty() => self.frame(&data)?,
                        _ => {}
                    },
                }
            }
        }
    }

    fn frame(&mut self, data: &[u8]) -> Result<(), ExchangeError> {
        self.framed += data.len() as u64;
        match self.sending {
            Sending::Length(n) if self.framed > n => return Err(body_length(self.framed, n)),
            Sending::Length(_) => self.out.extend_from_slice(data),
            Sending::Chunked => {
                // The size line written in place, not through a formatted string.
                write!(self.out, "{:x}\r\n", data.len()).expect("a Vec takes every write");
                self.out.extend_from_slice(data);
                self.out.extend_from_slice(b"\r\n");
            }
        }
        Ok(())
    }

    /// The body has ended: its length checked, or the last chunk framed.
    fn finish(&mut self) -> Result<(), ExchangeError> {
        self.body = None;
        match self.sending {
            Sending::Length(n) if self.framed != n => Err(body_length(self.framed, n)),
            Sending::Length(_) => Ok(()),
            Sending::Chunked => {
                self.out.extend_from_slice(b"0\r\n\r\n");
                Ok(())
            }
        }
    }
}

fn body_length(sent: u64, declared: u64) -> ExchangeError {
    ExchangeError::request_body(format!(
        "the request's body is {sent} bytes, its length says {declared}"
    ))
}
