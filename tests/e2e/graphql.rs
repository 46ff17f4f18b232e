//! GraphQL documents built to hurt: a fragment bomb is refused before validation expands it
//! (and the BFF keeps answering its health checks meanwhile), a field with 50,000 directives
//! is one error, and the errors of one answer are capped.

use std::time::Duration;

use demo_services::Service;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::harness::Stack;

/// Fragments `F0..Fn` each spreading the next twice: 2^n fields once expanded, under 2 KB.
fn fragment_bomb(levels: usize) -> String {
    let mut query = String::from("query Bomb { ...F0 }\n");
    for i in 0..levels {
        let next = i + 1;
        query.push_str(&format!(
            "fragment F{i} on Query {{ home {{ greeting }} ...F{next} ...F{next} }}\n"
        ));
    }
    query.push_str(&format!(
        "fragment F{levels} on Query {{ home {{ greeting }} }}\n"
    ));
    query
}

/// A client that gives up rather than hang, so a BFF that stalls fails the test.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn post(http: &reqwest::Client, url: &str, token: &str, query: &str) -> (Duration, Value) {
    let started = Instant::now();
    let response = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("the BFF answers");
    let body: Value = response.json().await.expect("a JSON answer");
    (started.elapsed(), body)
}

fn only_error(body: &Value) -> &str {
    assert_eq!(body["data"], Value::Null, "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    errors[0]["message"].as_str().expect("a message")
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_at_once_and_health_checks_keep_answering() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    let http = client();
    let url = stack.url("/graphql");
    let bomb = fragment_bomb(30);
    assert!(bomb.len() < 2048, "{} bytes", bomb.len());

    // The best of three, so a busy test machine's scheduling is not what is measured.
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let (took, body) = post(&http, &url, &token, &bomb).await;
        assert!(
            only_error(&body).contains("once its fragments are expanded"),
            "{body}"
        );
        fastest = fastest.min(took);
    }
    assert!(
        fastest < Duration::from_millis(50),
        "refused in {fastest:?}"
    );

    let mut healthz = Duration::MAX;
    for _ in 0..3 {
        let bombs: Vec<_> = (0..4)
            .map(|_| {
                let (http, url, token, bomb) =
                    (http.clone(), url.clone(), token.clone(), bomb.clone());
                tokio::spawn(async move { post(&http, &url, &token, &bomb).await })
            })
            .collect();
        let started = Instant::now();
        let status = http
            .get(stack.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert!(status.status().is_success());
        healthz = healthz.min(started.elapsed());
        for bomb in bombs {
            let (_, body) = bomb.await.expect("bomb task");
            only_error(&body);
        }
    }
    assert!(
        healthz < Duration::from_millis(50),
        "/healthz took {healthz:?}"
    );
}

#[tokio::test]
async fn fifty_thousand_directives_are_one_small_error() {
    // bff-web takes bodies of this size (about 100 KB); bff-mobile refuses them with a 413.
    let stack = Stack::start(&bff_web::SPEC).await;
    let token = stack.token("42", "web", &[]).await;
    let directives = "@a".repeat(50_000);
    let query = format!("{{ __typename {directives} }}");
    let response = client()
        .post(stack.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("the BFF answers");
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    assert!(bytes.len() < 10 * 1024, "{} bytes", bytes.len());
    let body: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: {e}: {}", String::from_utf8_lossy(&bytes)));
    assert!(only_error(&body).contains("directives"), "{body}");

    // A known directive is fine, an unknown one is refused even on `__typename`.
    let (_, body) = post(
        &client(),
        &stack.url("/graphql"),
        &token,
        "{ __typename @a }",
    )
    .await;
    assert_eq!(only_error(&body), "Unknown directive \"@a\".");
    let (_, body) = post(
        &client(),
        &stack.url("/graphql"),
        &token,
        "{ __typename @include(if: true) }",
    )
    .await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

#[tokio::test]
async fn the_errors_of_one_answer_are_capped_and_the_rest_counted() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    let max = bff_mobile::SPEC
        .default_config()
        .expect("config")
        .graphql
        .max_errors;
    let aliases: String = (0..100).map(|i| format!("a{i}: noSuchField ")).collect();
    let (_, body) = post(
        &client(),
        &stack.url("/graphql"),
        &token,
        &format!("{{ {aliases} }}"),
    )
    .await;
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), max + 1, "{body}");
    let last = errors[max]["message"].as_str().expect("message");
    assert_eq!(
        last,
        format!("{} more errors not shown (of 100)", 100 - max)
    );
}

