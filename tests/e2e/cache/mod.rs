//! The entity cache end to end: backends' `/_stats` (or a scripted backend's own count) as
//! the witness of what reached them. Each test has its own stack, so caches start cold.

mod broadcast;
mod cluster;
mod faults;
mod poison;
mod shared;
mod speed;

use std::time::Duration;

use tokio::time::Instant;

use demo_services::Service;
use manifold::auth::hash_api_key;
use manifold::config::{ApiKeyConfig, CachePolicyConfig, Config};
use serde_json::{Value, json};

use crate::harness::Stack;
use crate::mobile::HOME;

/// The plain text of the key in config/partner.toml.
pub const DEMO_KEY: &str = "demo-partner-key";
pub const OTHER_KEY: &str = "another-partner-key";
pub const ADMIN_TOKEN: &str = "cache-admin-token-for-tests";

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub async fn partner_get(stack: &Stack, path: &str, key: &str, etag: Option<&str>) -> Reply {
    let mut request = stack.http.get(stack.url(path)).header("x-api-key", key);
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().await.expect("BFF reachable");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

/// A second partner key, and the purge endpoint's token.
pub fn with_keys(config: &mut Config) {
    config.auth.api_keys.insert(
        "other".to_owned(),
        ApiKeyConfig {
            sha256: hash_api_key(OTHER_KEY).into(),
            scopes: vec!["products:read".to_owned()],
            tier: None,
            enabled: true,
        },
    );
    config.cache.admin_token = Some(ADMIN_TOKEN.into());
}

/// Catalog entries fresh for `fresh` (whatever the backend says), then usable for the given
/// stale windows.
pub fn catalog_policy(config: &mut Config, fresh: Duration, swr: Duration, sie: Duration) {
    config.cache.upstreams.insert(
        "catalog".to_owned(),
        CachePolicyConfig {
            stale_while_revalidate: swr,
            stale_if_error: sie,
            max_ttl: fresh,
        },
    );
}

#[tokio::test]
async fn a_repeated_partner_get_is_served_from_cache_with_age_and_etag() {
    let stack = Stack::start_with(&bff_partner::SPEC, with_keys).await;
    stack.reset_stats().await;

    let first = partner_get(&stack, "/v1/products/p7", DEMO_KEY, None).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["id"], "p7");
    assert_eq!(stack.requests(Service::Catalog).await, 1);
    let etag = first.header("etag").expect("an ETag");

    let second = partner_get(&stack, "/v1/products/p7", DEMO_KEY, None).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
    assert_eq!(stack.requests(Service::Catalog).await, 1, "not from cache");
    let age: u64 = second.header("age").expect("an Age").parse().expect("Age");
    assert!(age < 60, "age {age}");
    assert_eq!(second.header("etag").as_deref(), Some(etag.as_str()));

    let revalidated = partner_get(&stack, "/v1/products/p7", DEMO_KEY, Some(&etag)).await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    assert_eq!(stack.requests(Service::Catalog).await, 1);
    let other = partner_get(&stack, "/v1/products/p7", DEMO_KEY, Some("\"nope\"")).await;
    assert_eq!(other.status, 200);

    let stats = stack.bff.gateway().cache().expect("cache on").stats();
    assert!(stats.hits >= 3 && stats.misses == 1, "{stats:?}");
}

#[tokio::test]
async fn concurrent_cold_misses_share_one_backend_call() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    // Slow enough that every request arrives while the first call is in flight.
    stack
        .chaos(Service::Catalog, json!({ "latency_ms": 300 }))
        .await;
    stack.reset_stats().await;

    let calls = (0..500).map(|_| {
        let stack = &stack;
        async move { partner_get(stack, "/v1/products/p9", DEMO_KEY, None).await }
    });
    let replies = futures_util::future::join_all(calls).await;

    for reply in &replies {
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    assert_eq!(stack.requests(Service::Catalog).await, 1);
    let stats = stack.bff.gateway().cache().expect("cache on").stats();
    assert!(stats.coalesced_waits > 0, "{stats:?}");
}

