//! The HTTP/1.1 request heads as the connection's bytes show them. httparse ends a header
//! line at a bare LF (RFC 9112 §2.2 lets a recipient do that), so `a: 1<LF>b: 2` reaches the
//! app as two fields indistinguishable from two honest ones, while a proxy in front of or
//! behind the gateway may read one. Only the bytes show it: `HeadScan` follows the framing of
//! the requests on a connection (head, then a `Content-Length` or chunked body, then the next
//! head) and notes the first head that holds a bare LF; `Exchange` refuses that request with
//! 400 and closes. Bodies are counted, not searched, so a bare LF in a body is nobody's
//! business.
//!
//! The scan is advisory: it follows the framing hyper will follow (the edge refuses any
//! other `Transfer-Encoding` than `chunked` and doubled lengths), and where the bytes stop
//! making sense as HTTP/1.1 (an HTTP/2 preface, a malformed chunk size, an upgraded
//! connection's frames) it stops looking, leaving those to hyper.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::activity::{Activity, poll_read_seen};

/// The longest line prefix kept to read a framing field (`Content-Length: <digits>`,
/// `Transfer-Encoding: chunked`) or a chunk size; longer lines are only scanned.
const LINE_KEPT: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Inside a head; `started` once its request line began.
    Head { started: bool },
    /// `remaining` bytes of a `Content-Length` body.
    Body { remaining: u64 },
    /// A chunk-size line (with extensions).
    ChunkSize,
    /// `remaining` bytes of chunk data, then its CRLF (`crlf` bytes of it still to come).
    ChunkData { remaining: u64, crlf: u8 },
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    /// Not HTTP/1.1 framing any more: nothing is looked at.
    Off,
}

/// Framing fields found in the current head.
#[derive(Clone, Copy, Debug, Default)]
struct Framing {
    content_length: Option<u64>,
    chunked: bool,
}

/// Follows the request framing of one HTTP/1.1 connection's bytes.
#[derive(Debug)]
pub struct HeadScan {
    state: State,
    /// Heads completed before the current one.
    head: u64,
    framing: Framing,
    /// The current line's first bytes (`LINE_KEPT` at most) and whether it was cut.
    line: [u8; LINE_KEPT],
    line_len: usize,
    line_cut: bool,
    /// The previous byte was a CR.
    after_cr: bool,
    /// The first head (by number) with a bare LF.
    flawed: Option<u64>,
    /// Some byte of the current head (an empty line before it included) has arrived.
    head_seen: bool,
}

impl Default for HeadScan {
    fn default() -> Self {
        Self {
            state: State::Head { started: false },
            head: 0,
            framing: Framing::default(),
            line: [0; LINE_KEPT],
            line_len: 0,
            line_cut: false,
            after_cr: false,
            flawed: None,
            head_seen: false,
        }
    }
}

impl HeadScan {
    /// The first head, counted from 0 in arrival order, that held a bare LF.
    pub fn flawed(&self) -> Option<u64> {
        self.flawed
    }

    /// Whether a head has begun and not ended: what the watchdog times (`Activity`).
    pub fn reading_head(&self) -> bool {
        self.head_seen && matches!(self.state, State::Head { .. })
    }

    /// Follows `bytes`, the next ones read from the connection.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let used = match self.state {
                State::Off => return,
                State::Body { remaining } => {
                    let n = remaining.min(bytes.len() as u64);
                    self.state = match remaining - n {
                        0 => self.next_head(),
                        remaining => State::Body { remaining },
                    };
                    n as usize
                }
                State::ChunkData { remaining, crlf } if remaining > 0 => {
                    let n = remaining.min(bytes.len() as u64);
                    self.state = State::ChunkData {
                        remaining: remaining - n,
                        crlf,
                    };
                    n as usize
                }
                State::ChunkData { crlf, .. } => {
                    let expected = if crlf == 2 { b'\r' } else { b'\n' };
                    self.state = match (bytes[0] == expected, crlf) {
                        (true, 2) => State::ChunkData {
                            remaining: 0,
                            crlf: 1,
                        },
                        (true, _) => State::ChunkSize,
                        (false, _) => State::Off,
                    };
                    1
                }
                State::Head { .. } => {
                    self.head_seen = true;
                    self.lines(bytes)
                }
                State::ChunkSize | State::Trailers => self.lines(bytes),
            };
            bytes = &bytes[used..];
        }
    }

    /// Takes line bytes up to and including the first line end; returns how many it used.
    fn lines(&mut self, bytes: &[u8]) -> usize {
        let end = memchr::memchr(b'\n', bytes);
        let segment = &bytes[..end.unwrap_or(bytes.len())];
        if let Some((&last, _)) = segment.split_last() {
            if self.after_cr {
                // A CR that did not end the line is part of it (hyper refuses it anyway).
                self.keep(b"\r");
            }
            self.after_cr = last == b'\r';
            self.keep(&segment[..segment.len() - usize::from(self.after_cr)]);
        }
        match end {
            Some(i) => {
                let bare = !self.after_cr;
                self.after_cr = false;
                self.line_end(bare);
                i + 1
            }
            None => bytes.len(),
        }
    }

    /// Keeps what fits of `bytes` in the line's prefix.
    fn keep(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(LINE_KEPT - self.line_len);
        self.line[self.line_len..self.line_len + n].copy_from_slice(&bytes[..n]);
        self.line_len += n;
        self.line_cut |= n < bytes.len();
    }

    fn line_end(&mut self, bare: bool) {
        let (line, cut) = (&self.line[..self.line_len], self.line_cut);
        let empty = line.is_empty() && !cut;
        self.state = match self.state {
            State::Head { started } => {
                if bare && (started || !empty) {
                    self.flawed.get_or_insert(self.head);
                }
                match (started, empty) {
                    // Empty lines before a request line are skipped (RFC 9112 §2.2).
                    (false, true) => State::Head { started: false },
                    (false, false) if line.starts_with(b"PRI * HTTP/2.0") => State::Off,
                    (false, false) => State::Head { started: true },
                    (true, false) => {
                        framing_field(&mut self.framing, line, cut);
                        State::Head { started: true }
                    }
                    (true, true) => self.body(),
                }
            }
            State::ChunkSize => chunk_size(line, cut).map_or(State::Off, |size| match size {
                0 => State::Trailers,
                size => State::ChunkData {
                    remaining: size,
                    crlf: 2,
                },
            }),
            State::Trailers if empty => self.next_head(),
            other => other,
        };
        self.line_len = 0;
        self.line_cut = false;
    }

    /// What follows the head just ended.
    fn body(&mut self) -> State {
        let framing = std::mem::take(&mut self.framing);
        if framing.chunked {
            State::ChunkSize
        } else {
            match framing.content_length {
                Some(0) | None => self.next_head(),
                Some(remaining) => State::Body { remaining },
            }
        }
    }

    fn next_head(&mut self) -> State {
        self.head += 1;
        self.head_seen = false;
        State::Head { started: false }
    }
}

