//! The demo backends over real HTTP: shapes, batching, paging, idempotency, caching hints,
//! request accounting, fault injection, streaming echo and the IdP's tokens and rotation.
//! Every test starts its own set of services on free ports, so they run in parallel.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::time::Instant;

use demo_services::{Backends, Service};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

async fn backends() -> Backends {
    Backends::start(IpAddr::V4(Ipv4Addr::LOCALHOST), None)
        .await
        .expect("demo backends start")
}

async fn get_json(client: &Client, url: &str) -> (StatusCode, Value) {
    let response = client.get(url).send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items array")
        .iter()
        .map(|item| item["id"].as_str().expect("string id").to_owned())
        .collect()
}

#[tokio::test]
async fn users_are_fat_stable_and_batched() {
    let backends = backends().await;
    let users = backends.url(Service::Users);
    let client = Client::new();

    let response = client
        .get(format!("{users}/users/42"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    let body = response.bytes().await.unwrap();
    assert!(body.len() > 1500, "user is only {} bytes", body.len());
    let again = client
        .get(format!("{users}/users/42"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.bytes().await.unwrap(), body, "same id, same bytes");

    let user: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(user["id"], "42");
    for field in ["name", "email", "bio", "locale", "timezone"] {
        assert!(user[field].is_string(), "{field} missing");
    }
    for size in ["thumb", "small", "medium", "large", "xlarge", "original"] {
        assert!(user["avatar"][size]["url"].is_string(), "avatar.{size}");
        assert!(
            user["avatar"][size]["width"].is_u64(),
            "avatar.{size}.width"
        );
    }
    for field in ["line1", "line2", "city", "postcode", "country"] {
        assert!(user["address"].get(field).is_some(), "address.{field}");
    }
    for field in [
        "createdAt",
        "createdBy",
        "updatedAt",
        "updatedBy",
        "version",
        "source",
    ] {
        assert!(user["audit"].get(field).is_some(), "audit.{field}");
    }

    let (status, batch) = get_json(&client, &format!("{users}/users?ids=1,2,99999")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&batch), ["1", "2"]);

    let (status, missing) = get_json(&client, &format!("{users}/users/99999")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"], "not_found");
    assert!(missing["message"].is_string());
    let (status, _) = get_json(&client, &format!("{users}/users")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn catalog_batches_in_order_searches_and_sends_cache_hints() {
    let backends = backends().await;
    let catalog = backends.url(Service::Catalog);
    let client = Client::new();

    let response = client
        .get(format!("{catalog}/products?ids=p3,p1,nope,p60000,p2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    let batch: Value = response.json().await.unwrap();
    assert_eq!(ids(&batch), ["p3", "p1", "p2"]);
    let p1 = &batch["items"][1];
    assert_eq!(p1["price"]["currency"], "EUR");
    assert!(p1["price"]["amount"].as_str().unwrap().contains('.'));
    let one = client
        .get(format!("{catalog}/products/p1"))
        .send()
        .await
        .unwrap();
    assert!(one.bytes().await.unwrap().len() > 2000);

    // A projection: only the members asked for, and `id` always; an unknown one is a 400.
    let (status, narrow) = get_json(
        &client,
        &format!("{catalog}/products?ids=p3,p1&fields=title,price"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&narrow), ["p3", "p1"]);
    let mut members: Vec<&str> = narrow["items"][1]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["id", "price", "title"]);
    assert_eq!(narrow["items"][1]["title"], p1["title"]);
    let (_, one_narrow) = get_json(&client, &format!("{catalog}/products/p1?fields=images")).await;
    assert_eq!(one_narrow["images"], p1["images"]);
    assert!(one_narrow.get("description").is_none());
    let (status, _) = get_json(
        &client,
        &format!("{catalog}/products?ids=p1&fields=title,secret"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Errors carry no caching hint.
    let missing = client
        .get(format!("{catalog}/products/p0"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers().get("cache-control").is_none());

    let url = format!("{catalog}/products?category=books&limit=5");
    let (_, first) = get_json(&client, &url).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 5);
    assert!(
        first["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["category"] == "books")
    );
    let cursor = first["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, second) = get_json(&client, &format!("{url}&cursor={cursor}")).await;
    assert_eq!(ids(&second)[0], cursor);

    // Titles are searchable by their words.
    let title = p1["title"].as_str().unwrap().to_lowercase();
    let words: Vec<&str> = title.split_whitespace().collect();
    let q = format!("{} {}", words[0], words[words.len() - 1]);
    let (_, found) = get_json(&client, &format!("{catalog}/products?q={q}&limit=100")).await;
    assert!(
        ids(&found).contains(&"p1".to_owned()),
        "q={q} should find p1"
    );

    let reviews = backends.url(Service::Reviews);
    let response = client
        .get(format!("{reviews}/reviews/summary?productIds=p2,p1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=30");
    let summary: Value = response.json().await.unwrap();
    assert_eq!(summary["items"][0]["productId"], "p2");
    assert!(summary["items"][1]["histogram"]["5"].is_u64());
}

#[tokio::test]
async fn orders_page_with_cursors() {
    let backends = backends().await;
    let orders = backends.url(Service::Orders);
    let client = Client::new();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{orders}/orders?userId=42&limit=2");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = get_json(&client, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page["items"].as_array().unwrap().len() <= 2);
        seen.extend(ids(&page));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(page["nextCursor"].is_null());
                break;
            }
        }
        assert!(seen.len() <= 12, "paging does not end");
    }
    assert!((3..=12).contains(&seen.len()));
    let expected: Vec<String> = (1..=seen.len()).map(|n| format!("o-42-{n}")).collect();
    assert_eq!(seen, expected, "newest (n = 1) first");

    let (status, order) = get_json(&client, &format!("{orders}/orders/o-42-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["userId"], "42");
    assert!(!order["items"].as_array().unwrap().is_empty());
    let (status, _) = get_json(&client, &format!("{orders}/orders?limit=2")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn creating_an_order_is_idempotent() {
    let backends = backends().await;
    let orders = backends.url(Service::Orders);
    let client = Client::new();
    let list = format!("{orders}/orders?userId=7&limit=50");
    let (_, before) = get_json(&client, &list).await;
    let before = ids(&before);

    let body = json!({"items": [{"productId": "p10", "quantity": 2}, {"productId": "p11", "quantity": 1}]});
    let post = || {
        client
            .post(format!("{orders}/orders"))
            .header("x-user-id", "7")
            .header("idempotency-key", "checkout-1")
            .json(&body)
            .send()
    };
    let first = post().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let second = post().await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["status"], "PLACED");
    assert_eq!(first["items"][0]["quantity"], 2);

    let (_, after) = get_json(&client, &list).await;
    let after = ids(&after);
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(
        after[0],
        first["id"].as_str().unwrap(),
        "created orders come first"
    );
    let (status, fetched) = get_json(&client, &format!("{orders}/orders/{}", after[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, first);

    let anonymous = client
        .post(format!("{orders}/orders"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn carts_grow_and_shipments_are_batched() {
    let backends = backends().await;
    let client = Client::new();
    let cart = backends.url(Service::Cart);

    let (status, before) = get_json(&client, &format!("{cart}/carts/5")).await;
    assert_eq!(status, StatusCode::OK);
    let response = client
        .post(format!("{cart}/carts/5/items"))
        .json(&json!({"productId": "p777", "quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let added: Value = response.json().await.unwrap();
    let line = added["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["productId"] == "p777")
        .expect("added line");
    assert!(line["quantity"].as_u64().unwrap() >= 2);
    let (_, after) = get_json(&client, &format!("{cart}/carts/5")).await;
    assert_eq!(after, added);
    assert_ne!(after["subtotal"], before["subtotal"]);

    let shipping = backends.url(Service::Shipping);
    let url = format!("{shipping}/shipments?orderIds=o-1-1,bogus,o-2-3");
    let (status, shipments) = get_json(&client, &url).await;
    assert_eq!(status, StatusCode::OK);
    let items = shipments["items"].as_array().unwrap();
    let order_ids: Vec<&str> = items
        .iter()
        .map(|s| s["orderId"].as_str().unwrap())
        .collect();
    assert_eq!(order_ids, ["o-1-1", "o-2-3"]);
    let eta = items[0]["eta"].as_str().unwrap();
    assert_eq!(eta.len(), 10, "eta {eta} is a date");
    assert!(!items[1]["events"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn stats_count_requests_bytes_and_the_last_request() {
    let backends = backends().await;
    let users = backends.url(Service::Users);
    let client = Client::new();

    let first = client.get(format!("{users}/users/1")).send().await.unwrap();
    let first_len = first.bytes().await.unwrap().len() as u64;
    let second = client
        .get(format!("{users}/users?ids=1,2"))
        .header("X-Test-Marker", "hello")
        .send()
        .await
        .unwrap();
    let second_len = second.bytes().await.unwrap().len() as u64;
    client.get(format!("{users}/healthz")).send().await.unwrap();

    let (status, stats) = get_json(&client, &format!("{users}/_stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stats["requests"], 2,
        "healthz and /_* are not counted: {stats}"
    );
    assert_eq!(stats["by_path"]["/users/1"], 1);
    assert_eq!(stats["by_path"]["/users"], 1);
    assert_eq!(stats["bytes_sent"], first_len + second_len);
    let last = &stats["last_request"];
    assert_eq!(last["method"], "GET");
    assert_eq!(last["path"], "/users");
    assert_eq!(last["query"], "ids=1,2");
    assert_eq!(last["headers"]["x-test-marker"], "hello");

    let reset = client
        .delete(format!("{users}/_stats"))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    let (_, stats) = get_json(&client, &format!("{users}/_stats")).await;
    assert_eq!(stats["requests"], 0);
    assert_eq!(stats["bytes_sent"], 0);
    assert!(stats["last_request"].is_null());
}

#[tokio::test]
async fn chaos_injects_faults_until_cleared() {
    let backends = backends().await;
    let users = backends.url(Service::Users);
    let client = Client::new();
    let target = format!("{users}/users/1");
    let chaos = |config: Value| client.post(format!("{users}/_chaos")).json(&config).send();

    // Status errors, counted by the stats like any request.
    assert!(
        chaos(json!({"error_rate": 1, "status": 502}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let (status, body) = get_json(&client, &target).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body["error"].is_string() && body["message"].is_string());
    let (status, stats) = get_json(&client, &format!("{users}/_stats")).await;
    assert_eq!(status, StatusCode::OK, "/_stats is exempt from faults");
    assert_eq!(stats["requests"], 1);

    // Latency.
    chaos(json!({"latency_ms": 300})).await.unwrap();
    let started = Instant::now();
    let response = client.get(&target).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Malformed: a 200 whose JSON does not parse.
    chaos(json!({"malformed": true})).await.unwrap();
    let response = client.get(&target).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.bytes().await.unwrap();
    assert!(!body.is_empty());
    assert!(serde_json::from_slice::<Value>(&body).is_err());

    // Reset: the client never gets a complete response.
    chaos(json!({"reset": true})).await.unwrap();
    match client.get(&target).send().await {
        Err(_) => {}
        Ok(response) => assert!(response.bytes().await.is_err(), "body must not complete"),
    }

    // Hang: no answer at all.
    chaos(json!({"hang": true})).await.unwrap();
    let hung = client
        .get(&target)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung.is_err_and(|err| err.is_timeout()));

    // Unknown fields are refused rather than silently ignored.
    let typo = chaos(json!({"latency": 5})).await.unwrap();
    assert_eq!(typo.status(), StatusCode::BAD_REQUEST);

    let cleared = client
        .delete(format!("{users}/_chaos"))
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
    let (status, user) = get_json(&client, &target).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["id"], "1");
}

#[tokio::test]
async fn shutdown_cuts_off_hung_requests() {
    let backends = backends().await;
    let users = backends.url(Service::Users);
    let client = Client::new();
    client
        .post(format!("{users}/_chaos"))
        .json(&json!({"hang": true}))
        .send()
        .await
        .unwrap();
    let hung = tokio::spawn(client.get(format!("{users}/users/1")).send());
    // Poll until the hung request has reached the service (counted on arrival).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, stats) = get_json(&client, &format!("{users}/_stats")).await;
        if stats["requests"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "hung request never arrived");
        tokio::task::yield_now().await;
    }
    backends.shutdown();
    let outcome = tokio::time::timeout(Duration::from_secs(5), hung)
        .await
        .expect("shutdown ends hung requests")
        .unwrap();
    match outcome {
        Err(_) => {}
        Ok(response) => assert!(response.bytes().await.is_err()),
    }
}

#[tokio::test]
async fn echo_streams_the_body_back() {
    let backends = backends().await;
    let payload: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect();
    let response = Client::new()
        .post(format!("{}/_echo", backends.url(Service::Shipping)))
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echoed = response.bytes().await.unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload);
}

async fn mint(client: &Client, auth: &str, request: Value) -> String {
    let response = client
        .post(format!("{auth}/token"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn jwks(client: &Client, auth: &str) -> JwkSet {
    let url = format!("{auth}/.well-known/jwks.json");
    client.get(url).send().await.unwrap().json().await.unwrap()
}

fn verify(token: &str, keys: &JwkSet, issuer: &str) -> jsonwebtoken::errors::Result<Value> {
    let kid = jsonwebtoken::decode_header(token)?
        .kid
        .expect("kid in header");
    let jwk = keys.find(&kid).expect("kid published in the JWKS");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["mobile"]);
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)
        .map(|d| d.claims)
}

#[tokio::test]
async fn idp_tokens_verify_against_the_jwks_and_rotate() {
    let backends = backends().await;
    let auth = backends.url(Service::Auth);
    let client = Client::new();

    let request =
        json!({"sub": "42", "aud": "mobile", "scopes": ["orders:read", "profile"], "tier": "gold"});
    let token = mint(&client, &auth, request).await;
    let keys = jwks(&client, &auth).await;
    assert_eq!(keys.keys.len(), 1);
    let claims = verify(&token, &keys, &auth).expect("token verifies");
    assert_eq!(claims["iss"], auth.as_str());
    assert_eq!(claims["sub"], "42");
    assert_eq!(claims["aud"], "mobile");
    assert_eq!(claims["scope"], "orders:read profile");
    assert_eq!(claims["tier"], "gold");
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - claims["iat"].as_i64().unwrap(), 900);
    let first_kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();

    let expired = mint(
        &client,
        &auth,
        json!({"sub": "42", "aud": "mobile", "ttl_s": -120}),
    )
    .await;
    let err = verify(&expired, &keys, &auth).expect_err("expired token is refused");
    assert!(matches!(
        err.kind(),
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
    ));
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&expired)
        .unwrap()
        .claims;
    assert!(claims["exp"].as_i64().unwrap() < claims["iat"].as_i64().unwrap());

    let rotated: Value = client
        .post(format!("{auth}/_rotate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, first_kid);
    let keys = jwks(&client, &auth).await;
    let published: HashSet<&str> = keys
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.as_deref())
        .collect();
    assert_eq!(
        published,
        HashSet::from([new_kid.as_str(), first_kid.as_str()])
    );
    let fresh = mint(&client, &auth, json!({"sub": "7", "aud": "mobile"})).await;
    assert_eq!(
        jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
        Some(new_kid.as_str())
    );
    verify(&fresh, &keys, &auth).expect("new key verifies");
    verify(&token, &keys, &auth).expect("old tokens still verify after one rotation");

    let (status, _) = get_json(&client, &format!("{auth}/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let bad = client
        .post(format!("{auth}/token"))
        .json(&json!({"aud": "mobile"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_service_answers_its_endpoints() {
    let backends = backends().await;
    let client = Client::new();
    let probes = [
        (
            Service::Recommendations,
            "/recommendations?userId=3&limit=5",
        ),
        (Service::Notifications, "/notifications?userId=3"),
        (Service::Reviews, "/reviews?productId=p9"),
        (Service::Promotions, "/promotions?userId=3&placement=home"),
    ];
    for (service, path) in probes {
        let (status, body) = get_json(&client, &format!("{}{path}", backends.url(service))).await;
        assert_eq!(status, StatusCode::OK, "{service}{path}: {body}");
        assert!(body["items"].is_array(), "{service}{path}");
    }
    let (_, recommendations) = get_json(
        &client,
        &format!(
            "{}/recommendations?userId=3&limit=5",
            backends.url(Service::Recommendations)
        ),
    )
    .await;
    assert_eq!(recommendations["items"].as_array().unwrap().len(), 5);
    let (_, inbox) = get_json(
        &client,
        &format!(
            "{}/notifications?userId=3",
            backends.url(Service::Notifications)
        ),
    )
    .await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 20);
    let (_, promotions) = get_json(
        &client,
        &format!(
            "{}/promotions?userId=3&placement=home",
            backends.url(Service::Promotions)
        ),
    )
    .await;
    assert!((3..=5).contains(&promotions["items"].as_array().unwrap().len()));

    for service in Service::ALL {
        assert_eq!(Service::from_name(service.name()), Some(service));
        assert_eq!(backends.addr(service).ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let (status, health) =
            get_json(&client, &format!("{}/healthz", backends.url(service))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(health, json!({"status": "ok"}));
    }
    assert_eq!(Service::Auth.default_port(), 9100);
    assert_eq!(Service::Promotions.default_port(), 9109);
}
