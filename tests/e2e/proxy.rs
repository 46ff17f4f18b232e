//! Proxy routes, through bff-web's shipped config (`/api/users/*`, `/api/orders/*`).

use std::time::Duration;

use axum::body::{Body, Bytes};
use demo_services::Service;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::harness::Stack;

#[tokio::test]
async fn a_proxied_call_reaches_the_rewritten_path_with_the_verified_identity() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let token = stack.token("42", "web", &["orders:read"]).await;

    let response = stack
        .http
        .get(stack.url("/api/users/42?fields=name"))
        .bearer_auth(&token)
        .header("x-user-id", "1")
        .header("connection", "x-drop-me")
        .header("x-drop-me", "secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["id"], "42");

    let seen = &stack.stats(Service::Users).await["last_request"];
    assert_eq!(seen["path"], "/users/42");
    assert_eq!(seen["query"], "fields=name");
    assert_eq!(seen["headers"]["x-user-id"], "42");
    assert_eq!(seen["headers"]["x-scopes"], "orders:read");
    assert!(seen["headers"].get("x-drop-me").is_none(), "{seen}");
    assert!(
        seen["headers"].get("authorization").is_some(),
        "the token is passed on to backends"
    );

    let order = stack.get_as("/api/orders/o-42-1", &token).await;
    assert_eq!(order.status(), 200);
    let order: Value = order.json().await.unwrap();
    assert_eq!(order["id"], "o-42-1");
    assert_eq!(
        stack.stats(Service::Orders).await["last_request"]["path"],
        "/orders/o-42-1"
    );
}

#[tokio::test]
async fn a_proxy_route_without_a_token_is_refused_before_the_backend() {
    let stack = Stack::start(&bff_web::SPEC).await;
    stack.reset_stats().await;
    let mobile_token = stack.token("42", "mobile", &[]).await;

    let anonymous = stack
        .http
        .get(stack.url("/api/users/42"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    let wrong_audience = stack.get_as("/api/orders/o-42-1", &mobile_token).await;
    assert_eq!(wrong_audience.status(), 401);
    assert_eq!(stack.requests(Service::Users).await, 0);
    assert_eq!(stack.requests(Service::Orders).await, 0);
}

#[tokio::test]
async fn backend_errors_and_statuses_pass_through_a_proxy_route() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let token = stack.token("42", "web", &[]).await;

    let missing = stack.get_as("/api/users/99999999", &token).await;
    assert_eq!(
        missing.status(),
        404,
        "the backend's own status is passed through"
    );

    stack
        .chaos(Service::Users, serde_json::json!({ "reset": true }))
        .await;
    let down = stack.get_as("/api/users/42", &token).await;
    assert_eq!(down.status(), 502);
    let problem: Value = down.json().await.unwrap();
    assert_eq!(problem["code"], "UPSTREAM_UNAVAILABLE");
    assert!(
        !problem.to_string().contains("127.0.0.1"),
        "no backend address leaks: {problem}"
    );
}

/// An upstream that streams each request body straight back.
async fn echo_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(|request: axum::extract::Request| async move {
        Body::from_stream(request.into_body().into_data_stream())
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// 5 MiB in lockstep: each 64 KiB chunk is sent only after the previous one came back
/// through the gateway. A gateway that buffered either body whole would deadlock here.
#[tokio::test]
async fn bodies_stream_through_both_ways() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 80;
    let (echo_url, echo) = echo_upstream().await;
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        config.upstreams.get_mut("users").unwrap().url = Some(echo_url);
    })
    .await;
    let token = stack.token("42", "web", &[]).await;

    let (chunks_tx, chunks_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body =
        reqwest::Body::wrap_stream(futures_util::stream::unfold(chunks_rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        }));
    let (echoed_tx, mut echoed_rx) = mpsc::unbounded_channel::<usize>();

    let sender = tokio::spawn(async move {
        for i in 0..CHUNKS {
            let chunk = Bytes::from(vec![(i % 251) as u8; CHUNK]);
            chunks_tx.send(Ok(chunk)).await.expect("request body open");
            // Wait for this chunk to come back before sending the next.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let echoed = tokio::time::timeout_at(deadline, echoed_rx.recv())
                    .await
                    .expect("a chunk did not come back in 10 s: the body is being buffered")
                    .expect("reader alive");
                if echoed >= (i + 1) * CHUNK {
                    break;
                }
            }
        }
    });

    let response = stack
        .http
        .post(stack.url("/api/users/upload"))
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut received = 0usize;
    let mut checksum = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        checksum += chunk.iter().map(|b| *b as u64).sum::<u64>();
        received += chunk.len();
        let _ = echoed_tx.send(received);
    }
    sender.await.unwrap();
    echo.abort();
    assert_eq!(received, CHUNK * CHUNKS);
    let expected: u64 = (0..CHUNKS).map(|i| (i % 251) as u64 * CHUNK as u64).sum();
    assert_eq!(checksum, expected);
}

