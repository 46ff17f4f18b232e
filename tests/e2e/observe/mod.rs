//! The operator's view, end to end: `/metrics` on the admin listener parses as Prometheus
//! text and moves with scripted traffic (a breaker opening shows up), W3C trace context
//! reaches every backend, the access log and exported spans carry no secrets, and the
//! dashboard shows live state in a real headless Chromium (`dashboard`).

mod answers;
mod dashboard;
mod logs;
mod otlp;
pub mod prom;
pub mod webdriver;

use std::time::Duration;

use tokio::time::Instant;

use demo_services::Service;
use serde_json::json;

use crate::harness::Stack;
use crate::mobile::HOME;
use prom::Samples;

pub async fn scrape(stack: &Stack) -> Samples {
    let response = stack
        .http
        .get(stack.admin_url("/metrics"))
        .send()
        .await
        .expect("admin listener reachable");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Samples::parse(&response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_traffic_and_show_an_open_breaker() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    let before = scrape(&stack).await;
    assert_eq!(
        before.value(
            "manifold_build_info",
            &[
                ("bff", "bff-mobile"),
                ("version", env!("CARGO_PKG_VERSION"))
            ]
        ),
        Some(1.0)
    );
    let home = [
        ("route", "/graphql"),
        ("operation", "Home"),
        ("code", "200"),
        ("class", "2xx"),
    ];
    assert_eq!(before.value("manifold_http_requests_total", &home), None);

    for _ in 0..5 {
        let (status, _) = stack.graphql(Some(&token), HOME, json!({})).await;
        assert_eq!(status, 200);
    }
    // A 401 is counted too, under its route and class.
    let (status, _) = stack.graphql(None, HOME, json!({})).await;
    assert_eq!(status, 401);
    let after = scrape(&stack).await;
    assert_eq!(
        after.value("manifold_http_requests_total", &home),
        Some(5.0)
    );
    assert_eq!(
        after.value(
            "manifold_http_requests_total",
            &[
                ("route", "/graphql"),
                ("operation", ""),
                ("code", "401"),
                ("class", "4xx")
            ]
        ),
        Some(1.0)
    );
    let count = after
        .value(
            "manifold_http_request_duration_seconds_count",
            &[("route", "/graphql"), ("operation", "Home")],
        )
        .unwrap();
    assert_eq!(count, 5.0);
    let users = [("upstream", "users")];
    assert!(
        after
            .value("manifold_upstream_calls_total", &users)
            .unwrap()
            >= 5.0
    );
    assert!(
        after
            .value("manifold_upstream_call_duration_seconds_count", &users)
            .unwrap()
            >= 5.0
    );
    let instance = stack.service_url(Service::Recommendations);
    let breaker = |state: &'static str| {
        [
            ("upstream", "recommendations"),
            ("instance", instance.as_str()),
            ("state", state),
        ]
    };
    assert_eq!(
        after.value("manifold_upstream_breaker_state", &breaker("closed")),
        Some(1.0)
    );
    assert_eq!(
        after.value("manifold_upstream_breaker_state", &breaker("open")),
        Some(0.0)
    );
    // No user id or raw path ever becomes a label.
    assert!(
        !after.any_label_contains("42"),
        "a user id leaked into a label"
    );
    // The first home query filled the cache (catalog, promotions); the next four hit it.
    let hits = after
        .value("manifold_cache_requests_total", &[("result", "hit")])
        .unwrap_or(0.0);
    let misses = after
        .value("manifold_cache_requests_total", &[("result", "miss")])
        .unwrap_or(0.0);
    assert!(hits >= 4.0 && misses >= 1.0, "hits {hits}, misses {misses}");
    assert!(
        after
            .value("manifold_config_reloads_total", &[("result", "failure")])
            .is_some()
    );
    assert_eq!(
        after.value("manifold_http_requests_in_flight", &[]),
        Some(0.0)
    );

    // An outage: recommendations fails every call until its breaker opens.
    stack
        .chaos(Service::Recommendations, json!({ "error_rate": 1.0 }))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut opened = None;
    while Instant::now() < deadline {
        stack.graphql(Some(&token), HOME, json!({})).await;
        let now = scrape(&stack).await;
        if now.value("manifold_upstream_breaker_state", &breaker("open")) == Some(1.0) {
            opened = Some(now);
            break;
        }
    }
    let opened = opened.expect("the breaker never showed as open in /metrics");
    let rec = [("upstream", "recommendations")];
    let failed = |class| {
        opened
            .value(
                "manifold_upstream_failures_total",
                &[("upstream", "recommendations"), ("class", class)],
            )
            .unwrap()
    };
    assert!(failed("unavailable") >= 5.0);
    assert!(
        opened
            .value(
                "manifold_upstream_breaker_transitions_total",
                &[
                    ("upstream", "recommendations"),
                    ("instance", instance.as_str())
                ]
            )
            .unwrap()
            >= 1.0
    );
    assert!(
        opened
            .value("manifold_upstream_retries_total", &rec)
            .unwrap()
            >= 1.0
    );
    // Calls after it opened fail fast.
    stack.graphql(Some(&token), HOME, json!({})).await;
    let last = scrape(&stack).await;
    assert!(
        last.value(
            "manifold_upstream_failures_total",
            &[("upstream", "recommendations"), ("class", "circuit_open")]
        )
        .unwrap()
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_refusals_are_counted() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        // Two requests, whatever they cost.
        config.rate_limit.rules[0].limit = 2;
        config.rate_limit.rules[0].cost = manifold::config::CostKind::Request;
    })
    .await;
    let token = stack.token("7", "mobile", &[]).await;
    let mut refused = 0;
    for _ in 0..4 {
        let (status, _) = stack.graphql(Some(&token), HOME, json!({})).await;
        if status == 429 {
            refused += 1;
        }
    }
    assert_eq!(refused, 2);
    let samples = scrape(&stack).await;
    assert_eq!(
        samples.value(
            "manifold_ratelimit_decisions_total",
            &[("decision", "refused")]
        ),
        Some(2.0)
    );
    assert_eq!(
        samples.value(
            "manifold_ratelimit_decisions_total",
            &[("decision", "allowed")]
        ),
        Some(2.0)
    );
    assert_eq!(
        samples.value(
            "manifold_http_requests_total",
            &[
                ("route", "/graphql"),
                ("operation", ""),
                ("code", "429"),
                ("class", "4xx")
            ]
        ),
        Some(2.0),
        "refused before the operation was read"
    );
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The `traceparent` each home-screen backend saw last.
async fn traceparents(stack: &Stack) -> Vec<(Service, String)> {
    let mut out = Vec::new();
    for service in [
        Service::Users,
        Service::Cart,
        Service::Notifications,
        Service::Orders,
        Service::Recommendations,
        Service::Catalog,
        Service::Promotions,
    ] {
        let stats = stack.stats(service).await;
        let seen = stats["last_request"]["headers"]["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("{service:?} got no traceparent: {stats}"))
            .to_owned();
        out.push((service, seen));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_reaches_every_backend_with_the_same_trace_id() {
    // Every call must reach its backend twice: no cache answering in its place.
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| config.cache.enabled = false).await;
    let token = stack.token("42", "mobile", &[]).await;
    stack.reset_stats().await;
    let response = stack
        .http
        .post(stack.url("/graphql"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&json!({ "query": HOME }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = traceparents(&stack).await;
    let mut spans = std::collections::HashSet::new();
    for (service, value) in &seen {
        let parts: Vec<&str> = value.split('-').collect();
        assert_eq!(parts.len(), 4, "{service:?}: {value}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], CLIENT_TRACE, "{service:?} is on another trace");
        assert_ne!(
            parts[2], CLIENT_SPAN,
            "{service:?}: the call needs its own span"
        );
        assert_eq!(parts[3], "01");
        spans.insert(parts[2].to_owned());
    }
    assert_eq!(
        spans.len(),
        seen.len(),
        "each call has a span id of its own: {seen:?}"
    );

    // Without one, the gateway starts a trace: still one trace id for the whole request.
    stack.reset_stats().await;
    let (status, _) = stack.graphql(Some(&token), HOME, json!({})).await;
    assert_eq!(status, 200);
    let seen = traceparents(&stack).await;
    let trace = seen[0].1.split('-').nth(1).unwrap().to_owned();
    assert_ne!(trace, CLIENT_TRACE);
    assert!(
        seen.iter()
            .all(|(_, v)| v.split('-').nth(1) == Some(trace.as_str())),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_shows_the_config_with_secrets_redacted() {
    let stack = Stack::start_with(&bff_partner::SPEC, |config| {
        // Set but unused (local store): only its text is under test.
        config.rate_limit.redis_url = Some("redis://admin:hunter2@127.0.0.1:6390/0".into());
    })
    .await;
    let hashes: Vec<String> = stack
        .bff
        .gateway()
        .config()
        .auth
        .api_keys
        .values()
        .map(|k| k.sha256.expose().to_owned())
        .collect();
    assert!(!hashes.is_empty());
    let body: serde_json::Value = stack
        .http
        .get(stack.admin_url("/admin/api/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shown = &body["config"];
    assert!(shown["auth"]["api_keys"].is_object(), "{shown}");
    assert_eq!(
        shown["rate_limit"]["redis_url"], "redis://admin:<redacted>@127.0.0.1:6390/0",
        "{shown}"
    );
    let config = shown.to_string();
    assert!(!config.contains("hunter2"));
    for hash in &hashes {
        assert!(!config.contains(hash.as_str()), "an API key hash is shown");
    }
    let status: serde_json::Value = stack
        .http
        .get(stack.admin_url("/admin/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["bff"], "bff-partner");
    assert!(status["upstreams"].as_array().unwrap().len() >= 3);
}
