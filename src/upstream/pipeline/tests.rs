//! The heads an owned connection writes, against the heads hyper's path builds.

use std::sync::Arc;

use super::*;
use crate::config::UpstreamConfig;
use crate::request::{Deadline, Identity, Principal};
use crate::upstream::owned::{Pools, Sending};

/// A head's request line, and its headers (names lowercased) in order of name.
fn parsed(head: &[u8]) -> (String, Vec<(String, String)>) {
    let text = std::str::from_utf8(head).unwrap();
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");
    let mut lines = text.trim_end().split("\r\n");
    let line = lines.next().unwrap().to_owned();
    let mut headers: Vec<_> = lines
        .map(|l| {
            let (name, value) = l.split_once(": ").unwrap();
            (name.to_ascii_lowercase(), value.to_owned())
        })
        .collect();
    headers.sort();
    (line, headers)
}

/// A buffered call's head written straight (owned connections) is, header for header,
/// the head of the request hyper's path builds for it: with and without a body and
/// extra headers, under a base path, with an identity, and with a call's own header
/// that one every call carries replaces.
#[tokio::test]
async fn a_written_head_is_the_head_of_the_request_built_for_hyper() {
    let config = UpstreamConfig::new("http://127.0.0.1:9/api/");
    let upstream = Upstream::new("orders", &config).unwrap();
    let instances = upstream.instances().unwrap();
    let lease = upstream.lease(instances, &[], Instant::now()).unwrap();
    let origin = lease.instance.origin.as_ref().unwrap();
    let host = HeaderValue::from_static("127.0.0.1:9");
    let identity = Identity::new(Principal::User("42".into()), vec!["a".into()], None);
    let identity = Some(Arc::new(identity.unwrap()));
    let ctx = CallContext::new(
        identity,
        Deadline::after(Duration::from_secs(1)),
        "r-1".into(),
    );
    let timeout = Duration::from_millis(750);
    let extra = [
        ("idempotency-key", "k-1"),
        ("x-request-id", "forged"),
        ("content-length", "99"),
    ];
    let calls = [
        (Method::GET, None, &extra[..0]),
        (Method::DELETE, None, &extra[..1]),
        (Method::POST, None, &extra[..0]),
        (
            Method::POST,
            Some(Bytes::from_static(b"{\"a\":1}")),
            &extra[..],
        ),
        (Method::PUT, Some(Bytes::from_static(b"[]")), &extra[..1]),
    ];
    for (method, body, headers) in calls {
        let call = Call {
            method,
            path_and_query: "/orders/o%201?x=1",
            body,
            headers,
            idempotency: Idempotency::Idempotent,
        };
        let span = ClientSpan::start(&ctx, &call.method);
        let request = upstream.hyper_request(&lease, &ctx, &span, &call, timeout);
        let request = request.unwrap();
        let built = Pools::head_of(&request, &host);
        // Sent as the same body is: `Body::from` the call's bytes, or empty.
        let sending = Sending::of(request.body());
        let carried = Carried::new(&ctx, &span, timeout);
        let written = Upstream::written_head(&host, origin.prefix(), &call, &carried, sending);
        let (line, headers) = parsed(&written);
        assert_eq!(
            (line.clone(), headers.clone()),
            parsed(&built),
            "{}",
            call.method
        );
        assert!(line.ends_with(" /api/orders/o%201?x=1 HTTP/1.1"), "{line}");
        assert!(headers.contains(&("x-request-id".into(), "r-1".into())));
        assert!(headers.contains(&("x-user-id".into(), "42".into())));
    }
}