/// Notes a head line that says how the body is framed.
fn framing_field(framing: &mut Framing, line: &[u8], cut: bool) {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return;
    };
    let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
    if name.eq_ignore_ascii_case(b"content-length") {
        framing.content_length = std::str::from_utf8(value)
            .ok()
            .filter(|_| !cut)
            .and_then(|v| v.parse().ok());
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        framing.chunked = true;
    }
}

/// A chunk-size line's size: hex digits, then optional `;extensions`.
fn chunk_size(line: &[u8], cut: bool) -> Option<u64> {
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 || digits > 15 || (cut && digits == line.len()) {
        return None;
    }
    let size = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(size, 16).ok()
}

/// A connection's plaintext (above TLS) whose reads feed a `HeadScan`; the first flawed head,
/// and whether a head is under way, are noted in the connection's `Activity`.
pub struct ScannedIo<T> {
    inner: T,
    scan: HeadScan,
    activity: Arc<Activity>,
}

impl<T> ScannedIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            scan: HeadScan::default(),
            activity,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ScannedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Self {
            inner,
            scan,
            activity,
        } = &mut *self;
        poll_read_seen(inner, cx, buf, |read| {
            if scan.flawed.is_some() {
                return;
            }
            scan.feed(read);
            if let Some(head) = scan.flawed() {
                activity.flawed_head(head);
            }
            activity.reading_head(scan.reading_head());
        })
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ScannedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> HeadScan {
        let mut scan = HeadScan::default();
        for chunk in chunks {
            scan.feed(chunk);
        }
        scan
    }

    /// Every split of `bytes` into two reads gives the same verdict as one read.
    fn verdict(bytes: &[u8]) -> Option<u64> {
        let whole = scan(&[bytes]).flawed();
        for at in 0..bytes.len() {
            assert_eq!(
                scan(&[&bytes[..at], &bytes[at..]]).flawed(),
                whole,
                "split at {at}"
            );
        }
        whole
    }

    /// A head is under way from its first byte (a leading empty line included) to its
    /// end; a body, the time between requests and HTTP/2 are not heads.
    #[test]
    fn a_head_is_under_way_from_its_first_byte_to_its_end() {
        let mut scan = HeadScan::default();
        let mut after = |bytes: &[u8]| {
            scan.feed(bytes);
            scan.reading_head()
        };
        assert!(after(b"\r\n"));
        assert!(after(b"POST /a HTTP/1.1\r\nHost: x\r\n"));
        assert!(!after(b"Content-Length: 4\r\n\r\nab"));
        assert!(!after(b"cd"));
        assert!(after(b"G"));
        assert!(!after(b"ET /b HTTP/1.1\r\n\r\n"));
        assert!(!HeadScan::default().reading_head());
        let mut h2 = HeadScan::default();
        h2.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert!(!h2.reading_head());
    }

    #[test]
    fn honest_heads_and_bodies_are_not_flawed() {
        let bytes = b"\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\na\nb\nc\
            GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
            3;ext=1\r\n\n\n\n\r\n0\r\nTrailer: t\r\n\r\n\
            GET /d HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(verdict(bytes), None);
        assert_eq!(scan(&[bytes]).head, 4);
    }

    #[test]
    fn a_bare_lf_in_a_header_line_flaws_that_head() {
        let bytes = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            GET /b HTTP/1.1\r\nHost: x\r\nX-A: 1\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(verdict(bytes), Some(1));
    }

    #[test]
    fn a_bare_lf_after_a_body_is_found_in_the_next_head() {
        let bytes = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\n\n\n\n\
            GET /b HTTP/1.1\nHost: x\r\n\r\n";
        assert_eq!(verdict(bytes), Some(1));
        let chunked = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            2\r\n\n\n\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: x\n\r\n";
        assert_eq!(verdict(chunked), Some(1));
    }

    #[test]
    fn a_request_ending_in_bare_lfs_is_flawed() {
        assert_eq!(verdict(b"GET / HTTP/1.1\nHost: x\n\n"), Some(0));
    }

    #[test]
    fn http2_and_nonsense_chunks_stop_the_scan() {
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\n\x04";
        assert_eq!(verdict(h2), None);
        let mut bad = scan(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]);
        assert_eq!(bad.state, State::Off);
        bad.feed(b"GET / HTTP/1.1\nHost: x\r\n\r\n");
        assert_eq!(bad.flawed(), None);
    }
}
