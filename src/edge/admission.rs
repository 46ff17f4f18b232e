//! Admission control: how many requests this instance works on at once, adapted to what it
//! can do (`upstream::limit`, the same AIMD limit each upstream's bulkhead keeps): it grows
//! while answers stay as fast as the best recently seen, and shrinks when they slow down or
//! when the gateway could not answer (a 503 or 504 of its own). Over the limit a request
//! waits in a short bounded queue, or is refused at once: 503 with `Retry-After`, so excess
//! load costs a refusal, not a stall, and what is admitted stays fast. The queue absorbs
//! bursts and saturation, not sustained overload: once most of the requests that waited in it
//! lately did so in vain (at least `IN_VAIN_EVIDENCE` of them), it is skipped for
//! `QUEUE_REST`: then waiting only delays the 503, and its timers fire late on busy workers
//! (32 ms at p99 inside the gateway at 800 connections, 0.04 ms without). Health and readiness
//! checks are never shed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::AdmissionConfig;

/// How long the queue is skipped once waiting in it has been in vain.
const QUEUE_REST: Duration = Duration::from_secs(1);
/// Waits in vain, within one window, before the queue rests (when they are most waits).
const IN_VAIN_EVIDENCE: u32 = 8;
/// The window over which waits are counted.
const QUEUE_WINDOW: Duration = Duration::from_secs(1);
use crate::error::{Code, Problem};
use crate::observe::exposition::{Exposition, MetricFamilies};
use crate::request::{Admitted, RequestRecord};
use crate::upstream::limit::{AdaptiveLimit, LimitBounds};

/// The adaptive limit of one BFF instance. Shared by every request; cheap to check.
pub struct Admission {
    config: AdmissionConfig,
    limit: AdaptiveLimit,
    in_flight: AtomicU32,
    queued: AtomicU32,
    freed: Notify,
    queue_health: QueueHealth,
    shed: AtomicU64,
    waited: AtomicU64,
}

/// A place in the limit, given back on drop.
pub struct Ticket<'a> {
    admission: &'a Admission,
    started: Instant,
    /// Admitted after a wait in the queue.
    queued: bool,
}

impl Admission {
    pub fn new(config: &AdmissionConfig) -> Self {
        Self {
            config: config.clone(),
            limit: AdaptiveLimit::new(LimitBounds {
                initial: config.initial_limit,
                min: config.min_limit,
                max: config.max_limit,
                tolerance: config.tolerance,
            }),
            in_flight: AtomicU32::new(0),
            queued: AtomicU32::new(0),
            freed: Notify::new(),
            queue_health: QueueHealth::new(),
            shed: AtomicU64::new(0),
            waited: AtomicU64::new(0),
        }
    }

    /// A place, at once or after a short wait in the queue; `None`: refuse the request.
    pub async fn admit(&self) -> Option<Ticket<'_>> {
        if let Some(ticket) = self.try_admit() {
            return Some(ticket);
        }
        let queued = self.queued.fetch_add(1, Ordering::AcqRel);
        let ticket = if queued < self.config.queue && !self.queue_health.resting() {
            self.waited.fetch_add(1, Ordering::Relaxed);
            let deadline = Instant::now() + self.config.queue_timeout;
            loop {
                let freed = self.freed.notified();
                if let Some(ticket) = self.try_admit() {
                    self.queue_health.waited(false);
                    break Some(ticket.queued());
                }
                if tokio::time::timeout_at(deadline, freed).await.is_err() {
                    let ticket = self.try_admit().map(Ticket::queued);
                    self.queue_health.waited(ticket.is_none());
                    break ticket;
                }
            }
        } else {
            None
        };
        self.queued.fetch_sub(1, Ordering::AcqRel);
        if ticket.is_none() {
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        ticket
    }

    fn try_admit(&self) -> Option<Ticket<'_>> {
        let limit = self.limit.current();
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| Ticket {
            admission: self,
            started: Instant::now(),
            queued: false,
        })
    }

    /// The limit now (whole requests).
    pub fn limit(&self) -> u32 {
        self.limit.current()
    }

    /// Learns from one finished request: how long it took, and whether the gateway was
    /// overloaded answering it.
    fn learn(&self, took: Duration, overloaded: bool) {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        self.limit.learn(took, overloaded, in_flight);
    }
}

/// Whether the queue is worth waiting in, from how the latest waits in it ended.
struct QueueHealth {
    created: Instant,
    /// Milliseconds after `created`.
    window_start: AtomicU64,
    resting_until: AtomicU64,
    waits: AtomicU32,
    in_vain: AtomicU32,
}

