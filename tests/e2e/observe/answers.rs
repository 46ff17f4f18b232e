//! The metrics an operator's dashboards and alerts expect (issue #16): `process_*` from
//! `/proc`, the request series by exact status code, GraphQL errors by `extensions.code`,
//! partial answers by the backend whose part is missing; and the admin listener guarded by
//! its bearer token, the only place `/admin/reload` is served.

use demo_services::Service;
use serde_json::json;

use super::scrape;
use crate::harness::Stack;
use crate::mobile::HOME;

const ADMIN_TOKEN: &str = "an-admin-token-for-the-test";

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_metrics_are_present_and_plausible() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let samples = scrape(&stack).await;
    let value = |name| {
        samples
            .value(name, &[])
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert!(value("process_resident_memory_bytes") > 1024.0 * 1024.0);
    assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
    assert!(value("process_open_fds") > 0.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_cpu_seconds_total") >= 0.0);
    let started = value("process_start_time_seconds");
    let now = now_seconds();
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "started {started}, now {now}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_and_a_429_are_counted_under_their_codes() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.rate_limit.rules[0].limit = 1;
        config.rate_limit.rules[0].cost = manifold::config::CostKind::Request;
    })
    .await;
    let token = stack.token("7", "mobile", &[]).await;
    let missing = stack.http.get(stack.url("/no/such/route")).send().await;
    assert_eq!(missing.unwrap().status(), 404);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(stack.graphql(Some(&token), HOME, json!({})).await.0);
    }
    assert_eq!(statuses, [200, 429]);
    let samples = scrape(&stack).await;
    let count = |route, operation, code, class| {
        let labels = [
            ("route", route),
            ("operation", operation),
            ("code", code),
            ("class", class),
        ];
        samples.value("manifold_http_requests_total", &labels)
    };
    assert_eq!(count("unmatched", "", "404", "4xx"), Some(1.0));
    assert_eq!(count("/graphql", "Home", "200", "2xx"), Some(1.0));
    assert_eq!(count("/graphql", "", "429", "4xx"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_errors_are_counted_by_code_introspection_in_production_included() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("7", "mobile", &[]).await;
    let (status, body) = stack
        .graphql(
            Some(&token),
            "query Bad { home { noSuchField } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "application/json keeps 200: {body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );
    // The shipped config is production: introspection is refused by validation.
    let introspection = "query IntrospectionQuery { __schema { queryType { name } } }";
    let response = stack
        .http
        .post(stack.url("/graphql"))
        .bearer_auth(&token)
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": introspection }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let samples = scrape(&stack).await;
    let errors = |operation| {
        samples.value(
            "manifold_graphql_errors_total",
            &[
                ("operation", operation),
                ("code", "GRAPHQL_VALIDATION_FAILED"),
            ],
        )
    };
    assert_eq!(errors("Bad"), Some(1.0));
    assert_eq!(errors("IntrospectionQuery"), Some(1.0));
    let refused = [
        ("route", "/graphql"),
        ("operation", "IntrospectionQuery"),
        ("code", "400"),
        ("class", "4xx"),
    ];
    assert_eq!(
        samples.value("manifold_http_requests_total", &refused),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_served_without_the_cart_counts_a_partial_response_of_cart() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    let (status, _) = stack.graphql(Some(&token), HOME, json!({})).await;
    assert_eq!(status, 200);
    let partial = [("route", "/graphql"), ("service", "cart")];
    let before = scrape(&stack).await;
    assert_eq!(
        before.value("manifold_partial_responses_total", &partial),
        None
    );

    stack
        .chaos(Service::Cart, json!({ "error_rate": 1.0 }))
        .await;
    let (status, body) = stack.graphql(Some(&token), HOME, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["home"]["cart"], json!(null), "{body}");
    let code = body["errors"][0]["extensions"]["code"].as_str().unwrap();
    let after = scrape(&stack).await;
    assert_eq!(
        after.value("manifold_partial_responses_total", &partial),
        Some(1.0)
    );
    assert_eq!(
        after.value(
            "manifold_graphql_errors_total",
            &[("operation", "Home"), ("code", code)]
        ),
        Some(1.0)
    );
}

/// Status of a GET on the admin listener with `authorization`, if any.
async fn admin_status(stack: &Stack, path: &str, authorization: Option<&str>) -> u16 {
    let mut request = stack.http.get(stack.admin_url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_admin_call_needs_it_but_the_dashboard_files() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.admin.token = Some(ADMIN_TOKEN.into());
    })
    .await;
    let right = format!("Bearer {ADMIN_TOKEN}");
    for path in [
        "/metrics",
        "/admin/api/status",
        "/admin/api/config",
        "/admin/reload",
    ] {
        assert_eq!(admin_status(&stack, path, None).await, 401, "{path}");
        let wrong = Some("Bearer an-admin-token-for-the-tesT");
        assert_eq!(admin_status(&stack, path, wrong).await, 401, "{path}");
        assert_eq!(
            admin_status(&stack, path, Some(&right)).await,
            200,
            "{path}"
        );
    }
    for path in ["/", "/admin/dashboard.js"] {
        assert_eq!(admin_status(&stack, path, None).await, 200, "{path}");
    }
    let refused = stack
        .http
        .get(stack.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.headers()["www-authenticate"],
        "Bearer realm=\"manifold-admin\""
    );
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_status_is_served_on_the_admin_listener_only() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let public = stack.http.get(stack.url("/admin/reload")).send().await;
    assert_eq!(public.unwrap().status(), 404);
    // No token configured, a loopback listener: no credentials needed.
    let admin = stack
        .http
        .get(stack.admin_url("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    let body: serde_json::Value = admin.json().await.unwrap();
    assert_eq!(body["generation"], 1, "{body}");
    assert_eq!(admin_status(&stack, "/metrics", None).await, 200);
}

#[test]
fn an_admin_listener_off_loopback_is_refused_without_a_token() {
    let text = bff_mobile::SPEC.embedded_config;
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let public = [("MANIFOLD_ADMIN__LISTEN", "0.0.0.0:9081")];
    let errors = bff_mobile::SPEC
        .parse_config(text, env(&public))
        .expect_err("refused")
        .to_string();
    assert!(errors.contains("admin.token: is required"), "{errors}");
    let old = [
        ("MANIFOLD_ADMIN__LISTEN", "0.0.0.0:9081"),
        ("MANIFOLD_ADMIN__ALLOW_PUBLIC", "true"),
    ];
    let errors = bff_mobile::SPEC
        .parse_config(text, env(&old))
        .expect_err("refused")
        .to_string();
    assert!(
        errors.contains("admin.allow_public: removed: set admin.token"),
        "{errors}"
    );
    let with_token = [
        ("MANIFOLD_ADMIN__LISTEN", "0.0.0.0:9081"),
        ("MANIFOLD_ADMIN__TOKEN", ADMIN_TOKEN),
    ];
    let config = bff_mobile::SPEC
        .parse_config(text, env(&with_token))
        .expect("a token makes it valid");
    assert_eq!(
        config.admin.token.as_ref().map(|t| t.expose()),
        Some(ADMIN_TOKEN)
    );
}
