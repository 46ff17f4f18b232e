//! The partner API's reference page (`GET /docs`): Swagger UI from the binary renders the
//! document the BFF serves, in a headless Chromium, and "Try it out" with the demo key calls
//! the API and shows a 200, with no request leaving the machine (saves `target/docs.png`).

use std::time::Duration;

use serde_json::Value;

use crate::harness::Stack;
use crate::observe::webdriver::{Browser, browser_or_skip};

const DEMO_KEY: &str = "demo-partner-key";

/// The operations on the page, the status "Try it out" got (if any), and every URL loaded.
const READ_DOCS: &str = r#"
const status = document.querySelector('#operations-products-getProduct .live-responses-table tr.response .response-col_status');
return {
  operations: Array.from(document.querySelectorAll('.opblock-summary-operation-id'))
    .map((e) => e.innerText.trim()),
  tryOut: !!document.querySelector('#operations-products-getProduct .try-out__btn'),
  input: !!document.querySelector('#operations-products-getProduct input[placeholder="id"]'),
  execute: !!document.querySelector('#operations-products-getProduct .execute'),
  status: status ? status.innerText.trim() : null,
  loaded: performance.getEntriesByType('resource').map((e) => e.name),
};
"#;

/// Clicks Execute on getProduct unless its answer is shown; then reads the page.
const EXECUTE: &str = r#"
const shown = document.querySelector('#operations-products-getProduct .live-responses-table tr.response .response-col_status');
if (!shown) document.querySelector('#operations-products-getProduct .execute').click();
const status = document.querySelector('#operations-products-getProduct .live-responses-table tr.response .response-col_status');
return {
  status: status ? status.innerText.trim() : null,
  loaded: performance.getEntriesByType('resource').map((e) => e.name),
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_renders_offline_and_tries_an_operation_with_a_key() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let stack = Stack::start(&bff_partner::SPEC).await;
    let origin = stack.url("");
    let document: Value = stack
        .http
        .get(stack.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let documented: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap().to_owned())
        .collect();

    let browser = Browser::start(&chromium, &driver).await;
    browser.open(&stack.url("/docs")).await;
    let page = browser
        .wait_for(READ_DOCS, Duration::from_secs(20), |page| {
            page["operations"]
                .as_array()
                .is_some_and(|ops| ops.len() == documented.len())
        })
        .await;
    let mut shown: Vec<String> = page["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op.as_str().unwrap().to_owned())
        .collect();
    let mut documented = documented;
    shown.sort();
    documented.sort();
    assert_eq!(shown, documented);

    // Authorize with the demo key, open getProduct, "Try it out" with id p42, Execute.
    let open = format!(
        r#"
        window.reference.preauthorizeApiKey('headerApiKey', '{DEMO_KEY}');
        document.querySelector('#operations-products-getProduct .opblock-summary-control').click();
        return true;
        "#
    );
    browser.eval(&open).await;
    browser
        .wait_for(READ_DOCS, Duration::from_secs(10), |p| p["tryOut"] == true)
        .await;
    browser
        .eval("document.querySelector('#operations-products-getProduct .try-out__btn').click(); return true;")
        .await;
    browser
        .wait_for(READ_DOCS, Duration::from_secs(10), |p| p["input"] == true)
        .await;
    browser
        .type_into(
            "#operations-products-getProduct input[placeholder=\"id\"]",
            "p42",
        )
        .await;
    // Swagger UI takes the typed value after a short debounce: Execute until it has run
    // (a click before that only shows "Required field is not provided").
    let page = browser
        .wait_for(EXECUTE, Duration::from_secs(20), |p| {
            p["status"].as_str().is_some()
        })
        .await;
    assert_eq!(page["status"], "200", "{page:#}");

    // Everything the page loaded, the document and the call included, came from the BFF.
    let loaded: Vec<&str> = page["loaded"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        loaded.iter().any(|url| url.ends_with("/openapi.json")),
        "{loaded:?}"
    );
    assert!(
        loaded.iter().any(|url| url.ends_with("/v1/products/p42")),
        "{loaded:?}"
    );
    for url in &loaded {
        assert!(url.starts_with(&origin), "{url} is not on {origin}");
    }
    browser.save_screenshot("docs.png").await;
    browser.quit().await;
}
