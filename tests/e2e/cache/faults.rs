//! What must not be cached, and what a failing or slow backend looks like through the
//! cache: stale-if-error (marked degraded, then the error) and stale-while-revalidate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use demo_services::Service;
use manifold::axum;
use serde_json::json;

use super::{DEMO_KEY, OTHER_KEY, catalog_policy, partner_get, until, with_keys};
use crate::harness::Stack;
use crate::mobile::HOME;

/// A catalog that answers a real product body with the headers its id asks for, counting
/// the requests for each path.
#[derive(Clone, Default)]
struct ScriptedCatalog {
    product: Arc<Vec<u8>>,
    seen: Arc<Mutex<HashMap<String, u64>>>,
}

impl ScriptedCatalog {
    fn seen(&self, path: &str) -> u64 {
        self.seen.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn scripted(State(s): State<ScriptedCatalog>, Path(id): Path<String>) -> Response {
    *s.seen
        .lock()
        .unwrap()
        .entry(format!("/products/{id}"))
        .or_default() += 1;
    let mut headers = HeaderMap::new();
    let mut status = StatusCode::OK;
    let cc = match id.as_str() {
        "cookie" => {
            headers.insert("set-cookie", HeaderValue::from_static("session=abc"));
            "public, max-age=60"
        }
        "private" => "private, max-age=60",
        "nostore" => "public, no-store",
        "broken" => {
            status = StatusCode::INTERNAL_SERVER_ERROR;
            "public, max-age=60"
        }
        _ => "public, max-age=60",
    };
    headers.insert("cache-control", HeaderValue::from_static(cc));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let mut body: serde_json::Value = serde_json::from_slice(&s.product).unwrap();
    body["id"] = json!(id);
    (status, headers, serde_json::to_vec(&body).unwrap()).into_response()
}

#[tokio::test]
async fn set_cookie_private_no_store_and_errors_are_not_shared() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scripted_state = ScriptedCatalog::default();
    let stack = Stack::start_with(&bff_partner::SPEC, |config| {
        with_keys(config);
        config.upstreams.get_mut("catalog").unwrap().url = Some(format!("http://{addr}"));
        config.upstreams.get_mut("catalog").unwrap().retry.attempts = 1;
    })
    .await;
    // A real product body, from the demo catalog.
    let product = stack
        .http
        .get(format!(
            "{}/products/p1",
            stack.service_url(Service::Catalog)
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let state = ScriptedCatalog {
        product: Arc::new(product.to_vec()),
        ..scripted_state
    };
    let app = axum::Router::new()
        .route("/products/{id}", axum::routing::get(scripted))
        .with_state(state.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    for (id, key) in [
        ("cookie", DEMO_KEY),
        ("nostore", DEMO_KEY),
        ("broken", DEMO_KEY),
    ] {
        let path = format!("/v1/products/{id}");
        let first = partner_get(&stack, &path, key, None).await;
        let second = partner_get(&stack, &path, key, None).await;
        assert_eq!(first.status, second.status, "{id}");
        assert_eq!(state.seen(&format!("/products/{id}")), 2, "{id} was cached");
        assert!(second.header("age").is_none(), "{id} carries an Age");
    }
    // A private answer is kept for its caller only: another key reaches the backend.
    let first = partner_get(&stack, "/v1/products/private", DEMO_KEY, None).await;
    assert_eq!(first.status, 200);
    let other = partner_get(&stack, "/v1/products/private", OTHER_KEY, None).await;
    assert_eq!(other.status, 200);
    assert!(other.header("age").is_none());
    assert_eq!(
        state.seen("/products/private"),
        2,
        "private data was shared"
    );
    // The control: a plain public answer is cached, for every key.
    partner_get(&stack, "/v1/products/plain", DEMO_KEY, None).await;
    let shared = partner_get(&stack, "/v1/products/plain", OTHER_KEY, None).await;
    assert!(shared.header("age").is_some());
    assert_eq!(state.seen("/products/plain"), 1);
    server.abort();
}

#[tokio::test]
async fn a_failing_catalog_is_covered_by_stale_data_for_the_stale_if_error_window() {
    let fresh = Duration::from_millis(500);
    let window = Duration::from_secs(2);
    let stack = Stack::start_with(&bff_partner::SPEC, |config| {
        catalog_policy(config, fresh, Duration::ZERO, window);
    })
    .await;
    let warmed = Instant::now();
    let warm = partner_get(&stack, "/v1/products/p5", DEMO_KEY, None).await;
    assert_eq!(warm.status, 200);
    stack
        .chaos(
            Service::Catalog,
            json!({ "error_rate": 1.0, "status": 503 }),
        )
        .await;

    // Past its freshness, the entry stands in for the failing catalog, saying so.
    let stale = until(Duration::from_secs(5), || async {
        let r = partner_get(&stack, "/v1/products/p5", DEMO_KEY, None).await;
        r.header("warning").is_some().then_some(r)
    })
    .await
    .expect("stale data served with a Warning");
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, warm.body);
    let warnings: Vec<_> = stale.headers.get_all("warning").iter().collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.to_str().unwrap().starts_with("111")),
        "{warnings:?}"
    );
    assert!(stale.header("age").is_some());
    assert!(
        stack.requests(Service::Catalog).await > 1,
        "catalog was not tried"
    );
    let stats = stack.bff.gateway().cache().unwrap().stats();
    assert!(stats.stale_on_error > 0, "{stats:?}");

    // After the window, the error surfaces.
    let failed = until(Duration::from_secs(10), || async {
        let r = partner_get(&stack, "/v1/products/p5", DEMO_KEY, None).await;
        (r.status != 200).then_some(r)
    })
    .await
    .expect("the error surfaces after the window");
    assert!(
        failed.status == 502 || failed.status == 503,
        "{}",
        failed.status
    );
    assert!(
        warmed.elapsed() >= fresh + window - Duration::from_millis(100),
        "surfaced after {:?}",
        warmed.elapsed()
    );
}

#[tokio::test]
async fn graphql_marks_stale_fields_degraded_when_catalog_is_down() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        catalog_policy(
            config,
            Duration::from_millis(300),
            Duration::ZERO,
            Duration::from_secs(30),
        );
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    let (_, warm) = stack.graphql(Some(&token), HOME, json!({})).await;
    assert!(warm.get("errors").is_none(), "{warm}");
    assert!(warm.get("extensions").is_none(), "{warm}");
    stack
        .chaos(
            Service::Catalog,
            json!({ "error_rate": 1.0, "status": 503 }),
        )
        .await;