#[tokio::test]
async fn a_repeated_home_query_skips_catalog_and_never_shares_personal_data() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let ada = stack.token("42", "mobile", &[]).await;
    let bob = stack.token("43", "mobile", &[]).await;
    stack.reset_stats().await;

    let (status, first) = stack.graphql(Some(&ada), HOME, json!({})).await;
    assert_eq!(status, 200, "{first}");
    assert!(first.get("errors").is_none(), "{first}");
    assert_eq!(stack.requests(Service::Catalog).await, 1);
    stack.reset_stats().await;

    let (_, again) = stack.graphql(Some(&ada), HOME, json!({})).await;
    assert!(again.get("errors").is_none(), "{again}");
    assert_eq!(
        again["data"]["home"]["recommendations"],
        first["data"]["home"]["recommendations"]
    );
    assert_eq!(
        stack.requests(Service::Catalog).await,
        0,
        "products not cached"
    );
    // Personal data is never cached: each of these answered again.
    for service in [
        Service::Users,
        Service::Cart,
        Service::Notifications,
        Service::Orders,
    ] {
        assert_eq!(stack.requests(service).await, 1, "{}", service.name());
    }

    stack.reset_stats().await;
    let (_, other) = stack.graphql(Some(&bob), HOME, json!({})).await;
    assert!(other.get("errors").is_none(), "{other}");
    assert_eq!(other["data"]["home"]["me"]["id"], "43");
    for service in [
        Service::Users,
        Service::Cart,
        Service::Notifications,
        Service::Orders,
    ] {
        let stats = stack.stats(service).await;
        assert_eq!(stats["requests"], 1, "{}: {stats}", service.name());
        assert_eq!(
            stats["last_request"]["headers"]["x-user-id"], "43",
            "{stats}"
        );
    }
    // Products Ada's query cached were not asked again: only the misses went in the batch.
    let catalog = stack.stats(Service::Catalog).await;
    if catalog["requests"] != 0 {
        let asked = asked_ids(&catalog);
        for product in first["data"]["home"]["recommendations"].as_array().unwrap() {
            let id = product["id"].as_str().unwrap();
            assert!(
                !asked.contains(&id.to_owned()),
                "cached {id} fetched again: {asked:?}"
            );
        }
    }
    // Bob's cart and notifications are his, as the backends tell them.
    let cart: Value = stack
        .http
        .get(format!("{}/carts/43", stack.service_url(Service::Cart)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let units: u64 = cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["quantity"].as_u64().unwrap())
        .sum();
    assert_eq!(other["data"]["home"]["cart"]["itemCount"], units);
    assert_ne!(
        other["data"]["home"]["recentOrders"],
        first["data"]["home"]["recentOrders"]
    );
}

/// `POST /admin/cache/purge?{query}` on the stack's admin listener with the right token;
/// its status.
pub async fn purge(stack: &Stack, query: &str) -> u16 {
    purge_as(stack, query, Some(ADMIN_TOKEN)).await
}

/// The same purge with `token` as the admin token (`None`: without one).
async fn purge_as(stack: &Stack, query: &str, token: Option<&str>) -> u16 {
    let mut request = stack
        .http
        .post(stack.admin_url(&format!("/admin/cache/purge?{query}")));
    if let Some(t) = token {
        request = request.header("x-admin-token", t);
    }
    request
        .send()
        .await
        .expect("BFF reachable")
        .status()
        .as_u16()
}

