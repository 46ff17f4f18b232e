//! The request head past its size limits: framing that two parsers could read two ways,
//! headers that must not be doubled or missing, header bytes no backend should have to
//! interpret, and the hosts this gateway answers for.
//!
//! hyper (httparse) has already refused, with 400 and a closed connection: whitespace
//! between a field name and its colon, obs-fold (a line starting with SP or HTAB), bare CR,
//! NUL and other control bytes in names and values, `Transfer-Encoding` in HTTP/1.0 or with a
//! last coding other than `chunked`, and `Content-Length` fields that differ or are not
//! digits. It folds identical `Content-Length` fields into one and drops `Content-Length`
//! next to `Transfer-Encoding` (chunked wins, as RFC 9112 §6.3 says), so neither is seen here
//! over HTTP/1.1; the checks below still hold them for HTTP/2. What it lets through is
//! refused here. One thing it lets through cannot be seen here: httparse ends a line at a
//! bare LF (RFC 9112 §2.2 allows it), so `a: 1<LF>b: 2` arrives as two fields
//! indistinguishable from two honest ones; only the connection's bytes show it, and
//! `server::framing` reads them.

use axum::extract::Request;
use http::{HeaderMap, Version, header};

use super::HygieneError;

/// Framing, duplicates, value bytes, `Host` presence and syntax, then the allowed hosts.
pub(super) fn check(request: &Request, allowed_hosts: &[String]) -> Result<(), HygieneError> {
    let headers = request.headers();
    let fields = Fields::of(headers);
    framing(headers, &fields)?;
    if fields.authorization > 1 {
        return Err(HygieneError::BadHeader("more than one Authorization field"));
    }
    if fields.host > 1 {
        return Err(HygieneError::BadHeader("more than one Host field"));
    }
    if fields.invisible {
        return Err(HygieneError::BadHeader(
            "a header value holds control or non-ASCII bytes",
        ));
    }
    let host = match headers.get(header::HOST) {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<http::uri::Authority>().ok())
                .filter(|a| !a.as_str().contains('@'))
                .ok_or(HygieneError::BadHeader("malformed Host"))?,
        ),
        None if request.version() == Version::HTTP_11 => {
            return Err(HygieneError::BadHeader("an HTTP/1.1 request without Host"));
        }
        None => request.uri().authority().cloned(),
    };
    if !allowed_hosts.is_empty() {
        let known = host.is_some_and(|h| {
            let name = h.host().trim_end_matches('.');
            allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(name))
        });
        if !known {
            return Err(HygieneError::MisdirectedHost);
        }
    }
    Ok(())
}

/// What one pass over the header fields finds: how often the fields that must not be doubled
/// appear, and whether any value holds a byte no backend should have to interpret.
struct Fields {
    transfer_encoding: usize,
    content_length: usize,
    authorization: usize,
    host: usize,
    invisible: bool,
}

impl Fields {
    fn of(headers: &HeaderMap) -> Self {
        let mut fields = Fields {
            transfer_encoding: 0,
            content_length: 0,
            authorization: 0,
            host: 0,
            invisible: false,
        };
        for (name, value) in headers {
            fields.invisible |= invisible(value.as_bytes());
            if name == header::TRANSFER_ENCODING {
                fields.transfer_encoding += 1;
            } else if name == header::CONTENT_LENGTH {
                fields.content_length += 1;
            } else if name == header::AUTHORIZATION {
                fields.authorization += 1;
            } else if name == header::HOST {
                fields.host += 1;
            }
        }
        fields
    }
}