#[tokio::test]
async fn an_operation_is_costed_by_what_it_makes_the_backends_do() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let token = stack.token("42", "web", &[]).await;
    let one = "search(query: \"lamp\", first: 50) { nodes { reviews(first: 10) { id } } }";
    let aliases: String = (0..20).map(|i| format!("a{i}: {one} ")).collect();
    stack.reset_stats().await;
    let (_, body) = post(
        &client(),
        &stack.url("/graphql"),
        &token,
        &format!("{{ {aliases} }}"),
    )
    .await;
    // 20 x (1 + 50 x (1 + (1 + 10))): each search, its 50 nodes, each node's 10 reviews.
    assert_eq!(
        only_error(&body),
        "the operation costs 12020, more than the limit of 10000"
    );
    assert_eq!(
        stack.requests(Service::Catalog).await,
        0,
        "refused before running"
    );
    assert_eq!(
        stack.requests(Service::Reviews).await,
        0,
        "refused before running"
    );

    // One of them is fine.
    let (_, body) = post(
        &client(),
        &stack.url("/graphql"),
        &token,
        &format!("{{ {one} }}"),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(body["data"]["search"]["nodes"].is_array(), "{body}");
}

#[tokio::test]
async fn graphql_over_http_get_post_and_their_refusals() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let token = stack.token("42", "web", &["cart:write"]).await;
    let http = client();
    let url = stack.url("/graphql");

    // GET runs a query, answered for this caller only.
    let response = http
        .get(format!("{url}?query=%7B%20__typename%20%7D"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let cache_control = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(cache_control, "private, no-store");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["data"]["__typename"], "Query", "{body}");

    // A mutation over GET is 405, and nothing runs.
    stack.reset_stats().await;
    let mutation = "mutation%20%7B%20addToCart(productId%3A%20%22p1%22%2C%20quantity%3A%201)%20%7B%20itemCount%20%7D%20%7D";
    let response = http
        .get(format!("{url}?query={mutation}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(stack.requests(Service::Cart).await, 0);

    // A POST that is not JSON is 415; a document that does not parse is 400 without data
    // for clients of the new media type, 200 with errors for application/json ones.
    let response = http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("{ __typename }")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 415);
    for (accept, status) in [
        ("application/graphql-response+json", 400),
        ("application/json", 200),
    ] {
        let response = http
            .post(&url)
            .bearer_auth(&token)
            .header("accept", accept)
            .json(&json!({ "query": "{" }))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), status, "{accept}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with(accept), "{content_type}");
        let body: Value = response.json().await.expect("JSON");
        assert!(body.get("data").is_none(), "{accept}: {body}");
        assert!(body["errors"][0]["message"].is_string(), "{body}");
    }
}

/// The mobile home query's text and its SHA-256, as Apollo's APQ link sends them.
fn persisted(query: &str) -> (String, Value) {
    use std::fmt::Write;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(query.as_bytes());
    let hash = digest.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    (hash, extensions)
}

