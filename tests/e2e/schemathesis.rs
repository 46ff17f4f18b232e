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
    let output = tokio::task::spawn_blocking(move || {
        Command::new(ST)
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
