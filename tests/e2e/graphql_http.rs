//! graphql-http's GraphQL-over-HTTP audit (the npm package, pinned in
//! tests/graphql-http/package.json) against both GraphQL BFFs: no MUST may fail, and at least
//! 58 of the 61 audits must pass (in development mode: some audits introspect `__type`,
//! which production refuses). Needs Node and `npm ci` in tests/graphql-http (`.ci/run`
//! does it); without them the test prints why and skips, except under CI.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::Stack;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/graphql-http");

/// The audit's lines and its counts, or `None` (after saying why) when it cannot run here.
async fn audit(url: &str, token: &str) -> Option<(String, Value)> {
    if !Path::new(DIR).join("node_modules/graphql-http").exists() {
        let why = format!("graphql-http is not installed: run npm ci in {DIR}");
        assert!(
            std::env::var_os("CI").is_none(),
            "{why}; CI requires the audit"
        );
        eprintln!("skipping: {why}");
        return None;
    }
    let (url, token) = (url.to_owned(), token.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("audit.mjs")
            .args([&url, &token])
            .current_dir(DIR)
            .output()
    })
    .await
    .expect("audit task");
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "node cannot run: {e}");
            eprintln!("skipping: node cannot run ({e})");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the audit failed to run: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let counts = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok());
    Some((stdout, counts.expect("the audit's counts")))
}

async fn audit_bff(spec: &manifold::BffSpec, audience: &str) {
    // Development mode: several audits query `__type`, which production refuses.
    let stack = Stack::start_with(spec, |config| {
        config.graphql.mode = manifold::config::GraphqlMode::Development;
    })
    .await;
    let token = stack.token("42", audience, &[]).await;
    let Some((lines, counts)) = audit(&stack.url("/graphql"), &token).await else {
        return;
    };
    println!("{} graphql-http audit:\n{lines}", spec.name);
    let failed_musts: Vec<&str> = lines
        .lines()
        .filter(|l| l.starts_with("error ") || (l.starts_with("warn ") && l.contains(" MUST ")))
        .collect();
    assert!(failed_musts.is_empty(), "{}: {failed_musts:#?}", spec.name);
    assert_eq!(counts["total"], 61, "{lines}");
    let ok = counts["ok"].as_u64().expect("ok count");
    assert!(ok >= 58, "{}: {ok} of 61 ok\n{lines}", spec.name);
}

#[tokio::test]
async fn bff_mobile_passes_the_graphql_over_http_audit() {
    audit_bff(&bff_mobile::SPEC, "mobile").await;
}

#[tokio::test]
async fn bff_web_passes_the_graphql_over_http_audit() {
    audit_bff(&bff_web::SPEC, "web").await;
}
