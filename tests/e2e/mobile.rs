//! bff-mobile: the home screen in one request, trimmed, with auth at the edge.

use demo_services::Service;
use serde_json::{Value, json};

use crate::harness::Stack;

pub const HOME: &str = r#"query Home { home {
  greeting
  me { id name avatarUrl }
  cart { itemCount }
  notifications { unreadCount }
  recentOrders(first: 3) { id status total { amount currency } itemCount eta }
  recommendations(first: 10) { id title price { amount currency } thumbnailUrl }
  banners { id title imageUrl link }
} }"#;

/// Every leaf of `v` is non-null (lists must be non-empty too, so their items are checked).
pub fn assert_all_present(path: &str, v: &Value) {
    match v {
        Value::Null => panic!("{path} is null"),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| assert_all_present(&format!("{path}.{k}"), v)),
        Value::Array(items) => {
            assert!(!items.is_empty(), "{path} is empty");
            items
                .iter()
                .enumerate()
                .for_each(|(i, v)| assert_all_present(&format!("{path}[{i}]"), v));
        }
        _ => {}
    }
}

/// User 42's home on a new stack whose backends' counters start after the token is made,
/// answered without errors.
async fn home_of_42() -> (Stack, Value) {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    stack.reset_stats().await;
    let (status, body) = stack.graphql(Some(&token), HOME, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "errors: {body}");
    (stack, body)
}

#[tokio::test]
async fn home_query_fans_out_once_and_batches_catalog_and_shipping() {
    let (stack, body) = home_of_42().await;
    let home = &body["data"]["home"];
    assert_all_present("home", home);
    assert_eq!(home["me"]["id"], "42");
    assert_eq!(home["recentOrders"].as_array().map(Vec::len), Some(3));
    assert_eq!(home["recommendations"].as_array().map(Vec::len), Some(10));
    assert!(
        home["greeting"].as_str().unwrap().contains(
            home["me"]["name"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        )
    );

    // Eight services, each called once: catalog and shipping with one batch each.
    for service in [
        Service::Users,
        Service::Cart,
        Service::Notifications,
        Service::Orders,
        Service::Shipping,
        Service::Recommendations,
        Service::Catalog,
        Service::Promotions,
    ] {
        assert_eq!(stack.requests(service).await, 1, "{} calls", service.name());
    }
    let catalog = stack.stats(Service::Catalog).await;
    let ids = catalog["last_request"]["query"]
        .as_str()
        .unwrap_or_default();
    assert!(
        ids.contains("ids="),
        "catalog was not called with a batch: {catalog}"
    );
    assert_eq!(stack.requests(Service::Reviews).await, 0);
}

/// The home asks each backend for the members it reads (sparse fieldsets, the unread count
/// alone), not for whole entities it would decode and drop.
#[tokio::test]
async fn the_home_asks_each_backend_for_only_what_it_reads() {
    let (stack, _) = home_of_42().await;

    for (service, asked) in [
        (Service::Users, "fields=id%2Cname%2Cavatar.small"),
        (Service::Notifications, "limit=0"),
        (
            Service::Orders,
            "fields=id%2Cstatus%2Ctotal%2Citems.quantity",
        ),
        (
            Service::Promotions,
            "fields=id%2Ctitle%2Cimages.medium%2Clink",
        ),
        (Service::Catalog, "fields=id%2Ctitle%2Cprice%2Cimages.thumb"),
        (Service::Shipping, "fields=orderId%2Ceta"),
    ] {
        let stats = stack.stats(service).await;
        let query = stats["last_request"]["query"].as_str().unwrap_or_default();
        assert!(query.contains(asked), "{}: {stats}", service.name());
    }
    let notifications = stack.stats(Service::Notifications).await["bytes_sent"]
        .as_u64()
        .unwrap();
    assert!(
        notifications < 200,
        "the unread count took {notifications} bytes"
    );
}

#[tokio::test]
async fn home_payload_is_trimmed_from_small_backend_answers() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    stack.reset_stats().await;

    let response = stack
        .http
        .post(stack.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": HOME }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let client_bytes = response.bytes().await.unwrap().len() as u64;

    let mut backend_bytes = 0;
    for service in Service::ALL {
        backend_bytes += stack.stats(service).await["bytes_sent"]
            .as_u64()
            .unwrap_or(0);
    }
    let ratio = client_bytes as f64 / backend_bytes as f64;
    println!(
        "home payload: {client_bytes} bytes to the client, {backend_bytes} bytes from backends, ratio {:.1}%",
        ratio * 100.0
    );
    assert!(backend_bytes > 0);
    // The backends send projections (about 4.8 KB instead of 35 KB of whole entities:
    // members, image sizes, order and cart lines' quantities, shipments' dates and the
    // recommended products' ids, as the home reads them): a lost projection shows here first
    // (the recommendations' scores and reasons alone would be 5.4 KB).
    assert!(
        backend_bytes <= 5_200,
        "the backends sent {backend_bytes} bytes: a projection was lost"
    );
    // What is left to trim is what the home reads but does not show (ids that match
    // batches, the quantities it sums, image sizes, envelopes): the client still gets under
    // 85% of the little the backends send (about 79%).
    assert!(ratio <= 0.85, "payload ratio {ratio:.3} is over 85%");
}

#[tokio::test]
async fn bad_tokens_are_refused_at_the_edge_without_backend_calls() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let expired = stack
        .token_with(json!({ "sub": "42", "aud": "mobile", "ttl_s": -120 }))
        .await;
    let web = stack.token("42", "web", &[]).await;
    let valid = stack.token("42", "mobile", &[]).await;
    let alg_none = unsigned_copy(&valid);
    stack.reset_stats().await;

    let cases: [(&str, Option<&str>); 5] = [
        ("no token", None),
        ("expired", Some(&expired)),
        ("audience web", Some(&web)),
        ("alg none", Some(&alg_none)),
        ("garbage", Some("not.a.jwt")),
    ];
    for (name, token) in cases {
        let mut request = stack
            .http
            .post(stack.url("/graphql"))
            .json(&json!({ "query": HOME }));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{name}");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{name}: no WWW-Authenticate"
        );
    }
    for service in Service::ALL.into_iter().filter(|s| *s != Service::Auth) {
        assert_eq!(
            stack.requests(service).await,
            0,
            "{} was called",
            service.name()
        );
    }
}

