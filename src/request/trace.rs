//! W3C trace context (`traceparent`): parsed from a client's request when it is well formed,
//! else a new trace is started; every backend call gets the same trace id and a span id of
//! its own. Also the finished-span record the exporter (`otlp`) sends.

use std::time::SystemTime;

pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// Where a request sits in a distributed trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    /// The span of the request in this gateway (backend calls are its children).
    pub span_id: u64,
    /// The client's span, when it sent a `traceparent`.
    pub parent_id: Option<u64>,
    pub sampled: bool,
}

impl TraceContext {
    /// A new trace, sampled.
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero_u128(),
            span_id: new_span_id(),
            parent_id: None,
            sampled: true,
        }
    }

    /// Continues the client's trace when `traceparent` is valid (version 00 rules; unknown
    /// future versions are read by their first four fields), else starts a new one.
    pub fn from_header(value: Option<&str>) -> Self {
        value.and_then(parse).unwrap_or_else(Self::new_root)
    }

    /// The `traceparent` value for a call made in a child span `span_id` of this request.
    pub fn child_bytes(&self, span_id: u64) -> [u8; 55] {
        // `00-{trace:032x}-{span:016x}-{flags:02x}`, written without the formatter: one per
        // backend call.
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        write_hex(&mut out[3..35], self.trace_id);
        write_hex(&mut out[36..52], u128::from(span_id));
        write_hex(&mut out[53..55], u128::from(u8::from(self.sampled)));
        out
    }

    pub fn trace_id_hex(&self) -> String {
        hex32(self.trace_id)
    }
}

/// `value` as 32 lowercase hex digits.
pub(crate) fn hex32(value: u128) -> String {
    let mut out = vec![0u8; 32];
    write_hex(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// `value`'s lowest `out.len()` (at most 32) hex digits, zero-padded, lowercase: a byte's two
/// digits at a time from a table, lowest byte first (shifting the `u128` a digit at a time
/// cost twice as much, on every request's id and every backend call's `traceparent`).
pub(crate) fn write_hex(out: &mut [u8], value: u128) {
    let mut end = out.len();
    for byte in value.to_le_bytes() {
        let [high, low] = HEX_PAIRS[usize::from(byte)];
        match end {
            0 => break,
            1 => out[0] = low,
            _ => {
                out[end - 1] = low;
                out[end - 2] = high;
            }
        }
        end = end.saturating_sub(2);
    }
}

/// Each byte's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0xf]];
        byte += 1;
    }
    pairs
};

fn parse(value: &str) -> Option<TraceContext> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if version.len() != 2 || !hex(version) || version == "ff" {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
        return None;
    }
    if !hex(trace) || !hex(parent) || !hex(flags) {
        return None;
    }
    let trace_id = u128::from_str_radix(trace, 16).ok()?;
    let parent_id = u64::from_str_radix(parent, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id == 0 || parent_id == 0 {
        return None;
    }
    Some(TraceContext {
        trace_id,
        span_id: new_span_id(),
        parent_id: Some(parent_id),
        sampled: flags & 1 == 1,
    })
}

pub fn new_span_id() -> u64 {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id;
        }
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return id;
        }
    }
}

/// What kind of span a finished span was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    Server,
    Client,
}

/// A finished span, as exported. Attributes hold only bounded, secret-free values: route
/// templates, operation names, upstream names, statuses — never headers or query strings.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_id: Option<u64>,
    pub name: String,
    pub kind: SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub error: bool,
    pub attributes: Vec<(&'static str, AttrValue)>,
}

#[derive(Clone, Debug)]
pub enum AttrValue {
    Str(String),
    Int(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_are_the_formatters() {
        for value in [
            0,
            1,
            0xabc,
            u128::from(u64::MAX),
            u128::MAX,
            0x0123_4567_89ab_cdef << 60,
        ] {
            assert_eq!(hex32(value), format!("{value:032x}"));
            for width in [1, 2, 3, 16] {
                let mut out = vec![0; width];
                write_hex(&mut out, value);
                let full = format!("{value:032x}");
                assert_eq!(out, full.as_bytes()[32 - width..], "{value:x} in {width}");
            }
        }
    }

    #[test]
    fn a_valid_traceparent_is_continued() {
        let t = TraceContext::from_header(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        assert_eq!(t.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(t.parent_id, Some(0x00f067aa0ba902b7));
        assert!(t.sampled);
        assert_ne!(t.span_id, 0x00f067aa0ba902b7);
        let child = t.child_bytes(0xabc);
        assert_eq!(
            &child[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01"
        );
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let t = TraceContext::from_header(Some(bad));
            assert_eq!(t.parent_id, None, "{bad}");
            assert_ne!(t.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736, "{bad}");
        }
        let unsampled = TraceContext::from_header(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ));
        assert!(!unsampled.sampled);
    }
}
