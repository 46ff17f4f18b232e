//! The admin dashboard in a real headless Chromium: with some traffic, an outage that opens a
//! breaker and a rate-limit refusal, the page shows what an operator must see — the upstreams
//! with their instances, health and circuit state, route rates and latencies, refusals,
//! recent errors, the config — and keeps refreshing by itself. Saves `target/dashboard.png`.

use std::time::Duration;

use tokio::time::Instant;

use demo_services::Service;
use serde_json::{Value, json};

use super::webdriver::{Browser, browser_or_skip};
use crate::harness::Stack;
use crate::mobile::HOME;

/// Text of the dashboard's parts, as a person reads them.
const READ_PAGE: &str = r#"
const rows = (id) => [...document.querySelectorAll('#' + id + ' tbody tr')]
  .map((tr) => [...tr.children].map((td) => td.innerText.trim()));
return {
  bff: document.getElementById('bff').innerText,
  upstreams: rows('upstreams'),
  routes: rows('routes'),
  errors: rows('errors'),
  refused: document.getElementById('rl-refused').innerText,
  cache: document.getElementById('cache-ratio').innerText,
  config: document.getElementById('config').innerText,
};
"#;

fn screenshot_path() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("dashboard.png")
}

fn row<'a>(page: &'a Value, table: &str, first: &str) -> Option<&'a Vec<Value>> {
    page[table]
        .as_array()?
        .iter()
        .filter_map(Value::as_array)
        .find(|r| r.first().and_then(Value::as_str) == Some(first))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_upstream_states_rates_and_errors_in_chromium() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        // 40 requests, whatever they cost.
        config.rate_limit.rules[0].limit = 40;
        config.rate_limit.rules[0].cost = manifold::config::CostKind::Request;
        // Open stays open while the page is read (no half-open probe in between).
        let rec = config.upstreams.get_mut("recommendations").unwrap();
        rec.breaker.cool_down = Duration::from_secs(60);
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    for _ in 0..5 {
        assert_eq!(stack.graphql(Some(&token), HOME, json!({})).await.0, 200);
    }
    // An outage opens the recommendations breaker.
    stack
        .chaos(Service::Recommendations, json!({ "error_rate": 1.0 }))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.bff.gateway().upstreams()["recommendations"]
        .stats()
        .instances[0]
        .breaker
        != manifold::upstream::BreakerState::Open
    {
        assert!(Instant::now() < deadline, "the breaker never opened");
        stack.graphql(Some(&token), HOME, json!({})).await;
    }
    // Another user runs into the rate limit.
    let greedy = stack.token("77", "mobile", &[]).await;
    let mut refused = 0;
    for _ in 0..100 {
        if stack.graphql(Some(&greedy), HOME, json!({})).await.0 == 429 {
            refused += 1;
            break;
        }
    }
    assert_eq!(refused, 1, "the limit never refused");

    let browser = Browser::start(&chromium, &driver).await;
    browser.open(&stack.admin_url("/")).await;
    let page = browser
        .wait_for(READ_PAGE, Duration::from_secs(15), |page| {
            row(page, "upstreams", "recommendations").is_some()
                && row(page, "routes", "/graphql").is_some()
                && page["config"]
                    .as_str()
                    .is_some_and(|c| c.contains("upstreams"))
        })
        .await;
    println!("page: {page:#}");
    assert_eq!(page["bff"], "bff-mobile");
    // Every upstream is listed with its instance, health and circuit state.
    for name in [
        "users",
        "orders",
        "catalog",
        "recommendations",
        "notifications",
        "cart",
    ] {
        let r = row(&page, "upstreams", name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(
            r[1].as_str().unwrap().starts_with("http://127.0.0.1:"),
            "{r:?}"
        );
    }
    let rec = row(&page, "upstreams", "recommendations").unwrap();
    assert_eq!(rec[3], "open", "recommendations circuit: {rec:?}");
    let users = row(&page, "upstreams", "users").unwrap();
    assert_eq!(users[2], "healthy");
    assert_eq!(users[3], "closed");
    let calls: u64 = users[5].as_str().unwrap().parse().unwrap();
    assert!(calls >= 5, "{users:?}");
    let failures: u64 = rec[6].as_str().unwrap().parse().unwrap();
    assert!(failures >= 5, "{rec:?}");
    // Route latency and counts.
    let graphql: Vec<&Vec<Value>> = page["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_array)
        .filter(|r| r[0] == "/graphql" && r[1] == "Home")
        .collect();
    assert_eq!(graphql.len(), 1, "{page}");
    let requests: u64 = graphql[0][3].as_str().unwrap().parse().unwrap();
    assert!(requests >= 6);
    assert!(graphql[0][6].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
    assert_eq!(page["refused"], "1");
    // Repeated home queries: the page shows a hit ratio, not "no lookups".
    assert!(page["cache"].as_str().unwrap().ends_with('%'), "{page}");
    // Partial answers are recent errors, naming the failed backend.
    let errors = page["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e[6].as_str().is_some_and(|f| f.contains("recommendations"))),
        "{errors:?}"
    );
    assert!(page["config"].as_str().unwrap().contains("request_timeout"));

    // It refreshes by itself: new traffic shows up without a reload.
    for _ in 0..3 {
        stack.graphql(Some(&token), HOME, json!({})).await;
    }
    browser
        .wait_for(READ_PAGE, Duration::from_secs(10), |page| {
            row(page, "routes", "/graphql").is_some()
                && page["routes"].as_array().unwrap().iter().any(|r| {
                    r[0] == "/graphql"
                        && r[1] == "Home"
                        && r[3].as_str().and_then(|n| n.parse::<u64>().ok()) >= Some(requests + 3)
                })
        })
        .await;

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = screenshot_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
    browser.quit().await;
}
