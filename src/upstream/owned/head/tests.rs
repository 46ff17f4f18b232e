use super::*;

fn head(bytes: &[u8]) -> (Option<Head>, BytesMut) {
    let mut buf = BytesMut::from(bytes);
    let parsed = parse_head(&mut buf).unwrap();
    (parsed, buf)
}

/// The values of every header named `name` (case-blind), in the order they came.
fn values<'a>(head: &'a Head, name: &str) -> Vec<&'a [u8]> {
    head.fields
        .iter()
        .filter(|field| head.bytes[field.name()].eq_ignore_ascii_case(name.as_bytes()))
        .map(|field| &head.bytes[field.value()])
        .collect()
}

fn framed(method: Method, bytes: &[u8]) -> Result<(Framing, bool), ExchangeError> {
    let (head, _) = head(bytes);
    head.expect("a whole head").framing(&method)
}

#[test]
fn a_head_is_parsed_once_whole_and_the_body_is_left_in_the_buffer() {
    let whole = b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\nX-A: 1\r\nx-a: 2\r\ncontent-length: 4\r\n\r\nnope";
    for cut in 1..whole.len() - 4 {
        assert!(head(&whole[..cut]).0.is_none(), "parsed at {cut}");
    }
    let (parsed, rest) = head(whole);
    let parsed = parsed.unwrap();
    assert_eq!(parsed.status(), StatusCode::NOT_FOUND);
    assert_eq!(values(&parsed, "x-a"), [b"1", b"2"]);
    assert_eq!(values(&parsed, "Content-Type"), [b"text/plain"]);
    assert!(values(&parsed, "x-b").is_empty());
    assert_eq!(&rest[..], b"nope");

    let response = parsed.into_response(());
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(response.headers()["content-type"], "text/plain");
    let values: Vec<_> = response.headers().get_all("x-a").iter().collect();
    assert_eq!(values, ["1", "2"]);
    assert_eq!(response.headers().len(), 4);
    assert!(response.headers().capacity() >= 4 + ADDED_HEADERS);
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
    // A whole head over the limit, come in one read.
    let long = format!(
        "HTTP/1.1 200 OK\r\nx-long: {}\r\n\r\n",
        "v".repeat(MAX_HEAD)
    );
    let e = parse_head(&mut BytesMut::from(long.as_bytes())).unwrap_err();
    assert!(e.is_malformed(), "{e}");
}

/// `parse_head` of an answer whose one header line is `line`.
fn one_header(line: &[u8]) -> Result<Option<Head>, ExchangeError> {
    let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
    bytes.extend_from_slice(line);
    bytes.extend_from_slice(b"\r\n\r\n");
    parse_head(&mut BytesMut::from(&bytes[..]))
}

/// The header map is built from the head after it was framed, and leaves out what `http`
/// refuses: that is safe only while httparse refuses the same bytes first.
#[test]
fn httparse_and_http_accept_the_same_bytes() {
    for b in 0..=255u8 {
        // A colon ends the name (the rest is the value): no name to compare.
        if b != b':' {
            let parsed = one_header(&[b'x', b, b'y', b':', b' ', b'v']);
            let accepted = HeaderName::from_bytes(&[b'x', b, b'y']).is_ok();
            assert_eq!(parsed.is_ok(), accepted, "name byte {b:#04x}");
            if let Ok(Some(head)) = parsed {
                assert_eq!(head.header_map(0).len(), 1, "name byte {b:#04x}");
            }
        }

        // A line end inside a value ends it (a folded line is refused): no value to compare.
        if b == b'\r' || b == b'\n' {
            continue;
        }
        let parsed = one_header(&[b'x', b':', b' ', b'a', b, b'z']);
        let accepted = HeaderValue::from_bytes(&[b'a', b, b'z']).is_ok();
        assert_eq!(parsed.is_ok(), accepted, "value byte {b:#04x}");
        if let Ok(Some(head)) = parsed {
            assert_eq!(head.header_map(0)["x"].as_bytes(), [b'a', b, b'z']);
        }
    }
}

#[test]
fn the_body_is_framed_as_rfc_9112_says() {
    use Framing::*;
    let ok = |extra: &str| format!("HTTP/1.1 200 OK\r\n{extra}\r\n");
    let get = |extra: &str| framed(Method::GET, ok(extra).as_bytes()).unwrap();
    assert_eq!(get("content-length: 5\r\n"), (Length(5), true));
    assert_eq!(get("Content-Length: 5\r\n"), (Length(5), true));
    assert_eq!(get("content-length: 5, 5\r\n"), (Length(5), true));
    assert_eq!(
        get("content-length: 5\r\nContent-Length: 5\r\n"),
        (Length(5), true)
    );
    // Names as long as the framing ones, but others.
    assert_eq!(
        get(
            "connectiom: close\r\ncontent-lengtz: 9\r\ntransfer-encodinf: chunked\r\ncontent-length: 1\r\n"
        ),
        (Length(1), true)
    );
    assert_eq!(get("content-length: 0\r\n"), (Done, true));
    assert_eq!(get(""), (Close, false));
    assert_eq!(
        get("transfer-encoding: chunked\r\n"),
        (Chunked(Chunk::Size), true)
    );
    assert_eq!(
        get("Transfer-Encoding: gzip, Chunked\r\n"),
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
    assert_eq!(
        get("Connection: close\r\ncontent-length: 1\r\n"),
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
