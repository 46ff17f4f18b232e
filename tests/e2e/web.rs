//! bff-web: the rich schema over real backends. Orders as a cursor connection with products,
//! review summaries and shipments batch-loaded; product details and reviews; search; the cart
//! and checkout mutations; auth at the edge.

use std::collections::BTreeSet;

use demo_services::Service;
use serde_json::{Value, json};

use crate::harness::Stack;

const USER: &str = "42";

const ORDERS_PAGE: &str = r#"query Orders($first: Int!, $after: String) { viewer {
  id
  profile { id name email locale avatar { small { url } large { url width height } } }
  orders(first: $first, after: $after) {
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node {
      id status placedAt total { amount currency } itemCount
      items {
        productId title quantity unitPrice { amount currency }
        product {
          id title price { amount currency }
          images { thumb { url } medium { url width height } }
          reviewSummary { average count }
        }
      }
      shipment { carrier status trackingNumber trackingUrl eta }
    } }
  }
} }"#;

const ORDER_IDS: &str = r#"query OrderIds($first: Int!, $after: String) { viewer {
  orders(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id } }
  }
} }"#;

async fn web_stack() -> (Stack, String) {
    let stack = Stack::start(&bff_web::SPEC).await;
    let token = stack
        .token(USER, "web", &["orders:read", "orders:write", "cart:write"])
        .await;
    (stack, token)
}

/// Runs an operation that must succeed without errors; returns `data`.
async fn query_ok(stack: &Stack, token: &str, query: &str, variables: Value) -> Value {
    let (status, body) = stack.graphql(Some(token), query, variables).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "errors: {body}");
    body["data"].clone()
}

fn ids_of(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["id"].as_str().expect("node id").to_owned())
        .collect()
}

/// Every order id of the viewer, newest first, in one page.
async fn all_order_ids(stack: &Stack, token: &str) -> Vec<String> {
    let data = query_ok(stack, token, ORDER_IDS, json!({ "first": 50 })).await;
    let orders = &data["viewer"]["orders"];
    assert_eq!(orders["pageInfo"]["hasNextPage"], false, "{orders}");
    ids_of(orders)
}

