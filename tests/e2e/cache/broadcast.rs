//! Purges reach every instance: a purge received by one instance is published through Redis,
//! and every other instance sharing that Redis drops the entry from its local tier — over
//! TLS too, and after Redis went away and came back (the subscription is made again).

use std::time::Duration;

use demo_services::Service;
use manifold::RunningBff;
use manifold::config::Config;

use super::{DEMO_KEY, until, with_keys};
use crate::harness::Stack;
use crate::redis_server::{RedisServer, RedisTlsServer};

/// `GET /v1/products/p51` on `base`, which must answer 200.
async fn get(stack: &Stack, base: String) -> reqwest::Response {
    let r = stack
        .http
        .get(format!("{base}/v1/products/p51"))
        .header("x-api-key", DEMO_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// A purge of p51 on the first instance; its status.
async fn purge(stack: &Stack) -> u16 {
    super::purge(stack, "tag=product:p51").await
}

/// Both local tiers hold p51, the first instance purges it, and the second asks the catalog
/// again: two catalog calls in all.
async fn purge_reaches_the_second(stack: &Stack, second: &RunningBff) {
    stack.reset_stats().await;
    // The first fetches p51, the second copies it from Redis.
    get(stack, stack.bff.url()).await;
    let copied = until(Duration::from_secs(5), || async {
        get(stack, second.url())
            .await
            .headers()
            .get("age")
            .map(drop)
    });
    assert!(
        copied.await.is_some(),
        "the second instance never found p51"
    );
    assert_eq!(stack.requests(Service::Catalog).await, 1);

    assert_eq!(purge(stack).await, 200);
    let refetched = until(Duration::from_secs(5), || async {
        get(stack, second.url()).await;
        (stack.requests(Service::Catalog).await == 2).then_some(())
    });
    assert!(
        refetched.await.is_some(),
        "the second instance kept serving its copy"
    );
    get(stack, second.url()).await;
    assert_eq!(stack.requests(Service::Catalog).await, 2, "cached again");
}

#[tokio::test]
async fn a_purge_on_one_instance_empties_the_others_local_tier() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let shared = move |config: &mut Config| {
        with_keys(config);
        config.cache.redis_url = Some(url.clone().into());
    };
    let stack = Stack::start_with(&bff_partner::SPEC, shared.clone()).await;
    let second = stack.start_instance(&bff_partner::SPEC, shared).await;
    purge_reaches_the_second(&stack, &second).await;

    // Redis restarts: the second subscribes again, and the next purge reaches it.
    redis.restart();
    let reached = until(Duration::from_secs(20), || async {
        purge(&stack).await; // 503 until the first instance is back on Redis too
        get(&stack, second.url()).await;
        (stack.requests(Service::Catalog).await == 3).then_some(())
    });
    assert!(
        reached.await.is_some(),
        "no purge reached the second instance after the restart"
    );
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_purge_is_broadcast_over_rediss() {
    let Some(redis) = RedisTlsServer::start() else {
        return;
    };
    let (url, ca_file) = (redis.url(), redis.ca_file().to_owned());
    let shared = move |config: &mut Config| {
        with_keys(config);
        config.cache.redis_url = Some(url.clone().into());
        config.cache.redis_ca_file = Some(ca_file.clone());
        config.cache.redis_timeout = Duration::from_secs(1);
    };
    let stack = Stack::start_with(&bff_partner::SPEC, shared.clone()).await;
    let second = stack.start_instance(&bff_partner::SPEC, shared).await;
    purge_reaches_the_second(&stack, &second).await;
    let stats = second.gateway().cache().unwrap().stats();
    assert_eq!(stats.shared_errors, 0, "{stats:?}");
    second.shutdown().await.unwrap();
}