/// A streamed exchange's head written straight (owned connections) is, header for
/// header, the head of the request hyper's path builds for it: bodies empty, of a known
/// length and chunked, a header given twice, and client headers that the connection's
/// framing or a header every call carries replaces.
#[tokio::test]
async fn a_streamed_head_is_the_head_of_the_request_built_for_hyper() {
    use http::header::{self, HeaderMap};

    use crate::upstream::wire::Outgoing;

    let config = UpstreamConfig::new("http://127.0.0.1:9/api/");
    let upstream = Upstream::new("web", &config).unwrap();
    let lease = upstream
        .lease(upstream.instances().unwrap(), &[], Instant::now())
        .unwrap();
    let origin = lease.instance.origin.as_ref().unwrap();
    let host = HeaderValue::from_static("127.0.0.1:9");
    let identity = Identity::new(Principal::User("42".into()), vec!["a".into()], None);
    let ctx = CallContext::new(
        Some(Arc::new(identity.unwrap())),
        Deadline::after(Duration::from_secs(1)),
        "r-1".into(),
    );
    let timeout = Duration::from_millis(750);
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("accept", "text/html"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
        ("x-request-id", "forged"),
        ("x-user-id", "forged"),
        ("content-length", "99"),
        ("transfer-encoding", "gzip"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from("x"))]);
    let bodies = [
        (Method::GET, Body::empty(), Sending::Length(0)),
        (Method::POST, Body::empty(), Sending::Length(0)),
        (Method::PUT, Body::from("hello"), Sending::Length(5)),
        (Method::POST, Body::from_stream(chunks), Sending::Chunked),
    ];
    for (method, body, sending) in bodies {
        assert_eq!(Sending::of(&body), sending);
        let span = ClientSpan::start(&ctx, &method);
        let path = "/v1/orders?page=2";
        let outgoing = Outgoing {
            method: method.clone(),
            path_and_query: path,
            headers: headers.clone(),
            body,
        };
        let request = upstream.request(lease.instance, &ctx, &span, outgoing, timeout);
        let built = Pools::head_of(&request.unwrap(), &host);
        let carried = Carried::new(&ctx, &span, timeout);
        let target = (&method, path);
        let written =
            Upstream::streamed_head(&host, origin.prefix(), target, &headers, &carried, sending);
        let (line, written) = parsed(&written);
        assert_eq!((line.clone(), written.clone()), parsed(&built), "{method}");
        assert_eq!(line, format!("{method} /api/v1/orders?page=2 HTTP/1.1"));
        for expected in [
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("host", "127.0.0.1:9"),
            ("x-request-id", "r-1"),
            ("x-user-id", "42"),
        ] {
            let expected = (expected.0.to_owned(), expected.1.to_owned());
            assert!(written.contains(&expected), "{expected:?} in {written:?}");
        }
        let framing = written.iter().filter(|(name, _)| {
            *name == header::CONTENT_LENGTH.as_str() || *name == header::TRANSFER_ENCODING.as_str()
        });
        assert!(framing.count() <= 1, "{written:?}");
    }
}

/// What cannot go on the wire as it is, is refused before anything is sent.
#[tokio::test]
async fn a_path_or_value_that_would_break_the_head_is_refused() {
    let upstream = Upstream::new("orders", &UpstreamConfig::new("http://127.0.0.1:9")).unwrap();
    let call = |path_and_query, headers| Call {
        method: Method::GET,
        path_and_query,
        body: None,
        headers,
        idempotency: Idempotency::Idempotent,
    };
    assert!(
        upstream
            .check(&call("/orders/1?x=%20", &[("k", "v\tw")]))
            .is_ok()
    );
    for path in ["/a b", "/a\r\nx: y", "orders", "/a#b", "/\u{e9}"] {
        let refused = upstream.check(&call(path, &[])).unwrap_err();
        assert_eq!(refused.kind, UpstreamErrorKind::Rejected(400), "{path:?}");
    }
    let refused = upstream
        .check(&call("/a", &[("k", "v\r\nx: y")]))
        .unwrap_err();
    assert_eq!(refused.kind, UpstreamErrorKind::Rejected(400));
}

/// A buffered call's future, which a home query holds eight of at once and moves on its way
/// in, stays small: the hyper path of `https://` upstreams is boxed, or its future alone made
/// every call's 2.5 KiB (1.9 KiB without it).
#[tokio::test]
async fn a_buffered_call_future_is_under_two_kib() {
    let config = UpstreamConfig::new("http://127.0.0.1:9/api/");
    let upstream = Upstream::new("orders", &config).unwrap();
    let deadline = Deadline::after(std::time::Duration::from_secs(1));
    let ctx = CallContext::new(None, deadline, "id".into());
    let call = upstream.get(&ctx, "/x");
    let size = std::mem::size_of_val(&call);
    assert!(size <= 2048, "a call's future is {size} bytes");
}
