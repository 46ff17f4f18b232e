//! Rate limits and client IPs end to end: real sockets, real BFFs. The shared (Redis) store
//! is tested in `shared`, each test with its own `redis-server`; quotas in `quotas`.

mod quotas;
mod shared;
mod topologies;

use std::time::Duration;

use demo_services::Service;
use manifold::RunningBff;
use manifold::config::{
    Cidr, Config, CostKind, KeyKind, Period, QuotaConfig, RedisEndpoint, RuleConfig, TierConfig,
};
use manifold::ratelimit::{MetricsSnapshot, RedisStore};
use serde_json::{Value, json};

use crate::harness::Stack;
use crate::redis_server::RedisServer;

const ME: &str = "{ home { me { id } } }";

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn rule(name: &str, key: KeyKind, limit: u32, per: Duration) -> RuleConfig {
    RuleConfig {
        name: name.into(),
        key,
        limit,
        per,
        cost: CostKind::Request,
    }
}

/// These rules and nothing else: no tier, no quota.
fn only(config: &mut Config, rules: Vec<RuleConfig>) {
    config.rate_limit.rules = rules;
    config.rate_limit.quotas.clear();
    config.rate_limit.tiers.clear();
}

/// POSTs a GraphQL query to `base` with a token and extra headers.
async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = http
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query }));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.expect("BFF reachable")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    crate::harness::header(response, name).unwrap_or_default()
}

/// The Redis store of rate limits and quotas on `redis` (one node, no TLS), with
/// `timeout` per call.
fn store_on(redis: &RedisServer, timeout: Duration) -> RedisStore {
    let endpoint = RedisEndpoint {
        url: redis.url().into(),
        ca_file: None,
        cluster: false,
    };
    RedisStore::new(&endpoint, timeout, Duration::from_secs(1)).expect("store")
}

fn metrics(bff: &RunningBff) -> MetricsSnapshot {
    bff.gateway()
        .rate_limiter()
        .expect("rate limits configured")
        .metrics()
        .snapshot()
}

#[tokio::test]
async fn the_request_over_a_user_limit_is_a_429_with_headers_and_reaches_nothing() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |c| {
        only(c, vec![rule("per-user", KeyKind::User, 3, MINUTE)])
    })
    .await;
    let alice = stack.token("42", "mobile", &[]).await;
    let base = stack.bff.url();

    for left in [2, 1, 0] {
        let r = post(&stack.http, &base, &alice, ME, &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "ratelimit-policy"), "\"per-user\";q=3;w=60");
        let state = header(&r, "ratelimit");
        assert!(
            state.starts_with(&format!("\"per-user\";r={left};t=")),
            "{state}"
        );
        assert!(r.headers().get("retry-after").is_none());
    }

    stack.reset_stats().await;
    // Not even parsed: a broken body is refused as over the limit, not as bad GraphQL.
    let r = stack
        .http
        .post(format!("{base}/graphql"))
        .bearer_auth(&alice)
        .body("{ this is not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").parse().expect("Retry-After secs");
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    assert_eq!(header(&r, "ratelimit-policy"), "\"per-user\";q=3;w=60");
    assert!(header(&r, "ratelimit").starts_with("\"per-user\";r=0;t="));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    let r = post(&stack.http, &base, &alice, ME, &[]).await;
    assert_eq!(r.status(), 429);
    assert_eq!(stack.requests(Service::Users).await, 0, "no backend call");

    // Another user has a budget of their own.
    let bob = stack.token("7", "mobile", &[]).await;
    assert_eq!(post(&stack.http, &base, &bob, ME, &[]).await.status(), 200);
    let m = metrics(&stack.bff);
    assert_eq!((m.allowed, m.refused), (4, 2), "{m:?}");
}

