//! The Redis tier: instances share what any of them fetched, and each goes on alone (local
//! tier only) when Redis is away. A private `redis-server` per test; without one the test
//! skips, saying why, except under CI.

use demo_services::Service;

use super::{DEMO_KEY, partner_get, with_keys};
use crate::harness::Stack;
use crate::redis_server::RedisServer;

#[tokio::test]
async fn instances_share_entries_through_redis_and_survive_without_it() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let shared = |config: &mut manifold::config::Config| {
        with_keys(config);
        config.cache.redis_url = Some(url.clone().into());
    };
    let stack = Stack::start_with(&bff_partner::SPEC, shared).await;
    let second = stack.start_instance(&bff_partner::SPEC, shared).await;
    stack.reset_stats().await;

    let first = partner_get(&stack, "/v1/products/p31", DEMO_KEY, None).await;
    assert_eq!(first.status, 200);
    assert_eq!(stack.requests(Service::Catalog).await, 1);

    // The other instance finds it in Redis (written in the background: poll for it).
    let from_redis = super::until(std::time::Duration::from_secs(5), || async {
        let r = stack
            .http
            .get(format!("{}/v1/products/p31", second.url()))
            .header("x-api-key", DEMO_KEY)
            .send()
            .await
            .unwrap();
        (r.headers().get("age").is_some()).then_some(r)
    })
    .await;
    assert!(
        from_redis.is_some(),
        "the second instance never found the entry"
    );
    assert_eq!(
        stack.requests(Service::Catalog).await,
        1,
        "the catalog was asked twice"
    );
    let stats = second.gateway().cache().unwrap().stats();
    assert!(stats.shared_hits >= 1, "{stats:?}");

    // A purge on one instance reaches Redis: the other refetches.
    assert_eq!(super::purge(&stack, "tag=product:p31").await, 200);
    let third = stack.start_instance(&bff_partner::SPEC, shared).await;
    let r = stack
        .http
        .get(format!("{}/v1/products/p31", third.url()))
        .header("x-api-key", DEMO_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        stack.requests(Service::Catalog).await,
        2,
        "purged entry served from Redis"
    );

    // Redis away: answers keep coming, from the backend then from the local tier.
    redis.stop();
    for _ in 0..2 {
        let r = partner_get(&stack, "/v1/products/p32", DEMO_KEY, None).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(stack.requests(Service::Catalog).await, 3);
    let stats = stack.bff.gateway().cache().unwrap().stats();
    assert!(stats.shared_errors >= 1, "{stats:?}");
    second.shutdown().await.unwrap();
    third.shutdown().await.unwrap();
}