impl QueueHealth {
    fn new() -> Self {
        Self {
            created: Instant::now(),
            window_start: AtomicU64::new(0),
            resting_until: AtomicU64::new(0),
            waits: AtomicU32::new(0),
            in_vain: AtomicU32::new(0),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX / 2)
    }

    fn resting(&self) -> bool {
        self.millis() < self.resting_until.load(Ordering::Relaxed)
    }

    /// A wait in the queue ended, with a place or `in_vain`.
    fn waited(&self, in_vain: bool) {
        let now = self.millis();
        let start = self.window_start.load(Ordering::Relaxed);
        let window = QUEUE_WINDOW.as_millis() as u64;
        if now >= start + window
            && self
                .window_start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.waits.store(0, Ordering::Relaxed);
            self.in_vain.store(0, Ordering::Relaxed);
        }
        let waits = self.waits.fetch_add(1, Ordering::Relaxed) + 1;
        let in_vain = self
            .in_vain
            .fetch_add(u32::from(in_vain), Ordering::Relaxed)
            + u32::from(in_vain);
        if in_vain >= IN_VAIN_EVIDENCE && in_vain * 2 >= waits {
            let rest = QUEUE_REST.as_millis() as u64;
            self.resting_until.store(now + rest, Ordering::Relaxed);
            // The next window starts after the rest, with nothing counted.
            self.window_start.store(now + rest, Ordering::Relaxed);
            self.waits.store(0, Ordering::Relaxed);
            self.in_vain.store(0, Ordering::Relaxed);
        }
    }
}

impl Ticket<'_> {
    fn queued(mut self) -> Self {
        self.queued = true;
        self
    }

    /// The request is answered with `status`: what the limit learns from it.
    pub fn finish(self, status: StatusCode) {
        let overloaded =
            status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::GATEWAY_TIMEOUT;
        self.admission.learn(self.started.elapsed(), overloaded);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.admission.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.admission.freed.notify_one();
    }
}

/// Runs `next` for `request` once it has a place (with no `admission`, at once). Health and
/// readiness checks never wait and are never shed.
pub async fn serve(admission: Option<&Admission>, request: Request, next: Next) -> Response {
    let admission = admission.filter(|_| !matches!(request.uri().path(), "/healthz" | "/readyz"));
    let Some(admission) = admission else {
        return next.run(request).await;
    };
    let record = request.extensions().get::<Arc<RequestRecord>>().cloned();
    let note = |admitted| {
        if let Some(record) = &record {
            record.set_admitted(admitted);
        }
    };
    let Some(ticket) = admission.admit().await else {
        note(Admitted::Shed);
        let mut response = Problem::new(
            Code::Overloaded,
            "this instance is at its limit of requests in progress; retry shortly",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    note(if ticket.queued {
        Admitted::Queued
    } else {
        Admitted::Now
    });
    let response = next.run(request).await;
    ticket.finish(response.status());
    response
}

impl MetricFamilies for Admission {
    fn write(&self, o: &mut Exposition) {
        o.header(
            "manifold_admission_limit",
            "gauge",
            "Requests this instance works on at once before it queues or sheds (adaptive).",
        );
        o.line("manifold_admission_limit", &[], self.limit());
        o.header(
            "manifold_admission_in_flight",
            "gauge",
            "Requests admitted and not yet answered.",
        );
        o.line(
            "manifold_admission_in_flight",
            &[],
            self.in_flight.load(Ordering::Relaxed),
        );
        o.header(
            "manifold_admission_queued_total",
            "counter",
            "Requests that waited for a place.",
        );
        o.line(
            "manifold_admission_queued_total",
            &[],
            self.waited.load(Ordering::Relaxed),
        );
        o.header(
            "manifold_admission_shed_total",
            "counter",
            "Requests refused with 503: over the limit and the queue.",
        );
        o.line(
            "manifold_admission_shed_total",
            &[],
            self.shed.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        use axum::body::Body;
        use tower::ServiceExt;
        let admission = Arc::new(Admission::new(&config(1, 0)));
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn({
                let admission = admission.clone();
                move |request, next| {
                    let admission = admission.clone();
                    async move { serve(Some(&admission), request, next).await }
                }
            }));
        let call = |app: axum::Router| async move {
            let record = Arc::new(RequestRecord::new(false));
            let mut request = Request::get("/").body(Body::empty()).unwrap();
            request.extensions_mut().insert(record.clone());
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
            admission.learn(Duration::from_secs(1), true);
        }
        assert_eq!(admission.limit(), 1);
    }
}
