//! A refusal answered before the request body was read (401, 429) must not cost the client
//! its keep-alive connection: mobile HTTP clients pool connections, and a connection closed
//! without `Connection: close` makes their next request fail.

use std::time::Duration;

use demo_services::Service;
use manifold::config::{CostKind, KeyKind, RuleConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::Stack;

/// One request on `stream`, and the status and headers of its answer (the body is read to
/// its declared length).
async fn exchange(stream: &mut TcpStream, host: &str, token: Option<&str>) -> (u16, String) {
    // Larger than what one read brings in: the body is still arriving when the refusal is
    // answered (the query padded with JSON whitespace, under the 64 KiB body limit).
    let body = format!(r#"{{"query":"{{ __typename }}"{}}}"#, " ".repeat(48 * 1024));
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST /graphql HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         {auth}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let read = async {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.expect("the answer is read");
            assert!(n > 0, "the connection closed before an answer: {head:?}");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("a content length");
        let mut rest = vec![0u8; length];
        stream
            .read_exact(&mut rest)
            .await
            .expect("the answer's body");
        head
    };
    let head = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer within 5 s");
    let status = head[9..12].parse().expect("a status");
    (status, head)
}

#[tokio::test]
async fn refusals_with_a_body_keep_the_connection_for_the_next_request() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.rate_limit.tiers.clear();
        config.rate_limit.rules = vec![RuleConfig {
            name: "per-user".into(),
            key: KeyKind::User,
            limit: 3,
            per: Duration::from_secs(3600),
            cost: CostKind::Request,
        }];
    })
    .await;
    let limited = stack.token("1", "mobile", &[]).await;
    let fresh = stack.token("2", "mobile", &[]).await;
    for _ in 0..3 {
        let (status, _) = stack
            .graphql(Some(&limited), "{ __typename }", json!({}))
            .await;
        assert_eq!(status, 200);
    }

    let addr = stack.bff.addr();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let host = addr.to_string();
    // 401 (no token), 429 (a spent user), 200, and again: ten requests, one connection.
    for i in 0..10 {
        let (token, expected) = match i % 3 {
            0 => (None, 401),
            1 => (Some(limited.as_str()), 429),
            _ => (Some(fresh.as_str()), 200),
        };
        let (status, head) = exchange(&mut stream, &host, token).await;
        assert_eq!(status, expected, "request {i}: {head}");
        assert!(!head.contains("connection: close"), "request {i}: {head}");
    }
}

#[tokio::test]
async fn a_refusal_that_closes_lingers_so_the_client_reads_it_whole() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let addr = stack.bff.addr();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // A body far over the GraphQL limit, declared up front: refused before it is read, too
    // large to read in the background, so the answer closes the connection.
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        64 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; 16 * 1024];
    stream
        .write_all(&chunk)
        .await
        .expect("the first part of the body");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the server ends its side within 5 s")
        .expect("the answer, then the server's FIN, not a reset");
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    // The client is still sending its body: the server reads and discards it for a while
    // (a lingering close) instead of resetting the connection, which would destroy an
    // answer still on its way on a real network.
    for i in 0..8 {
        stream
            .write_all(&chunk)
            .await
            .unwrap_or_else(|e| panic!("write {i} after the answer failed: {e}"));
        tokio::task::yield_now().await;
    }
}

/// Under overload a request is refused before the app (`edge::admission`): its body is read
/// there too, so the 503 keeps the connection as the app's refusals do.
#[tokio::test]
async fn a_request_shed_before_the_app_keeps_the_connection() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.rate_limit.rules.clear();
        config.admission.initial_limit = 1;
        config.admission.min_limit = 1;
        config.admission.max_limit = 1;
        config.admission.queue = 0;
    })
    .await;
    let token = stack.token("7", "mobile", &[]).await;
    // A slow answer holds the one place while the connection below is refused.
    stack
        .chaos(Service::Users, json!({ "latency_ms": 1500 }))
        .await;
    let held = {
        let (http, url, token) = (stack.http.clone(), stack.url("/graphql"), token.clone());
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({ "query": "{ home { me { id } } }" }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let in_flight = async {
        loop {
            if stack
                .metrics()
                .await
                .contains("manifold_admission_in_flight 1")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the slow query holds the place within 5 s");
    let addr = stack.bff.addr();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let host = addr.to_string();
    for i in 0..3 {
        let (status, head) = exchange(&mut stream, &host, Some(&token)).await;
        assert_eq!(status, 503, "request {i}: {head}");
        assert!(head.contains("retry-after: 1"), "request {i}: {head}");
        assert!(!head.contains("connection: close"), "request {i}: {head}");
    }
    assert_eq!(held.await.expect("task").expect("answered"), 200);
}
