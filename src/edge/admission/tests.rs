//! Admission control's tests: the limit, the queue, refusals before the app.

use super::queue::{IN_VAIN_EVIDENCE, QUEUE_REST, QUEUE_WINDOW};
use super::*;
use http::{StatusCode, header};

fn config(limit: u32, queue: u32) -> AdmissionConfig {
    AdmissionConfig {
        initial_limit: limit,
        min_limit: 1,
        max_limit: 100,
        queue,
        queue_timeout: Duration::from_millis(50),
        ..AdmissionConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn over_the_limit_a_request_queues_briefly_or_is_shed() {
    let admission = Admission::new(&config(2, 1));
    let a = admission.admit().await.expect("first");
    let _b = admission.admit().await.expect("second");
    // The third waits in the queue and gets the place the first gives back.
    let (third, ()) = tokio::join!(admission.admit(), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(a);
    });
    let third = third.expect("admitted from the queue");
    // Full and nobody leaving: the queue times out; past the queue, refused at once.
    let started = Instant::now();
    let (queued, at_once) = tokio::join!(admission.admit(), admission.admit());
    assert!(queued.is_none() && at_once.is_none());
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(admission.shed.load(Ordering::Relaxed), 2);
    drop(third);
}

/// Polls `check` every millisecond until it holds, for at most `within`.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    check()
}

/// On a worker kept busy (a task that computes for 2 ms between yields) while a request is in
/// flight, woken work waits far longer than `max_delay`: the limit falls to its floor. Once
/// the worker is free and the places are in use, it grows back.
#[tokio::test(flavor = "current_thread")]
async fn a_busy_worker_shrinks_the_limit_and_a_free_one_lets_it_grow_back() {
    let admission = Arc::new(Admission::new(&AdmissionConfig {
        initial_limit: 32,
        min_limit: 2,
        max_limit: 64,
        ..AdmissionConfig::default()
    }));
    admission.watch();
    let mut held = vec![admission.try_admit().expect("a place")];
    let busy = tokio::spawn(async {
        loop {
            let until = Instant::now() + Duration::from_millis(2);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            tokio::task::yield_now().await;
        }
    });
    let floor = eventually(Duration::from_secs(5), || admission.limit() == 2).await;
    busy.abort();
    assert!(floor, "the limit stayed at {}", admission.limit());
    // Every place taken, as under load; the worker free: the limit grows with use.
    let grew = eventually(Duration::from_secs(5), || {
        held.extend(std::iter::from_fn(|| admission.try_admit()));
        admission.limit() >= 16
    })
    .await;
    assert!(grew, "the limit stayed at {}", admission.limit());
}

#[tokio::test(start_paused = true)]
async fn only_a_request_that_would_be_shed_is_refused_before_the_app() {
    let admission = Admission::new(&config(1, 1));
    let request = |path: &str| http::Request::get(path).body(()).unwrap();
    assert!(admission.refuse_at_once(&request("/graphql")).is_none());
    let held = admission.try_admit().expect("the only place");
    // No place, but room in the queue: the app's admission lets it wait there.
    assert!(admission.refuse_at_once(&request("/graphql")).is_none());
    admission.queued.store(1, Ordering::Relaxed);
    let refused = admission
        .refuse_at_once(&request("/graphql"))
        .expect("no place, no room to wait");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    assert_eq!(
        refused.headers()[header::CONTENT_TYPE],
        crate::error::PROBLEM_JSON
    );
    assert!(admission.refuse_at_once(&request("/readyz")).is_none());
    assert!(admission.refuse_at_once(&request("/healthz")).is_none());
    assert_eq!(admission.shed.load(Ordering::Relaxed), 1);
    assert_eq!(admission.shed_early.load(Ordering::Relaxed), 1);
    drop(held);
    assert!(admission.refuse_at_once(&request("/graphql")).is_none());
}

#[tokio::test(start_paused = true)]
async fn waits_mostly_in_vain_rest_the_queue_and_a_few_do_not() {
    let health = QueueHealth::new();
    // Under saturation a few waits end in vain among many that get a place: no rest.
    for i in 0..40 {
        health.waited(i % 5 == 0);
    }
    assert!(!health.resting());
    // Sustained overload: most waits end in vain. The queue rests, then is tried again.
    tokio::time::advance(QUEUE_WINDOW).await;
    for _ in 0..IN_VAIN_EVIDENCE {
        health.waited(true);
    }
    assert!(health.resting());
    tokio::time::advance(QUEUE_REST).await;
    assert!(!health.resting());
    health.waited(true);
    assert!(!health.resting(), "a new window needs new evidence");
}

#[tokio::test(start_paused = true)]
async fn a_queue_that_keeps_overflowing_rests_though_its_waits_succeed() {
    let health = QueueHealth::new();
    for _ in 0..100 {
        health.waited(false);
    }
    for _ in 1..IN_VAIN_EVIDENCE {
        assert!(!health.overflowed());
    }
    assert!(
        health.overflowed(),
        "the eighth overflow in a window starts a rest"
    );
    assert!(health.resting());
    // Overflows spread over windows are bursts, not overload.
    tokio::time::advance(QUEUE_REST).await;
    for _ in 0..3 {
        tokio::time::advance(QUEUE_WINDOW).await;
        for _ in 1..IN_VAIN_EVIDENCE {
            assert!(!health.overflowed());
        }
    }
    assert!(!health.resting());
}

