//! The wire side of a call: the request as it leaves (the instance's URI, the headers every
//! call carries), the body read under its size cap, JSON decoding, and the encoding of
//! client-given values into paths and query strings.

use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body::Body as _;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::instances::Instance;
use super::owned::{HeadWriter, Sending};
use super::pipeline::Call;
use super::span::ClientSpan;
use super::{Upstream, UpstreamError, UpstreamErrorKind, client, text};
use crate::request::trace::TRACEPARENT;
use crate::request::{CallContext, REQUEST_ID_HEADER};

/// Header carrying the caller's remaining budget, so a backend can give up when we will.
pub const REQUEST_TIMEOUT_HEADER: HeaderName = HeaderName::from_static("x-request-timeout-ms");

pub(super) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// What a call sends, before the headers every call carries are added.
pub(super) struct Outgoing<'a> {
    pub method: Method,
    pub path_and_query: &'a str,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Upstream {
    /// A request to one instance: the outgoing headers plus the context's request id, trace
    /// context, budget and identity (set last, so nothing a caller passes can replace them).
    pub(super) fn request(
        &self,
        instance: &Instance,
        ctx: &CallContext,
        span: &ClientSpan,
        outgoing: Outgoing<'_>,
        timeout: Duration,
    ) -> Result<Request<Body>, UpstreamError> {
        let Outgoing {
            method,
            path_and_query,
            mut headers,
            body,
        } = outgoing;
        let uri = instance
            .origin
            .as_ref()
            .ok_or_else(|| {
                UpstreamError::new(self.name(), UpstreamErrorKind::Connect, "invalid base URL")
            })?
            .uri(path_and_query)
            .map_err(|e| {
                UpstreamError::new(
                    self.name(),
                    UpstreamErrorKind::Rejected(400),
                    format!("invalid path {path_and_query:?}: {e}"),
                )
            })?;
        Carried::new(ctx, span, timeout).insert(&mut headers);
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// The head of buffered `call` to an instance under `prefix`, whose `Host` is `host`,
    /// its body sent as `sending` says, written as bytes for an owned connection. What it
    /// sends is what [`Self::request`] sends for the same call over hyper: `host`, `accept`,
    /// the call's own headers, the body's type, the headers every call carries
    /// ([`Carried`]), then the body's framing. The call must have passed [`Self::check`].
    pub(super) fn written_head(
        host: &HeaderValue,
        prefix: &str,
        call: &Call<'_>,
        carried: &Carried<'_>,
        sending: Sending,
    ) -> Vec<u8> {
        let mut head = HeadWriter::new(&call.method, prefix, call.path_and_query, host);
        head.header("accept", APPLICATION_JSON.as_bytes());
        let typed = call.body.is_some();
        for (name, value) in call.headers {
            // The body's type is never a call's.
            if !(typed && name.eq_ignore_ascii_case("content-type")) {
                carried.pass(&mut head, name, value.as_bytes());
            }
        }
        if typed {
            head.header("content-type", APPLICATION_JSON.as_bytes());
        }
        carried.write(&mut head);
        head.framed(&call.method, sending)
    }

    /// The head of a streamed exchange (the proxy's) with `headers`, to an instance under
    /// `prefix` whose `Host` is `host`, its body sent as `sending` says: what
    /// [`Self::request`] sends for it over hyper, written as bytes for an owned connection:
    /// `host`, the headers, those every call carries ([`Carried`]), then the body's framing.
    /// The path must have passed [`Self::check_path`].
    pub(super) fn streamed_head(
        host: &HeaderValue,
        prefix: &str,
        (method, path_and_query): (&Method, &str),
        headers: &HeaderMap,
        carried: &Carried<'_>,
        sending: Sending,
    ) -> Vec<u8> {
        let mut head = HeadWriter::new(method, prefix, path_and_query, host);
        for (name, value) in headers {
            carried.pass(&mut head, name.as_str(), value.as_bytes());
        }
        carried.write(&mut head);
        head.framed(method, sending)
    }

    /// Refuses a call whose path or extra header values could not go on the wire as they
    /// are (a control character, a space, a fragment), before anything is sent.
    pub(super) fn check(&self, call: &Call<'_>) -> Result<(), UpstreamError> {
        self.check_path(call.path_and_query)?;
        match call
            .headers
            .iter()
            .find(|(_, value)| !valid_value(value.as_bytes()))
        {
            Some((name, _)) => Err(UpstreamError::new(
                self.name(),
                UpstreamErrorKind::Rejected(400),
                format!("invalid value for header {name}"),
            )),
            None => Ok(()),
        }
    }

    /// Refuses a path that could not go on the wire as it is (not starting with `/`, or
    /// holding a control character, a space, a fragment or a byte beyond ASCII).
    pub(super) fn check_path(&self, path_and_query: &str) -> Result<(), UpstreamError> {
        let path = path_and_query.as_bytes();
        // Folded without an early exit, so that it runs over whole vectors of bytes (a
        // batch's path of ids is hundreds of bytes long).
        let unsendable = path.iter().fold(false, |bad, &b| {
            bad | !(0x21..=0x7e).contains(&b) | (b == b'#')
        });
        if path.first() != Some(&b'/') || unsendable {
            return Err(UpstreamError::new(
                self.name(),
                UpstreamErrorKind::Rejected(400),
                format!("invalid path {path_and_query:?}"),
            ));
        }
        Ok(())
    }

    /// Reads a whole body, refusing one over the service's size cap.
    pub(super) async fn read_capped(
        &self,
        mut body: super::owned::Leased,
    ) -> Result<Bytes, UpstreamError> {
        let max = self.0.max_body;
        let too_large = |seen: u64| {
            UpstreamError::new(
                self.name(),
                UpstreamErrorKind::BadResponse,
                format!("body of {seen} bytes exceeds the cap of {max}"),
            )
        };
        // The length its head declared.
        let declared = body.size_hint().exact();
        if let Some(len) = declared.filter(|len| *len > max) {
            return Err(too_large(len));
        }
        // A body that arrives in one chunk (most: hyper hands over what one read brought) is
        // kept as it is; only a body in pieces is copied together.
        let mut whole = Bytes::new();
        let mut joined: Option<BytesMut> = None;
        let mut seen = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| client::body_error(self.name(), &e))?;
            let Ok(chunk) = frame.into_data() else {
                continue; // trailers
            };
            seen += chunk.len() as u64;
            if seen > max {
                return Err(too_large(seen));
            }
            match &mut joined {
                Some(buf) => buf.extend_from_slice(&chunk),
                None if whole.is_empty() => whole = chunk,
                None => {
                    let capacity = declared.unwrap_or(seen).max(seen);
                    let mut buf =
                        BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(usize::MAX));
                    buf.extend_from_slice(&whole);
                    buf.extend_from_slice(&chunk);
                    joined = Some(buf);
                }
            }
        }
        Ok(joined.map_or(whole, BytesMut::freeze))
    }
}

