//! bff-partner: the `/v1` REST API with API keys, problem+json errors and its OpenAPI document,
//! against the real demo backends.

use demo_services::Service;
use manifold::auth::hash_api_key;
use manifold::config::ApiKeyConfig;
use serde_json::{Value, json};

use crate::harness::Stack;

/// The plain text of the key in config/partner.toml.
const DEMO_KEY: &str = "demo-partner-key";
const PROBLEM_JSON: &str = "application/problem+json";
/// A seeded order: user 42 has at least three, `o-42-3` among them.
const ORDER: &str = "o-42-3";

#[derive(Clone, Copy)]
enum Key<'a> {
    Bearer(&'a str),
    Header(&'a str),
    Absent,
}

struct Answer {
    status: u16,
    content_type: String,
    www_authenticate: Option<String>,
    body: Value,
}

impl Answer {
    #[track_caller]
    fn assert_problem(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.content_type, PROBLEM_JSON, "{}", self.body);
        assert_eq!(self.body["status"], status, "{}", self.body);
        assert!(self.body["code"].is_string(), "no code: {}", self.body);
        assert!(self.body["detail"].is_string(), "no detail: {}", self.body);
    }
}

async fn get(stack: &Stack, path: &str, key: Key<'_>) -> Answer {
    let mut request = stack.http.get(stack.url(path));
    request = match key {
        Key::Bearer(k) => request.bearer_auth(k),
        Key::Header(k) => request.header("x-api-key", k),
        Key::Absent => request,
    };
    let response = request.send().await.expect("BFF reachable");
    let header = |name: &str| crate::harness::header(&response, name);
    let content_type = header("content-type").unwrap_or_default();
    let www_authenticate = header("www-authenticate");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        www_authenticate,
        body,
    }
}

/// Requests the three backends of the partner API have served since the last reset.
async fn backend_calls(stack: &Stack) -> [u64; 3] {
    [
        stack.requests(Service::Orders).await,
        stack.requests(Service::Catalog).await,
        stack.requests(Service::Shipping).await,
    ]
}

async fn clear_chaos(stack: &Stack, service: Service) {
    let status = stack
        .http
        .delete(format!("{}/_chaos", stack.service_url(service)))
        .send()
        .await
        .expect("chaos")
        .status();
    assert!(status.is_success(), "chaos not cleared: {status}");
}

#[tokio::test]
async fn an_order_merges_orders_catalog_and_shipping_one_call_each_with_either_key_style() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    let backend_order = stack
        .backend_json(Service::Orders, &format!("/orders/{ORDER}"))
        .await;
    let backend_items = backend_order["items"].as_array().expect("items");

    // The first round finds the cache cold; the second finds the products it stored.
    for (round, key) in [Key::Bearer(DEMO_KEY), Key::Header(DEMO_KEY)]
        .into_iter()
        .enumerate()
    {
        stack.reset_stats().await;
        let answer = get(&stack, &format!("/v1/orders/{ORDER}"), key).await;

        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.content_type, "application/json");
        let order = &answer.body;
        assert_eq!(order["id"], ORDER);
        assert_eq!(order["status"], backend_order["status"]);
        assert_eq!(order["total"], backend_order["total"]);
        let items = order["items"].as_array().expect("items");
        assert_eq!(items.len(), backend_items.len());
        for (item, line) in items.iter().zip(backend_items) {
            assert_eq!(item["productId"], line["productId"]);
            assert_eq!(item["title"], line["title"], "the catalog's title");
            assert_eq!(item["sku"], line["sku"]);
            assert_eq!(item["quantity"], line["quantity"]);
            let thumbnail = item["thumbnailUrl"]
                .as_str()
                .expect("thumbnail from catalog");
            assert!(thumbnail.starts_with("https://"), "{thumbnail}");
        }
        let shipment = &order["shipment"];
        assert!(shipment["trackingNumber"].is_string(), "shipment: {order}");
        assert!(shipment["carrier"].is_string() && shipment["eta"].is_string());
        // Trimmed to the partner shape: no audit blocks, notes or tracking events.
        for fat in [
            "audit",
            "notes",
            "userId",
            "billingAddress",
            "paymentMethod",
        ] {
            assert!(order.get(fat).is_none(), "{fat} leaked");
        }
        assert!(shipment.get("events").is_none());

        // One call to each backend: the catalog with ONE batch, never product by product,
        // and not at all once its products are cached (orders and shipping are private,
        // no-store: called every time).
        let catalog_calls = if round == 0 { 1 } else { 0 };
        assert_eq!(backend_calls(&stack).await, [1, catalog_calls, 1]);
        let catalog = stack.stats(Service::Catalog).await;
        if round == 0 {
            assert_eq!(catalog["by_path"]["/products"], 1, "{catalog}");
        }
        // The backends learn which partner called, never the key.
        let seen = &stack.stats(Service::Orders).await["last_request"]["headers"];
        assert_eq!(seen["x-api-client"], "demo", "{seen}");
        assert!(seen.get("x-api-key").is_none() && seen.get("authorization").is_none());
    }
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_a_401_problem_and_calls_no_backend() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    stack.reset_stats().await;
    for key in [
        Key::Bearer("demo-partner-kez"),
        Key::Header("not-a-key"),
        Key::Bearer(""),
        Key::Absent,
    ] {
        for path in [format!("/v1/orders/{ORDER}"), "/v1/products/p1".to_owned()] {
            let answer = get(&stack, &path, key).await;
            answer.assert_problem(401);
            assert_eq!(answer.body["code"], "UNAUTHENTICATED");
            let challenge = answer.www_authenticate.as_deref().unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "WWW-Authenticate: {challenge:?}"
            );
        }
    }
    assert_eq!(backend_calls(&stack).await, [0, 0, 0]);
}

