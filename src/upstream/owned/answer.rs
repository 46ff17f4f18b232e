//! The answer's side of an owned connection's HTTP/1.1: its head parsed from the bytes
//! read (header values are slices of them, not copies), how its body is framed (RFC 9112
//! section 6.3), and a chunked body taken apart. Pure functions over the read buffer.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version};

use super::conn::ExchangeError;

/// The most headers an answer may have (hyper's limit too).
const MAX_HEADERS: usize = 100;
/// The longest answer head, and the most trailer bytes after a chunked body.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// The longest chunk-size line (the size and any extensions).
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// How the rest of an answer's body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes left.
    Length(u64),
    Chunked(Chunk),
    /// Until the backend closes the connection.
    Close,
    Done,
}

/// Where a chunked body's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// At the line end after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines (dropped) up to an empty line; the count is the
    /// trailer bytes seen so far.
    Trailers(usize),
}

/// Up to `at_most` buffered bytes, if there are any.
pub(super) fn take(buf: &mut BytesMut, at_most: u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = usize::try_from(at_most)
        .unwrap_or(usize::MAX)
        .min(buf.len());
    Some(buf.split_to(n).freeze())
}

/// One step of a chunked body from what is buffered.
pub(super) fn chunked(buf: &mut BytesMut, chunk: Chunk) -> Result<Step, ExchangeError> {
    Ok(match chunk {
        Chunk::Size => {
            let end = line_end(buf);
            if end.unwrap_or(buf.len()) > MAX_CHUNK_LINE {
                return Err(ExchangeError::malformed("a chunk-size line is too long"));
            }
            let Some(end) = end else {
                return Ok(Step::More);
            };
            let size = chunk_size(&buf[..end])?;
            buf.advance(end + 2);
            Step::Next(Framing::Chunked(match size {
                0 => Chunk::Trailers(0),
                n => Chunk::Data(n),
            }))
        }
        Chunk::Data(left) => match take(buf, left) {
            Some(data) => {
                let left = left - data.len() as u64;
                let next = if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                };
                Step::Data(data, Framing::Chunked(next))
            }
            None => Step::More,
        },
        Chunk::DataEnd if buf.len() < 2 => Step::More,
        Chunk::DataEnd if buf.starts_with(b"\r\n") => {
            buf.advance(2);
            Step::Next(Framing::Chunked(Chunk::Size))
        }
        Chunk::DataEnd => return Err(ExchangeError::malformed("a chunk does not end in CRLF")),
        Chunk::Trailers(seen) => match line_end(buf) {
            Some(0) => {
                buf.advance(2);
                Step::Next(Framing::Done)
            }
            Some(end) if seen + end <= MAX_HEAD => {
                buf.advance(end + 2);
                Step::Next(Framing::Chunked(Chunk::Trailers(seen + end + 2)))
            }
            None if seen + buf.len() <= MAX_HEAD => Step::More,
            _ => return Err(ExchangeError::malformed("the trailers are over 64 KiB")),
        },
    })
}

/// What one step of a chunked body found.
pub(super) enum Step {
    /// Body bytes, and where reading stands after them.
    Data(Bytes, Framing),
    /// No bytes, but reading moved on.
    Next(Framing),
    /// The buffer needs more of the connection.
    More,
}

/// Where the first CRLF in `buf` starts.
fn line_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(cr) = buf[from..].iter().position(|&b| b == b'\r') {
        let at = from + cr;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
    None
}

/// A chunk-size line's size (extensions after `;` are ignored).
fn chunk_size(line: &[u8]) -> Result<u64, ExchangeError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    let bad = || ExchangeError::malformed("a chunk size is not hexadecimal");
    if digits.is_empty() || digits.len() > 15 {
        return Err(bad());
    }
    digits.iter().try_fold(0u64, |size, &b| {
        let digit = char::from(b).to_digit(16).ok_or_else(bad)?;
        Ok(size * 16 + u64::from(digit))
    })
}

/// Headers a proxied answer may gain on its way out.
const ADDED_HEADERS: usize = 8;

