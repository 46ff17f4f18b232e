//! The hit path against the uncached path, in-process through the typed client (no client
//! HTTP in the measurement), printed for the record. Debug builds: the ratio, not the
//! absolute numbers, is what means something.

use std::time::Duration;

use tokio::time::Instant;

use manifold::request::{CallContext, Deadline};

use demo_services::Service;

use crate::harness::Stack;

async fn rate(stack: &Stack, calls: u32, id: impl Fn(u32) -> String) -> f64 {
    let gateway = stack.bff.gateway();
    let catalog = &backends::Backends::new(gateway.upstreams()).catalog;
    let started = Instant::now();
    for n in 0..calls {
        let ctx = CallContext::new(None, Deadline::after(Duration::from_secs(5)), "t".into());
        catalog.get(&ctx, &id(n)).await.expect("product");
    }
    f64::from(calls) / started.elapsed().as_secs_f64()
}

#[tokio::test]
async fn the_hit_path_is_many_times_faster_than_the_uncached_path() {
    let cached = Stack::start(&bff_partner::SPEC).await;
    let uncached = Stack::start_with(&bff_partner::SPEC, |c| c.cache.enabled = false).await;
    rate(&cached, 1, |_| "p21".into()).await; // warm
    let hits = rate(&cached, 2000, |_| "p21".into()).await;
    let backend = rate(&uncached, 300, |_| "p21".into()).await;
    let ratio = hits / backend;
    println!(
        "catalog.get: cache hits {hits:.0}/s, uncached {backend:.0}/s, ratio {ratio:.1}x \
         ({} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert!(ratio > 2.0, "hit path only {ratio:.1}x the uncached path");
}

async fn http_rate(stack: &Stack, calls: u32) -> f64 {
    let started = Instant::now();
    for _ in 0..calls {
        let r = super::partner_get(stack, "/v1/products/p22", super::DEMO_KEY, None).await;
        assert_eq!(r.status, 200);
    }
    f64::from(calls) / started.elapsed().as_secs_f64()
}

/// Over HTTP the client's own round trip dominates a debug build's timing, so the rates are
/// printed for the record (the benchmark measures speed) and what is asserted is why the hit
/// path is cheaper: it never reaches the backend.
#[tokio::test]
async fn through_http_the_hit_path_never_reaches_the_backend() {
    let cached = Stack::start(&bff_partner::SPEC).await;
    let uncached = Stack::start_with(&bff_partner::SPEC, |c| c.cache.enabled = false).await;
    cached.reset_stats().await;
    uncached.reset_stats().await;
    http_rate(&cached, 1).await; // warm
    let hits = http_rate(&cached, 500).await;
    let backend = http_rate(&uncached, 500).await;
    println!(
        "GET /v1/products/p22 over HTTP, one client in sequence: cache hits {hits:.0}/s, \
         uncached {backend:.0}/s, ratio {:.1}x ({} build)",
        hits / backend,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert_eq!(
        cached.requests(Service::Catalog).await,
        1,
        "501 GETs, one fill"
    );
    assert_eq!(uncached.requests(Service::Catalog).await, 500);
}
