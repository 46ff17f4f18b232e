//! Quotas end to end, on bff-partner and its shipped `daily` and `monthly` quotas made tiny:
//! headers counting down, the 429 that names the quota and the next UTC midnight, the usage
//! endpoint that reads without spending, rules and quotas charged all or nothing, and
//! instances sharing one quota through a real `redis-server` (single node and Cluster),
//! turning the day by Redis' clock whatever their own say.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use demo_services::Service;
use manifold::RunningBff;
use manifold::auth::{Identity, Principal};
use manifold::config::{Config, KeyKind, OnRedisError, Period, StoreKind};
use manifold::ratelimit::{QuotaCheck, Usage, Window};
use serde_json::Value;

use super::{HOUR, header, metrics, rule, store_on};
use crate::harness::Stack;
use crate::redis_server::{RedisCluster, RedisServer};

/// The plain text of the key in config/partner.toml; its id is `demo`, its tier `standard`.
const DEMO_KEY: &str = "demo-partner-key";
const PRODUCT: &str = "/v1/products/p1";

/// The shipped quotas with a `daily` limit of `daily` (monthly stays large), and one
/// generous rule unless the test says otherwise.
fn quotas(config: &mut Config, daily: u32) {
    let limits = &mut config.rate_limit;
    assert_eq!(limits.quotas[0].name, "daily", "the shipped config");
    assert_eq!(limits.quotas[0].period, Period::Day);
    limits.quotas[0].limit = daily;
    limits.rules = vec![rule("per-key", KeyKind::ApiKey, 10_000, HOUR)];
}

fn shared(config: &mut Config, url: &str, cluster: bool) {
    config.rate_limit.store = StoreKind::Redis;
    config.rate_limit.redis_url = Some(url.into());
    config.rate_limit.redis_cluster = cluster;
    // Generous: a loaded test machine must not turn a slow answer into a fallback.
    config.rate_limit.redis_timeout = Duration::from_secs(2);
}

async fn get(stack: &Stack, base: &str, path: &str) -> reqwest::Response {
    stack
        .http
        .get(format!("{base}{path}"))
        .header("x-api-key", DEMO_KEY)
        .send()
        .await
        .expect("BFF reachable")
}

/// The statuses of `n` GETs of the product, one after the other.
async fn statuses(stack: &Stack, base: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        statuses.push(get(stack, base, PRODUCT).await.status().as_u16());
    }
    statuses
}

async fn usage(stack: &Stack, base: &str) -> Value {
    let r = get(stack, base, "/v1/usage").await;
    assert_eq!(
        r.status(),
        200,
        "usage is readable, even with a quota used up"
    );
    r.json().await.expect("usage JSON")
}