#[tokio::test]
async fn a_tier_claim_scales_the_limit() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |c| {
        only(c, vec![rule("per-user", KeyKind::User, 2, MINUTE)]);
        c.rate_limit.tiers.insert(
            "gold".into(),
            TierConfig {
                multiplier: Some(2.0),
                limit: None,
            },
        );
    })
    .await;
    let gold = stack
        .token_with(
            json!({ "sub": "5", "aud": "mobile", "scopes": [], "ttl_s": 900, "tier": "gold" }),
        )
        .await;
    let base = stack.bff.url();
    let statuses = statuses_of(&stack, &base, &gold, 5).await;
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
}

async fn statuses_of(stack: &Stack, base: &str, token: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            post(&stack.http, base, token, ME, &[])
                .await
                .status()
                .as_u16(),
        );
    }
    out
}

#[tokio::test]
async fn rotating_x_forwarded_for_from_an_untrusted_peer_does_not_reset_an_ip_limit() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |c| {
        only(c, vec![rule("per-ip", KeyKind::Ip, 3, MINUTE)]);
        c.client_ip.trusted_proxies = vec!["10.0.0.0/8".parse::<Cidr>().unwrap()];
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    let base = stack.bff.url();
    let mut statuses = Vec::new();
    for i in 0..5 {
        let forged = format!("198.51.100.{i}");
        let r = post(
            &stack.http,
            &base,
            &token,
            ME,
            &[
                ("x-forwarded-for", &forged),
                ("forwarded", &format!("for={forged}")),
            ],
        )
        .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |c| {
        only(c, vec![rule("per-ip", KeyKind::Ip, 2, MINUTE)]);
        c.client_ip.trusted_proxies = vec!["127.0.0.0/8".parse::<Cidr>().unwrap()];
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    let base = stack.bff.url();
    let call = |xff: &'static str| {
        let (http, base, token) = (stack.http.clone(), base.clone(), token.clone());
        async move {
            post(&http, &base, &token, ME, &[("x-forwarded-for", xff)])
                .await
                .status()
                .as_u16()
        }
    };
    // Each client has its own budget: four different clients all pass.
    for xff in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"] {
        assert_eq!(call(xff).await, 200, "{xff}");
    }
    // The rightmost untrusted hop counts: a forged left part changes nothing.
    assert_eq!(call("6.6.6.6, 203.0.113.1").await, 200);
    assert_eq!(call("7.7.7.7, 203.0.113.1").await, 429);
    // IPv6 clients share their /64.
    assert_eq!(call("2001:db8:1:2::1").await, 200);
    assert_eq!(call("2001:db8:1:2::2").await, 200);
    assert_eq!(call("2001:db8:1:2::3").await, 429);
    assert_eq!(call("2001:db8:1:3::1").await, 200);
}

#[tokio::test]
async fn proxy_routes_are_limited_too() {
    let stack = Stack::start_with(&bff_web::SPEC, |c| {
        only(c, vec![rule("per-user", KeyKind::User, 2, MINUTE)])
    })
    .await;
    let token = stack.token("42", "web", &[]).await;
    let get = || {
        stack
            .http
            .get(stack.url("/api/users/42"))
            .bearer_auth(&token)
            .send()
    };
    for _ in 0..2 {
        let r = get().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "ratelimit-policy"), "\"per-user\";q=2;w=60");
    }
    stack.reset_stats().await;
    let r = get().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(!header(&r, "retry-after").is_empty());
    assert_eq!(stack.requests(Service::Users).await, 0);
}

