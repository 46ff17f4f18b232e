//! The forwarding headers a backend receives, written by the gateway: `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and RFC 7239 `Forwarded`. A client's own copies
//! pass only when it is a trusted proxy (`[client_ip] trusted_proxies`), which then gets its
//! hop appended; from anyone else they are dropped and replaced. Headers some frameworks
//! believe about the URL or host (`X-Host`, `X-Original-URL`, `X-Rewrite-URL`, ...) are
//! dropped whoever sent them.

use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Believed from a trusted proxy, dropped from anyone else.
const FROM_PROXIES: [HeaderName; 6] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    FORWARDED,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
];

/// Rewrite the URL or host in some frameworks; never forwarded.
const NEVER: [HeaderName; 5] = [
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("x-forwarded-server"),
];

/// The hop this gateway adds.
pub struct Hop<'a> {
    /// The socket peer.
    pub peer: IpAddr,
    /// The peer is a trusted proxy: its forwarding headers stand.
    pub trusted: bool,
    /// `http` or `https`: how the peer reached the gateway.
    pub proto: &'static str,
    /// The `Host` (or HTTP/2 authority) the peer asked for, checked by the edge.
    pub host: Option<&'a HeaderValue>,
}

/// Sets the forwarding headers of `headers` (the request bound for a backend) for `hop`.
pub fn apply(headers: &mut HeaderMap, hop: &Hop<'_>) {
    let doomed =
        |name: &HeaderName| NEVER.contains(name) || (!hop.trusted && FROM_PROXIES.contains(name));
    // A client rarely sends any: one pass to find out, a list only when it does.
    if headers.keys().any(doomed) {
        let doomed: Vec<HeaderName> = headers.keys().filter(|n| doomed(n)).cloned().collect();
        for name in doomed {
            headers.remove(name);
        }
    }
    // Room for the four written here: the map the client's head was parsed into is full.
    headers.reserve(4);
    let peer = hop.peer.to_canonical();
    let mut text = [0u8; IP_TEXT];
    let node = ip_text(peer, &mut text);
    append(
        headers,
        X_FORWARDED_FOR,
        Bytes::copy_from_slice(node.as_bytes()),
        hop.trusted,
    );
    // A client's copies were just removed unless it is a trusted proxy: only then look.
    if !(hop.trusted && headers.contains_key(X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(hop.proto));
    }
    let host = hop.host.filter(|h| h.to_str().is_ok());
    if let Some(host) = host
        && !(hop.trusted && headers.contains_key(X_FORWARDED_HOST))
    {
        // The client's own value, shared (a reference count, not a copy).
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    // `for=<node>;proto=<proto>[;host="<host>"]`, an IPv6 node as `"[<node>]"`, in a buffer
    // of its exact length (it becomes the header value without another copy).
    let v6 = peer.is_ipv6();
    let host = host.map(HeaderValue::as_bytes);
    let length = "for=".len()
        + node.len()
        + if v6 { "\"[]\"".len() } else { 0 }
        + ";proto=".len()
        + hop.proto.len()
        + host.map_or(0, |h| ";host=\"\"".len() + h.len());
    let mut element = BytesMut::with_capacity(length);
    element.extend_from_slice(b"for=");
    if v6 {
        element.extend_from_slice(b"\"[");
        element.extend_from_slice(node.as_bytes());
        element.extend_from_slice(b"]\"");
    } else {
        element.extend_from_slice(node.as_bytes());
    }
    element.extend_from_slice(b";proto=");
    element.extend_from_slice(hop.proto.as_bytes());
    if let Some(host) = host {
        element.extend_from_slice(b";host=\"");
        element.extend_from_slice(host);
        element.extend_from_slice(b"\"");
    }
    debug_assert_eq!(element.len(), length, "the element's length, counted ahead");
    append(headers, FORWARDED, element.freeze(), hop.trusted);
}

/// The longest address text: IPv6 with an embedded IPv4 (45 bytes).
const IP_TEXT: usize = 48;

/// `ip` in its usual text form, written into `buf`; IPv4 (most peers) without the
/// formatting machinery.
fn ip_text(ip: IpAddr, buf: &mut [u8; IP_TEXT]) -> &str {
    let length = match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                let digits = [octet / 100, octet / 10 % 10, octet % 10];
                let first = match octet {
                    100.. => 0,
                    10.. => 1,
                    _ => 2,
                };
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                for digit in &digits[first..] {
                    buf[n] = b'0' + digit;
                    n += 1;
                }
            }
            n
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{v6}");
            usize::try_from(cursor.position()).unwrap_or(0)
        }
    };
    std::str::from_utf8(&buf[..length]).unwrap_or_default()
}

/// Adds `value` to the list in `name`: after a trusted proxy's own entries, else alone
/// (an untrusted client's were removed) and without a copy.
fn append(headers: &mut HeaderMap, name: HeaderName, value: Bytes, trusted: bool) {
    let mut joined = String::new();
    if trusted {
        for existing in headers
            .get_all(&name)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            joined.push_str(existing);
            joined.push_str(", ");
        }
    }
    let value = if joined.is_empty() {
        HeaderValue::from_maybe_shared(value)
    } else {
        joined.push_str(std::str::from_utf8(&value).unwrap_or_default());
        HeaderValue::from_str(&joined)
    };
    if let Ok(value) = value {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spoofed() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6;host=evil.example"),
            ("x-host", "evil.example"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("accept", "*/*"),
        ] {
            h.append(n, HeaderValue::from_static(v));
        }
        h
    }

    static API_HOST: HeaderValue = HeaderValue::from_static("api.example.com");

    fn hop(trusted: bool) -> Hop<'static> {
        Hop {
            peer: "203.0.113.9".parse().unwrap(),
            trusted,
            proto: "http",
            host: Some(&API_HOST),
        }
    }

    #[test]
    fn a_clients_forwarding_headers_are_replaced() {
        let mut h = spoofed();
        apply(&mut h, &hop(false));
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9;proto=http;host=\"api.example.com\""
        );
        for name in ["x-host", "x-original-url", "x-rewrite-url"] {
            assert!(!h.contains_key(name), "{name}");
        }
        assert_eq!(h.len(), 5);
    }

    #[test]
    fn a_trusted_proxys_headers_stand_and_get_our_hop() {
        let mut h = spoofed();
        let mut trusted = hop(true);
        trusted.peer = "::1".parse().unwrap();
        apply(&mut h, &trusted);
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, ::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "evil.example");
        assert_eq!(
            h["forwarded"],
            "for=6.6.6.6;host=evil.example, for=\"[::1]\";proto=http;host=\"api.example.com\""
        );
        assert!(!h.contains_key("x-host"));
    }

    #[test]
    fn addresses_are_written_as_usual() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let mut buf = [0; IP_TEXT];
            assert_eq!(ip_text(ip.parse().unwrap(), &mut buf), ip);
        }
    }
}