/// The headers every try of a call carries, from its context: the request id, the trace
/// context, the time left and the caller's forwarded identity. Set last, over a hyper
/// request's map ([`Upstream::request`]) or written into an owned connection's head, so
/// nothing a caller passes can replace them.
pub(super) struct Carried<'a> {
    /// `None` when the id could not be a header value (as `HeaderValue::from_str` refuses).
    request_id: Option<&'a str>,
    traceparent: [u8; 55],
    timeout_ms: u64,
    forwarded: &'a [(HeaderName, HeaderValue)],
}

impl<'a> Carried<'a> {
    pub fn new(ctx: &'a CallContext, span: &ClientSpan, timeout: Duration) -> Self {
        Self {
            request_id: Some(&*ctx.request_id).filter(|id| valid_value(id.as_bytes())),
            traceparent: ctx.trace.child_bytes(span.id),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            forwarded: ctx
                .identity
                .as_deref()
                .map_or(&[], |identity| identity.forwarded_headers()),
        }
    }

    /// Whether `name` is one of the headers carried (which a call's own cannot replace).
    fn sets(&self, name: &str) -> bool {
        [REQUEST_ID_HEADER, TRACEPARENT, REQUEST_TIMEOUT_HEADER]
            .iter()
            .chain(self.forwarded.iter().map(|(name, _)| name))
            .any(|carried| carried.as_str().eq_ignore_ascii_case(name))
    }

