//! The benchmark's floor proxy does what `bench/run.py` measures it doing: a request under its
//! prefix goes to the backend's path, the backend's answer comes back whole, over one
//! keep-alive connection both ways, and anything else is a 404 that keeps the connection.
//! Run for both of its runtimes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The floor proxy's process, stopped by its PID when the test ends.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A backend that answers every request with its own request line in a JSON body, and
/// notes the lines and how many connections it accepted.
async fn backend(seen: Arc<Mutex<Vec<String>>>, connections: Arc<Mutex<usize>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            *connections.lock().unwrap() += 1;
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                loop {
                    let Some(end) = head_end(&buffer) else {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                    buffer.drain(..end);
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    seen.lock().unwrap().push(head);
                    let body = format!("{{\"line\":\"{line}\"}}");
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// Starts the floor proxy on a free port of 127.0.0.1 and reads where it listens.
fn start(upstream: SocketAddr, runtime: &str) -> (Proxy, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_floor-proxy"))
        .args(["127.0.0.1:0", &upstream.to_string(), runtime, "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    let proxy = Proxy(child);
    let addr = said
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the floor proxy said {said:?}"));
    (proxy, addr)
}

/// One answer off `stream`: its head and its `content-length` body.
async fn answer(stream: &mut TcpStream) -> (String, String) {
    let mut buffer = Vec::new();
    let deadline = Duration::from_secs(10);
    loop {
        if let Some(end) = head_end(&buffer) {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .expect("an answer with a content-length");
            if buffer.len() >= end + length {
                assert_eq!(buffer.len(), end + length, "nothing after the answer");
                let body = String::from_utf8_lossy(&buffer[end..]).into_owned();
                return (head, body);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(deadline, stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "the proxy closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

async fn proxies_under_its_prefix_and_refuses_the_rest(runtime: &str) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(Mutex::new(0));
    let upstream = backend(seen.clone(), connections.clone()).await;
    let (_proxy, listen) = start(upstream, runtime);
    let mut client = TcpStream::connect(listen).await.unwrap();

    for id in ["7", "42", "7"] {
        let request = format!("GET /api/users/{id} HTTP/1.1\r\nhost: gateway\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let (head, body) = answer(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, format!("{{\"line\":\"GET /users/{id} HTTP/1.1\"}}"));
    }
    // Off the prefix: 404 on the same connection, and the backend never asked.
    client
        .write_all(b"GET /elsewhere HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = answer(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    assert_eq!(body, "");
    client
        .write_all(b"GET /api/users/9 HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .unwrap();
    let (_, body) = answer(&mut client).await;
    assert_eq!(body, "{\"line\":\"GET /users/9 HTTP/1.1\"}");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen.iter().all(|h| h.contains("\r\nhost: users\r\n")),
        "{seen:?}"
    );
    // One upstream connection, kept alive for all four calls.
    assert_eq!(*connections.lock().unwrap(), 1);
}

#[tokio::test]
async fn work_stealing() {
    proxies_under_its_prefix_and_refuses_the_rest("work-stealing").await;
}

#[tokio::test]
async fn thread_per_core() {
    proxies_under_its_prefix_and_refuses_the_rest("thread-per-core").await;
}