fn get_url(base: &str, operation: &str, extensions: &Value) -> String {
    let encoded: String = url_encode(&extensions.to_string());
    format!("{base}/graphql?operationName={operation}&extensions={encoded}")
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_query_registered_on_one_instance_runs_by_hash_on_another_through_redis() {
    let Some(redis) = crate::redis_server::RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let shared = |config: &mut manifold::config::Config| {
        config.graphql.persisted_queries.redis_url = Some(url.clone().into());
    };
    let stack = Stack::start_with(&bff_mobile::SPEC, shared).await;
    let second = stack.start_instance(&bff_mobile::SPEC, shared).await;
    let token = stack.token("42", "mobile", &[]).await;
    let http = client();
    let (_, extensions) = persisted(crate::mobile::HOME);

    // The hash alone is unknown: the client is told to send the query.
    let body: Value = http
        .get(get_url(&stack.bff.url(), "Home", &extensions))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
        "{body}"
    );
    assert!(body.get("data").is_none(), "{body}");

    // Sent with its query, on the first instance, it runs and is registered.
    let response = http
        .post(stack.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": crate::mobile::HOME, "extensions": extensions }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert!(body["errors"].is_null(), "{body}");

    // The second instance has never seen it: it finds it in Redis, by hash, over GET.
    let response = http
        .get(get_url(&second.url(), "Home", &extensions))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert!(body["errors"].is_null(), "{body}");
    assert!(body["data"]["home"]["greeting"].is_string(), "{body}");

    // A hash that is not the query's is refused.
    let (_, other) = persisted("{ __typename }");
    let body: Value = http
        .post(stack.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": crate::mobile::HOME, "extensions": other }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_HASH_MISMATCH"
    );
}

#[tokio::test]
async fn trusted_documents_run_only_the_apps_operations() {
    let dir = std::env::temp_dir().join(format!("manifold-e2e-trusted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let manifest = dir.join("mobile-operations.json");
    let (hash, extensions) = persisted(crate::mobile::HOME);
    let body = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{ "id": hash, "name": "Home", "type": "query", "body": crate::mobile::HOME }],
    });
    std::fs::write(&manifest, body.to_string()).expect("manifest");
    let stack = Stack::start_with(&bff_mobile::SPEC, |config| {
        config.graphql.persisted_queries.trusted_documents = Some(manifest.clone());
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    stack.reset_stats().await;

    let (_, body) = post(
        &client(),
        &stack.url("/graphql"),
        &token,
        "{ home { greeting } }",
    )
    .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_IN_LIST",
        "{body}"
    );
    assert_eq!(stack.requests(Service::Users).await, 0, "nothing ran");

    // By id (the manifest's hash), over GET, with no registration first.
    let response = client()
        .get(get_url(&stack.bff.url(), "Home", &extensions))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    let body: Value = response.json().await.expect("JSON");
    assert!(body["errors"].is_null(), "{body}");
    assert!(body["data"]["home"]["greeting"].is_string(), "{body}");
}

#[tokio::test]
async fn batches_are_off_by_default_and_capped_and_costed_when_on() {
    let two = json!([{ "query": "{ __typename }" }, { "query": "{ noSuchField }" }]);
    let stack = Stack::start(&bff_web::SPEC).await;
    let token = stack.token("42", "web", &[]).await;
    let send = |stack: &Stack, body: Value| {
        let request = client()
            .post(stack.url("/graphql"))
            .bearer_auth(&token)
            .json(&body);
        async move { request.send().await.expect("POST") }
    };
    let off = send(&stack, two.clone()).await;
    assert_eq!(off.status(), 400);
    let body: Value = off.json().await.expect("JSON");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("batch"),
        "{body}"
    );

    let on = Stack::start_with(&bff_web::SPEC, |config| config.graphql.max_batch = 2).await;
    let token = on.token("42", "web", &[]).await;
    let send = |body: Value| {
        let request = client()
            .post(on.url("/graphql"))
            .bearer_auth(&token)
            .json(&body);
        async move { request.send().await.expect("POST") }
    };
    // Each operation answered on its own, in order: one ran, one failed validation.
    let answer = send(two).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body[0]["data"]["__typename"], "Query", "{body}");
    assert!(body[1]["errors"][0]["message"].is_string(), "{body}");
    // Over the cap, nothing runs.
    let three = json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }, { "query": "{ __typename }" }]);
    assert_eq!(send(three).await.status(), 400);
    // Each operation is costed: an expensive one is refused in its place.
    let one = "search(query: \"lamp\", first: 50) { nodes { reviews(first: 10) { id } } }";
    let aliases: String = (0..20).map(|i| format!("a{i}: {one} ")).collect();
    let costly = json!([{ "query": "{ __typename }" }, { "query": format!("{{ {aliases} }}") }]);
    let body: Value = send(costly).await.json().await.expect("JSON");
    assert_eq!(body[0]["data"]["__typename"], "Query", "{body}");
    let refused = body[1]["errors"][0]["message"].as_str().expect("an error");
    assert!(refused.contains("more than the limit"), "{body}");
}