/// The answer's head, when `buf` holds all of it (then taken off `buf`).
pub(super) fn parse_head(buf: &mut BytesMut) -> Result<Option<Response<()>>, ExchangeError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let (len, spans, code, version) = {
        let mut parsed = httparse::Response::new(&mut []);
        let status = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut parsed, buf, &mut slots)
            .map_err(|e| ExchangeError::malformed(format!("the answer's head: {e}")))?;
        let httparse::Status::Complete(len) = status else {
            return Ok(None);
        };
        let base = buf.as_ptr() as usize;
        let span = |part: &[u8]| -> Range<usize> {
            let start = part.as_ptr() as usize - base;
            start..start + part.len()
        };
        // Offsets, not slices: the head is taken off `buf` before the values are cut from it
        // (a vector the size of what came, not a zeroed array the size of the limit).
        let spans: Vec<_> = parsed
            .headers
            .iter()
            .map(|header| (span(header.name.as_bytes()), span(header.value)))
            .collect();
        let version = match parsed.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        (len, spans, parsed.code.unwrap_or(0), version)
    };
    let head = buf.split_to(len).freeze();
    let status = StatusCode::from_u16(code)
        .map_err(|_| ExchangeError::malformed(format!("the status {code} is not valid")))?;
    // Room for the headers the gateway adds to a proxied answer (request id, rate limits,
    // CORS): filled to the count, the map grew and rehashed on the first of them.
    let mut headers = HeaderMap::with_capacity(spans.len() + ADDED_HEADERS);
    for (name, value) in spans {
        let name = HeaderName::from_bytes(&head[name])
            .map_err(|_| ExchangeError::malformed("a header name is not valid"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value))
            .map_err(|_| ExchangeError::malformed("a header value is not valid"))?;
        headers.append(name, value);
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Some(response))
}

/// How the answer's body is framed (RFC 9112 section 6.3) and whether the connection
/// stays open after it.
pub(super) fn framing(
    method: &Method,
    response: &Response<()>,
) -> Result<(Framing, bool), ExchangeError> {
    let headers = response.headers();
    let mut keep_alive = match response.version() {
        Version::HTTP_11 => !has_token(headers, header::CONNECTION, "close"),
        _ => has_token(headers, header::CONNECTION, "keep-alive"),
    };
    let status = response.status();
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Done, keep_alive));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // A length beside an encoding is ignored, and the connection not trusted again.
        keep_alive &= !headers.contains_key(header::CONTENT_LENGTH);
        let chunked = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .next_back()
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked {
            (Framing::Chunked(Chunk::Size), keep_alive)
        } else {
            (Framing::Close, false)
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n = std::str::from_utf8(part.trim_ascii())
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ExchangeError::malformed("the content-length is not a number"))?;
            if length.is_some_and(|seen| seen != n) {
                return Err(ExchangeError::malformed("two different content-lengths"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => (Framing::Done, keep_alive),
        Some(n) => (Framing::Length(n), keep_alive),
        None => (Framing::Close, false),
    })
}

