//! Connection limits over raw sockets: a connection that never talks or sits idle is closed,
//! a trickled body is answered 408, a client that pipelines without reading is cut off, and
//! the per-IP cap closes the connection over it at accept (and counts it).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::harness::Stack;

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n";

/// Reads until the server closes the connection (EOF or reset), for at most `limit`.
/// `None` when it was still open then.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    closed.ok().map(|()| received)
}

/// Sends one request and reads its answer's head (the connection stays open).
async fn served(stream: &mut TcpStream) -> bool {
    if stream.write_all(HEALTHZ).await.is_err() {
        return false;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.is_ok() && head.starts_with(b"HTTP/1.1 200")
}

#[tokio::test]
async fn a_silent_connection_and_an_idle_one_are_closed() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.limits.first_byte_timeout = Duration::from_millis(300);
        config.limits.idle_timeout = Duration::from_millis(400);
    })
    .await;
    let addr = stack.bff.addr();

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let closed = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    let received = closed.expect("a silent connection was still open after 5 s");
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after {elapsed:?}"
    );

    // Idle between requests: the time counts from the end of the answer.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(
        served(&mut idle).await,
        "the first request was not answered"
    );
    let answered = Instant::now();
    let closed = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    let elapsed = answered.elapsed();
    closed.expect("an idle connection was still open after 5 s");
    assert!(
        elapsed >= Duration::from_millis(300),
        "closed after {elapsed:?}"
    );
    println!("silent and idle connections closed; idle after {elapsed:?}");
}

#[tokio::test]
async fn a_body_trickled_byte_by_byte_is_answered_408_and_closed() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.limits.body_read_timeout = Duration::from_millis(500);
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    let stream = TcpStream::connect(stack.bff.addr()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.unwrap();
    // One byte every 200 ms: the 100-byte body would take 20 s.
    let trickle = tokio::spawn(async move {
        for _ in 0..50 {
            if write.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = Instant::now();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut response)).await;
    trickle.abort();
    let text = String::from_utf8_lossy(&response);
    assert!(read.is_ok(), "no answer and still open after 5 s: {text}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400),
        "answered after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_client_that_pipelines_and_never_reads_is_cut_off() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.limits.write_timeout = Duration::from_millis(300);
    })
    .await;
    let socket = TcpSocket::new_v4().unwrap();
    // A small window so the server's answers back up quickly.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(stack.bff.addr()).await.unwrap();
    let batch = HEALTHZ.repeat(100);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0usize;
    let mut cut_off = false;
    // Without the write timeout the server stops reading once its answers back up, and
    // these writes block until the deadline.
    for _ in 0..20_000 {
        match tokio::time::timeout_at(deadline, stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += 100,
            Ok(Err(_)) => {
                cut_off = true;
                break;
            }
            Err(_) => break,
        }
    }
    assert!(
        cut_off,
        "still open after {sent} pipelined requests and 20 s"
    );
    println!("cut off after {sent} pipelined requests");
}

#[tokio::test]
async fn the_per_ip_cap_closes_the_next_connection_at_accept() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.limits.max_connections_per_ip = 2;
    })
    .await;
    let addr: SocketAddr = stack.bff.addr();
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(served(&mut first).await && served(&mut second).await);

    let mut third = TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(HEALTHZ).await;
    let closed = read_until_closed(&mut third, Duration::from_secs(5)).await;
    let received = closed.expect("the connection over the cap was still open after 5 s");
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );

    // A closed connection gives its place back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = false;
    while !again && Instant::now() < deadline {
        let mut next = TcpStream::connect(addr).await.unwrap();
        again = served(&mut next).await;
        if !again {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(again, "no place came free after a connection closed");

    let metrics = stack.metrics().await;
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("manifold_connections_refused_total{reason=\"per_ip\"}"))
        .expect("the refusals are on /metrics");
    let n: u64 = refused.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{refused}");
}