    /// Sets them in `headers`, replacing any of the same name.
    fn insert(&self, headers: &mut HeaderMap) {
        if let Some(Ok(id)) = self.request_id.map(HeaderValue::from_str) {
            headers.insert(REQUEST_ID_HEADER, id);
        }
        let traceparent = HeaderValue::from_bytes(&self.traceparent);
        headers.insert(
            TRACEPARENT,
            traceparent.expect("hex digits and dashes are a valid header"),
        );
        headers.insert(REQUEST_TIMEOUT_HEADER, HeaderValue::from(self.timeout_ms));
        for (name, value) in self.forwarded {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// Writes a caller's header `name: value` into `head`, unless the connection sets it
    /// (`host`, the framing) or it is one of these, which replace any of the caller's.
    fn pass(&self, head: &mut HeadWriter, name: &str, value: &[u8]) {
        let own = ["host", "content-length", "transfer-encoding"];
        if !own.iter().any(|own| name.eq_ignore_ascii_case(own)) && !self.sets(name) {
            head.header(name, value);
        }
    }

    /// Writes them into `head` (after the caller's own, of which `pass` left out theirs).
    fn write(&self, head: &mut HeadWriter) {
        if let Some(id) = self.request_id {
            head.header(REQUEST_ID_HEADER.as_str(), id.as_bytes());
        }
        head.header(TRACEPARENT.as_str(), &self.traceparent);
        let mut digits = itoa::Buffer::new();
        head.header(
            REQUEST_TIMEOUT_HEADER.as_str(),
            digits.format(self.timeout_ms).as_bytes(),
        );
        for (name, value) in self.forwarded {
            head.header(name.as_str(), value.as_bytes());
        }
    }
}

/// What `HeaderValue::from_str` takes: no control character but the tab.
fn valid_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// `body` as `T`, or a `BadResponse` of `service`. The whole body's UTF-8 is checked once,
/// then parsed as text: parsing bytes checks every string on its own, which was 5% of the
/// mobile home query. The `Text`s in `T` share the body's bytes (`text`).
pub fn decode_json<T: DeserializeOwned>(service: &str, body: &[u8]) -> Result<T, UpstreamError> {
    let bad = |detail: String| UpstreamError::new(service, UpstreamErrorKind::BadResponse, detail);
    let answer = std::str::from_utf8(body).map_err(|e| bad(format!("invalid UTF-8: {e}")))?;
    text::sharing(answer, |json| {
        serde_json::from_str(json).map_err(|e| bad(format!("invalid JSON: {e}")))
    })
}

/// Percent-encodes one path segment (an id from a client can hold `/`, `..` or `?`).
pub fn path_segment(raw: &str) -> String {
    // `.` and `..` are still path navigation even when every byte is unreserved.
    match raw {
        "." => return "%2E".to_owned(),
        ".." => return "%2E%2E".to_owned(),
        _ => {}
    }
    let mut out = Vec::with_capacity(raw.len());
    push_encoded(&mut out, raw);
    ascii(out)
}

/// Appends `raw` with every byte but the unreserved ones (RFC 3986) percent-encoded, as
/// bytes: pushed as `char`s into a `String`, each byte cost about fifteen instructions (1.4%
/// of the mobile home query, whose paths are ids and field lists).
fn push_encoded(out: &mut Vec<u8>, raw: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    /// By byte: is it unreserved (one load instead of seven comparisons)?
    const UNRESERVED: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
            b += 1;
        }
        table
    };
    out.reserve(raw.len());
    // Runs of unreserved bytes copied whole (a byte pushed at a time cost ~7 instructions).
    let mut rest = raw.as_bytes();
    while !rest.is_empty() {
        let run = rest
            .iter()
            .position(|&b| !UNRESERVED[usize::from(b)])
            .unwrap_or(rest.len());
        out.extend_from_slice(&rest[..run]);
        let Some((&b, after)) = rest[run..].split_first() else {
            break;
        };
        out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
        rest = after;
    }
}

/// What `push_encoded` wrote, as the text it is (only ASCII bytes are ever written).
fn ascii(encoded: Vec<u8>) -> String {
    String::from_utf8(encoded).expect("percent-encoding writes ASCII")
}

/// Encodes a query string from pairs (values from clients included).
pub fn query(pairs: &[(&str, &str)]) -> String {
    path_query(&[], pairs)
}

/// A call's target: the `path` pieces as they are (already encoded: see [`path_segment`]),
/// then the query string of `pairs`, in one string (`format!` took ~1k instructions a path).
pub fn path_query(path: &[&str], pairs: &[(&str, &str)]) -> String {
    let path_length: usize = path.iter().map(|piece| piece.len()).sum();
    let length: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(path_length + length + length / 4);
    for piece in path {
        out.extend_from_slice(piece.as_bytes());
    }
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { b'?' } else { b'&' });
        push_encoded(&mut out, k);
        out.push(b'=');
        push_encoded(&mut out, v);
    }
    String::from_utf8(out).expect("text pieces and percent-encoded ASCII")
}