/// The ids a batch call asked for (`ids=p1%2Cp2` or `productIds=p1,p2`).
fn batch_ids(stats: &Value) -> BTreeSet<String> {
    let query = stats["last_request"]["query"].as_str().unwrap_or_default();
    let (_, ids) = query.split_once('=').unwrap_or_default();
    ids.replace("%2C", ",")
        .split(',')
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn viewer_orders_batch_products_reviews_and_shipments_into_one_call_each() {
    let (stack, token) = web_stack().await;
    let expected = all_order_ids(&stack, &token).await;
    assert!(
        expected.len() >= 3,
        "user {USER} has {} orders",
        expected.len()
    );
    stack.reset_stats().await;

    let data = query_ok(&stack, &token, ORDERS_PAGE, json!({ "first": 3 })).await;

    let viewer = &data["viewer"];
    assert_eq!(viewer["id"], USER);
    assert_eq!(viewer["profile"]["id"], USER);
    assert!(viewer["profile"]["email"].as_str().unwrap().contains('@'));
    assert!(viewer["profile"]["avatar"]["large"]["url"].is_string());
    let orders = &viewer["orders"];
    assert_eq!(ids_of(orders), expected[..3]);
    assert_eq!(orders["pageInfo"]["hasNextPage"], expected.len() > 3);
    assert_eq!(orders["pageInfo"]["hasPreviousPage"], false);

    let mut product_ids = BTreeSet::new();
    for edge in orders["edges"].as_array().unwrap() {
        let order = &edge["node"];
        let items = order["items"].as_array().unwrap();
        assert!(!items.is_empty(), "{order}");
        for item in items {
            let product = &item["product"];
            assert_eq!(product["id"], item["productId"], "{item}");
            assert!(
                product["title"].as_str().is_some_and(|t| !t.is_empty()),
                "{item}"
            );
            assert!(product["images"]["thumb"]["url"].is_string(), "{item}");
            assert!(
                product["images"]["medium"]["width"].as_i64() > Some(0),
                "{item}"
            );
            assert!(product["price"]["amount"].is_string(), "{item}");
            let summary = &product["reviewSummary"];
            assert!(summary["count"].is_i64(), "{item}");
            assert_eq!(
                summary["average"].is_null(),
                summary["count"] == 0,
                "{item}"
            );
            product_ids.insert(item["productId"].as_str().unwrap().to_owned());
        }
        let shipment = &order["shipment"];
        for field in ["carrier", "status", "trackingNumber", "trackingUrl", "eta"] {
            assert!(shipment[field].is_string(), "shipment.{field}: {order}");
        }
    }

    // One call per service for the whole page: products, summaries and shipments batched.
    for service in [
        Service::Users,
        Service::Orders,
        Service::Catalog,
        Service::Reviews,
        Service::Shipping,
    ] {
        assert_eq!(stack.requests(service).await, 1, "{} calls", service.name());
    }
    assert_eq!(batch_ids(&stack.stats(Service::Catalog).await), product_ids);
    let reviews = stack.stats(Service::Reviews).await;
    assert_eq!(reviews["last_request"]["path"], "/reviews/summary");
    assert_eq!(batch_ids(&reviews), product_ids);
    let shipping = stack.stats(Service::Shipping).await;
    assert_eq!(
        batch_ids(&shipping),
        expected[..3].iter().cloned().collect()
    );
    assert_eq!(stack.requests(Service::Cart).await, 0);
}

/// An order's lines ask their products for what a list shows (title, price, thumbnail): the
/// catalog is asked for those fields alone, and answers the same values as whole products.
#[tokio::test]
async fn products_in_a_list_are_asked_of_the_catalog_as_summaries() {
    let (stack, token) = web_stack().await;
    let lines = |extra: &str| {
        format!(
            r#"query Lines($first: Int!) {{ viewer {{ orders(first: $first) {{ edges {{ node {{
              items {{ product {{ id title price {{ amount currency }} images {{ thumb {{ url width }} }}
                reviewSummary {{ count }} {extra} }} }} }} }} }} }} }}"#
        )
    };
    let catalog_asked = || async {
        let stats = stack.stats(Service::Catalog).await;
        stats["last_request"]["query"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let products = |data: &Value| -> Vec<Value> {
        let edges = data["viewer"]["orders"]["edges"].as_array().expect("edges");
        let lines = edges
            .iter()
            .flat_map(|e| e["node"]["items"].as_array().expect("items"));
        lines.map(|line| line["product"].clone()).collect()
    };

    stack.reset_stats().await;
    let summaries = query_ok(&stack, &token, &lines(""), json!({ "first": 5 })).await;
    let asked = catalog_asked().await;
    assert!(
        asked.contains("fields=id%2Ctitle%2Cprice%2Cimages.thumb"),
        "{asked}"
    );

    // One field more than a summary holds: whole products.
    stack.reset_stats().await;
    let whole = query_ok(&stack, &token, &lines("description"), json!({ "first": 5 })).await;
    let asked = catalog_asked().await;
    assert!(!asked.contains("fields="), "{asked}");

    let summaries = products(&summaries);
    let mut whole = products(&whole);
    assert!(!summaries.is_empty());
    for product in &mut whole {
        let description = product
            .as_object_mut()
            .expect("product")
            .remove("description");
        assert!(description.is_some_and(|d| d.as_str().is_some_and(|d| !d.is_empty())));
    }
    assert_eq!(summaries, whole, "the same values either way");
}

#[tokio::test]
async fn paging_with_after_continues_where_the_last_page_ended() {
    let (stack, token) = web_stack().await;
    let expected = all_order_ids(&stack, &token).await;

    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = query_ok(
            &stack,
            &token,
            ORDER_IDS,
            json!({ "first": 2, "after": after }),
        )
        .await;
        let orders = &data["viewer"]["orders"];
        let page = ids_of(orders);
        assert!(!page.is_empty() && page.len() <= 2, "{orders}");
        seen.extend(page);
        if orders["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = orders["pageInfo"]["endCursor"].clone();
        assert!(after.is_string(), "{orders}");
        assert!(seen.len() < expected.len(), "paging does not end: {seen:?}");
    }
    assert_eq!(seen, expected);

    // Any edge's cursor continues right after that edge.
    let page = query_ok(&stack, &token, ORDERS_PAGE, json!({ "first": 3 })).await;
    let first_cursor = page["viewer"]["orders"]["edges"][0]["cursor"].clone();
    let next = query_ok(
        &stack,
        &token,
        ORDERS_PAGE,
        json!({ "first": 2, "after": first_cursor }),
    )
    .await;
    assert_eq!(ids_of(&next["viewer"]["orders"]), expected[1..3]);
    assert_eq!(
        next["viewer"]["orders"]["pageInfo"]["hasPreviousPage"],
        true
    );

    // A cursor the API did not issue is refused with a clear error, before the backend.
    stack.reset_stats().await;
    let (status, body) = stack
        .graphql(
            Some(&token),
            ORDER_IDS,
            json!({ "first": 2, "after": expected[1] }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["viewer"]["orders"], Value::Null, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["path"],
        json!(["viewer", "orders"]),
        "{body}"
    );
    assert_eq!(stack.requests(Service::Orders).await, 0);
}

#[tokio::test]
async fn product_shows_full_details_and_its_reviews() {
    let (stack, token) = web_stack().await;
    const PRODUCTS: &str = r#"query { a: product(id: "p1") { ...full } b: product(id: "p2") { ...full }
      c: product(id: "p3") { ...full } d: product(id: "p4") { ...full } e: product(id: "p5") { ...full }
      missing: product(id: "p999999") { id } }
      fragment full on Product {
        id sku title brand category description price { amount currency }
        images { thumb { url } small { url } medium { url } large { url width height } xlarge { url } }
        reviewSummary { average count }
        reviews { id author rating title body createdAt }
      }"#;
    stack.reset_stats().await;

    let data = query_ok(&stack, &token, PRODUCTS, json!({})).await;

    assert_eq!(data["missing"], Value::Null);
    let mut with_reviews = 0;
    for (alias, id) in [
        ("a", "p1"),
        ("b", "p2"),
        ("c", "p3"),
        ("d", "p4"),
        ("e", "p5"),
    ] {
        let product = &data[alias];
        let wire: Value = stack
            .http
            .get(format!(
                "{}/products/{id}",
                stack.service_url(Service::Catalog)
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for field in ["id", "sku", "title", "brand", "category", "description"] {
            assert_eq!(product[field], wire[field], "{id}.{field}");
        }
        assert_eq!(product["price"], wire["price"], "{id}");
        assert_eq!(product["images"]["large"], wire["images"]["large"], "{id}");
        assert!(product["images"].get("original").is_none());

        let reviews = product["reviews"].as_array().expect("reviews");
        let count = product["reviewSummary"]["count"].as_u64().unwrap();
        assert_eq!(reviews.len() as u64, count.min(10), "{id}: {product}");
        for review in reviews {
            assert!(
                (1..=5).contains(&review["rating"].as_i64().unwrap()),
                "{review}"
            );
            assert!(
                review["body"].as_str().is_some_and(|b| !b.is_empty()),
                "{review}"
            );
        }
        with_reviews += usize::from(!reviews.is_empty());
    }
    assert!(with_reviews > 0, "none of p1..p5 has reviews");
    // Six products, one catalog batch; the summaries batched too.
    assert_eq!(
        stack.stats(Service::Catalog).await["by_path"]["/products"],
        1
    );
    assert_eq!(
        stack.stats(Service::Reviews).await["by_path"]["/reviews/summary"],
        1
    );
}

#[tokio::test]
async fn search_returns_matching_products_and_pages_on() {
    let (stack, token) = web_stack().await;
    const SEARCH: &str = r#"query Search($q: String!, $after: String) {
      search(query: $q, first: 5, after: $after) {
        pageInfo { hasNextPage endCursor }
        edges { cursor node { id title price { amount } images { small { url } } } }
      } }"#;
    // A word every product title has a share of: the material of p1.
    let p1 = query_ok(
        &stack,
        &token,
        r#"{ product(id: "p1") { title } }"#,
        json!({}),
    )
    .await;
    let title = p1["product"]["title"].as_str().unwrap().to_lowercase();
    let word = title.split_whitespace().nth(1).unwrap().to_owned();

    let first = query_ok(&stack, &token, SEARCH, json!({ "q": word })).await;
    let page = &first["search"];
    let ids = ids_of(page);
    assert_eq!(ids.len(), 5, "{page}");
    assert_eq!(ids[0], "p1", "{page}");
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    for edge in page["edges"].as_array().unwrap() {
        let title = edge["node"]["title"].as_str().unwrap().to_lowercase();
        assert!(title.contains(&word), "{title:?} does not contain {word:?}");
    }

    let after = page["pageInfo"]["endCursor"].clone();
    let second = query_ok(&stack, &token, SEARCH, json!({ "q": word, "after": after })).await;
    let next = ids_of(&second["search"]);
    assert_eq!(next.len(), 5);
    let number = |id: &String| id[1..].parse::<u32>().unwrap();
    assert!(
        number(&next[0]) > number(&ids[4]),
        "second page {next:?} does not follow {ids:?}"
    );
}

#[tokio::test]
async fn place_order_with_the_same_idempotency_key_places_one_order() {
    let (stack, token) = web_stack().await;
    const PLACE: &str = r#"mutation Place($key: String!) {
      placeOrder(input: { items: [{ productId: "p7", quantity: 2 }, { productId: "p8", quantity: 1 }] },
                 idempotencyKey: $key) {
        id status itemCount items { productId quantity product { title } }
      } }"#;
    let before = all_order_ids(&stack, &token).await;
    stack.reset_stats().await;

    let key = "checkout-5b1f0c2e-web-e2e";
    let first = query_ok(&stack, &token, PLACE, json!({ "key": key })).await;
    let again = query_ok(&stack, &token, PLACE, json!({ "key": key })).await;

    let placed = &first["placeOrder"];
    assert_eq!(placed["status"], "PLACED", "{placed}");
    assert_eq!(placed["itemCount"], 3);
    assert!(
        placed["items"][0]["product"]["title"].is_string(),
        "{placed}"
    );
    assert_eq!(again["placeOrder"]["id"], placed["id"]);
    let orders = stack.stats(Service::Orders).await;
    assert_eq!(orders["by_path"]["/orders"], 2, "{orders}");
    assert_eq!(
        orders["last_request"]["headers"]["idempotency-key"], key,
        "{orders}"
    );
    assert_eq!(
        orders["last_request"]["headers"]["x-user-id"], USER,
        "{orders}"
    );

    let after = all_order_ids(&stack, &token).await;
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert_eq!(after[0], placed["id"].as_str().unwrap());
    assert_eq!(after[1..], before[..]);

    // A new key is a new order.
    let other = query_ok(&stack, &token, PLACE, json!({ "key": "checkout-2" })).await;
    assert_ne!(other["placeOrder"]["id"], placed["id"]);
}

#[tokio::test]
async fn add_to_cart_changes_the_viewers_cart() {
    let (stack, token) = web_stack().await;
    const CART: &str = r#"{ viewer { cart { itemCount subtotal { amount currency }
      items { productId quantity unitPrice { amount } product { title } } } } }"#;
    const ADD: &str = r#"mutation { addToCart(productId: "p777", quantity: 2) {
      itemCount subtotal { amount currency } items { productId quantity unitPrice { amount } product { title } } } }"#;
    let quantity_of = |cart: &Value| {
        cart["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["productId"] == "p777")
            .map_or(0, |line| line["quantity"].as_i64().unwrap())
    };
    let before = query_ok(&stack, &token, CART, json!({})).await["viewer"]["cart"].clone();

    let added = query_ok(&stack, &token, ADD, json!({})).await["addToCart"].clone();

    assert_eq!(
        added["itemCount"].as_i64().unwrap(),
        before["itemCount"].as_i64().unwrap() + 2,
        "{before} -> {added}"
    );
    assert_eq!(quantity_of(&added), quantity_of(&before) + 2);
    assert_ne!(added["subtotal"], before["subtotal"]);
    let line = added["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["productId"] == "p777")
        .unwrap();
    assert!(
        line["product"]["title"].as_str().unwrap().ends_with(" 777"),
        "{line}"
    );
    let cart = stack.stats(Service::Cart).await;
    assert_eq!(cart["last_request"]["path"], format!("/carts/{USER}/items"));

    let now = query_ok(&stack, &token, CART, json!({})).await["viewer"]["cart"].clone();
    assert_eq!(now, added);
}

#[tokio::test]
async fn a_failing_service_nulls_only_its_own_fields() {
    let (stack, token) = web_stack().await;
    stack
        .chaos(
            Service::Reviews,
            json!({ "error_rate": 1.0, "status": 503 }),
        )
        .await;

    let (status, body) = stack
        .graphql(Some(&token), ORDERS_PAGE, json!({ "first": 2 }))
        .await;

    assert_eq!(status, 200);
    let orders = &body["data"]["viewer"]["orders"];
    assert_eq!(ids_of(orders).len(), 2, "{body}");
    let item = &orders["edges"][0]["node"]["items"][0];
    assert!(item["product"]["title"].is_string(), "{body}");
    assert_eq!(item["product"]["reviewSummary"], Value::Null, "{body}");
    assert!(orders["edges"][0]["node"]["shipment"]["carrier"].is_string());
    let errors = body["errors"].as_array().expect("errors");
    assert!(!errors.is_empty());
    for error in errors {
        assert_eq!(
            error["extensions"]["code"], "UPSTREAM_UNAVAILABLE",
            "{error}"
        );
        assert_eq!(error["extensions"]["service"], "reviews", "{error}");
        let path = error["path"].as_array().unwrap();
        assert_eq!(path.last().unwrap(), "reviewSummary", "{error}");
        assert!(
            !error["message"].as_str().unwrap().contains("http"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn bad_arguments_are_refused_before_any_backend_call() {
    let (stack, token) = web_stack().await;
    stack.reset_stats().await;

    let cases = [
        (
            ORDER_IDS,
            json!({ "first": 0 }),
            "first: must be 1 to 50, got 0",
        ),
        (
            ORDER_IDS,
            json!({ "first": 51 }),
            "first: must be 1 to 50, got 51",
        ),
        (
            r#"mutation { addToCart(productId: "p1", quantity: 100) { itemCount } }"#,
            json!({}),
            "quantity: must be 1 to 99, got 100",
        ),
        (
            r#"mutation { placeOrder(input: { items: [{ productId: "p1", quantity: 1 }] }, idempotencyKey: "") { id } }"#,
            json!({}),
            "idempotencyKey: must be 1 to 128 characters",
        ),
        (
            r#"mutation { placeOrder(input: { items: [] }, idempotencyKey: "k") { id } }"#,
            json!({}),
            "input.items: must hold 1 to 50 lines, got 0",
        ),
    ];
    for (query, variables, message) in cases {
        let (status, body) = stack.graphql(Some(&token), query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["errors"][0]["message"], message, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
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

#[tokio::test]
async fn requests_without_a_web_token_are_refused_without_backend_calls() {
    let (stack, _) = web_stack().await;
    let mobile = stack.token(USER, "mobile", &[]).await;
    stack.reset_stats().await;

    let (status, _) = stack
        .graphql(None, ORDERS_PAGE, json!({ "first": 3 }))
        .await;
    assert_eq!(status, 401);
    let (status, _) = stack
        .graphql(Some(&mobile), ORDERS_PAGE, json!({ "first": 3 }))
        .await;
    assert_eq!(status, 401, "a token for another audience");
    let (status, _) = stack
        .graphql(
            None,
            r#"mutation { addToCart(productId: "p1") { itemCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(status, 401);

    for service in Service::ALL.into_iter().filter(|s| *s != Service::Auth) {
        assert_eq!(
            stack.requests(service).await,
            0,
            "{} was called",
            service.name()
        );
    }
}
