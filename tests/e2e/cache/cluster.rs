//! The shared tier on a three-node Redis Cluster: entries spread over the nodes, written by
//! one instance and read by another; a purge by tag (a set in one slot, entries in others)
//! and by prefix (a SCAN of every primary) empty it on every node.

use std::time::Duration;

use demo_services::Service;
use manifold::config::Config;

use super::{DEMO_KEY, partner_get, until, with_keys};
use crate::harness::Stack;
use crate::redis_server::RedisCluster;

#[tokio::test]
async fn instances_share_entries_through_a_cluster_and_purge_them_everywhere() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let url = cluster.url();
    let on_cluster = move |config: &mut Config| {
        with_keys(config);
        config.cache.redis_url = Some(url.clone().into());
        config.cache.redis_cluster = true;
        config.cache.redis_timeout = Duration::from_secs(1);
    };
    let stack = Stack::start_with(&bff_partner::SPEC, on_cluster.clone()).await;
    let second = stack
        .start_instance(&bff_partner::SPEC, on_cluster.clone())
        .await;
    stack.reset_stats().await;
    let get = |base: String, id: u32| {
        let http = stack.http.clone();
        async move {
            http.get(format!("{base}/v1/products/p{id}"))
                .header("x-api-key", DEMO_KEY)
                .send()
                .await
                .unwrap()
        }
    };

    for id in 40..50 {
        assert_eq!(
            partner_get(&stack, &format!("/v1/products/p{id}"), DEMO_KEY, None)
                .await
                .status,
            200
        );
    }
    assert_eq!(stack.requests(Service::Catalog).await, 10);
    // Written in the background: ten entries and ten tag sets, over several nodes.
    let written = until(Duration::from_secs(5), || async {
        (cluster.keys() >= 20).then_some(())
    });
    assert!(
        written.await.is_some(),
        "the cluster holds {} keys",
        cluster.keys()
    );
    assert!(
        cluster.nodes_with_keys() >= 2,
        "the keys are all on one node"
    );

    for id in 40..50 {
        let r = get(second.url(), id).await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers().get("age").is_some(),
            "p{id} not from the cluster"
        );
    }
    assert_eq!(
        stack.requests(Service::Catalog).await,
        10,
        "the catalog was asked again"
    );
    let stats = second.gateway().cache().unwrap().stats();
    assert!(
        stats.shared_hits >= 10 && stats.shared_errors == 0,
        "{stats:?}"
    );

    let purge = |query: &'static str| super::purge(&stack, query);
    // By tag, on the first instance: the second (told through the cluster) refetches.
    assert_eq!(purge("tag=product:p40").await, 200);
    let refetched = until(Duration::from_secs(5), || async {
        assert_eq!(get(second.url(), 40).await.status(), 200);
        (stack.requests(Service::Catalog).await == 11).then_some(())
    });
    assert!(
        refetched.await.is_some(),
        "the second instance kept serving p40"
    );

    // By prefix: every primary is scanned, so a fresh instance finds none of them.
    assert_eq!(purge("prefix=catalog%20product:p4").await, 200);
    let third = stack.start_instance(&bff_partner::SPEC, on_cluster).await;
    for id in 41..50 {
        assert_eq!(get(third.url(), id).await.status(), 200);
    }
    assert_eq!(
        stack.requests(Service::Catalog).await,
        20,
        "purged entries served from the cluster"
    );
    second.shutdown().await.unwrap();
    third.shutdown().await.unwrap();
}