/// The `ids=` of the last request a backend's stats show.
fn asked_ids(stats: &Value) -> Vec<String> {
    let query = stats["last_request"]["query"].as_str().unwrap_or_default();
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ids="))
        .unwrap_or_default()
        .replace("%2C", ",")
        .split(',')
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_home_asks_for_product_cards_only_and_a_purge_of_the_product_drops_them() {
    let stack = Stack::start_with(&bff_mobile::SPEC, with_keys).await;
    let ada = stack.token("42", "mobile", &[]).await;
    stack.reset_stats().await;
    let (_, first) = stack.graphql(Some(&ada), HOME, json!({})).await;
    assert!(first.get("errors").is_none(), "{first}");
    let catalog = stack.stats(Service::Catalog).await;
    let query = catalog["last_request"]["query"]
        .as_str()
        .unwrap_or_default();
    assert!(
        query.contains("fields=id%2Ctitle%2Cprice%2Cimages.thumb"),
        "{query}"
    );
    let cards = first["data"]["home"]["recommendations"].as_array().unwrap();
    assert!(
        cards
            .iter()
            .all(|c| c["thumbnailUrl"].as_str().is_some_and(|u| !u.is_empty()))
    );

    // The cards' view is cached under each product's tag: purging one product drops it.
    let purged = cards[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(purge(&stack, &format!("tag=product:{purged}")).await, 200);
    stack.reset_stats().await;
    let (_, again) = stack.graphql(Some(&ada), HOME, json!({})).await;
    assert_eq!(
        again["data"]["home"]["recommendations"],
        first["data"]["home"]["recommendations"]
    );
    let catalog = stack.stats(Service::Catalog).await;
    assert_eq!(catalog["requests"], 1, "{catalog}");
    assert_eq!(asked_ids(&catalog), [purged]);
}

#[tokio::test]
async fn purge_by_tag_or_prefix_needs_the_token_and_drops_entries() {
    let stack = Stack::start_with(&bff_partner::SPEC, with_keys).await;
    stack.reset_stats().await;
    for id in ["p13", "p14"] {
        assert_eq!(
            partner_get(&stack, &format!("/v1/products/{id}"), DEMO_KEY, None)
                .await
                .status,
            200
        );
    }
    assert_eq!(stack.requests(Service::Catalog).await, 2);

    let purge = |query: &'static str, token: Option<&'static str>| purge_as(&stack, query, token);
    // Operator endpoints: on the admin listener only, never on the public one.
    for (method, path) in [
        (reqwest::Method::POST, "/admin/cache/purge?tag=product:p13"),
        (reqwest::Method::GET, "/admin/cache/stats"),
    ] {
        let status = stack
            .http
            .request(method, stack.url(path))
            .header("x-admin-token", ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path} on the public listener");
    }
    assert_eq!(purge("tag=product:p13", None).await, 401);
    assert_eq!(
        purge("tag=product:p13", Some("wrong-token-wrong-token")).await,
        401
    );
    assert_eq!(purge("", Some(ADMIN_TOKEN)).await, 400);
    assert_eq!(
        partner_get(&stack, "/v1/products/p13", DEMO_KEY, None)
            .await
            .status,
        200
    );
    assert_eq!(
        stack.requests(Service::Catalog).await,
        2,
        "purged without the token"
    );

    assert_eq!(purge("tag=product:p13", Some(ADMIN_TOKEN)).await, 200);
    assert_eq!(
        partner_get(&stack, "/v1/products/p13", DEMO_KEY, None)
            .await
            .status,
        200
    );
    assert_eq!(
        partner_get(&stack, "/v1/products/p14", DEMO_KEY, None)
            .await
            .status,
        200
    );
    assert_eq!(
        stack.requests(Service::Catalog).await,
        3,
        "only p13 was purged"
    );

    assert_eq!(
        purge("prefix=catalog%20product:p1", Some(ADMIN_TOKEN)).await,
        200
    );
    assert_eq!(
        partner_get(&stack, "/v1/products/p14", DEMO_KEY, None)
            .await
            .status,
        200
    );
    assert_eq!(
        stack.requests(Service::Catalog).await,
        4,
        "prefix purge missed p14"
    );

    let stats: Value = stack
        .http
        .get(stack.admin_url("/admin/cache/stats"))
        .header("x-admin-token", ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["bytes_used"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["hits"].as_u64().unwrap() >= 2, "{stats}");
}

/// Polls `probe` until it returns `Some`, for at most `limit`.
pub async fn until<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    mut probe: impl FnMut() -> F,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn proxied_gets_of_a_cached_service_are_replayed_with_etags() {
    use manifold::config::{AuthPolicy, RouteConfig};
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        config.routes.push(RouteConfig {
            prefix: "/api/products/".to_owned(),
            upstream: "catalog".to_owned(),
            rewrite: Some("/products/".to_owned()),
            auth: AuthPolicy::Jwt,
            scopes: Vec::new(),
            timeout: Duration::from_secs(5),
            max_body: None,
            compress: false,
        });
        // Users answer "private, no-store": caching the service must still store nothing.
        config
            .cache
            .upstreams
            .insert("users".to_owned(), CachePolicyConfig::default());
    })
    .await;
    let token = stack.token("42", "web", &[]).await;
    stack.reset_stats().await;
    let get = |path: &'static str, etag: Option<String>| {
        let mut request = stack.http.get(stack.url(path)).bearer_auth(&token);
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        async move {
            let r = request.send().await.expect("BFF reachable");
            let status = r.status().as_u16();
            let age = r.headers().get("age").is_some();
            let etag = r
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = r.bytes().await.unwrap();
            (status, age, etag, body)
        }
    };

    let (status, age, _, first) = get("/api/products/p3", None).await;
    assert_eq!(status, 200);
    assert!(!age);
    let (status, age, etag, again) = get("/api/products/p3", None).await;
    assert_eq!((status, age), (200, true));
    assert_eq!(again, first);
    assert_eq!(
        stack.requests(Service::Catalog).await,
        1,
        "not replayed from cache"
    );
    let (status, _, _, body) = get("/api/products/p3", etag).await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(stack.requests(Service::Catalog).await, 1);

    for _ in 0..2 {
        assert_eq!(get("/api/users/42", None).await.0, 200);
    }
    assert_eq!(
        stack.requests(Service::Users).await,
        2,
        "no-store answer cached"
    );
}
