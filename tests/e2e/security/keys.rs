//! The keys behind JWT verification: rotation, floods of unknown `kid`s, an IdP outage, and
//! readiness before the keys are loaded.

use std::time::Duration;

use demo_services::{Backends, Service};
use serde_json::{Value, json};

use super::forge::{header_of, with_header};
use crate::harness::{Stack, point_at};

const JWKS_PATH: &str = "/.well-known/jwks.json";
const PROFILE: &str = "{ viewer { profile { name } } }";

/// How often the demo IdP served its JWKS since the last stats reset.
async fn jwks_fetches(stack: &Stack) -> u64 {
    stack.stats(Service::Auth).await["by_path"][JWKS_PATH]
        .as_u64()
        .unwrap_or(0)
}

async fn profile_status(stack: &Stack, token: &str) -> u16 {
    stack.graphql(Some(token), PROFILE, json!({})).await.0
}

#[tokio::test]
async fn a_token_from_a_rotated_key_is_accepted_after_one_jwks_refetch() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let old = stack.token("42", "web", &[]).await;
    assert_eq!(profile_status(&stack, &old).await, 200);
    stack.reset_stats().await;

    let rotated: Value = stack
        .http
        .post(format!("{}/_rotate", stack.service_url(Service::Auth)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new = stack.token("42", "web", &[]).await;
    assert_eq!(header_of(&new)["kid"], rotated["kid"]);
    assert_ne!(header_of(&new)["kid"], header_of(&old)["kid"]);
    assert_eq!(jwks_fetches(&stack).await, 0);

    assert_eq!(profile_status(&stack, &new).await, 200);
    assert_eq!(jwks_fetches(&stack).await, 1, "one refetch for the new kid");
    for _ in 0..20 {
        assert_eq!(profile_status(&stack, &new).await, 200);
    }
    // The previous key is still published, so tokens it signed stay valid.
    assert_eq!(profile_status(&stack, &old).await, 200);
    assert_eq!(jwks_fetches(&stack).await, 1, "the new key is cached");
}

#[tokio::test]
async fn a_thousand_random_kids_cause_at_most_one_jwks_refetch() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let valid = stack.token("42", "web", &[]).await;
    stack.reset_stats().await;
    let tokens: Vec<String> = (0..1000)
        .map(|_| {
            let mut header = header_of(&valid);
            header["kid"] = json!(format!("random-{:016x}", fastrand::u64(..)));
            with_header(&valid, &header)
        })
        .collect();

    let mut refused = 0;
    for batch in tokens.chunks(50) {
        let answers =
            futures_util::future::join_all(batch.iter().map(|t| profile_status(&stack, t))).await;
        refused += answers.iter().filter(|s| **s == 401).count();
    }
    assert_eq!(refused, 1000);
    let fetches = jwks_fetches(&stack).await;
    println!("1000 random kids -> {fetches} JWKS refetch(es)");
    assert!(fetches <= 1, "{fetches} refetches");
    assert_eq!(fetches, 1, "the first unknown kid does refetch");
    // The real key is unaffected.
    assert_eq!(profile_status(&stack, &valid).await, 200);
}

#[tokio::test]
async fn known_keys_keep_working_while_the_jwks_endpoint_is_down() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let valid = stack.token("42", "web", &[]).await;
    stack.reset_stats().await;
    stack
        .chaos(Service::Auth, json!({ "error_rate": 1.0, "status": 503 }))
        .await;

    // An unknown kid makes the gateway try the JWKS, which fails.
    let mut header = header_of(&valid);
    header["kid"] = json!("rotated-away");
    assert_eq!(
        profile_status(&stack, &with_header(&valid, &header)).await,
        401
    );
    assert_eq!(jwks_fetches(&stack).await, 1, "the refetch was attempted");

    assert_eq!(profile_status(&stack, &valid).await, 200);
    assert!(stack.bff.gateway().is_ready());
}

#[tokio::test]
async fn a_bff_is_not_ready_until_its_keys_are_loaded() {
    let backends = Backends::start("127.0.0.1".parse().unwrap(), None)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let idp = backends.url(Service::Auth);
    let chaos = format!("{idp}/_chaos");
    let status = http
        .post(&chaos)
        .json(&json!({ "error_rate": 1.0 }))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    let mut config = bff_web::SPEC.default_config().unwrap();
    point_at(&mut config, &backends);
    let bff = manifold::bff::start(&bff_web::SPEC, config).await.unwrap();

    let readyz = |http: reqwest::Client, url: String| async move {
        http.get(format!("{url}/readyz")).send().await.unwrap()
    };
    let answer = readyz(http.clone(), bff.url()).await;
    assert_eq!(answer.status(), 503);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["waiting_for"][0], "jwks");
    assert!(!bff.ready(Duration::from_millis(300)).await);

    http.delete(&chaos).send().await.unwrap();
    assert!(
        bff.ready(Duration::from_secs(10)).await,
        "keys never loaded"
    );
    assert_eq!(readyz(http.clone(), bff.url()).await.status(), 200);
    bff.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_is_checked_once_and_never_trusted_past_its_expiry() {
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        for jwt in &mut config.auth.jwt {
            jwt.leeway = Duration::ZERO;
        }
    })
    .await;
    let token = stack
        .token_with(json!({ "sub": "42", "aud": "web", "ttl_s": 2 }))
        .await;
    let checks = || stack.bff.gateway().authenticator().jwt().signature_checks();
    let before = checks();
    for _ in 0..20 {
        assert_eq!(profile_status(&stack, &token).await, 200);
    }
    assert_eq!(checks() - before, 1, "one signature check for 20 requests");

    // Past `exp` the remembered verification no longer counts: the token is refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if profile_status(&stack, &token).await == 401 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "an expired token is still accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A token that failed is never remembered: each try is checked again.
    let after = checks();
    for _ in 0..3 {
        assert_eq!(profile_status(&stack, &token).await, 401);
    }
    assert_eq!(checks() - after, 3);
}
