//! Who a backend thinks is calling: spoofed identity headers never get through (also not by
//! naming them in `Connection`), and scopes are enforced per proxy route and per GraphQL
//! field, before any backend call.

use demo_services::Service;
use serde_json::{Value, json};

use crate::harness::Stack;

/// Every identity header a client might try, in every spelling the edge must catch.
const SPOOFED: [(&str, &str); 9] = [
    ("x-user-id", "1"),
    // Stacks that fold `_` into `-` (nginx, Gunicorn, PHP, Rails) read these as the real ones.
    ("X_User_Id", "1"),
    ("x_user_roles", "admin"),
    ("x_scopes", "admin"),
    ("X-User-Role", "admin"),
    ("x-scopes", "admin orders:write"),
    ("x-api-client", "acme"),
    ("x-forwarded-user", "root"),
    ("x-internal-debug", "on"),
];

fn assert_clean(seen: &Value, scopes: &str) {
    let headers = &seen["headers"];
    assert_eq!(headers["x-user-id"], "42", "{seen}");
    assert_eq!(headers["x-scopes"], scopes, "{seen}");
    for name in [
        "x_user_id",
        "x_user_roles",
        "x_scopes",
        "x-user-role",
        "x-api-client",
        "x-forwarded-user",
        "x-internal-debug",
        "x-tenant",
    ] {
        assert!(
            headers.get(name).is_none(),
            "{name} reached the backend: {seen}"
        );
    }
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_a_backend() {
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        // The configured set replaces the default: prove both a default entry and an added
        // prefix pattern are honoured.
        config.auth.strip_headers.push("x-internal-*".to_owned());
    })
    .await;
    let token = stack.token("42", "web", &["orders:read"]).await;

    // A proxied call forwards client headers, so this is where a leak would show.
    let mut request = stack
        .http
        .get(stack.url("/api/users/42"))
        .bearer_auth(&token)
        // Named in Connection: hop-by-hop, never forwarded, and never able to remove the
        // identity the gateway sets.
        .header("connection", "x-tenant, x-user-id, x-scopes")
        .header("x-tenant", "evil");
    for (name, value) in SPOOFED {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    assert_clean(
        &stack.stats(Service::Users).await["last_request"],
        "orders:read",
    );

    // A GraphQL call builds its own backend requests; the same holds.
    let mut request = stack
        .http
        .post(stack.url("/graphql"))
        .bearer_auth(&token)
        .header("connection", "x-tenant")
        .header("x-tenant", "evil")
        .json(&json!({ "query": "{ viewer { profile { name } } }" }));
    for (name, value) in SPOOFED {
        request = request.header(name, value);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["data"]["viewer"]["profile"]["name"].is_string(),
        "{body}"
    );
    assert_clean(
        &stack.stats(Service::Users).await["last_request"],
        "orders:read",
    );
}

#[tokio::test]
async fn a_proxy_route_without_its_scope_is_a_403_before_the_backend() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let reader = stack.token("42", "web", &["orders:read"]).await;
    let other = stack.token("42", "web", &["cart:write"]).await;
    stack.reset_stats().await;

    let refused = stack
        .http
        .get(stack.url("/api/orders/o-42-1"))
        .bearer_auth(&other)
        .header("x-scopes", "orders:read")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["status"], 403, "{problem}");
    assert_eq!(stack.requests(Service::Orders).await, 0);

    let allowed = stack.get_as("/api/orders/o-42-1", &reader).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(stack.requests(Service::Orders).await, 1);
}

#[tokio::test]
async fn a_mutation_without_its_scope_fails_on_that_field_only() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let cart_only = stack.token("42", "web", &["cart:write"]).await;
    stack.reset_stats().await;

    let (status, body) = stack
        .graphql(
            Some(&cart_only),
            r#"mutation {
                 addToCart(productId: "p5", quantity: 1) { itemCount }
                 placeOrder(input: { items: [{ productId: "p5", quantity: 1 }] },
                            idempotencyKey: "scope-test") { id }
               }"#,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["addToCart"]["itemCount"].is_i64(), "{body}");
    assert!(body["data"]["placeOrder"].is_null(), "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["extensions"]["code"], "FORBIDDEN", "{body}");
    assert_eq!(errors[0]["path"], json!(["placeOrder"]), "{body}");
    assert_eq!(
        stack.requests(Service::Orders).await,
        0,
        "an order was placed"
    );
    assert_eq!(stack.requests(Service::Cart).await, 1);

    let (_, body) = stack
        .graphql(
            Some(&stack.token("42", "web", &[]).await),
            r#"mutation { addToCart(productId: "p5") { itemCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    assert_eq!(stack.requests(Service::Cart).await, 1);
}

#[tokio::test]
async fn partner_keys_are_read_from_the_two_headers_only() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    const KEY: &str = "demo-partner-key";
    let url = stack.url("/v1/products/p1");
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    assert_eq!(status(stack.http.get(&url).bearer_auth(KEY)).await, 200);
    assert_eq!(
        status(stack.http.get(&url).header("x-api-key", KEY)).await,
        200
    );
    stack.reset_stats().await;
    let query = format!("{url}?api_key={KEY}");
    assert_eq!(status(stack.http.get(&query)).await, 401);
    let cookie = stack
        .http
        .get(&url)
        .header("cookie", format!("api_key={KEY}"));
    assert_eq!(status(cookie).await, 401);
    let basic = stack.http.get(&url).basic_auth(KEY, None::<&str>);
    assert_eq!(status(basic).await, 401);
    assert_eq!(stack.requests(Service::Catalog).await, 0);
}