#[tokio::test]
async fn a_partner_key_is_limited_by_its_tier() {
    let stack = Stack::start_with(&bff_partner::SPEC, |c| {
        only(c, vec![rule("per-key", KeyKind::ApiKey, 2, MINUTE)]);
        c.rate_limit.tiers.insert(
            "standard".into(),
            TierConfig {
                multiplier: None,
                limit: Some(3),
            },
        );
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = stack
            .http
            .get(stack.url("/v1/products/p1"))
            .header("x-api-key", "demo-partner-key")
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            assert_eq!(header(&r, "ratelimit-policy"), "\"per-key\";q=3;w=60");
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    // The public OpenAPI document is not limited.
    let r = stack
        .http
        .get(stack.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn graphql_operations_are_charged_by_their_cost() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |c| {
        let mut by_cost = rule("per-user-cost", KeyKind::User, 10, HOUR);
        by_cost.cost = CostKind::Operation;
        only(c, vec![by_cost]);
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    let base = stack.bff.url();
    // home + me + id + name: 4 units.
    let query = "{ home { me { id name } } }";
    let r = post(&stack.http, &base, &token, query, &[]).await;
    assert_eq!(r.status(), 200);
    assert!(
        header(&r, "ratelimit").starts_with("\"per-user-cost\";r=6;"),
        "{}",
        header(&r, "ratelimit")
    );
    let r = post(&stack.http, &base, &token, query, &[]).await;
    assert!(
        header(&r, "ratelimit").starts_with("\"per-user-cost\";r=2;"),
        "{}",
        header(&r, "ratelimit")
    );
    stack.reset_stats().await;
    let r = post(&stack.http, &base, &token, query, &[]).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        stack.requests(Service::Users).await,
        0,
        "refused before executing"
    );
    // A one-field operation still fits in what is left.
    let r = post(&stack.http, &base, &token, "{ __typename }", &[]).await;
    assert_eq!(r.status(), 200);
}

/// A quota with `cost = "operation"` on the GraphQL endpoint: each operation spends its
/// estimated cost from the caller's allowance, and one that would overspend it is refused
/// before it runs.
#[tokio::test]
async fn a_quota_by_operation_spends_each_graphql_operations_cost() {
    let stack = Stack::start_with(&bff_mobile::SPEC, |c| {
        only(c, vec![]);
        c.rate_limit.quotas = vec![QuotaConfig {
            name: "daily-cost".into(),
            key: KeyKind::User,
            limit: 10,
            period: Period::Day,
            cost: CostKind::Operation,
        }];
    })
    .await;
    let token = stack.token("42", "mobile", &[]).await;
    let base = stack.bff.url();
    // home + me + id + name: 4 units.
    let query = "{ home { me { id name } } }";
    for left in [6, 2] {
        let r = post(&stack.http, &base, &token, query, &[]).await;
        assert_eq!(r.status(), 200);
        let state = header(&r, "ratelimit");
        assert!(
            state.starts_with(&format!("\"daily-cost\";r={left};")),
            "{state}"
        );
    }
    stack.reset_stats().await;
    let r = post(&stack.http, &base, &token, query, &[]).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.expect("problem");
    assert_eq!(body["code"], "QUOTA_EXCEEDED", "{body}");
    assert_eq!(
        stack.requests(Service::Users).await,
        0,
        "refused before executing"
    );
    // The refused operation paid the one unit every request pays on arrival, not the three
    // more it would have cost: the unit left takes a one-field operation, and then none fits.
    let r = post(&stack.http, &base, &token, "{ __typename }", &[]).await;
    assert_eq!(r.status(), 200);
    assert!(
        header(&r, "ratelimit").starts_with("\"daily-cost\";r=0;"),
        "{}",
        header(&r, "ratelimit")
    );
    let r = post(&stack.http, &base, &token, "{ __typename }", &[]).await;
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn by_default_a_graphql_operation_is_charged_its_estimated_cost() {
    // The shipped rule, whose cost is the default: charged by what the operation costs.
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    let base = stack.bff.url();
    let r = post(&stack.http, &base, &token, "{ __typename }", &[]).await;
    assert_eq!(r.status(), 200);
    let remaining = |r: &reqwest::Response| -> u64 {
        let state = header(r, "ratelimit");
        let r_part = state.split(';').find(|p| p.starts_with("r=")).expect("r=");
        r_part[2..].parse().expect("a number")
    };
    let after_one = remaining(&r);
    // The home query lists recent orders (3), recommendations (10) and banners (10 assumed):
    // it costs far more than one unit.
    let r = post(&stack.http, &base, &token, crate::mobile::HOME, &[]).await;
    assert_eq!(r.status(), 200);
    let spent = after_one - remaining(&r);
    assert!(spent > 100, "the home query was charged {spent}");
}
