//! Aggregate endpoints declared in config (`compose`): the partner's customer overview,
//! served from three services in two rounds of calls with no Rust of its own; an optional
//! call failing degrades the answer, the critical one fails it; definitions that cannot work
//! are refused by `--check` with their key.

use demo_services::Service;
use serde_json::{Value, json};

use crate::harness::Stack;

const KEY: &str = "demo-partner-key";

async fn overview(stack: &Stack, id: &str) -> (u16, Value) {
    let response = stack
        .http
        .get(stack.url(&format!("/v1/customers/{id}/overview")))
        .header("x-api-key", KEY)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_overview_joins_three_services_in_two_rounds_trimmed_to_its_allow_list() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    stack.reset_stats().await;
    let (status, body) = overview(&stack, "42").await;
    assert_eq!(status, 200, "{body}");
    // The profile merged at the root, allow-listed.
    assert_eq!(body["id"], "42");
    assert!(
        body["name"].is_string() && body["email"].is_string(),
        "{body}"
    );
    assert!(body.get("avatar").is_none(), "not allow-listed: {body}");
    // The latest orders, each with its shipment joined by order id.
    let orders = body["latestOrders"].as_array().expect("latestOrders");
    assert_eq!(orders.len(), 3, "{body}");
    for order in orders {
        let keys: Vec<&str> = order
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert!(
            keys.iter()
                .all(|k| ["id", "status", "total", "placedAt", "shipment"].contains(k)),
            "{order}"
        );
        assert_eq!(order["shipment"]["orderId"], order["id"], "{order}");
        assert!(order["shipment"].get("events").is_none());
    }
    assert!(body.get("degraded").is_none(), "{body}");
    // Revalidated by its ETag like any partner GET.
    let etag = stack
        .http
        .get(stack.url("/v1/customers/42/overview"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .clone();
    let again = stack
        .http
        .get(stack.url("/v1/customers/42/overview"))
        .header("x-api-key", KEY)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    stack.reset_stats().await;
    let (status, _) = overview(&stack, "42").await;
    assert_eq!(status, 200);
    // One call each: the one shipments call carried every order id (each order got its own).
    for service in [Service::Users, Service::Orders, Service::Shipping] {
        assert_eq!(stack.requests(service).await, 1, "{service:?}");
    }
}

#[tokio::test]
async fn an_optional_call_failing_degrades_and_the_critical_one_fails_the_request() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    stack
        .chaos(Service::Shipping, json!({ "error_rate": 1.0 }))
        .await;
    let (status, body) = overview(&stack, "42").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degraded"], json!(["shipments"]), "{body}");
    assert_eq!(body["latestOrders"][0]["shipment"], Value::Null, "{body}");
    assert_eq!(body["id"], "42");

    stack.reset_chaos(Service::Shipping).await;
    stack
        .chaos(Service::Users, json!({ "error_rate": 1.0 }))
        .await;
    let (status, body) = overview(&stack, "42").await;
    assert!(
        status == 502 || status == 503 || status == 504,
        "{status}: {body}"
    );
    assert_eq!(body["code"], "UPSTREAM_UNAVAILABLE", "{body}");
}

#[test]
fn definitions_that_cannot_work_are_refused_by_their_key() {
    let broken = bff_partner::SPEC
        .embedded_config
        .replace(
            "query = { userId = \"{path.id}\", limit = \"3\" }",
            "query = { userId = \"{path.id}\", after = \"{shipments.items[].orderId}\" }",
        )
        .replace(
            "upstream = \"users\"\npath = \"/users/{path.id}\"",
            "upstream = \"accounts\"\npath = \"/users/{path.user}\"",
        )
        .replace(
            "join = { into = \"latestOrders\"",
            "join = { into = \"recentOrders\"",
        );
    let shown = bff_partner::SPEC
        .parse_config(&broken, std::iter::empty())
        .expect_err("invalid")
        .to_string();
    for expected in [
        "endpoints[0].calls: the calls depend on each other in a cycle",
        "endpoints[0].calls[0].upstream: \"accounts\" is not a configured upstream",
        "endpoints[0].calls[0].path: {path.user} is not a parameter",
        "endpoints[0].calls[2].join.into: \"recentOrders\" is not the key of another call",
    ] {
        assert!(shown.contains(expected), "{expected} missing in:\n{shown}");
    }
    // `fields` is the answer's selection, not a value for a call.
    let reserved = bff_partner::SPEC
        .embedded_config
        .replace("limit = \"3\"", "limit = \"{query.fields}\"");
    let shown = bff_partner::SPEC
        .parse_config(&reserved, std::iter::empty())
        .expect_err("invalid")
        .to_string();
    assert!(
        shown.contains(
            "endpoints[0].calls[1].query.limit: {query.fields} is the answer's field selection"
        ),
        "{shown}"
    );
    let unknown = bff_partner::SPEC
        .embedded_config
        .replace("{orders.items[].id}", "{order.items[].id}");
    let shown = bff_partner::SPEC
        .parse_config(&unknown, std::iter::empty())
        .expect_err("invalid")
        .to_string();
    assert!(
        shown.contains("endpoints[0].calls[2].query.orderIds: {order...} names no call"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_query_parameter_no_route_takes_is_a_400_before_any_backend_call() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    stack.reset_stats().await;
    for path in [
        "/v1/customers/42/overview?limit=3",
        "/v1/orders/o-42-1?limit=3",
        "/v1/products/p1?page=2",
        "/openapi.json?x=1",
    ] {
        let response = stack
            .http
            .get(stack.url(path))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("unknown query parameter"),
            "{path}: {body}"
        );
    }
    for service in [Service::Users, Service::Orders, Service::Catalog] {
        assert_eq!(stack.requests(service).await, 0, "{service:?}");
    }
    // A parameter the route takes still works.
    let batch = stack
        .http
        .get(stack.url("/v1/products?ids=p1,p2"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 200);
}

#[tokio::test]
async fn deprecated_routes_say_so_on_every_answer() {
    use manifold::config::DeprecationConfig;
    let stack = Stack::start_with(&bff_partner::SPEC, |config| {
        config.deprecations = vec![
            DeprecationConfig {
                path: "/v1/orders/{id}".into(),
                deprecation: "2026-01-01T00:00:00Z".into(),
                sunset: Some("2027-01-01T00:00:00Z".into()),
                link: Some("https://docs.example/v2-orders".into()),
            },
            DeprecationConfig {
                path: "/v1/customers/{id}/overview".into(),
                deprecation: "2026-06-30T00:00:00Z".into(),
                sunset: None,
                link: None,
            },
        ];
    })
    .await;
    let get = |path: &'static str| {
        stack
            .http
            .get(stack.url(path))
            .header("x-api-key", KEY)
            .send()
    };
    let order = get("/v1/orders/o-42-1").await.unwrap();
    assert_eq!(order.status(), 200);
    let h = order.headers();
    assert_eq!(h["deprecation"], "@1767225600");
    assert_eq!(h["sunset"], "Fri, 01 Jan 2027 00:00:00 GMT");
    assert_eq!(
        h["link"],
        "<https://docs.example/v2-orders>; rel=\"deprecation\""
    );
    let overview = get("/v1/customers/42/overview").await.unwrap();
    assert_eq!(overview.headers()["deprecation"], "@1782777600");
    assert!(overview.headers().get("sunset").is_none());
    let product = get("/v1/products/p1").await.unwrap();
    assert!(product.headers().get("deprecation").is_none());

    // A sunset before its deprecation, and a date that is not one, are config errors.
    let text = format!(
        "{}\n[[deprecations]]\npath = \"/v1/orders/{{id}}\"\ndeprecation = \"2026-01-01T00:00:00Z\"\nsunset = \"2025-01-01T00:00:00Z\"\n\n[[deprecations]]\npath = \"/v1/products\"\ndeprecation = \"soon\"\n",
        bff_partner::SPEC.embedded_config
    );
    let shown = bff_partner::SPEC
        .parse_config(&text, std::iter::empty())
        .expect_err("invalid")
        .to_string();
    assert!(
        shown.contains("deprecations[0].sunset: is before the deprecation"),
        "{shown}"
    );
    assert!(shown.contains("deprecations[1].deprecation:"), "{shown}");
}

#[tokio::test]
async fn a_call_waits_only_for_the_calls_it_names() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    // The profile is slow; the shipments call needs only the orders, so it runs meanwhile:
    // in rounds it would start after the profile, and the answer take 300 + 250 ms.
    stack
        .chaos(Service::Users, json!({ "latency_ms": 300 }))
        .await;
    stack
        .chaos(Service::Shipping, json!({ "latency_ms": 250 }))
        .await;
    let started = tokio::time::Instant::now();
    let (status, body) = overview(&stack, "42").await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(body.get("degraded").is_none(), "{body}");
    assert!(
        took < std::time::Duration::from_millis(500),
        "took {took:?}"
    );
}
