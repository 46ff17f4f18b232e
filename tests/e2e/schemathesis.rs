//! schemathesis (pinned in tests/schemathesis/requirements.txt) fuzzes the partner API from
//! the OpenAPI document it serves, with every check and the demo key, against the real demo
//! backends: the document and the code must agree on every answer, 0 failures. The run is
//! bounded (`MAX_EXAMPLES` per operation) and seeded (`SCHEMATHESIS_SEED` overrides the seed,
//! to search further by hand). Needs the virtualenv `.ci/run` makes
//! (`python3 -m venv tests/schemathesis/.venv && tests/schemathesis/.venv/bin/pip install -r
//! tests/schemathesis/requirements.txt`); without it the test prints why and skips, except
//! under CI.

use std::path::Path;
use std::process::Command;

use crate::harness::Stack;

const ST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis/.venv/bin/st");
const MAX_EXAMPLES: &str = "100";
const SEED: &str = "20261129";

/// The cursor of `path`'s first page's `next` link (a page of one item).
async fn next_cursor(stack: &Stack, path: &str) -> String {
    let page: serde_json::Value = stack
        .http
        .get(stack.url(&format!("{path}?limit=1")))
        .header("x-api-key", "demo-partner-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next = page["next"]
        .as_str()
        .unwrap_or_else(|| panic!("no next page: {page}"));
    let query = next.split_once('?').map_or("", |(_, q)| q);
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no cursor in {next}"))
}

/// Schemathesis' settings, written next to the build: what no schema can say, supplied.
async fn config_file(stack: &Stack) -> std::path::PathBuf {
    let search = next_cursor(stack, "/v1/search/products").await;
    let orders = next_cursor(stack, "/v1/customers/42/orders").await;
    let text = format!(
        r#"# Cursors are opaque: only a value from the API's own `next` link is one, which no
# schema can describe, so a fuzzer's own cursor is refused as documented (400). Each list
# is given a real cursor instead; customer 42's orders cursor is valid for customer 42 only.
# By hand: curl -H 'x-api-key: demo-partner-key' 'localhost:8083/v1/search/products?cursor=0'
# answers 400 "invalid cursor".
[[operations]]
include-operation-id = "searchProducts"
parameters = {{ "query.cursor" = "{search}" }}

[[operations]]
include-operation-id = "listCustomerOrders"
parameters = {{ "path.id" = "42", "query.cursor" = "{orders}" }}

# A request whose URI is longer than the gateway takes is refused with 414 (documented on
# every operation) before any parameter is read: a rejection like the 400s. By hand: a
# `ids=` list of 5,000 ids answers 414.
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429", "431", "5xx"]
"#
    );
    let path = std::env::temp_dir().join(format!("schemathesis-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_with_all_checks() {
    if !Path::new(ST).exists() {
        let why = format!("schemathesis is not installed at {ST}");
        assert!(
            std::env::var_os("CI").is_none(),
            "{why}; CI requires the fuzzer"
        );
        eprintln!("skipping: {why}");
        return;
    }
    let stack = Stack::start(&bff_partner::SPEC).await;
    let document = stack.url("/openapi.json");
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.to_owned());
    let config = config_file(&stack).await;
    let output = tokio::task::spawn_blocking(move || {
        Command::new(ST)
            .arg("--config-file")
            .arg(&config)
            .args(["run", &document, "--checks", "all"])
            .args(["--header", "X-Api-Key: demo-partner-key"])
            .args(["--max-examples", MAX_EXAMPLES, "--seed", &seed])
            .args(["--generation-database", "none", "--no-color"])
            .args(["--request-timeout", "10"])
            .output()
    })
    .await
    .expect("schemathesis task")
    .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It really tested the API: every operation, and no phase failed to run.
    assert!(stdout.contains("Tested: "), "{stdout}");
    assert!(!stdout.contains("Tested: 0"), "{stdout}");
}
