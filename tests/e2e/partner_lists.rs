//! bff-partner's lists and selections against the real demo backends: cursor pages followed
//! to their end, `limit` bounds, cursors the API did not give, `?fields=` on every resource,
//! page, batch and the declared overview (with an ETag per selection), and ids checked as the
//! document describes them.

use std::collections::BTreeSet;

use demo_services::Service;
use serde_json::{Value, json};

use crate::harness::Stack;

const KEY: &str = "demo-partner-key";
/// A search with several pages of results at a small `limit`.
const SEARCH: &str = "/v1/search/products?q=oak%20lamp&category=home";

struct Answer {
    status: u16,
    link: Option<String>,
    etag: Option<String>,
    body: Value,
}

async fn get_with(stack: &Stack, path: &str, if_none_match: Option<&str>) -> Answer {
    let mut request = stack.http.get(stack.url(path)).header("x-api-key", KEY);
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let response = request.send().await.expect("BFF reachable");
    let header = |name: &str| crate::harness::header(&response, name);
    let (link, etag) = (header("link"), header("etag"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        link,
        etag,
        body,
    }
}

async fn get(stack: &Stack, path: &str) -> Answer {
    get_with(stack, path, None).await
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Follows `next` from `first` to the last page: every page's items, and the pages' count.
async fn follow(stack: &Stack, first: &str, max_items: usize) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut next = Some(first.to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let page = get(stack, &path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let page_items = page.body["items"].as_array().expect("items").clone();
        assert!(
            page_items.len() <= max_items,
            "{path}: {} items",
            page_items.len()
        );
        next = page.body["next"].as_str().map(str::to_owned);
        match &next {
            Some(url) => {
                assert!(url.starts_with('/'), "a relative URL: {url}");
                assert_eq!(page.link, Some(format!("<{url}>; rel=\"next\"")));
                assert!(
                    !page_items.is_empty(),
                    "{path}: an empty page before the end"
                );
            }
            None => {
                assert_eq!(page.body["next"], Value::Null, "{path}");
                assert_eq!(page.link, None, "{path}: the last page links nowhere");
            }
        }
        items.extend(page_items);
        pages += 1;
        assert!(pages < 200, "paging does not end");
    }
    (items, pages)
}

/// The catalog's own answer to a search, every page of it.
async fn catalog_search(stack: &Stack, query: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/products?{query}&limit=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = stack.backend_json(Service::Catalog, &path).await;
        found.extend(ids(&page["items"]));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return found,
        }
    }
}

#[tokio::test]
async fn a_search_followed_by_next_to_its_end_yields_every_product_once() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    let expected = catalog_search(&stack, "q=oak%20lamp&category=home").await;
    assert!(expected.len() > 14, "too few to page: {expected:?}");

    stack.reset_stats().await;
    let (items, pages) = follow(&stack, &format!("{SEARCH}&limit=7"), 7).await;
    let found = ids(&Value::Array(items.clone()));
    assert_eq!(
        found, expected,
        "every product once, in the catalog's order"
    );
    assert_eq!(pages, expected.len().div_ceil(7));
    // One catalog call per page, and products in the partner shape.
    assert_eq!(stack.requests(Service::Catalog).await, pages as u64);
    for item in &items {
        assert_eq!(item["category"], "home");
        assert!(
            item["thumbnailUrl"].is_string() && item.get("images").is_none(),
            "{item}"
        );
    }

    // Each category the document lists is one the catalog takes.
    for category in backends::CATEGORIES {
        let page = get(
            &stack,
            &format!("/v1/search/products?category={category}&limit=2"),
        )
        .await;
        assert_eq!(page.status, 200, "{category}: {}", page.body);
        assert_eq!(page.body["items"][0]["category"], category);
    }
}

#[tokio::test]
async fn limit_bounds_a_page_and_anything_else_is_a_400_before_the_catalog() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    for (limit, expected) in [("", 20), ("&limit=1", 1), ("&limit=100", 100)] {
        let page = get(&stack, &format!("/v1/search/products?q=a{limit}")).await;
        assert_eq!(page.status, 200, "{limit}: {}", page.body);
        assert_eq!(page.body["items"].as_array().map(Vec::len), Some(expected));
        let next = page.body["next"].as_str().expect("more pages");
        assert!(next.contains(limit.trim_start_matches('&')), "{next}");
    }
    stack.reset_stats().await;
    for limit in ["0", "101", "-1", "ten", "1.5", "", "%2B5"] {
        for route in ["/v1/search/products", "/v1/customers/42/orders"] {
            let answer = get(&stack, &format!("{route}?limit={limit}")).await;
            assert_eq!(
                answer.status, 400,
                "{route} limit={limit:?}: {}",
                answer.body
            );
            assert!(
                answer.body["detail"].as_str().unwrap().contains("1 to 100"),
                "{}",
                answer.body
            );
        }
    }
    assert_eq!(stack.requests(Service::Catalog).await, 0);
    assert_eq!(stack.requests(Service::Orders).await, 0);
}

