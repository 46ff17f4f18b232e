//! Cache poisoning through forwarded headers: a backend that builds its answer from the host
//! it was asked for must never have an answer built for a client's forged host served to
//! anyone else.

use std::time::Duration;

use axum::http::HeaderMap;
use manifold::axum;
use manifold::config::{AuthPolicy, CachePolicyConfig, RouteConfig};

use crate::harness::Stack;

/// A cacheable answer that reflects the host the backend was told about, as frameworks
/// building absolute links do.
async fn reflect(headers: HeaderMap) -> ([(&'static str, &'static str); 1], String) {
    let seen = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let host = match headers.get("x-forwarded-host") {
        Some(_) => seen("x-forwarded-host"),
        None => seen("x-host"),
    };
    (
        [("cache-control", "public, max-age=60")],
        format!("<a href=\"https://{host}/next\">next</a>"),
    )
}

#[tokio::test]
async fn a_forged_host_never_reaches_a_later_clients_cached_answer() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/pages/{id}", axum::routing::get(reflect));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        config.upstreams.get_mut("catalog").unwrap().url = Some(format!("http://{addr}"));
        config
            .cache
            .upstreams
            .insert("catalog".to_owned(), CachePolicyConfig::default());
        config.routes.push(RouteConfig {
            prefix: "/pages/".to_owned(),
            upstream: "catalog".to_owned(),
            rewrite: None,
            auth: AuthPolicy::None,
            scopes: Vec::new(),
            timeout: Duration::from_secs(5),
            max_body: None,
            compress: false,
        });
    })
    .await;
    let get = |path: &'static str, forged: Option<(&'static str, &'static str)>| {
        let mut request = stack.http.get(stack.url(path));
        if let Some((name, value)) = forged {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    for (path, forged) in [
        ("/pages/1", ("x-forwarded-host", "evil.example")),
        ("/pages/2", ("x-host", "evil.example")),
        ("/pages/3", ("forwarded", "host=evil.example")),
        ("/pages/4", ("host", "evil.example")),
    ] {
        get(path, Some(forged)).await;
        let clean = get(path, None).await;
        assert!(
            !clean.contains("evil"),
            "{forged:?} poisoned {path}: {clean}"
        );
        // The clean answer is cached for the next clean client.
        assert_eq!(get(path, None).await, clean);
    }
    server.abort();
}