#[tokio::test(start_paused = true)]
async fn a_resting_queue_refuses_at_once() {
    let admission = Admission::new(&config(1, 4));
    let _held = admission.try_admit().expect("the only place");
    for _ in 0..IN_VAIN_EVIDENCE {
        assert!(admission.admit().await.is_none());
    }
    let started = Instant::now();
    assert!(admission.admit().await.is_none());
    assert_eq!(started.elapsed(), Duration::ZERO, "refused without waiting");
}

#[tokio::test]
async fn the_request_record_says_whether_it_was_admitted_or_shed() {
    use crate::request::{Deadline, RequestId, RequestRecord, TraceContext};
    use axum::body::Body;
    use tower::ServiceExt;
    let admission = Arc::new(Admission::new(&config(1, 0)));
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(axum::middleware::from_fn({
            let admission = admission.clone();
            move |request, next: axum::middleware::Next| {
                let admission = admission.clone();
                async move { serve(Some(&admission), request, |r| next.run(r)).await }
            }
        }));
    let call = |app: axum::Router| async move {
        let record = Arc::new(RequestRecord::new(false));
        let mut request = Request::get("/").body(Body::empty()).unwrap();
        let mut stamp = Stamp::new(
            RequestId("r1".into()),
            TraceContext::new_root(),
            Deadline::after(Duration::from_secs(1)),
        );
        stamp.record = Some(record.clone());
        request.extensions_mut().insert(stamp);
        let status = app.oneshot(request).await.unwrap().status();
        (status, record.admitted())
    };
    let held = admission.try_admit().expect("the only place");
    assert_eq!(
        call(app.clone()).await,
        (StatusCode::SERVICE_UNAVAILABLE, Admitted::Shed)
    );
    drop(held);
    assert_eq!(call(app).await, (StatusCode::OK, Admitted::Now));
}

#[tokio::test(start_paused = true)]
async fn the_limit_stays_within_its_bounds() {
    let admission = Admission::new(&config(3, 0));
    for _ in 0..100 {
        tokio::time::advance(Duration::from_secs(1)).await;
        admission.learn(Duration::from_secs(1));
    }
    assert_eq!(admission.limit(), 1);
    // Work picked up in time: the limit grows back while at least half of it is used.
    let held = admission.try_admit().expect("the one place");
    for _ in 0..200 {
        admission.learn(Duration::from_micros(10));
    }
    assert_eq!(admission.limit(), 3);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn the_worst_worker_teaches_the_limit_and_a_free_one_cannot_undo_it() {
    let admission = Admission::new(&config(3, 0));
    let held = admission.try_admit().expect("a place");
    let held_too = admission.try_admit().expect("a place");
    for _ in 0..100 {
        tokio::time::advance(Duration::from_secs(1)).await;
        // A busy worker's sample, then the learning worker's, which is free.
        admission.sampled(Duration::from_secs(1), false);
        admission.sampled(Duration::from_micros(10), true);
    }
    assert_eq!(
        admission.limit(),
        1,
        "the busy worker's delay shrinks the limit"
    );
    // Every worker free: it grows back (while in use).
    for _ in 0..200 {
        admission.sampled(Duration::from_micros(10), false);
        admission.sampled(Duration::from_micros(10), true);
    }
    assert!(admission.limit() >= 3, "{}", admission.limit());
    drop((held, held_too));
}

/// While nothing is in flight the samplers wait for work instead of waking every
/// `SAMPLE_EVERY`; the first admitted request wakes them, and they wait again once it ends.
#[tokio::test(start_paused = true)]
async fn an_idle_instance_is_not_sampled_and_work_wakes_the_sampler() {
    let admission = Arc::new(Admission::new(&config(4, 0)));
    admission.watch();
    let samples = || admission.samples.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(samples(), 0, "sampled while idle");
    let held = admission.try_admit().expect("a place");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = samples();
    assert!(
        busy >= 10,
        "{busy} samples in 100 ms with a request in flight"
    );
    drop(held);
    // At most the sample already under way is noted after the request ends.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let settled = samples();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(samples(), settled, "sampled after the work ended");
}

/// A waiting sampler holds no admission alive, and ends when its admission is dropped (a
/// reload that changes `[admission]` drops the old one).
#[tokio::test(start_paused = true)]
async fn an_idle_sampler_ends_with_its_admission() {
    let admission = Arc::new(Admission::new(&config(4, 0)));
    admission.watch();
    let work_began = admission.work_began.clone();
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(admission);
    let ended = eventually(Duration::from_secs(1), || {
        Arc::strong_count(&work_began) == 1
    })
    .await;
    assert!(ended, "the sampler outlived its admission");
}
