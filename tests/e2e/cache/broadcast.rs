//! Purges reach every instance: a purge received by one instance is published through Redis,
//! and every other instance sharing that Redis drops the entry from its local tier — also
//! after Redis went away and came back (the subscription is made again).

use std::time::Duration;

use demo_services::Service;
use manifold::config::Config;

use super::{ADMIN_TOKEN, DEMO_KEY, until, with_keys};
use crate::harness::Stack;
use crate::redis_server::RedisServer;

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
    stack.reset_stats().await;
    let get = |base: String| {
        let http = stack.http.clone();
        async move {
            let r = http
                .get(format!("{base}/v1/products/p51"))
                .header("x-api-key", DEMO_KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r
        }
    };
    let purge = || {
        let request = stack
            .http
            .post(stack.admin_url("/admin/cache/purge?tag=product:p51"))
            .header("x-admin-token", ADMIN_TOKEN);
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // Both local tiers hold p51: the first fetched it, the second copied it from Redis.
    get(stack.bff.url()).await;
    let copied = until(Duration::from_secs(5), || async {
        get(second.url()).await.headers().get("age").map(drop)
    });
    assert!(
        copied.await.is_some(),
        "the second instance never found p51"
    );
    assert_eq!(stack.requests(Service::Catalog).await, 1);

    // Purged on the first: the second drops its own copy and asks the catalog again.
    assert_eq!(purge().await, 200);
    let refetched = until(Duration::from_secs(5), || async {
        get(second.url()).await;
        (stack.requests(Service::Catalog).await == 2).then_some(())
    });
    assert!(
        refetched.await.is_some(),
        "the second instance kept serving its copy"
    );
    get(second.url()).await;
    assert_eq!(stack.requests(Service::Catalog).await, 2, "cached again");

    // Redis restarts: the second subscribes again, and the next purge reaches it.
    redis.restart();
    let reached = until(Duration::from_secs(20), || async {
        purge().await; // 503 until the first instance is back on Redis too
        get(second.url()).await;
        (stack.requests(Service::Catalog).await == 3).then_some(())
    });
    assert!(
        reached.await.is_some(),
        "no purge reached the second instance after the restart"
    );
    second.shutdown().await.unwrap();
}
