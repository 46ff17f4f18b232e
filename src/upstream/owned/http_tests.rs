//! The HTTP/1.1 the owned connections speak, against scripted backends (byte for byte) and
//! hyper's own server.

use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use tokio::net::TcpListener;

use super::tests::{pools, send};
use super::*;

/// What a scripted backend does with the request it reads next (heads only).
#[derive(Clone, Copy)]
enum Act {
    /// Writes these bytes and keeps the connection.
    Answer(&'static [u8]),
    /// Writes these bytes and closes.
    AnswerAndClose(&'static [u8]),
    /// Closes without answering (a backend's idle timeout firing as the request came).
    Close,
}

/// A backend that does `acts` in order, one per request, across its connections; returns
/// its address and the number of connections it accepted.
fn scripted(acts: Vec<Act>) -> (String, Arc<AtomicUsize>) {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let authority = std_listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut acts = acts.into_iter();
        'connections: for stream in std_listener.incoming() {
            let mut stream = stream.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let mut read = Vec::new();
            loop {
                while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut buf = [0u8; 4096];
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => continue 'connections,
                        Ok(n) => read.extend_from_slice(&buf[..n]),
                    }
                }
                let end = read.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                read.drain(..end + 4);
                match acts.next() {
                    Some(Act::Answer(bytes)) => stream.write_all(bytes).unwrap(),
                    Some(Act::AnswerAndClose(bytes)) => {
                        stream.write_all(bytes).unwrap();
                        continue 'connections;
                    }
                    Some(Act::Close) | None => continue 'connections,
                }
            }
        }
    });
    (authority, accepted)
}

async fn call(
    pools: &Arc<Pools>,
    method: Method,
    authority: &str,
    body: Body,
) -> Result<(StatusCode, String), Failure> {
    send(pools, method, format!("http://{authority}/echo?x=1"), body).await
}

async fn ok(pools: &Arc<Pools>, authority: &str) -> String {
    let (status, body) = call(pools, Method::GET, authority, Body::empty())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    body
}