#[tokio::test]
async fn a_cursor_the_api_did_not_give_is_a_400_never_a_5xx() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    let first = get(&stack, &format!("{SEARCH}&limit=3")).await;
    let next = first.body["next"].as_str().expect("next").to_owned();
    let (_, cursor) = next.split_once("cursor=").expect("a cursor");
    // The catalog's own cursor for the same page is not the client's.
    let catalog = stack
        .backend_json(
            Service::Catalog,
            "/products?q=oak%20lamp&category=home&limit=3",
        )
        .await;
    let raw = catalog["nextCursor"]
        .as_str()
        .expect("the catalog's cursor");
    assert!(!cursor.contains(raw), "opaque: {cursor} shows {raw}");

    // One character changed, inside the name of the list the cursor belongs to.
    let mut tampered = cursor.to_owned();
    let flip = if &cursor[4..5] == "A" { "B" } else { "A" };
    tampered.replace_range(4..5, flip);
    let orders = get(&stack, "/v1/customers/42/orders?limit=2").await;
    let orders_next = orders.body["next"].as_str().expect("next").to_owned();
    let (_, orders_cursor) = orders_next.split_once("cursor=").expect("a cursor");
    for path in [
        format!("{SEARCH}&cursor={tampered}"),
        format!("{SEARCH}&cursor={raw}"),
        format!("{SEARCH}&cursor=%21%21"),
        // Another list's cursor.
        format!("{SEARCH}&cursor={orders_cursor}"),
        format!("/v1/customers/42/orders?cursor={cursor}"),
        // Customer 42's cursor for customer 43: it unwraps, and the orders service refuses it.
        format!("/v1/customers/43/orders?cursor={orders_cursor}"),
    ] {
        let answer = get(&stack, &path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert_eq!(answer.body["code"], "BAD_REQUEST");
        assert!(
            answer.body["detail"]
                .as_str()
                .unwrap()
                .starts_with("invalid cursor"),
            "{path}: {}",
            answer.body
        );
    }
    // The cursor as given still works.
    let second = get(&stack, &next).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_ne!(second.body["items"][0]["id"], first.body["items"][0]["id"]);
}

#[tokio::test]
async fn a_customers_orders_page_newest_first_to_the_end() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    let backend = stack
        .backend_json(Service::Orders, "/orders?userId=42&limit=50")
        .await;
    let expected = ids(&backend["items"]);
    assert!(expected.len() >= 3, "{expected:?}");

    let (items, pages) = follow(&stack, "/v1/customers/42/orders?limit=2", 2).await;
    assert_eq!(
        ids(&Value::Array(items.clone())),
        expected,
        "newest first, each once"
    );
    assert_eq!(pages, expected.len().div_ceil(2));
    let summary: BTreeSet<&str> = ["id", "status", "placedAt", "total", "itemCount"].into();
    for (item, order) in items.iter().zip(backend["items"].as_array().unwrap()) {
        assert_eq!(keys(item), summary, "{item}");
        let units: u64 = order["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["quantity"].as_u64().unwrap())
            .sum();
        assert_eq!(item["itemCount"], units);
        assert_eq!(item["total"], order["total"]);
    }

    let unknown = get(&stack, "/v1/customers/10001/orders").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.body["code"], "NOT_FOUND");
    let malformed = get(&stack, "/v1/customers/4%202/orders").await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
}