/// What the demo key has used of `quota` according to `bff`, read in-process without
/// charging anything (for when the rules would refuse a request to `/v1/usage`).
async fn used(bff: &RunningBff, quota: usize) -> u64 {
    let demo = Identity::new(
        Principal::ApiClient("demo".into()),
        Vec::new(),
        Some("standard".into()),
    )
    .expect("identity");
    let limiter = bff.gateway().rate_limiter().cloned().expect("limits");
    let usage: Usage = limiter.usage(Some(&demo), None).await.expect("store up");
    usage.quotas[quota].used
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The next 00:00:00Z after `now`, in Unix seconds.
fn next_midnight(now: u64) -> u64 {
    (now / 86_400 + 1) * 86_400
}

/// `RateLimit`'s item for `name`: (r, t).
fn state_of(response: &reqwest::Response, name: &str) -> (u64, u64) {
    let state = header(response, "ratelimit");
    let item = state
        .split(", ")
        .find(|item| item.starts_with(&format!("\"{name}\";")))
        .unwrap_or_else(|| panic!("no {name} in RateLimit: {state}"));
    let number = |key: &str| -> u64 {
        item.split(';')
            .find_map(|p| p.strip_prefix(key))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {item}"))
    };
    (number("r="), number("t="))
}

#[tokio::test]
async fn a_key_over_its_daily_quota_gets_a_429_naming_the_next_utc_midnight() {
    let stack = Stack::start_with(&bff_partner::SPEC, |c| quotas(c, 3)).await;
    let base = stack.bff.url();
    for left in [2, 1, 0] {
        let r = get(&stack, &base, PRODUCT).await;
        assert_eq!(r.status(), 200);
        let policy = header(&r, "ratelimit-policy");
        assert!(
            policy.contains("\"daily\";q=3;w=86400") && policy.contains("\"monthly\";q=2000000;w="),
            "{policy}"
        );
        let before = unix_now();
        let (r_daily, t) = state_of(&r, "daily");
        assert_eq!(r_daily, left);
        let until_midnight = next_midnight(before) - before;
        assert!(
            t.abs_diff(until_midnight) <= 2,
            "t={t}, midnight in {until_midnight}"
        );
    }
    let view = usage(&stack, &base).await;
    assert_eq!(view["quotas"][0]["used"], 3, "{view}");
    assert_eq!(view["quotas"][0]["remaining"], 0, "{view}");
    assert_eq!(view["quotas"][1]["used"], 3, "{view}");

    stack.reset_stats().await;
    let before = unix_now();
    let r = get(&stack, &base, PRODUCT).await;
    let after = unix_now();
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "content-type"), "application/problem+json");
    let retry: u64 = header(&r, "retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!(
        (next_midnight(after) - after).abs_diff(retry) <= 2,
        "Retry-After {retry}, next midnight in {}",
        next_midnight(after) - after
    );
    assert_eq!(state_of(&r, "daily").0, 0);
    let body: Value = r.json().await.expect("problem");
    let resets = |now: u64| {
        Window {
            start: next_midnight(now) - 86_400,
            end: next_midnight(now),
        }
        .resets_at()
    };
    let expected = [resets(before), resets(after)];
    assert_eq!(body["code"], "QUOTA_EXCEEDED", "{body}");
    assert_eq!(body["status"], 429);
    assert_eq!(body["quota"], "daily");
    assert!(expected.contains(&body["resetsAt"].as_str().unwrap_or_default().to_owned()));
    assert!(
        expected.iter().any(|at| body["detail"]
            == format!("the daily quota of 3 requests is used up; it resets at {at}")),
        "{body}"
    );
    assert!(
        body["resetsAt"]
            .as_str()
            .is_some_and(|at| at.ends_with("T00:00:00Z")),
        "{body}"
    );
    assert_eq!(
        stack.requests(Service::Catalog).await,
        0,
        "refused before the handler"
    );

    // Refusals spend nothing; the usage endpoint agrees, and reading it twice changes nothing.
    let view = usage(&stack, &base).await;
    assert_eq!(view["quotas"][0]["used"], 3);
    assert_eq!(
        view["quotas"][1]["used"], 3,
        "the refused request spent no monthly unit"
    );
    assert_eq!(view["quotas"][0]["resetsAt"], body["resetsAt"]);
    let exhausted = metrics(&stack.bff);
    assert_eq!((exhausted.allowed, exhausted.refused), (3 + 2, 1));
    let by_quota = stack
        .bff
        .gateway()
        .rate_limiter()
        .expect("limits")
        .metrics()
        .quota_exhausted();
    assert_eq!(by_quota[0], ("daily".into(), 1));
    assert_eq!(by_quota[1], ("monthly".into(), 0));
    let page = stack.metrics().await;
    assert!(
        page.contains("manifold_ratelimit_quota_exhausted_total{quota=\"daily\"} 1"),
        "{page}"
    );
}

#[tokio::test]
async fn a_rule_refusal_spends_no_quota_and_a_quota_refusal_spends_no_rule() {
    refusals_spend_nothing_of_the_other_limits(|_| {}).await;
}

#[tokio::test]
async fn in_redis_too_a_refusal_spends_nothing_of_the_other_limits() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    refusals_spend_nothing_of_the_other_limits(|c| shared(c, &url, false)).await;
}