/// A backend that sends its head and a first chunk in time, then stalls its body: the
/// route's timeout still ends the exchange (the client sees the body fail), instead of the
/// connection hanging as long as the backend likes.
#[tokio::test]
async fn a_stalled_backend_body_is_cut_at_the_route_timeout() {
    let app = axum::Router::new().fallback(|| async {
        let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
            b"first chunk",
        ))]);
        Body::from_stream(first.chain(futures_util::stream::pending()))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stalling = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        config.upstreams.get_mut("users").unwrap().url = Some(url);
        for route in &mut config.routes {
            route.timeout = Duration::from_millis(500);
        }
    })
    .await;
    let token = stack.token("42", "web", &[]).await;

    let started = tokio::time::Instant::now();
    let response = stack.get_as("/api/users/42", &token).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = body
        .next()
        .await
        .expect("a first chunk")
        .expect("first chunk");
    assert_eq!(&first[..], b"first chunk");
    let rest = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("the stalled body was not cut: still open after 5 s");
    assert!(
        matches!(rest, Some(Err(_))),
        "a cut body must fail, not end cleanly: {rest:?}"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "cut after {took:?}");
    stalling.abort();
}

#[tokio::test]
async fn the_bffs_own_routes_win_under_a_prefix_and_the_longest_prefix_wins_among_routes() {
    use manifold::config::{AuthPolicy, DeprecationConfig, RouteConfig};
    let route = |prefix: &str, upstream: &str, rewrite: &str| RouteConfig {
        prefix: prefix.into(),
        upstream: upstream.into(),
        rewrite: Some(rewrite.into()),
        auth: AuthPolicy::None,
        scopes: vec![],
        timeout: Duration::from_secs(5),
        max_body: None,
        compress: false,
    };
    // Both prefixes cover the partner API's own `/v1/orders/{id}`; one covers the other.
    let stack = Stack::start_with(&bff_partner::SPEC, |config| {
        config.routes = vec![
            route("/v1/", "catalog", "/"),
            route("/v1/raw/users/", "users", "/users/"),
        ];
        config.deprecations = vec![DeprecationConfig {
            path: "/v1/raw/users/".into(),
            deprecation: "2026-01-01T00:00:00Z".into(),
            sunset: None,
            link: None,
        }];
    })
    .await;
    stack.reset_stats().await;
    // The partner API wants its key; the proxy routes want nothing.
    let get = |path: &str| {
        stack
            .http
            .get(stack.url(path))
            .header("x-api-key", "demo-partner-key")
            .send()
    };

    // The partner API's own route answers its path, though a prefix covers it.
    let own = get("/v1/orders/o-42-1").await.unwrap();
    assert_eq!(own.status(), 200);
    let own: Value = own.json().await.unwrap();
    assert_eq!(own["id"], "o-42-1", "{own}");
    let catalog = stack.stats(Service::Catalog).await;
    assert_ne!(
        catalog["last_request"]["path"], "/orders/o-42-1",
        "the partner's route, not the proxy's: {catalog}"
    );

    // The longer of two prefixes wins; the shorter takes the rest.
    let users = get("/v1/raw/users/42").await.unwrap();
    assert_eq!(users.status(), 200);
    assert_eq!(users.headers()["deprecation"], "@1767225600");
    assert_eq!(
        stack.stats(Service::Users).await["last_request"]["path"],
        "/users/42"
    );
    let rest = get("/v1/products-feed?x=1").await.unwrap();
    assert!(rest.headers().get("deprecation").is_none());
    let seen = &stack.stats(Service::Catalog).await["last_request"];
    assert_eq!(seen["path"], "/products-feed", "{seen}");
    assert_eq!(seen["query"], "x=1");

    // The prefix itself is the route's too, counted under its own name.
    let exact = get("/v1/raw/users/").await.unwrap();
    assert_eq!(exact.headers()["deprecation"], "@1767225600");
    assert_eq!(
        stack.stats(Service::Users).await["last_request"]["path"],
        "/users/"
    );

    // A path no route and no prefix covers is the partner API's fallback's to answer.
    let nowhere = get("/nowhere").await.unwrap();
    assert_eq!(nowhere.status(), 404);
    let problem: Value = nowhere.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("no such route"),
        "{problem}"
    );

    // Each answer is counted under the route that served it.
    let metrics = stack.metrics().await;
    for route in [
        "/v1/orders/{id}",
        "/v1/raw/users/{*rest}",
        "/v1/raw/users/",
        "/v1/{*rest}",
    ] {
        assert!(
            metrics.contains(&format!("route=\"{route}\"")),
            "{route} missing from\n{metrics}"
        );
    }
}
