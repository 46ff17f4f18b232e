//! Request heads two parsers could read two ways, over raw sockets: ambiguous framing,
//! doubled or missing `Host`, doubled `Authorization`, `;` in paths, bytes hyper lets
//! through, declared bodies over their route's cap — each refused at the edge, with no
//! backend call. Then the forwarding headers a backend receives.

use std::time::Duration;

use demo_services::Service;
use manifold::config::{AuthPolicy, ByteSize, Cidr, PathSemicolons, RouteConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::forge::{raw_get, raw_request};
use crate::harness::Stack;

/// Sends `request` as is on a kept-alive connection; returns what came back and whether the
/// server closed the connection after it (rather than waiting for the next request).
async fn exchange_kept_alive(addr: std::net::SocketAddr, request: &str) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut response))
        .await
        .is_ok();
    (String::from_utf8_lossy(&response).into_owned(), closed)
}

#[tokio::test]
async fn malformed_heads_are_refused_before_any_backend_call() {
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        config.routes[0].max_body = Some(ByteSize(1024));
    })
    .await;
    let addr = stack.bff.addr();
    let token = stack.token("42", "web", &["orders:read"]).await;
    let auth = format!("\r\nauthorization: Bearer {token}");
    let get = |extra: &str| format!("GET /api/users/42 HTTP/1.1\r\nhost: gw{auth}{extra}");
    stack.reset_stats().await;

    let chunked_post = |te: &str| {
        format!(
            "POST /api/users/42 HTTP/1.1\r\nhost: gw{auth}\r\n{te}\r\nconnection: close\r\n\r\n0\r\n\r\n"
        )
    };
    // Refused by hyper already: obs-fold and whitespace before the colon.
    for (case, head) in [
        ("obs-fold", get("\r\nx-a: 1\r\n  folded")),
        ("space before colon", get("\r\nx-a : 1")),
        (
            "two different Content-Length",
            get("\r\ncontent-length: 0\r\ncontent-length: 1"),
        ),
        // Refused here.
        ("two Authorization", get(&auth)),
        ("two Host", get("\r\nhost: other")),
        ("non-ASCII value", get("\r\nx-name: caf\u{e9}")),
        ("no Host", format!("GET /api/users/42 HTTP/1.1{auth}")),
        (
            "path parameter",
            format!("GET /api/users/42;x=1 HTTP/1.1\r\nhost: gw{auth}"),
        ),
        (
            "..;/",
            format!("GET /api/users/..;/orders/o-42-1 HTTP/1.1\r\nhost: gw{auth}"),
        ),
    ] {
        assert_eq!(raw_request(addr, &head, b"").await, Some(400), "{case}");
    }
    for te in [
        "transfer-encoding: chunked, chunked",
        "transfer-encoding: chunked\r\ntransfer-encoding: chunked",
        "transfer-encoding: gzip, chunked",
    ] {
        // Kept alive by the client: the server answers 400 and closes anyway.
        let (response, closed) =
            exchange_kept_alive(addr, &chunked_post(te).replace("connection: close\r\n", "")).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{te}: {response}");
        assert!(closed, "{te}: the connection stayed open");
    }
    // A declared body over the route's cap: 413 before any `100 Continue`.
    let expect = format!(
        "POST /api/users/42 HTTP/1.1\r\nhost: gw{auth}\r\nexpect: 100-continue\r\ncontent-length: 4096"
    );
    assert_eq!(
        raw_request(addr, &expect, b"").await,
        Some(413),
        "proxy route"
    );
    let expect = "POST /graphql HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: 10485760";
    assert_eq!(raw_request(addr, expect, b"").await, Some(413), "graphql");
    assert_eq!(stack.requests(Service::Users).await, 0);
    assert_eq!(stack.requests(Service::Orders).await, 0);
}

#[tokio::test]
async fn a_bare_lf_inside_a_head_is_refused_even_after_a_clean_request() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let addr = stack.bff.addr();
    let token = stack.token("42", "web", &["orders:read"]).await;
    stack.reset_stats().await;
    // One clean request with a body, then, on the same connection, one whose `x-a` line ends
    // in a bare LF: httparse would read the next line as a field of its own.
    let clean = format!(
        "POST /api/users/42 HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {token}\r\ncontent-length: 4\r\n\r\na\nb\n"
    );
    let smuggled = format!(
        "GET /api/users/42 HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {token}\r\nx-a: 1\nx-user-id: 7\r\n\r\n"
    );
    let (response, closed) = exchange_kept_alive(addr, &format!("{clean}{smuggled}")).await;
    let statuses: Vec<&str> = response
        .lines()
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(statuses.len(), 2, "{response}");
    assert!(!statuses[0].starts_with("HTTP/1.1 400"), "{response}");
    assert!(statuses[1].starts_with("HTTP/1.1 400"), "{response}");
    assert!(closed, "the connection stayed open after the refusal");
    assert_eq!(stack.requests(Service::Users).await, 1);
    // Alone, too.
    let (response, closed) = exchange_kept_alive(addr, &smuggled).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(closed);
    assert_eq!(stack.requests(Service::Users).await, 1);
}