/// A rule refuses, then (on a fresh stack) a quota does; `store` says where they count.
async fn refusals_spend_nothing_of_the_other_limits(store: impl Fn(&mut Config) + Copy) {
    let stack = Stack::start_with(&bff_partner::SPEC, |c| {
        quotas(c, 10);
        c.rate_limit.rules = vec![rule("per-key", KeyKind::ApiKey, 2, HOUR)];
        store(c);
    })
    .await;
    let base = stack.bff.url();
    assert_eq!(statuses(&stack, &base, 5).await, [200, 200, 429, 429, 429]);
    let r = get(&stack, &base, PRODUCT).await;
    let body: Value = r.json().await.expect("problem");
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    assert_eq!(
        used(&stack.bff, 0).await,
        2,
        "the four refused requests spent no quota"
    );
    drop(stack);

    // The other way round: the quota refuses, the rule keeps its units.
    let stack = Stack::start_with(&bff_partner::SPEC, |c| {
        quotas(c, 2);
        c.rate_limit.rules = vec![rule("per-key", KeyKind::ApiKey, 5, HOUR)];
        c.rate_limit.key_prefix = "partner:second:".into();
        store(c);
    })
    .await;
    let base = stack.bff.url();
    assert_eq!(statuses(&stack, &base, 5).await, [200, 200, 429, 429, 429]);
    // Five units, two spent by the allowed requests and one by this read: two left. Had the
    // refused requests been charged, the rule would refuse this read.
    let view = usage(&stack, &base).await;
    assert_eq!(view["rules"][0]["remaining"], 2, "{view}");
    assert_eq!(view["quotas"][0]["used"], 2, "{view}");
}

#[tokio::test]
async fn two_instances_sharing_redis_share_one_quota_and_read_the_same_usage() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let adjust = |c: &mut Config| {
        quotas(c, 50);
        shared(c, &url, false);
    };
    let stack = Stack::start_with(&bff_partner::SPEC, adjust).await;
    let second = stack.start_instance(&bff_partner::SPEC, adjust).await;
    let bases = [stack.bff.url(), second.url()];

    let mut ok = 0;
    for i in 0..20 {
        ok += u32::from(get(&stack, &bases[i % 2], PRODUCT).await.status() == 200);
    }
    assert_eq!(ok, 20);
    // Either instance tells the same, and reading it (repeatedly) spends nothing.
    for base in bases.iter().chain(bases.iter()) {
        let view = usage(&stack, base).await;
        assert_eq!(view["quotas"][0]["used"], 20, "{view}");
        assert_eq!(view["quotas"][0]["remaining"], 30, "{view}");
    }
    let (mut ok, mut over) = (0, 0);
    for i in 0..60 {
        let r = get(&stack, &bases[i % 2], PRODUCT).await;
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                let body: Value = r.json().await.expect("problem");
                assert_eq!(body["code"], "QUOTA_EXCEEDED", "{body}");
                over += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    // Counted exactly: alone, each instance would have let 50 through.
    assert_eq!((ok, over), (30, 30));
    for base in &bases {
        let view = usage(&stack, base).await;
        assert_eq!(view["quotas"][0]["used"], 50, "{view}");
        assert_eq!(view["quotas"][1]["used"], 50, "{view}");
    }
    for bff in [&stack.bff, &second] {
        let m = metrics(bff);
        assert_eq!(m.fallback, 0, "every decision was made in Redis: {m:?}");
        assert!(m.refused >= 10, "both instances refused: {m:?}");
    }

    // The counter is one hash per key, holding today's window and expiring when it ends.
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = "partner:rl:quota:daily:k:demo";
    let (start, used): (u64, u64) = redis::cmd("HMGET")
        .arg(key)
        .arg("s")
        .arg("n")
        .query_async(&mut connection)
        .await
        .expect("HMGET");
    let now = unix_now();
    assert_eq!(used, 50);
    assert!(start == next_midnight(now) - 86_400 || start + 86_400 == next_midnight(now) - 86_400);
    let ttl: i64 = redis::cmd("TTL")
        .arg(key)
        .query_async(&mut connection)
        .await
        .expect("TTL");
    assert!(
        ttl > 0 && ttl.abs_diff((next_midnight(now) - now) as i64) <= 2,
        "TTL {ttl}: the counter expires at midnight"
    );
}