#[tokio::test]
async fn fields_trim_resources_batches_pages_and_the_declared_overview() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    let product = get(&stack, "/v1/products/p7?fields=title,id").await;
    assert_eq!(product.status, 200, "{}", product.body);
    assert_eq!(keys(&product.body), ["id", "title"].into());
    assert_eq!(product.body["id"], "p7");

    let batch = get(&stack, "/v1/products?ids=p1,p0,p2&fields=price").await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    for item in batch.body["items"].as_array().unwrap() {
        assert_eq!(keys(item), ["price"].into(), "{item}");
    }
    assert_eq!(batch.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(batch.body["missing"], json!(["p0"]), "the envelope stays");

    // Every page of a search keeps the selection: `next` carries it.
    let (items, _) = follow(&stack, &format!("{SEARCH}&limit=9&fields=id"), 9).await;
    assert!(items.len() > 9);
    assert!(
        items.iter().all(|item| keys(item) == ["id"].into()),
        "{items:?}"
    );

    let orders = get(&stack, "/v1/customers/42/orders?fields=itemCount,id").await;
    assert_eq!(orders.status, 200, "{}", orders.body);
    let first = &orders.body["items"][0];
    assert_eq!(keys(first), ["id", "itemCount"].into(), "{first}");

    let order = get(&stack, "/v1/orders/o-42-3?fields=status").await;
    assert_eq!(order.status, 200, "{}", order.body);
    assert_eq!(
        keys(&order.body),
        ["degraded", "status"].into(),
        "degraded always stays"
    );

    let overview = get(&stack, "/v1/customers/42/overview?fields=name,latestOrders").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert_eq!(keys(&overview.body), ["latestOrders", "name"].into());
    assert!(overview.body["latestOrders"][0]["shipment"].is_object());
    stack
        .chaos(Service::Shipping, json!({ "error_rate": 1.0 }))
        .await;
    let degraded = get(&stack, "/v1/customers/42/overview?fields=name").await;
    assert_eq!(degraded.status, 200, "{}", degraded.body);
    assert_eq!(keys(&degraded.body), ["degraded", "name"].into());
    stack.reset_chaos(Service::Shipping).await;

    // A field the resource does not have: a 400 that lists the ones it has, no backend call.
    stack.reset_stats().await;
    for (path, has) in [
        ("/v1/products/p7?fields=id,images", "thumbnailUrl"),
        ("/v1/products?ids=p1&fields=missing", "imageUrl"),
        ("/v1/search/products?fields=next", "description"),
        ("/v1/customers/42/orders?fields=items", "itemCount"),
        ("/v1/orders/o-42-3?fields=notes", "shipment"),
        ("/v1/customers/42/overview?fields=avatar", "latestOrders"),
        ("/v1/customers/42/overview?fields=", "email"),
    ] {
        let answer = get(&stack, path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(detail.contains(has), "{path}: {detail}");
    }
    assert_eq!(stack.requests(Service::Catalog).await, 0);
    assert_eq!(stack.requests(Service::Users).await, 0);
}

#[tokio::test]
async fn every_selection_has_its_own_etag_and_304_works_for_each() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    for base in [
        "/v1/products/p7",
        "/v1/customers/42/overview",
        "/v1/search/products?q=oak&limit=5",
    ] {
        let join = if base.contains('?') { '&' } else { '?' };
        let all = get(&stack, base).await;
        let ids = get(&stack, &format!("{base}{join}fields=id")).await;
        let other = if base.contains("overview") {
            "name"
        } else {
            "price"
        };
        let others = get(&stack, &format!("{base}{join}fields={other}")).await;
        let tags: Vec<String> = [&all, &ids, &others]
            .iter()
            .map(|a| a.etag.clone().expect("an ETag"))
            .collect();
        assert_eq!(
            tags.iter().collect::<BTreeSet<_>>().len(),
            3,
            "{base}: {tags:?}"
        );

        let path = format!("{base}{join}fields=id");
        let unchanged = get_with(&stack, &path, Some(&tags[1])).await;
        assert_eq!(unchanged.status, 304, "{path}");
        assert_eq!(unchanged.etag.as_ref(), Some(&tags[1]));
        // Another selection's tag is not this representation's.
        let changed = get_with(&stack, &path, Some(&tags[0])).await;
        assert_eq!(changed.status, 200, "{path}");
        assert_eq!(changed.body, ids.body);
    }
}

#[tokio::test]
async fn ids_are_checked_as_the_document_describes_them() {
    let stack = Stack::start(&bff_partner::SPEC).await;
    let widest = "%C3%A9".repeat(64); // 64 characters, 128 bytes: an id, unknown
    let too_wide = "%C3%A9".repeat(65);
    let hundred = vec!["p1"; 100].join(",");
    for (path, status) in [
        (format!("/v1/products/{widest}"), 404),
        (format!("/v1/products/{too_wide}"), 400),
        ("/v1/products/p1%C2%85".to_owned(), 400), // NEL, a C1 control character
        ("/v1/products/p%E2%80%83".to_owned(), 400), // an em space
        ("/v1/products/p1%3B".to_owned(), 400),
        (format!("/v1/products?ids={hundred}"), 200),
        (format!("/v1/products?ids={hundred},p1"), 400),
        ("/v1/products?ids=p1,%20p2".to_owned(), 400),
        ("/v1/products?ids=p1,,p2".to_owned(), 400),
        ("/v1/products?ids=p1,.".to_owned(), 400),
        ("/v1/orders/o-42-1%0A".to_owned(), 400),
        ("/v1/customers/42%09/orders".to_owned(), 400),
    ] {
        let answer = get(&stack, &path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        if status == 200 {
            assert_eq!(ids(&answer.body["items"]), ["p1"], "repeats answered once");
        }
    }

    // The document says the same: what the code refused above, its pattern refuses.
    let doc = get(&stack, "/openapi.json").await.body;
    let id = &doc["paths"]["/v1/products/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(id["maxLength"], 64);
    assert_eq!(id["pattern"], bff_partner::ids::PATTERN);
    let ids_param = &doc["paths"]["/v1/products"]["get"]["parameters"][0]["schema"];
    assert_eq!(ids_param["maxItems"], 100);
}