/// The same claims with the header rewritten to `alg: none` and the signature dropped.
fn unsigned_copy(token: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let claims = parts.next().unwrap();
    let forged = json!({ "alg": "none", "typ": "JWT", "kid": header["kid"] });
    format!(
        "{}.{claims}.",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap())
    )
}

#[tokio::test]
async fn a_client_cannot_choose_the_user_id_backends_see() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;

    let response = stack
        .http
        .post(stack.url("/graphql"))
        .bearer_auth(&token)
        .header("x-user-id", "1")
        .header("x-scopes", "admin")
        .json(&json!({ "query": "{ home { me { id } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["home"]["me"]["id"], "42", "{body}");

    let users = stack.stats(Service::Users).await;
    let headers = &users["last_request"]["headers"];
    assert_eq!(headers["x-user-id"], "42", "{users}");
    assert_ne!(headers["x-scopes"], "admin", "{users}");
    assert_eq!(users["last_request"]["path"], "/users/42");
}

/// The endpoint remembers parsed documents by query text; execution prunes a document by
/// the request's variables (`@include`, `@skip`), so the same text with other variables
/// must still give answers of its own, in any order, and an edited text a new document.
#[tokio::test]
async fn a_remembered_query_still_follows_each_requests_variables() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    let query = "query Home($me: Boolean!) { home { greeting me @include(if: $me) { id } } }";
    for me in [true, false, true, false] {
        let (status, body) = stack
            .graphql(Some(&token), query, json!({ "me": me }))
            .await;
        assert_eq!(status, 200, "{body}");
        let home = &body["data"]["home"];
        assert!(home["greeting"].is_string(), "{body}");
        if me {
            assert_eq!(home["me"]["id"], "42", "{body}");
        } else {
            assert!(home.get("me").is_none(), "{body}");
        }
    }
    let edited = query.replace("greeting ", "");
    let (status, body) = stack
        .graphql(Some(&token), &edited, json!({ "me": true }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["home"].get("greeting").is_none(), "{body}");
    assert_eq!(body["data"]["home"]["me"]["id"], "42", "{body}");
}

/// The home's nullability is its failure policy (GraphQL's "Handling Field Errors"): a failed
/// field is `null` in place, with its error; `me`, the one non-null field, takes `home` with
/// it when it fails, and the answer still has `data` and every error.
#[tokio::test]
async fn a_failed_field_is_null_in_place_and_a_failed_me_nulls_the_home() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;

    stack
        .chaos(Service::Cart, json!({ "error_rate": 1.0 }))
        .await;
    let (status, body) = stack.graphql(Some(&token), HOME, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let home = body["data"]["home"].as_object().expect("home is an object");
    assert_eq!(home.get("cart"), Some(&Value::Null), "{body}");
    let mut rest = body["data"]["home"].clone();
    rest.as_object_mut().unwrap().remove("cart");
    assert_all_present("home", &rest);
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["path"], json!(["home", "cart"]));
    assert_eq!(errors[0]["extensions"]["service"], "cart");
    assert!(errors[0]["extensions"]["code"].is_string(), "{body}");
    stack.chaos(Service::Cart, json!({})).await;

    stack
        .chaos(Service::Users, json!({ "error_rate": 1.0 }))
        .await;
    let query = "{ home { greeting me { name } cart { itemCount } } }";
    let (status, body) = stack.graphql(Some(&token), query, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!({ "home": null }), "{body}");
    let errors = body["errors"].as_array().expect("errors");
    let mut paths: Vec<&Value> = errors.iter().map(|e| &e["path"]).collect();
    paths.sort_by_key(|p| p.to_string());
    assert_eq!(
        paths,
        [&json!(["home", "greeting"]), &json!(["home", "me"])],
        "{body}"
    );
    for error in errors {
        assert_eq!(error["extensions"]["service"], "users", "{body}");
        assert!(error["extensions"]["code"].is_string(), "{body}");
    }
}

/// A failed shipping call is each shown order's `eta` alone: `null` with its own error at
/// its path, the orders and the rest of the home answered; and a home that selects no `eta`
/// never asks shipping.
#[tokio::test]
async fn a_failed_shipping_nulls_each_eta_in_place() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;

    stack
        .chaos(Service::Shipping, json!({ "error_rate": 1.0 }))
        .await;
    let query = "{ home { cart { itemCount } recentOrders(first: 2) { id when: eta } } }";
    let (status, body) = stack.graphql(Some(&token), query, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let orders = body["data"]["home"]["recentOrders"]
        .as_array()
        .expect("orders");
    assert_eq!(orders.len(), 2, "{body}");
    for order in orders {
        assert!(order["id"].is_string(), "{body}");
        assert_eq!(order["when"], Value::Null, "{body}");
    }
    assert!(
        body["data"]["home"]["cart"]["itemCount"].is_number(),
        "{body}"
    );
    let errors = body["errors"].as_array().expect("errors");
    let paths: Vec<&Value> = errors.iter().map(|e| &e["path"]).collect();
    assert_eq!(
        paths,
        [
            &json!(["home", "recentOrders", 0, "when"]),
            &json!(["home", "recentOrders", 1, "when"])
        ],
        "{body}"
    );
    for error in errors {
        assert_eq!(error["extensions"]["service"], "shipping", "{body}");
    }

    let query = "{ home { recentOrders(first: 2) { id status } } }";
    let (status, body) = stack.graphql(Some(&token), query, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "shipping was asked: {body}");
}

/// Plain answers are written as JSON as they resolve, but only for a document whose keys are
/// unique: a plain object or list selected twice is still answered merged, as the spec
/// merges it, on the first request and on the remembered document after.
#[tokio::test]
async fn a_plain_object_selected_twice_is_answered_merged() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    let once = "{ home { me { id name } recommendations(first: 2) { id title } } }";
    let twice = "{ home { me { id } me { name } \
        recommendations(first: 2) { id } recommendations(first: 2) { title } } }";
    let (status, expected) = stack.graphql(Some(&token), once, json!({})).await;
    assert_eq!(status, 200, "{expected}");
    assert_eq!(expected["data"]["home"]["me"]["id"], "42", "{expected}");
    for _ in 0..2 {
        let (status, body) = stack.graphql(Some(&token), twice, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, expected);
    }
}