#[tokio::test]
async fn a_key_without_the_scope_is_a_403_problem() {
    let stack = Stack::start_with(&bff_partner::SPEC, |config| {
        config.auth.api_keys.insert(
            "catalog-only".to_owned(),
            ApiKeyConfig {
                sha256: hash_api_key("catalog-only-key").into(),
                scopes: vec!["products:read".to_owned()],
                tier: None,
                enabled: true,
            },
        );
    })
    .await;
    stack.reset_stats().await;

    let answer = get(
        &stack,
        &format!("/v1/orders/{ORDER}"),
        Key::Header("catalog-only-key"),
    )
    .await;
    answer.assert_problem(403);
    assert_eq!(answer.body["code"], "FORBIDDEN");
    assert_eq!(backend_calls(&stack).await, [0, 0, 0]);

    let answer = get(&stack, "/v1/products/p1", Key::Header("catalog-only-key")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn products_one_and_batched_with_unknown_ids_and_bounds() {
    let stack = Stack::start(&bff_partner::SPEC).await;

    let answer = get(&stack, "/v1/products/p7", Key::Header(DEMO_KEY)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let product = &answer.body;
    assert_eq!(product["id"], "p7");
    for field in [
        "sku",
        "title",
        "brand",
        "category",
        "description",
        "imageUrl",
        "thumbnailUrl",
    ] {
        assert!(product[field].is_string(), "{field}: {product}");
    }
    assert!(product["price"]["amount"].is_string() && product["price"]["currency"] == "EUR");
    assert!(product.get("images").is_none() && product.get("audit").is_none());

    let answer = get(&stack, "/v1/products/p999999", Key::Header(DEMO_KEY)).await;
    answer.assert_problem(404);
    assert_eq!(answer.body["code"], "NOT_FOUND");
    let answer = get(&stack, "/v1/orders/o-42-999", Key::Header(DEMO_KEY)).await;
    answer.assert_problem(404);

    stack.reset_stats().await;
    let answer = get(
        &stack,
        "/v1/products?ids=p3,p999999,p1,p3",
        Key::Bearer(DEMO_KEY),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let ids: Vec<&str> = answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["p3", "p1"], "in the order asked, once each");
    assert_eq!(answer.body["missing"], json!(["p999999"]));
    assert_eq!(
        stack.requests(Service::Catalog).await,
        1,
        "one catalog call"
    );

    stack.reset_stats().await;
    let hundred: Vec<String> = (1..=100).map(|n| format!("p{n}")).collect();
    let answer = get(
        &stack,
        &format!("/v1/products?ids={}", hundred.join(",")),
        Key::Header(DEMO_KEY),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["items"].as_array().map(Vec::len), Some(100));
    assert_eq!(
        stack.requests(Service::Catalog).await,
        1,
        "100 ids, still one call"
    );

    stack.reset_stats().await;
    let over = format!("/v1/products?ids={},p101", hundred.join(","));
    for path in [over.as_str(), "/v1/products?ids=", "/v1/products"] {
        let answer = get(&stack, path, Key::Header(DEMO_KEY)).await;
        answer.assert_problem(400);
        assert_eq!(answer.body["code"], "BAD_REQUEST");
    }
    assert_eq!(stack.requests(Service::Catalog).await, 0);
}

#[tokio::test]
async fn the_openapi_document_is_3_1_needs_no_key_and_lists_every_served_route() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    let answer = get(&stack, "/openapi.json", Key::Absent).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/json");
    let doc = &answer.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = &doc["components"]["securitySchemes"];
    assert!(
        schemes
            .as_object()
            .expect("schemes")
            .values()
            .any(|s| s["scheme"] == "bearer")
    );
    assert!(
        schemes
            .as_object()
            .expect("schemes")
            .values()
            .any(|s| s["name"] == "X-Api-Key")
    );

    let checked_in: Value =
        serde_json::from_str(include_str!("../../schemas/partner.openapi.json"))
            .expect("schemas/partner.openapi.json is JSON");
    assert_eq!(*doc, checked_in, "served and checked-in documents differ");

    // Every route is documented, and every documented operation is served (not 404/405).
    let paths = doc["paths"].as_object().expect("paths");
    let documented: usize = paths
        .values()
        .filter_map(Value::as_object)
        .map(|ops| ops.len())
        .sum();
    // The coded routes and the endpoints declared in config.
    let declared = bff_partner::SPEC
        .default_config()
        .expect("the shipped config")
        .endpoints;
    assert_eq!(documented, bff_partner::ROUTES.len() + declared.len());
    for endpoint in &declared {
        assert!(
            paths[&endpoint.path]["get"].is_object(),
            "{} undocumented",
            endpoint.path
        );
    }
    for route in bff_partner::ROUTES {
        assert!(
            paths[route.path][route.verb.key()].is_object(),
            "{} undocumented",
            route.path
        );
    }
    for (path, ops) in paths {
        for (method, op) in ops.as_object().expect("operations") {
            assert_eq!(method, "get", "only GET so far");
            let id = match path.as_str() {
                p if p.starts_with("/v1/customers/") => "42",
                p if p.starts_with("/v1/orders/") => ORDER,
                _ => "p1",
            };
            let mut uri = path.replace("{id}", id);
            // The required query parameters (ids only), with a value each.
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["in"] == "query" && param["required"] == true {
                    uri.push_str(&format!(
                        "?{}=p1",
                        param["name"].as_str().unwrap_or_default()
                    ));
                }
            }
            let answer = get(&stack, &uri, Key::Header(DEMO_KEY)).await;
            assert_eq!(answer.status, 200, "{uri}: {}", answer.body);
        }
    }
    let answer = get(&stack, "/v1/customers/1", Key::Header(DEMO_KEY)).await;
    answer.assert_problem(404);
}

#[tokio::test]
async fn a_failing_part_degrades_an_order_and_a_failing_order_is_a_problem() {
    // Without the cache: with it, the products loaded while shipping is down would answer
    // for the failing catalog (the cache's own tests cover that).
    let stack = Stack::start_with(&bff_partner::SPEC, |c| c.cache.enabled = false).await;
    let order = format!("/v1/orders/{ORDER}");

    // Shipping down: the order is served without its shipment, and says so.
    stack
        .chaos(Service::Shipping, json!({ "error_rate": 1.0 }))
        .await;
    let answer = get(&stack, &order, Key::Header(DEMO_KEY)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["degraded"], json!(["shipment"]));
    assert!(answer.body["shipment"].is_null());
    assert!(answer.body["items"][0]["thumbnailUrl"].is_string());
    clear_chaos(&stack, Service::Shipping).await;

    // Catalog down: items carry the order's own titles and no images; the product routes,
    // which have nothing else to serve, answer with a problem naming the service.
    stack
        .chaos(
            Service::Catalog,
            json!({ "error_rate": 1.0, "status": 500 }),
        )
        .await;
    let answer = get(&stack, &order, Key::Header(DEMO_KEY)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["degraded"], json!(["products"]));
    assert!(answer.body["items"][0]["title"].is_string());
    assert!(answer.body["items"][0]["thumbnailUrl"].is_null());
    assert!(answer.body["shipment"].is_object());
    for path in ["/v1/products/p1", "/v1/products?ids=p1,p2"] {
        let answer = get(&stack, path, Key::Header(DEMO_KEY)).await;
        // 502 while the catalog's breaker counts failures, 503 once it has opened.
        assert!(
            matches!(answer.status, 502 | 503),
            "{path}: {}",
            answer.body
        );
        answer.assert_problem(answer.status);
        assert_eq!(answer.body["service"], "catalog", "{path}");
        assert!(
            !answer.body.to_string().contains("127.0.0.1"),
            "no backend address leaks"
        );
    }
    clear_chaos(&stack, Service::Catalog).await;

    // The order itself is critical.
    stack
        .chaos(Service::Orders, json!({ "malformed": true }))
        .await;
    let answer = get(&stack, &order, Key::Header(DEMO_KEY)).await;
    answer.assert_problem(502);
    assert_eq!(answer.body["code"], "UPSTREAM_BAD_RESPONSE");
    assert_eq!(answer.body["service"], "orders");

    stack
        .chaos(Service::Orders, json!({ "error_rate": 1.0 }))
        .await;
    stack.reset_stats().await;
    let answer = get(&stack, &order, Key::Bearer(DEMO_KEY)).await;
    answer.assert_problem(502);
    assert_eq!(answer.body["service"], "orders");
    // Without the order there is nothing to look up: catalog and shipping are not called.
    assert_eq!(backend_calls(&stack).await[1..], [0, 0]);
}

#[tokio::test]
async fn an_order_looks_up_catalog_and_shipping_concurrently() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    let delay = json!({ "latency_ms": 500 });
    stack.chaos(Service::Catalog, delay.clone()).await;
    stack.chaos(Service::Shipping, delay).await;

    let started = tokio::time::Instant::now();
    let answer = get(
        &stack,
        &format!("/v1/orders/{ORDER}"),
        Key::Header(DEMO_KEY),
    )
    .await;
    let elapsed = started.elapsed();

    assert_eq!(answer.status, 200, "{}", answer.body);
    // One after the other would take at least 1 s.
    assert!(
        elapsed.as_millis() >= 500,
        "the latency was not injected: {elapsed:?}"
    );
    assert!(
        elapsed.as_millis() < 950,
        "catalog and shipping ran in sequence: {elapsed:?}"
    );
}
