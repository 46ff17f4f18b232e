use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use tokio::net::TcpListener;

use super::*;

/// An HTTP/1.1 backend on its own thread and runtime (so that the client's runtime holds
/// only the client's tasks), counting the connections it accepts. `/close` answers and
/// then closes the connection without saying so (as a backend's idle timeout does);
/// `/stream` answers a chunked body.
struct Backend {
    authority: String,
    accepted: Arc<AtomicUsize>,
    closed: tokio::sync::mpsc::UnboundedReceiver<()>,
}

fn backend() -> Backend {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let authority = std_listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let closed_tx = closed_tx.clone();
                tokio::spawn(serve(stream, closed_tx));
            }
        });
    });
    Backend {
        authority,
        accepted,
        closed,
    }
}

/// Answers requests (heads only: the tests send no bodies) until the client closes; after
/// `/close` it closes its side, says so, and reads until the client closes too.
async fn serve(mut stream: TcpStream, closed: tokio::sync::mpsc::UnboundedSender<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read.extend_from_slice(&buf[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&read[..end]).into_owned();
        read.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        let answer: &[u8] = if path == "/stream" {
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              7\r\nchunk0 \r\n7\r\nchunk1 \r\n7\r\nchunk2 \r\n0\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
        };
        if stream.write_all(answer).await.is_err() {
            return;
        }
        if path == "/close" {
            let _ = stream.shutdown().await;
            let _ = closed.send(());
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            return;
        }
    }
}

async fn get(pools: &Arc<Pools>, authority: &str, path: &str) -> Result<String, Failure> {
    let request = Request::get(format!("http://{authority}{path}"))
        .body(Body::empty())
        .unwrap();
    let response = pools.send(request).await?;
    let body = response.into_body().collect().await;
    Ok(String::from_utf8(body.map_err(Failure::Exchange)?.to_bytes().to_vec()).unwrap())
}

/// A call that must succeed with the backend's plain answer.
async fn assert_hello(pools: &Arc<Pools>, backend: &Backend, path: &str) {
    assert_eq!(get(pools, &backend.authority, path).await.unwrap(), "hello");
}

fn pools() -> Arc<Pools> {
    Arc::new(Pools::new(Duration::from_secs(2), 8))
}

#[tokio::test]
async fn calls_in_turn_share_one_connection_and_spawn_no_task() {
    let backend = backend();
    let pools = pools();
    for path in ["/a", "/stream", "/b", "/stream", "/c"] {
        let body = get(&pools, &backend.authority, path).await.unwrap();
        let expected = if path == "/stream" {
            "chunk0 chunk1 chunk2 "
        } else {
            "hello"
        };
        assert_eq!(body, expected);
    }
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);
    // hyper-util's pool would keep a task per connection; here the connection waits on
    // the idle list and nothing runs.
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_alive_tasks(), 0);
}

/// A thread of its own that makes a call each time it is asked, on `runtime`'s handle or
/// else on a current-thread runtime of its own, and stays alive (so that another thread
/// is not given its thread-local lists) until stopped.
struct Caller {
    calls: std::sync::mpsc::Sender<()>,
    answers: std::sync::mpsc::Receiver<String>,
    thread: std::thread::JoinHandle<()>,
}

impl Caller {
    fn start(
        pools: &Arc<Pools>,
        backend: &Backend,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Self {
        let (pools, authority) = (Arc::clone(pools), backend.authority.clone());
        let (calls, asked) = std::sync::mpsc::channel::<()>();
        let (answered, answers) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let own = runtime.is_none().then(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
            });
            let handle = runtime.unwrap_or_else(|| own.as_ref().unwrap().handle().clone());
            for () in asked {
                let call = async {
                    tokio::time::timeout(Duration::from_secs(5), get(&pools, &authority, "/")).await
                };
                let answer = match &own {
                    Some(own) => own.block_on(call),
                    None => handle.block_on(call),
                };
                answered
                    .send(answer.expect("answered in time").unwrap())
                    .unwrap();
            }
        });
        Caller {
            calls,
            answers,
            thread,
        }
    }

    fn call(&self) {
        self.calls.send(()).unwrap();
        assert_eq!(self.answers.recv().unwrap(), "hello");
    }

    fn stop(self) {
        drop(self.calls);
        self.thread.join().unwrap();
    }
}

/// On a multi-thread runtime, an exchange given back on one thread is taken by a call on
/// another whose own list is empty, instead of a new connection.
#[test]
fn a_thread_without_idle_connections_takes_another_threads() {
    let backend = backend();
    let pools = pools();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let first = Caller::start(&pools, &backend, Some(runtime.handle().clone()));
    let second = Caller::start(&pools, &backend, Some(runtime.handle().clone()));
    first.call();
    second.call();
    first.call();
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);
    first.stop();
    second.stop();
}

/// Under thread-per-core (a current-thread runtime per worker) a worker never takes
/// another's connection: it answers to the other runtime's I/O driver, which this
/// worker does not run. Each keeps its own.
#[test]
fn a_current_thread_runtime_keeps_to_its_own_connections() {
    let backend = backend();
    let pools = pools();
    let first = Caller::start(&pools, &backend, None);
    let second = Caller::start(&pools, &backend, None);
    first.call();
    second.call();
    first.call();
    second.call();
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 2);
    first.stop();
    second.stop();
}

#[tokio::test]
async fn a_connection_the_backend_closed_while_idle_is_replaced() {
    let mut backend = backend();
    let pools = pools();
    assert_hello(&pools, &backend, "/close").await;
    backend.closed.recv().await.unwrap();
    // Let the runtime's I/O driver see the close, as any idle period would.
    tokio::task::yield_now().await;
    assert_hello(&pools, &backend, "/again").await;
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 2);
    assert_hello(&pools, &backend, "/reused").await;
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    let backend = backend();
    let pools = pools();
    let request = Request::get(format!("http://{}/stream", backend.authority))
        .body(Body::empty())
        .unwrap();
    let mut body = pools.send(request).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "chunk0 ");
    drop(body);
    assert_hello(&pools, &backend, "/a").await;
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn no_listener_is_a_connect_failure() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let failure = get(&pools(), &format!("127.0.0.1:{port}"), "/").await;
    assert!(matches!(failure, Err(Failure::Connect(_))), "{failure:?}");
}

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
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{authority}/echo?x=1"))
        .body(body)
        .unwrap();
    let response = pools.send(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await;
    let bytes = body.map_err(Failure::Exchange)?.to_bytes();
    Ok((status, String::from_utf8(bytes.to_vec()).unwrap()))
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