/// One way to find where the body ends: `Transfer-Encoding` only as one field saying exactly
/// `chunked` (`chunked, chunked`, `gzip, chunked` or two fields are read differently by
/// different servers), never next to `Content-Length`, and at most one `Content-Length` of
/// digits only.
fn framing(headers: &HeaderMap, fields: &Fields) -> Result<(), HygieneError> {
    let (te, cl) = (fields.transfer_encoding, fields.content_length);
    if te > 1 {
        return Err(HygieneError::BadFraming(
            "more than one Transfer-Encoding field",
        ));
    }
    if te == 1 {
        let chunked = headers
            .get(header::TRANSFER_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
        if !chunked {
            return Err(HygieneError::BadFraming(
                "a Transfer-Encoding other than chunked",
            ));
        }
        if cl > 0 {
            return Err(HygieneError::BadFraming(
                "both Transfer-Encoding and Content-Length",
            ));
        }
    }
    if cl > 1 {
        return Err(HygieneError::BadFraming(
            "more than one Content-Length field",
        ));
    }
    let digits = cl == 0
        || headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| !v.is_empty() && v.as_bytes().iter().all(u8::is_ascii_digit));
    if !digits {
        return Err(HygieneError::BadFraming("a malformed Content-Length"));
    }
    Ok(())
}

/// The body length the client declared, when it declared one.
pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Visible ASCII, SP and HTAB: obs-text (bytes >= 0x80) is read as Latin-1 by some backends
/// and UTF-8 by others, and nothing a client of this API sends needs it.
fn visible(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b)
}

/// Whether any byte of `value` is not `visible`: every byte looked at, without an early exit,
/// so the loop runs 32 bytes at a time (a bearer token is ~700 bytes).
fn invisible(value: &[u8]) -> bool {
    value.iter().fold(false, |any, &b| any | !visible(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(version: Version, pairs: &[(&'static str, &'static str)]) -> Request {
        let mut r = Request::builder().version(version).uri("/x");
        for (n, v) in pairs {
            r = r.header(*n, *v);
        }
        r.body(Body::empty()).unwrap()
    }

    fn verdict(pairs: &[(&'static str, &'static str)]) -> Result<(), HygieneError> {
        check(&request(Version::HTTP_11, pairs), &[])
    }

    #[test]
    fn framing_must_be_unambiguous() {
        assert!(verdict(&[("host", "a"), ("transfer-encoding", "chunked")]).is_ok());
        assert!(verdict(&[("host", "a"), ("transfer-encoding", "Chunked")]).is_ok());
        assert!(verdict(&[("host", "a"), ("content-length", "12")]).is_ok());
        for bad in [
            &[("transfer-encoding", "chunked, chunked")][..],
            &[("transfer-encoding", "gzip, chunked")],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            &[("transfer-encoding", "chunked"), ("content-length", "3")],
            &[("content-length", "3"), ("content-length", "3")],
            &[("content-length", "3, 3")],
            &[("content-length", "+3")],
        ] {
            let mut pairs = vec![("host", "a")];
            pairs.extend_from_slice(bad);
            assert!(
                matches!(verdict(&pairs), Err(HygieneError::BadFraming(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn host_and_authorization_are_single_and_host_is_required() {
        assert!(verdict(&[("host", "a"), ("host", "b")]).is_err());
        assert!(
            verdict(&[
                ("host", "a"),
                ("authorization", "x"),
                ("authorization", "y")
            ])
            .is_err()
        );
        assert!(verdict(&[("host", "u@a")]).is_err());
        assert!(verdict(&[]).is_err());
        assert!(check(&request(Version::HTTP_10, &[]), &[]).is_ok());
        assert!(verdict(&[("host", "a"), ("x-v", "caf\u{e9}")]).is_err());
        assert!(verdict(&[("host", "a"), ("x-v", "a\tb c")]).is_ok());
    }

    #[test]
    fn only_allowed_hosts_are_served() {
        let allowed = ["api.example.com".to_owned(), "[::1]".to_owned()];
        let r = |host: &'static str| check(&request(Version::HTTP_11, &[("host", host)]), &allowed);
        assert!(r("api.example.com").is_ok());
        assert!(r("API.example.com:8443").is_ok());
        assert!(r("[::1]:80").is_ok());
        assert_eq!(r("evil.example"), Err(HygieneError::MisdirectedHost));
    }
}