    let degraded = until(Duration::from_secs(5), || async {
        let (_, body) = stack.graphql(Some(&token), HOME, json!({})).await;
        body["extensions"]["degraded"].is_array().then_some(body)
    })
    .await
    .expect("extensions.degraded");
    assert_eq!(
        degraded["data"]["home"]["recommendations"],
        warm["data"]["home"]["recommendations"]
    );
    let marks = degraded["extensions"]["degraded"].as_array().unwrap();
    assert!(
        marks.iter().any(|m| m["service"] == "catalog"),
        "{degraded}"
    );
    assert!(degraded.get("errors").is_none(), "{degraded}");
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let fresh = Duration::from_millis(300);
    let stack = Stack::start_with(&bff_partner::SPEC, |config| {
        catalog_policy(config, fresh, Duration::from_secs(30), Duration::ZERO);
    })
    .await;
    assert_eq!(
        partner_get(&stack, "/v1/products/p11", DEMO_KEY, None)
            .await
            .status,
        200
    );
    let latency = Duration::from_millis(400);
    stack
        .chaos(
            Service::Catalog,
            json!({ "latency_ms": latency.as_millis() as u64 }),
        )
        .await;
    tokio::time::sleep(fresh).await; // the entry's freshness is what this test is about
    stack.reset_stats().await;

    let started = Instant::now();
    let calls = (0..20).map(|_| partner_get(&stack, "/v1/products/p11", DEMO_KEY, None));
    let replies = futures_util::future::join_all(calls).await;
    let took = started.elapsed();
    for r in &replies {
        assert_eq!(r.status, 200);
        let warnings: Vec<_> = r.headers.get_all("warning").iter().collect();
        assert!(
            warnings
                .iter()
                .any(|w| w.to_str().unwrap().starts_with("110")),
            "{warnings:?}"
        );
    }
    assert!(took < latency, "served in {took:?}, not in cache-hit time");
    let refreshed = until(Duration::from_secs(5), || async {
        (stack.requests(Service::Catalog).await >= 1).then_some(())
    })
    .await;
    assert!(refreshed.is_some(), "no refresh reached the catalog");
    // Give a second refresh, were there one, the time to arrive.
    tokio::time::sleep(latency).await;
    assert_eq!(stack.requests(Service::Catalog).await, 1);
}