#[tokio::test]
async fn a_quota_follows_the_redis_error_policy_of_the_rules() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let stack = Stack::start_with(&bff_partner::SPEC, |c| {
        quotas(c, 3);
        c.rate_limit.rules.clear();
        shared(c, &url, false);
        c.rate_limit.on_redis_error = OnRedisError::Refuse;
    })
    .await;
    let base = stack.bff.url();
    assert_eq!(get(&stack, &base, PRODUCT).await.status(), 200);
    redis.stop();
    let r = get(&stack, &base, PRODUCT).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("problem");
    assert_eq!(body["code"], "RATE_LIMIT_UNAVAILABLE", "{body}");
    assert!(metrics(&stack.bff).unavailable >= 1);
}

#[tokio::test]
async fn on_a_cluster_a_request_another_slot_refuses_gives_its_quota_units_back() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let url = cluster.url();
    // The key's rule and quotas share the slot of `{k:demo}`; the address's rule is in
    // another, and refuses first.
    let adjust = |c: &mut Config| {
        quotas(c, 30);
        c.rate_limit.rules = vec![
            rule("per-key", KeyKind::ApiKey, 1_000, HOUR),
            rule("per-ip", KeyKind::Ip, 20, HOUR),
        ];
        shared(c, &url, true);
    };
    let stack = Stack::start_with(&bff_partner::SPEC, adjust).await;
    let second = stack.start_instance(&bff_partner::SPEC, adjust).await;
    let bases = [stack.bff.url(), second.url()];
    let mut ok = 0;
    for i in 0..40 {
        ok += u32::from(get(&stack, &bases[i % 2], PRODUCT).await.status() == 200);
    }
    assert!((19..=21).contains(&ok), "{ok} of 40 (address limit 20)");
    for bff in [&stack.bff, &second] {
        assert_eq!(
            used(bff, 0).await,
            u64::from(ok),
            "refused requests gave their units back"
        );
        assert_eq!(
            metrics(bff).fallback,
            0,
            "every decision was made in the cluster"
        );
    }
}

#[tokio::test]
async fn redis_time_picks_the_window_whatever_the_instance_clock_says() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = store_on(&redis, Duration::from_secs(2));
    let now = unix_now();
    let today = Window::containing(Period::Day, now);
    // Three instances: one a day behind, one on time, one a day ahead. Each sends the windows
    // around its own clock; Redis' clock decides, so all three count into today.
    for (skew, used) in [(-86_400_i64, 1), (0, 2), (86_400, 3)] {
        let clock = now.saturating_add_signed(skew);
        let check = QuotaCheck {
            key: "skew:quota:daily:k:demo",
            limit: 10,
            cost: 1,
            windows: Window::around(Period::Day, clock),
        };
        let (_, outcomes) = store.charge(&[], &[check]).await.expect("redis");
        let outcome = outcomes[0];
        // A midnight passing during the test moves "today" with it.
        assert!(
            outcome.window == today || outcome.window.start == today.end,
            "skew {skew}: {outcome:?}"
        );
        assert_eq!(outcome.used, used, "skew {skew}: one counter for all");
        assert!(outcome.now.abs_diff(now) <= 2, "Redis' time: {outcome:?}");
    }
    // A clock more than a day off sends no window holding Redis' time: its own current one
    // is used, a counter of its own.
    let far = QuotaCheck {
        key: "skew:quota:daily:k:demo",
        limit: 10,
        cost: 1,
        windows: Window::around(Period::Day, now + 3 * 86_400),
    };
    let (_, outcomes) = store.charge(&[], &[far]).await.expect("redis");
    assert_eq!(
        outcomes[0].window,
        Window::containing(Period::Day, now + 3 * 86_400)
    );
    assert_eq!(outcomes[0].used, 1);
}
