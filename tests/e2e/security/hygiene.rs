//! Request hygiene over raw sockets: size limits (413, 431, 414), path normalisation and the
//! paths refused outright (400), slow clients, and CORS for the web BFF.

use std::time::Duration;

use tokio::time::Instant;

use demo_services::Service;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::forge::{raw_get, raw_request};
use crate::harness::Stack;

#[tokio::test]
async fn oversized_bodies_headers_and_uris_are_refused() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let addr = stack.bff.addr();
    let token = stack.token("42", "web", &[]).await;
    let auth = format!("\r\nauthorization: Bearer {token}");
    stack.reset_stats().await;

    // Body: bff-web reads GraphQL bodies whole, up to 256 KiB.
    let body = vec![b' '; 300 * 1024];
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: gw{auth}\r\ncontent-type: application/json\r\ncontent-length: {}",
        body.len()
    );
    assert_eq!(raw_request(addr, &head, &body).await, Some(413), "body");

    // Headers: more than 100 fields; more than 32 KiB in total; one field over the buffer.
    let many: String = (0..120).map(|i| format!("\r\nx-h{i}: v")).collect();
    assert_eq!(
        raw_get(addr, "/graphql", &many).await,
        Some(431),
        "header count"
    );
    let big: String = (0..9)
        .map(|i| format!("\r\nx-big{i}: {}", "b".repeat(4000)))
        .collect();
    assert_eq!(
        raw_get(addr, "/graphql", &big).await,
        Some(431),
        "header bytes"
    );
    let huge = format!("\r\nx-huge: {}", "h".repeat(200 * 1024));
    assert_eq!(
        raw_get(addr, "/graphql", &huge).await,
        Some(431),
        "one huge header"
    );

    // URI: over 8 KiB.
    let long = format!("/api/users/42?pad={}", "u".repeat(9 * 1024));
    assert_eq!(raw_get(addr, &long, &auth).await, Some(414), "uri");

    // Just under every limit still works.
    let fine: String = (0..40).map(|i| format!("\r\nx-h{i}: v")).collect();
    let near = format!("/api/users/42?pad={}", "u".repeat(7 * 1024));
    assert_eq!(
        raw_get(addr, &near, &format!("{auth}{fine}")).await,
        Some(200)
    );
    assert_eq!(stack.requests(Service::Users).await, 1);
}

#[tokio::test]
async fn paths_are_normalised_once_and_dangerous_ones_refused() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let addr = stack.bff.addr();
    let token = stack.token("42", "web", &["orders:read"]).await;
    let auth = format!("\r\nauthorization: Bearer {token}");
    stack.reset_stats().await;

    for path in [
        "/api/users/../orders/o-42-1",
        "/api/users/%2e%2e/orders/o-42-1",
        "/api/users/.%2E/orders/o-42-1",
        "/api/users/..%2forders%2fo-42-1",
        "/api/users/42%2F..%2F..%2Fadmin",
        "/api/users/42%5c..%5cadmin",
        "/api/users/42%00",
        "/api/users/42%0d%0aset-cookie:%20x=1",
        "/api/users/42%0a",
        "/api/users/%zz",
        "/../api/users/42",
        "/api/users/42/../../../etc/passwd",
    ] {
        assert_eq!(raw_get(addr, path, &auth).await, Some(400), "{path}");
    }
    assert_eq!(stack.requests(Service::Users).await, 0);
    assert_eq!(stack.requests(Service::Orders).await, 0);

    // Repeated slashes and dot segments inside the route: normalised, then routed and
    // forwarded in their one normal form.
    for (path, seen) in [
        ("//api///users//42", "/users/42"),
        ("/api/users/./41/../42", "/users/42"),
        ("/api/users/41/%2E%2E/42", "/users/42"),
    ] {
        assert_eq!(raw_get(addr, path, &auth).await, Some(200), "{path}");
        let last = &stack.stats(Service::Users).await["last_request"];
        assert_eq!(last["path"], seen, "{path}");
    }
    // Normalised before auth too: the dotted path to a protected route still needs a token.
    assert_eq!(raw_get(addr, "/x/../api/users/42", "").await, Some(401));
}

#[tokio::test]
async fn a_client_that_sends_its_head_too_slowly_is_cut_off() {
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        config.limits.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut stream = TcpStream::connect(stack.bff.addr()).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    let elapsed = started.elapsed();
    assert!(read.is_ok(), "the connection was still open after 5 s");
    assert!(
        !String::from_utf8_lossy(&buf).contains(" 200 "),
        "an incomplete head was answered"
    );
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after {elapsed:?}"
    );
    println!("slow client cut off after {elapsed:?}");
}

#[tokio::test]
async fn cors_follows_the_configured_origins() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let allowed = "http://localhost:3000";
    stack.reset_stats().await;

    // A preflight needs no token and reaches no handler.
    let preflight = stack
        .http
        .request(reqwest::Method::OPTIONS, stack.url("/graphql"))
        .header("origin", allowed)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], allowed);
    let allow_headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(h["access-control-max-age"], "600");

    let token = stack.token("42", "web", &[]).await;
    let actual = stack
        .http
        .post(stack.url("/graphql"))
        .header("origin", allowed)
        .bearer_auth(&token)
        .json(&json!({ "query": "{ viewer { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(actual.status(), 200);
    assert_eq!(actual.headers()["access-control-allow-origin"], allowed);
    let exposed = actual.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("x-request-id"), "{exposed}");

    for origin in [
        "https://evil.example",
        "http://localhost:3000.evil.example",
        "null",
    ] {
        let refused = stack
            .http
            .request(reqwest::Method::OPTIONS, stack.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(
            !refused
                .headers()
                .contains_key("access-control-allow-origin"),
            "{origin} was allowed"
        );
    }

    // bff-mobile ships no [cors]: no CORS headers at all.
    let mobile = Stack::start(&bff_mobile::SPEC).await;
    let answer = mobile
        .http
        .get(mobile.url("/healthz"))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert!(!answer.headers().contains_key("access-control-allow-origin"));
}
