//! The shared store on the Redis a platform really runs: a server that speaks only TLS
//! (`rediss://`, certificate from a test CA given as `redis_ca_file`), and a three-node
//! Redis Cluster, where one request's keys live in different slots.

use std::time::Duration;

use manifold::config::{Config, KeyKind, StoreKind};
use redis::cluster_routing::Slot;

use super::shared::alternate;
use super::{HOUR, metrics, only, rule};
use crate::harness::Stack;
use crate::redis_server::{RedisCluster, RedisTlsServer};

#[tokio::test]
async fn two_instances_share_one_limit_through_rediss() {
    let Some(redis) = RedisTlsServer::start() else {
        return;
    };
    let (url, ca_file) = (redis.url(), redis.ca_file().to_owned());
    let adjust = move |c: &mut Config| {
        only(c, vec![rule("per-user", KeyKind::User, 100, HOUR)]);
        c.rate_limit.store = StoreKind::Redis;
        c.rate_limit.redis_url = Some(url.into());
        c.rate_limit.redis_ca_file = Some(ca_file);
        // Generous: a TLS handshake on a loaded test machine must not become a fallback.
        c.rate_limit.redis_timeout = Duration::from_secs(2);
    };
    let stack = Stack::start_with(&bff_mobile::SPEC, adjust.clone()).await;
    let second = stack.start_instance(&bff_mobile::SPEC, adjust).await;
    let token = stack.token("42", "mobile", &[]).await;

    let (ok, refused, failed) = alternate(&stack, &second, &token, 200).await;

    assert_eq!(failed, 0);
    // Alone, each instance would have let 100 through: 200 in all.
    assert!((98..=102).contains(&ok), "accepted {ok} of 200 (limit 100)");
    assert_eq!(ok + refused, 200);
    for bff in [&stack.bff, &second] {
        let m = metrics(bff);
        assert_eq!(m.fallback, 0, "every decision was made in Redis: {m:?}");
        assert!(m.allowed > 20 && m.refused > 20, "{m:?}");
    }
}

#[tokio::test]
async fn limits_on_a_cluster_charge_keys_of_different_slots_all_or_none() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let url = cluster.url();
    let adjust = move |c: &mut Config| {
        only(
            c,
            vec![
                rule("per-user", KeyKind::User, 60, HOUR),
                rule("per-ip", KeyKind::Ip, 100, HOUR),
            ],
        );
        c.rate_limit.store = StoreKind::Redis;
        c.rate_limit.redis_url = Some(url.into());
        c.rate_limit.redis_cluster = true;
        c.rate_limit.redis_timeout = Duration::from_secs(2);
    };
    let stack = Stack::start_with(&bff_mobile::SPEC, adjust.clone()).await;
    let second = stack.start_instance(&bff_mobile::SPEC, adjust).await;
    // Each request is charged to a user's key and to the address's, in two slots: one
    // script for both would be refused with CROSSSLOT.
    for user in ["41", "42"] {
        assert_ne!(
            Slot::for_key(format!("{{u:{user}}}")),
            Slot::for_key("{ip:127.0.0.1}")
        );
    }

    // User 41 spends its 60; the 20 it is refused are not charged to the address.
    let token = stack.token("41", "mobile", &[]).await;
    let (first_ok, refused, failed) = alternate(&stack, &second, &token, 80).await;
    assert_eq!(failed, 0);
    assert!(
        (59..=61).contains(&first_ok),
        "user 41: {first_ok} of 80 (limit 60)"
    );
    assert_eq!(first_ok + refused, 80);

    // So user 42, from the same address, has what the address has left: 100 - 60.
    let token = stack.token("42", "mobile", &[]).await;
    let (ok, _, failed) = alternate(&stack, &second, &token, 60).await;
    assert_eq!(failed, 0);
    let left = 100 - first_ok;
    assert!(
        (left - 1..=left + 1).contains(&ok),
        "user 42: {ok} accepted, the address had {left} left (refused requests charged?)"
    );
    for bff in [&stack.bff, &second] {
        let m = metrics(bff);
        assert_eq!(
            m.fallback, 0,
            "every decision was made in the cluster: {m:?}"
        );
    }
}