#[tokio::test]
async fn a_streamed_body_over_the_route_cap_is_413() {
    // Every demo service echoes a POST to `/_echo`, reading the whole body.
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        config.routes.push(RouteConfig {
            prefix: "/echo/".to_owned(),
            upstream: "users".to_owned(),
            rewrite: Some("/".to_owned()),
            auth: AuthPolicy::None,
            scopes: Vec::new(),
            timeout: Duration::from_secs(5),
            max_body: Some(ByteSize(1024)),
            compress: false,
        });
    })
    .await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b'a'; 800]), Ok(vec![b'b'; 800])];
    let response = stack
        .http
        .post(stack.url("/echo/_echo"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // Under the cap, the body streams through as before.
    let small = stack
        .http
        .post(stack.url("/echo/_echo"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            vec![
                Ok::<_, std::io::Error>(vec![b'a'; 500]),
                Ok(vec![b'b'; 500]),
            ],
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
}

#[tokio::test]
async fn hosts_and_semicolons_follow_the_config() {
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        config.limits.allowed_hosts = vec!["gw".to_owned()];
        config.limits.path_semicolons = PathSemicolons::Encode;
    })
    .await;
    let addr = stack.bff.addr();
    let token = stack.token("42", "web", &[]).await;
    let auth = format!("\r\nauthorization: Bearer {token}");
    stack.reset_stats().await;
    assert_eq!(raw_get(addr, "/healthz", "").await, Some(200));
    let other = "GET /api/users/42 HTTP/1.1\r\nhost: evil.example";
    assert_eq!(
        raw_request(addr, &format!("{other}{auth}"), b"").await,
        Some(421)
    );
    assert_eq!(stack.requests(Service::Users).await, 0);
    // Encoded, `..;` is no dot segment to any backend.
    raw_get(addr, "/api/users/..;/42", &auth).await;
    let seen = &stack.stats(Service::Users).await["last_request"];
    let path = seen["path"].as_str().unwrap_or_default();
    assert!(
        path.starts_with("/users/..%3B/42") || path.starts_with("/users/..%3b/42"),
        "{seen}"
    );
}

#[tokio::test]
async fn forwarding_headers_are_the_gateways_unless_a_trusted_proxy_sent_them() {
    let spoofed = [
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=6.6.6.6;host=evil.example"),
        ("x-host", "evil.example"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
    ];
    let call = |stack: &Stack, token: String| {
        let mut request = stack
            .http
            .get(stack.url("/api/users/42"))
            .bearer_auth(token);
        for (name, value) in spoofed {
            request = request.header(name, value);
        }
        request.send()
    };
    let stack = Stack::start(&bff_web::SPEC).await;
    let host = stack.bff.addr().to_string();
    let token = stack.token("42", "web", &[]).await;
    assert_eq!(call(&stack, token).await.unwrap().status(), 200);
    let seen = &stack.stats(Service::Users).await["last_request"]["headers"];
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert_eq!(seen["x-forwarded-host"], host.as_str(), "{seen}");
    assert_eq!(seen["x-forwarded-proto"], "http", "{seen}");
    assert_eq!(
        seen["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"{host}\""),
        "{seen}"
    );
    for name in ["x-host", "x-original-url", "x-rewrite-url"] {
        assert!(
            seen.get(name).is_none(),
            "{name} reached the backend: {seen}"
        );
    }

    // Behind a trusted proxy its headers stand, with the gateway's hop appended.
    let trusted = Stack::start_with(&bff_web::SPEC, |config| {
        config.client_ip.trusted_proxies = vec!["127.0.0.0/8".parse::<Cidr>().unwrap()];
    })
    .await;
    let token = trusted.token("42", "web", &[]).await;
    assert_eq!(call(&trusted, token).await.unwrap().status(), 200);
    let seen = &trusted.stats(Service::Users).await["last_request"]["headers"];
    assert_eq!(seen["x-forwarded-for"], "6.6.6.6, 127.0.0.1", "{seen}");
    assert_eq!(seen["x-forwarded-host"], "evil.example", "{seen}");
    assert_eq!(seen["x-forwarded-proto"], "https", "{seen}");
    assert!(seen.get("x-host").is_none(), "{seen}");
}
