//! TLS termination on real sockets: HTTPS with HTTP/1.1 and HTTP/2 (ALPN), TLS 1.2 and 1.3
//! only, the certificate reloaded from disk without dropping requests in flight, and a clean
//! drain on shutdown. Certificates come from a test CA made here with rcgen; the client is
//! tokio-rustls + hyper's connection API, trusting only that CA.

mod partner;
mod serve;
mod support;
mod upstream;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

use demo_services::Service;
use http::{StatusCode, Version};
use rustls::ProtocolVersion;
use rustls::pki_types::CertificateDer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::harness::Stack;
use support::{
    CertDir, Client, H2, HTTP11, TestCa, alpn, connect, served_cert, tls_stack, tls_version,
};
#[tokio::test]
async fn https_serves_http2_and_http1_by_alpn_over_tls_1_3_and_1_2() {
    let ca = TestCa::new();
    let dir = CertDir::new();
    let cert = ca.issue();
    let stack = tls_stack(&dir, &cert).await;
    let addr = stack.bff.addr();
    assert!(
        stack.bff.url().starts_with("https://"),
        "{}",
        stack.bff.url()
    );
    let token = stack.token("42", "web", &[]).await;

    // ALPN offers h2 first: HTTP/2 over TLS 1.3, with the configured certificate.
    let stream = connect(&ca.client(&[H2, HTTP11], rustls::DEFAULT_VERSIONS), addr)
        .await
        .expect("TLS handshake");
    assert_eq!(alpn(&stream).as_deref(), Some(H2));
    assert_eq!(tls_version(&stream), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(served_cert(&stream), cert.der);
    let mut h2 = Client::over(stream).await;
    let (status, version, body) = h2.get(addr, "/healthz", None).await;
    assert_eq!(
        (status, version),
        (StatusCode::OK, Version::HTTP_2),
        "{body:?}"
    );
    // A proxied call over HTTP/2: the peer address still reaches the proxy.
    let (status, _, body) = h2.get(addr, "/api/users/42", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let seen = &stack.stats(Service::Users).await["last_request"]["headers"];
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{seen}");

    // A client that only speaks HTTP/1.1, over TLS 1.2.
    let stream = connect(&ca.client(&[HTTP11], &[&rustls::version::TLS12]), addr)
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(alpn(&stream).as_deref(), Some(HTTP11));
    assert_eq!(tls_version(&stream), Some(ProtocolVersion::TLSv1_2));
    let mut h1 = Client::over(stream).await;
    let (status, version, _) = h1.get(addr, "/healthz", None).await;
    assert_eq!((status, version), (StatusCode::OK, Version::HTTP_11));
    // Keep-alive: a second request on the same connection.
    let (status, _, _) = h1.get(addr, "/api/users/7", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn tls_1_1_and_plain_http_are_refused() {
    let ca = TestCa::new();
    let dir = CertDir::new();
    let stack = tls_stack(&dir, &ca.issue()).await;
    let addr = stack.bff.addr();

    // The same ClientHello as TLS 1.2 gets a ServerHello; as TLS 1.1, a protocol_version
    // alert.
    let reply = exchange(addr, &client_hello([0x03, 0x03])).await;
    assert_eq!(
        reply.first(),
        Some(&0x16),
        "expected a handshake record, got {reply:02x?}"
    );
    assert_eq!(
        reply.get(5),
        Some(&0x02),
        "expected a ServerHello, got {reply:02x?}"
    );
    let reply = exchange(addr, &client_hello([0x03, 0x02])).await;
    assert_eq!(
        reply.first(),
        Some(&0x15),
        "expected an alert record, got {reply:02x?}"
    );
    assert_eq!(
        reply.get(6),
        Some(&70),
        "expected protocol_version, got {reply:02x?}"
    );

    // Plain HTTP to the TLS port gets no HTTP answer.
    let reply = exchange(addr, b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
    assert!(
        !reply.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&reply)
    );

    // The listener still serves TLS afterwards.
    let stream = connect(&ca.client(&[H2], rustls::DEFAULT_VERSIONS), addr).await;
    assert!(stream.is_ok(), "{stream:?}");
}

/// Sends `bytes` and reads the start of the answer: the first 7 bytes (a record header and
/// what follows), or less when the server closes first, or whatever came within 5 s.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0; 64];
        while reply.len() < 7 {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    reply
}

/// A ClientHello with `version` as its only version (no supported_versions extension),
/// offering TLS 1.2 ECDHE-GCM suites and what they need: with 0x0303 (TLS 1.2) this server
/// answers with a ServerHello, so a refusal of 0x0302 (TLS 1.1) is about the version alone.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut extensions = Vec::new();
    let mut extension = |kind: u16, data: &[u8]| {
        extensions.extend_from_slice(&kind.to_be_bytes());
        extensions.extend_from_slice(&(data.len() as u16).to_be_bytes());
        extensions.extend_from_slice(data);
    };
    extension(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]); // groups: x25519, secp256r1
    extension(0x000b, &[1, 0]); // ec_point_formats: uncompressed
    extension(0x000d, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]); // signature algorithms
    let mut body = version.to_vec();
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0, 6, 0xc0, 0x2b, 0xc0, 0x2f, 0xcc, 0xa9]); // cipher suites
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![0x01, 0]; // ClientHello, 24-bit length
    handshake.extend_from_slice(&(body.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Opens TLS connections until one is served `expected`, or panics after 10 s.
async fn wait_for_cert(connector: &TlsConnector, addr: SocketAddr, expected: &CertificateDer<'_>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stream = connect(connector, addr).await.expect("TLS handshake");
        if served_cert(&stream) == *expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn replacing_the_files_switches_the_certificate_without_dropping_requests_in_flight() {
    let ca = TestCa::new();
    let dir = CertDir::new();
    let (first, second) = (ca.issue(), ca.issue());
    assert_ne!(first.der, second.der);
    let stack = tls_stack(&dir, &first).await;
    let addr = stack.bff.addr();
    let token = stack.token("42", "web", &[]).await;
    let connector = ca.client(&[H2, HTTP11], rustls::DEFAULT_VERSIONS);

    // One HTTP/2 and one HTTP/1.1 request in flight on connections made with the first
    // certificate, held by a slow backend across the swap.
    stack.reset_stats().await;
    stack
        .chaos(Service::Users, json!({ "latency_ms": 2000 }))
        .await;
    let mut in_flight = Vec::new();
    for alpn in [H2, HTTP11] {
        let stream = connect(&ca.client(&[alpn], rustls::DEFAULT_VERSIONS), addr)
            .await
            .unwrap();
        assert_eq!(served_cert(&stream), first.der);
        let mut client = Client::over(stream).await;
        let token = token.clone();
        in_flight.push(tokio::spawn(async move {
            client.get(addr, "/api/users/42", Some(&token)).await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while stack.requests(Service::Users).await < 2 {
        assert!(
            Instant::now() < deadline,
            "the slow requests never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    dir.install(&second);
    wait_for_cert(&connector, addr, &second.der).await;
    assert!(
        in_flight.iter().all(|r| !r.is_finished()),
        "the requests did not outlast the swap; the test proves nothing"
    );
    for request in in_flight {
        let (status, _, body) = request.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body:?}");
    }

    // A broken replacement keeps the current certificate.
    std::fs::write(dir.cert(), "not a certificate").unwrap();
    let stream = connect(&connector, addr).await.expect("TLS handshake");
    assert_eq!(served_cert(&stream), second.der);
    let third = ca.issue();
    dir.install(&third);
    wait_for_cert(&connector, addr, &third.der).await;
}

#[tokio::test]
async fn shutdown_drains_requests_in_flight_over_tls() {
    let ca = TestCa::new();
    let dir = CertDir::new();
    let stack = tls_stack(&dir, &ca.issue()).await;
    let addr = stack.bff.addr();
    let token = stack.token("42", "web", &[]).await;
    stack.reset_stats().await;
    stack
        .chaos(Service::Users, json!({ "latency_ms": 500 }))
        .await;

    let connector = ca.client(&[H2], rustls::DEFAULT_VERSIONS);
    let mut client = Client::over(connect(&connector, addr).await.unwrap()).await;
    let request =
        tokio::spawn(async move { client.get(addr, "/api/users/42", Some(&token)).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while stack.requests(Service::Users).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let Stack { bff, backends, .. } = stack;
    bff.shutdown().await.expect("clean shutdown");
    let (status, _, body) = request.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert!(
        connect(&connector, addr).await.is_err(),
        "still accepting after shutdown"
    );
    drop(backends);
}

#[test]
fn tls_config_problems_name_their_key() {
    let ca = TestCa::new();
    let dir = CertDir::new();
    let (one, other) = (ca.issue(), ca.issue());
    dir.install(&one);
    let with_tls = |cert: &Path, key: &Path, extra: &str| {
        let text = format!(
            "{}\n[tls]\ncert = {:?}\nkey = {:?}\n{extra}",
            bff_web::SPEC.embedded_config,
            cert.display().to_string(),
            key.display().to_string()
        );
        bff_web::SPEC.parse_config(&text, std::iter::empty())
    };
    let config = with_tls(&dir.cert(), &dir.key(), "reload_interval = \"1s\"").expect("valid");
    assert_eq!(config.tls.unwrap().reload_interval, Duration::from_secs(1));

    let missing = dir.0.join("missing.pem");
    let shown = with_tls(&missing, &dir.key(), "reload_interval = \"0s\"")
        .unwrap_err()
        .to_string();
    assert!(shown.contains("tls.cert: cannot read"), "{shown}");
    assert!(
        shown.contains("tls.reload_interval: must be greater than 0"),
        "{shown}"
    );

    // The key of another certificate.
    let other_key = dir.0.join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let shown = with_tls(&dir.cert(), &other_key, "")
        .unwrap_err()
        .to_string();
    assert!(
        shown.contains("tls.key:") && shown.contains("does not match"),
        "{shown}"
    );

    // A key file given as the certificate.
    let shown = with_tls(&dir.key(), &dir.key(), "")
        .unwrap_err()
        .to_string();
    assert!(shown.contains("tls.cert:"), "{shown}");
}
