use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Method, StatusCode};
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

/// One call, its answer's status and body read whole; one that takes over 5 s fails the
/// test (a codec waiting for bytes that never come), it does not hang it.
pub(super) async fn send(
    pools: &Arc<Pools>,
    method: Method,
    uri: String,
    body: Body,
) -> Result<(StatusCode, String), Failure> {
    let call = async {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .unwrap();
        let response = pools.send(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await;
        let bytes = body.map_err(Failure::Exchange)?.to_bytes();
        Ok((status, String::from_utf8(bytes.to_vec()).unwrap()))
    };
    tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("answered in time")
}

async fn get(pools: &Arc<Pools>, authority: &str, path: &str) -> Result<String, Failure> {
    let uri = format!("http://{authority}{path}");
    let (_, body) = send(pools, Method::GET, uri, Body::empty()).await?;
    Ok(body)
}

/// A call that must succeed with the backend's plain answer.
async fn assert_hello(pools: &Arc<Pools>, backend: &Backend, path: &str) {
    assert_eq!(get(pools, &backend.authority, path).await.unwrap(), "hello");
}

pub(super) fn pools() -> Arc<Pools> {
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

/// An answer read to the socket's end leaves the idle connection not marked readable, so
/// taking it again asks the kernel nothing (before, every reused exchange began with a
/// `recvfrom` answering `EAGAIN`); a close after that still marks it (the test above).
#[tokio::test]
async fn an_idle_connection_is_not_left_marked_readable() {
    let backend = backend();
    let pools = pools();
    assert_hello(&pools, &backend, "/a").await;
    let authority: Authority = backend.authority.parse().unwrap();
    let mut conn = pools.take(&authority).expect("the connection is idle");
    assert!(!conn.is_marked_readable());
    assert!(conn.is_quiet());
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
