//! The answer's head on an owned connection: parsed from the bytes read and kept as where
//! each header's name and value lie in them (nothing copied, hashed or allocated), and how
//! the body after it is framed (RFC 9112 section 6.3). A header map is built from it only
//! for those who read the headers: the proxy (which passes them on), the cache, an error's
//! `retry-after`. A buffered call that only wants the body never pays for one (~2k
//! instructions an answer, 3% of the mobile home query).

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version};
use smallvec::SmallVec;

use super::answer::{Chunk, Framing, MAX_HEAD};
use super::conn::ExchangeError;

/// The most headers an answer may have (hyper's limit too).
const MAX_HEADERS: usize = 100;

/// Headers a proxied answer may gain on its way out (request id, rate limits, CORS): the
/// map built for it has room for them, or it would grow and rehash on the first.
const ADDED_HEADERS: usize = 8;

/// An answer's status line and header fields, as read.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    status: StatusCode,
    version: Version,
    /// The head's bytes, status line to the empty line.
    bytes: Bytes,
    fields: SmallVec<[Field; 8]>,
}

/// Where one header's name and value lie in the head's bytes (a head is at most
/// `MAX_HEAD` bytes: offsets fit in 32 bits, and eight fields inline in 128 bytes).
#[derive(Clone, Copy, Debug)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

impl Field {
    fn name(self) -> Range<usize> {
        self.name.0 as usize..self.name.1 as usize
    }

    fn value(self) -> Range<usize> {
        self.value.0 as usize..self.value.1 as usize
    }
}

impl Head {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers as a map with room for `room` more. Every name and value is a slice of
    /// the head's bytes, not a copy. httparse accepted exactly the bytes `http` does (names
    /// of token characters, values of visible characters, spaces, tabs and bytes from 0x80:
    /// `httparse_and_http_accept_the_same_bytes`), so none is left out in practice; one that
    /// were would be skipped, not fail an answer already framed.
    pub fn header_map(&self, room: usize) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.fields.len() + room);
        for field in &self.fields {
            let Ok(name) = HeaderName::from_bytes(&self.bytes[field.name()]) else {
                continue;
            };
            let value = self.bytes.slice(field.value());
            if let Ok(value) = HeaderValue::from_maybe_shared(value) {
                headers.append(name, value);
            }
        }
        headers
    }

    /// The answer as a response with `body`, its headers in a map with room for the ones a
    /// proxied answer gains.
    pub fn into_response<B>(self, body: B) -> Response<B> {
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.version_mut() = self.version;
        *response.headers_mut() = self.header_map(ADDED_HEADERS);
        response
    }

    /// What the three headers framing reads say, found in one pass over the fields: a name
    /// is compared only with the one of them its length could be, and nothing is collected
    /// (three walks comparing every name: framing took ~560 instructions an answer, ~450
    /// now).
    fn framing_headers(&self) -> FramingHeaders {
        let mut found = FramingHeaders::default();
        for field in &self.fields {
            let name = &self.bytes[field.name()];
            let value = &self.bytes[field.value()];
            let tokens = || value.split(|&b| b == b',').map(<[u8]>::trim_ascii);
            match name.len() {
                10 if name.eq_ignore_ascii_case(b"connection") => {
                    for token in tokens() {
                        found.close |= token.eq_ignore_ascii_case(b"close");
                        found.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                    }
                }
                14 if name.eq_ignore_ascii_case(b"content-length") => {
                    for part in tokens() {
                        let n = std::str::from_utf8(part)
                            .ok()
                            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                            .and_then(|s| s.parse::<u64>().ok());
                        found.length = match (found.length, n) {
                            (Length::Bad(why), _) => Length::Bad(why),
                            (_, None) => Length::Bad("the content-length is not a number"),
                            (Length::Is(seen), Some(n)) if seen != n => {
                                Length::Bad("two different content-lengths")
                            }
                            (_, Some(n)) => Length::Is(n),
                        };
                    }
                }
                // The last coding of the last value decides.
                17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                    let last = tokens().next_back().unwrap_or_default();
                    found.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
                }
                _ => {}
            }
        }
        found
    }

    /// How the answer's body is framed (RFC 9112 section 6.3) and whether the connection
    /// stays open after it.
    pub(super) fn framing(&self, method: &Method) -> Result<(Framing, bool), ExchangeError> {
        let found = self.framing_headers();
        let mut keep_alive = match self.version {
            Version::HTTP_11 => !found.close,
            _ => found.keep_alive,
        };
        let status = self.status;
        if *method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok((Framing::Done, keep_alive));
        }
        if let Some(chunked) = found.chunked {
            // A length beside an encoding is ignored, and the connection not trusted again.
            keep_alive &= found.length == Length::Absent;
            return Ok(if chunked {
                (Framing::Chunked(Chunk::Size), keep_alive)
            } else {
                (Framing::Close, false)
            });
        }
        Ok(match found.length {
            Length::Bad(why) => return Err(ExchangeError::malformed(why)),
            Length::Is(0) => (Framing::Done, keep_alive),
            Length::Is(n) => (Framing::Length(n), keep_alive),
            Length::Absent => (Framing::Close, false),
        })
    }
}

/// What the headers that frame an answer say.
#[derive(Default)]
struct FramingHeaders {
    /// A `connection` token `close`, `keep-alive`.
    close: bool,
    keep_alive: bool,
    length: Length,
    /// With a `transfer-encoding`: whether its last coding is `chunked`.
    chunked: Option<bool>,
}

/// The `content-length` headers' say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Length {
    #[default]
    Absent,
    Is(u64),
    /// Not a number, or two different numbers.
    Bad(&'static str),
}

/// The answer's head, when `buf` holds all of it (then taken off `buf`).
pub(super) fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, ExchangeError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut parsed, buf, &mut slots)
        .map_err(|e| ExchangeError::malformed(format!("the answer's head: {e}")))?;
    let httparse::Status::Complete(len) = status else {
        return Ok(None);
    };
    if len > MAX_HEAD {
        return Err(ExchangeError::malformed("the answer's head is over 64 KiB"));
    }
    let base = buf.as_ptr() as usize;
    // Offsets, not slices: the head is taken off `buf` before the values are cut from it.
    // Within the head's `len` bytes, so below 64 KiB.
    let span = |part: &[u8]| -> (u32, u32) {
        let start = part.as_ptr() as usize - base;
        (start as u32, (start + part.len()) as u32)
    };
    let fields = parsed
        .headers
        .iter()
        .map(|header| Field {
            name: span(header.name.as_bytes()),
            value: span(header.value),
        })
        .collect();
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code)
        .map_err(|_| ExchangeError::malformed(format!("the status {code} is not valid")))?;
    Ok(Some(Head {
        status,
        version,
        bytes: buf.split_to(len).freeze(),
        fields,
    }))
}

#[cfg(test)]
mod tests;