/// Whether a comma-separated header has `token` (case-blind).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> (Option<Response<()>>, BytesMut) {
        let mut buf = BytesMut::from(bytes);
        let parsed = parse_head(&mut buf).unwrap();
        (parsed, buf)
    }

    fn framed(method: Method, bytes: &[u8]) -> Result<(Framing, bool), ExchangeError> {
        let (response, _) = head(bytes);
        framing(&method, &response.expect("a whole head"))
    }

    #[test]
    fn a_head_is_parsed_once_whole_and_the_body_is_left_in_the_buffer() {
        let whole = b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 4\r\n\r\nnope";
        for cut in 1..whole.len() - 4 {
            assert!(head(&whole[..cut]).0.is_none(), "parsed at {cut}");
        }
        let (response, rest) = head(whole);
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.version(), Version::HTTP_11);
        assert_eq!(response.headers()["content-type"], "text/plain");
        let values: Vec<_> = response.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(&rest[..], b"nope");
    }

    #[test]
    fn a_head_that_is_not_http_or_has_too_many_headers_is_malformed() {
        for bad in [
            &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        ] {
            let e = parse_head(&mut BytesMut::from(bad)).unwrap_err();
            assert!(e.is_malformed(), "{e}");
        }
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(parse_head(&mut BytesMut::from(&many[..])).is_err());
    }

    #[test]
    fn the_body_is_framed_as_rfc_9112_says() {
        use Framing::*;
        let ok = |extra: &str| format!("HTTP/1.1 200 OK\r\n{extra}\r\n");
        let get = |extra: &str| framed(Method::GET, ok(extra).as_bytes()).unwrap();
        assert_eq!(get("content-length: 5\r\n"), (Length(5), true));
        assert_eq!(get("content-length: 5, 5\r\n"), (Length(5), true));
        assert_eq!(get("content-length: 0\r\n"), (Done, true));
        assert_eq!(get(""), (Close, false));
        assert_eq!(
            get("transfer-encoding: chunked\r\n"),
            (Chunked(Chunk::Size), true)
        );
        assert_eq!(
            get("transfer-encoding: gzip, Chunked\r\n"),
            (Chunked(Chunk::Size), true)
        );
        assert_eq!(get("transfer-encoding: chunked, gzip\r\n"), (Close, false));
        assert_eq!(
            get("transfer-encoding: chunked\r\ncontent-length: 3\r\n"),
            (Chunked(Chunk::Size), false)
        );
        assert_eq!(
            get("connection: keep-alive, Close\r\ncontent-length: 1\r\n"),
            (Length(1), false)
        );
        let head_request = framed(Method::HEAD, ok("content-length: 5\r\n").as_bytes()).unwrap();
        assert_eq!(head_request, (Done, true));
        for status in ["204 No Content", "304 Not Modified"] {
            let answer = format!("HTTP/1.1 {status}\r\ntransfer-encoding: chunked\r\n\r\n");
            assert_eq!(
                framed(Method::GET, answer.as_bytes()).unwrap(),
                (Done, true)
            );
        }
        let old = framed(Method::GET, b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n");
        assert_eq!(old.unwrap(), (Length(1), false));
        let old_kept = b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n";
        assert_eq!(framed(Method::GET, old_kept).unwrap(), (Length(1), true));
        for bad in [
            "content-length: 5\r\ncontent-length: 6\r\n",
            "content-length: -1\r\n",
            "content-length: 0x5\r\n",
        ] {
            assert!(
                framed(Method::GET, ok(bad).as_bytes())
                    .unwrap_err()
                    .is_malformed()
            );
        }
    }

    /// Reads a chunked body from `bytes` handed over `step` bytes at a time: its data and
    /// where reading stopped.
    fn dechunk(bytes: &[u8], step: usize) -> Result<(Vec<u8>, Framing, usize), ExchangeError> {
        let mut buf = BytesMut::new();
        let mut framing = Framing::Chunked(Chunk::Size);
        let mut data = Vec::new();
        let mut fed = 0;
        while framing != Framing::Done {
            let Framing::Chunked(chunk) = framing else {
                unreachable!()
            };
            match chunked(&mut buf, chunk)? {
                Step::Data(piece, next) => {
                    data.extend_from_slice(&piece);
                    framing = next;
                }
                Step::Next(next) => framing = next,
                Step::More if fed == bytes.len() => break,
                Step::More => {
                    let end = (fed + step).min(bytes.len());
                    buf.extend_from_slice(&bytes[fed..end]);
                    fed = end;
                }
            }
        }
        Ok((data, framing, buf.len() + bytes.len() - fed))
    }

    #[test]
    fn a_chunked_body_is_read_whatever_the_reads_cut_it_into() {
        let body =
            b"5\r\nhello\r\n1;ext=\"x\"\r\n \r\nA\r\n0123456789\r\n0\r\nx-sum: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, body.len()] {
            let (data, framing, left) = dechunk(body, step).unwrap();
            assert_eq!(data, b"hello 0123456789", "step {step}");
            assert_eq!(framing, Framing::Done);
            assert_eq!(left, 4, "the next answer's bytes stay: step {step}");
        }
        let unfinished = dechunk(b"5\r\nhel", 2).unwrap();
        assert_eq!(unfinished.0, b"hel");
        assert_eq!(unfinished.1, Framing::Chunked(Chunk::Data(2)));
    }

    #[test]
    fn a_broken_chunked_body_is_malformed() {
        let long_line = format!("1{}\r\n", " ".repeat(MAX_CHUNK_LINE));
        let long_trailers = format!("0\r\n{}", "x-t: y\r\n".repeat(MAX_HEAD / 8 + 1));
        for bad in [
            "g\r\nhello\r\n".to_owned(),
            "\r\n".to_owned(),
            "5\r\nhelloXX0\r\n\r\n".to_owned(),
            "ffffffffffffffffff\r\n".to_owned(),
            long_line,
            long_trailers,
        ] {
            let e = dechunk(bad.as_bytes(), 5).unwrap_err();
            assert!(e.is_malformed(), "{bad:?}: {e}");
        }
    }
}