#[tokio::test]
async fn answers_of_every_framing_are_read_and_only_the_reusable_reused() {
    let (authority, accepted) = scripted(vec![
        Act::Answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
        Act::Answer(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n"),
        Act::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        Act::Answer(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbye"),
        Act::AnswerAndClose(b"HTTP/1.1 200 OK\r\n\r\nuntil the end"),
        Act::Answer(b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nold"),
        Act::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlast"),
    ]);
    let pools = pools();
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push((
            ok(&pools, &authority).await,
            accepted.load(Ordering::SeqCst),
        ));
    }
    let expected = [
        ("ok", 1),
        ("abc", 1),
        ("", 1),
        ("bye", 1), // said `close`: the next call opens another
        ("until the end", 2),
        ("old", 3), // HTTP/1.0 without keep-alive
        ("last", 4),
    ];
    let seen: Vec<_> = seen.iter().map(|(b, n)| (b.as_str(), *n)).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_head_request_reads_no_body_and_keeps_its_connection() {
    let (authority, accepted) = scripted(vec![
        Act::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
        Act::Answer(b"HTTP/1.1 204 No Content\r\n\r\n"),
        Act::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"),
    ]);
    let pools = pools();
    let (status, body) = call(&pools, Method::HEAD, &authority, Body::empty())
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    let (status, _) = call(&pools, Method::GET, &authority, Body::empty())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ok(&pools, &authority).await, "hello");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_broken_answer_is_a_typed_failure() {
    // Malformed answers are `BadResponse`; answers cut short by the connection's end are a
    // broken connection (`Reset`, retried on an idempotent call), as hyper classed them.
    let cases: [(&'static [u8], bool); 5] = [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", false),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            false,
        ),
        (b"HTTP/1.1 200 OK\r\ncontent-len", false),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            true,
        ),
    ];
    for (answer, malformed) in cases {
        let (authority, _) = scripted(vec![Act::AnswerAndClose(answer)]);
        let failure = call(&pools(), Method::GET, &authority, Body::empty()).await;
        match failure {
            Err(Failure::Exchange(e)) => assert_eq!(e.is_malformed(), malformed, "{e}"),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(answer)),
        }
    }
}

/// A backend that closes a kept-alive connection just as the next request arrives answers
/// nothing: a bodiless GET goes again on a new connection, a POST fails (it may have been
/// acted on).
#[tokio::test]
async fn a_request_the_backend_closed_on_is_sent_again_only_when_safe() {
    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let (authority, accepted) = scripted(vec![
        Act::Answer(answer),
        Act::Close,
        Act::Answer(answer),
        Act::Close,
    ]);
    let pools = pools();
    assert_eq!(ok(&pools, &authority).await, "ok");
    assert_eq!(ok(&pools, &authority).await, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    let post = call(&pools, Method::POST, &authority, Body::from("x")).await;
    assert!(matches!(post, Err(Failure::Exchange(_))), "{post:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// Request bodies go out framed so that a real server (hyper's) reads them whole: a known
/// length as `content-length`, a stream of unknown length chunked, an empty POST with
/// `content-length: 0`.
#[tokio::test]
async fn request_bodies_reach_a_real_server_whole() {
    use hyper::service::service_fn;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let expected_host = authority.clone();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let echo = service_fn(move |request: Request<Incoming>| {
            // Every request names the instance it was sent to, once.
            let hosts: Vec<_> = request.headers().get_all(header::HOST).iter().collect();
            assert_eq!(hosts, [expected_host.as_str()]);
            echo(request)
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), echo)
            .await
            .unwrap();
    });
    let pools = pools();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let streamed = Body::new(http_body_util::StreamBody::new(stream));
    let feeder = tokio::spawn(async move {
        for piece in ["one ", "two ", "three"] {
            tx.send(Ok(Frame::data(Bytes::from(piece)))).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let big = "x".repeat(200_000);
    let cases = [
        (
            Method::POST,
            Body::from("hello"),
            "length 5: hello".to_owned(),
        ),
        (Method::PUT, streamed, "chunked: one two three".to_owned()),
        (Method::POST, Body::empty(), "length 0: ".to_owned()),
        (Method::GET, Body::empty(), "none: ".to_owned()),
        (
            Method::POST,
            Body::from(big.clone()),
            format!("length 200000: {big}"),
        ),
    ];
    for (method, body, expected) in cases {
        let (status, answer) = call(&pools, method, &authority, body).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, expected);
    }
    feeder.await.unwrap();
    drop(pools);
    server.await.unwrap();
}

/// Answers with how the request's body was framed and the body itself.
async fn echo(
    request: Request<Incoming>,
) -> Result<Response<http_body_util::Full<Bytes>>, hyper::Error> {
    assert_eq!(request.uri().to_string(), "/echo?x=1");
    let framing = match request.headers().get(header::CONTENT_LENGTH) {
        Some(len) => format!("length {}", len.to_str().unwrap()),
        None if request.headers().contains_key(header::TRANSFER_ENCODING) => "chunked".to_owned(),
        None => "none".to_owned(),
    };
    let body = request.into_body().collect().await?.to_bytes();
    let answer = format!("{framing}: {}", String::from_utf8_lossy(&body));
    Ok::<_, hyper::Error>(Response::new(http_body_util::Full::new(Bytes::from(
        answer,
    ))))
}

/// Reads grow only for answers that fill them: small answers that happen to fill the tail
/// of a buffer earlier ones used do not (they did, and 64 proxied connections held 13 MiB
/// of read buffers more than hyper's client).
#[tokio::test]
async fn reads_grow_for_big_answers_only() {
    // 3,001 bytes an answer: the third of each 8 KiB buffer finds 2,190 bytes of room.
    let small: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2960\r\n\r\n";
    let small = [small, &[b'x'; 2960]].concat().leak();
    let big: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 300000\r\n\r\n";
    let big = [big, &[b'y'; 300_000]].concat().leak();
    let mut acts = vec![Act::Answer(small); 100];
    acts.push(Act::Answer(big));
    let (authority, accepted) = scripted(acts);
    let pools = pools();
    let read_size = |pools: &Arc<Pools>| {
        let authority: Authority = authority.parse().unwrap();
        let mut idle = pools.local();
        Idle::of(&mut idle, &authority)
            .conns
            .back()
            .unwrap()
            .read_size()
    };
    for _ in 0..100 {
        assert_eq!(ok(&pools, &authority).await.len(), 2960);
    }
    assert_eq!(read_size(&pools), 8 * 1024);
    assert_eq!(ok(&pools, &authority).await.len(), 300_000);
    assert!(read_size(&pools) > 8 * 1024);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// A backend that refuses an upload from its head (413) and closes without reading the
/// body: the client gets the 413, not a broken-connection error, and no stall.
#[tokio::test]
async fn an_answer_before_the_body_is_read_still_comes_through() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let authority = std_listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = std_listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        let refusal =
            b"HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 4\r\n\r\nbig!";
        stream.write_all(refusal).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        // Reads a little of the body, then closes with the rest unread.
        let _ = stream.read(&mut [0u8; 1024]);
    });
    let upload = Body::from(vec![b'u'; 8 * 1024 * 1024]);
    let pools = pools();
    // `call` fails the test if the answer takes over 5 s.
    let (status, body) = call(&pools, Method::POST, &authority, upload)
        .await
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "big!")
    );
}
