//! Production and development modes of the GraphQL BFFs, over real HTTP: in production (the
//! shipped configs) no introspection, no field names in errors, no IDE; in development the
//! standard IntrospectionQuery runs on both BFFs past their depth and complexity limits, and
//! GraphiQL, served from the binary, renders in a headless Chromium and runs a query with the
//! caller's token without a request leaving the machine (saves `target/ide.png`).

use std::time::Duration;

use manifold::BffSpec;
use manifold::config::GraphqlMode;
use serde_json::{Value, json};

use crate::harness::Stack;
use crate::observe::webdriver::{Browser, browser_or_skip};

/// Exactly what graphql-js 16.11's `getIntrospectionQuery()` returns.
const INTROSPECTION_QUERY: &str =
    include_str!("../../src/graphql/testdata/introspection_query.graphql");

/// Both GraphQL BFFs, with the audience of their tokens.
const GRAPHQL_BFFS: [(&BffSpec, &str); 2] =
    [(&bff_mobile::SPEC, "mobile"), (&bff_web::SPEC, "web")];

async fn development(spec: &BffSpec) -> Stack {
    Stack::start_with(spec, |config| {
        config.graphql.mode = GraphqlMode::Development;
    })
    .await
}

fn messages(body: &Value) -> String {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_answers_the_standard_introspection_query_and_serves_the_ide() {
    for (spec, audience) in GRAPHQL_BFFS {
        let stack = development(spec).await;
        let token = stack.token("42", audience, &[]).await;
        let (status, body) = stack
            .graphql(Some(&token), INTROSPECTION_QUERY, json!({}))
            .await;
        assert_eq!(status, 200, "{}: {body}", spec.name);
        assert!(body.get("errors").is_none(), "{}: {body}", spec.name);
        let types = body["data"]["__schema"]["types"].as_array().unwrap();
        assert!(types.len() > 10, "{}: {types:?}", spec.name);
        assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");

        // The page and every file it names, from the binary, cacheable for a year.
        let page = stack.http.get(stack.url("/ide")).send().await.unwrap();
        assert_eq!(page.status(), 200, "{}", spec.name);
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        let policy = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'none'"), "{policy}");
        let html = page.text().await.unwrap();
        let assets: Vec<&str> = html
            .split('"')
            .filter(|part| part.starts_with("ide/"))
            .collect();
        assert_eq!(assets.len(), 6, "{html}");
        for asset in assets {
            let response = stack
                .http
                .get(stack.url(&format!("/{asset}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{asset}");
            let expected = if asset.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else {
                "text/css; charset=utf-8"
            };
            assert_eq!(response.headers()["content-type"], expected, "{asset}");
            let caching = response.headers()["cache-control"].to_str().unwrap();
            assert!(caching.contains("max-age=31536000"), "{asset}: {caching}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_introspection_names_no_field_and_has_no_ide() {
    // Misspellings one letter off a real root field, nested field and mutation.
    let mistakes = [
        ("mobile", "{ hom { greeting } }", "home"),
        ("mobile", "{ home { greting } }", "greeting"),
        ("web", "{ viewr { profile { name } } }", "viewer"),
        ("web", "{ viewer { profle { name } } }", "profile"),
        (
            "web",
            "mutation { addToCar(productId: \"p-1\") { id } }",
            "addToCart",
        ),
    ];
    for (spec, audience) in GRAPHQL_BFFS {
        // The shipped config, untouched.
        let stack = Stack::start(spec).await;
        assert_eq!(
            stack.bff.gateway().config().graphql.mode,
            GraphqlMode::Production
        );
        let token = stack.token("42", audience, &[]).await;
        for query in [
            INTROSPECTION_QUERY,
            "{ __schema { types { name } } }",
            "{ __type(name: \"Query\") { fields { name } } }",
        ] {
            let (status, body) = stack.graphql(Some(&token), query, json!({})).await;
            assert_eq!(status, 200, "{}: {body}", spec.name);
            assert_eq!(body["data"], Value::Null, "{}: {body}", spec.name);
            assert_eq!(messages(&body), "introspection is disabled", "{body}");
        }
        for (_, query, hidden) in mistakes.iter().filter(|(a, _, _)| *a == audience) {
            let (_, body) = stack.graphql(Some(&token), query, json!({})).await;
            let said = messages(&body);
            assert!(!said.is_empty(), "{query}: {body}");
            assert!(!said.contains(hidden), "{query}: {said}");
            assert!(!said.contains("Did you mean"), "{query}: {said}");
        }
        let ide = stack.http.get(stack.url("/ide")).send().await.unwrap();
        assert_eq!(ide.status(), 404, "{}", spec.name);
    }
}

/// What the IDE shows: whether GraphiQL's editors are on the page, the result pane's text,
/// and every URL the page has loaded.
const READ_IDE: &str = r#"
const result = document.querySelector('.graphiql-response .CodeMirror');
return {
  editor: !!document.querySelector('.graphiql-query-editor .CodeMirror'),
  headers: !!document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror'),
  run: !!document.querySelector('.graphiql-execute-button'),
  result: result ? result.CodeMirror.getValue() : null,
  loaded: performance.getEntriesByType('resource').map((e) => e.name),
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_renders_offline_in_chromium_and_runs_a_query_with_the_token() {
    let Some((chromium, driver)) = browser_or_skip() else {
        return;
    };
    let stack = development(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    let origin = stack.url("");

    let browser = Browser::start(&chromium, &driver).await;
    browser.open(&stack.url("/ide")).await;
    let page = browser
        .wait_for(READ_IDE, Duration::from_secs(20), |page| {
            page["editor"] == true && page["headers"] == true && page["run"] == true
        })
        .await;
    println!("page: {page:#}");

    // The caller's token in the Headers tab, `{ __typename }` in the editor, then run.
    let run = format!(
        r#"
        const headers = document.querySelector(
          '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror');
        headers.CodeMirror.setValue(JSON.stringify({{ Authorization: 'Bearer {token}' }}));
        document.querySelector('.graphiql-query-editor .CodeMirror')
          .CodeMirror.setValue('{{ __typename }}');
        document.querySelector('.graphiql-execute-button').click();
        return true;
        "#
    );
    browser.eval(&run).await;
    let page = browser
        .wait_for(READ_IDE, Duration::from_secs(20), |page| {
            page["result"].as_str().is_some_and(|r| r.contains("Query"))
        })
        .await;
    let result: Value = serde_json::from_str(page["result"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!({ "data": { "__typename": "Query" } }));

    // With the token, GraphiQL's own introspection loads the schema: the docs list `Home`.
    let docs = r#"
        document.querySelector('[aria-label="Re-fetch GraphQL schema"]').click();
        const show = document.querySelector('[aria-label="Show Documentation Explorer"]');
        if (show) show.click();
        return true;
    "#;
    browser.eval(docs).await;
    let read_docs = "const d = document.querySelector('.graphiql-doc-explorer');                      return d ? d.innerText : '';";
    browser
        .wait_for(read_docs, Duration::from_secs(20), |text| {
            text.as_str().is_some_and(|t| t.contains("Home"))
        })
        .await;
    let page = browser.eval(READ_IDE).await;

    // Everything the page loaded, the operation included, came from the BFF itself.
    let loaded: Vec<&str> = page["loaded"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(loaded.len() >= 6, "{loaded:?}");
    assert!(
        loaded.iter().any(|url| url.ends_with("/graphql")),
        "{loaded:?}"
    );
    for url in &loaded {
        assert!(url.starts_with(&origin), "{url} is not on {origin}");
    }
    browser.save_screenshot("ide.png").await;
    browser.quit().await;
}
