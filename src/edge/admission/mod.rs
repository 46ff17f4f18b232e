//! Admission control: how many requests this instance works on at once, adapted to what it
//! can do. The signal is the instance's own: how long work that was woken (a backend's answer
//! arrived, a timer fired) waits for a worker thread, sampled every `SAMPLE_EVERY` while
//! requests are in flight (an idle instance is not woken to sample). Past
//! `max_delay` the instance is short of CPU and every request in it slows down, so the limit
//! shrinks by a tenth; while work is picked up in time and the limit is used, it grows by one
//! each sample (`upstream::limit`'s AIMD). End-to-end latency is not the signal: a slow
//! backend lengthens it without costing this instance anything, and each upstream's bulkhead
//! already limits what waits on that backend. Over the limit a request
//! waits in a short bounded queue, or is refused at once: 503 with `Retry-After`, so excess
//! load costs a refusal, not a stall, and what is admitted stays fast. The queue absorbs
//! bursts and saturation, not sustained overload: once most of the requests that waited in it
//! lately did so in vain (at least `IN_VAIN_EVIDENCE` of them), it is skipped for
//! `QUEUE_REST`: then waiting only delays the 503, and its timers fire late on busy workers
//! (32 ms at p99 inside the gateway at 800 connections, 0.04 ms without). Health and readiness
//! checks are never shed.
//!
//! Under sustained overload most requests are refused, so a refusal must cost little: the
//! listener asks `refuse_at_once` before the app, and a request that would be shed anyway is
//! answered there with a prepared 503 (no routing, no request record, no JSON encoding).
//! Such refusals write at most `SHED_LINES_PER_SECOND` access lines a second, and one line
//! each second counting the rest: at ten times the capacity, a line per refusal would cost
//! more than the refusal.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::AdmissionConfig;

/// How often the workers' scheduling delay is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// The limit shrinks at most this often (a shrink needs time to show).
const SHRINK_SPACING: Duration = Duration::from_millis(10);
use crate::observe::exposition::{Exposition, MetricFamilies};
use crate::request::{Admitted, Stamp};
use crate::upstream::limit::{AdaptiveLimit, LimitBounds, Pressure};

mod queue;
mod shed;

use queue::QueueHealth;
use shed::{ShedLog, overloaded};

/// The adaptive limit of one BFF instance. Shared by every request; cheap to check.
pub struct Admission {
    config: AdmissionConfig,
    limit: AdaptiveLimit,
    in_flight: AtomicU32,
    queued: AtomicU32,
    freed: Notify,
    /// Wakes the requests waiting in the queue when it starts resting: they are shed now.
    rest_began: Notify,
    queue_health: QueueHealth,
    shed: AtomicU64,
    /// Of `shed`: refused by the listener, before routing (not in the request metrics).
    shed_early: AtomicU64,
    waited: AtomicU64,
    shed_log: ShedLog,
    /// The longest scheduling delay a worker's sampler saw since the limit last learnt
    /// (nanoseconds): under thread-per-core every worker samples and one learns from the
    /// worst, so a free worker's samples cannot undo what a busy one's taught.
    worst_delay_ns: AtomicU64,
    /// Wakes the samplers, which wait on it while nothing is in flight (an idle instance is
    /// not woken every `SAMPLE_EVERY`), when a request takes the first place, and when the
    /// admission is dropped (they end then). Shared with them: a waiting sampler holds no
    /// `Admission` alive.
    work_began: Arc<Notify>,
    /// Samples noted, for the tests.
    #[cfg(test)]
    samples: AtomicU64,
}

/// A place in the limit, given back on drop.
pub struct Ticket<'a> {
    admission: &'a Admission,
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
                // Not learnt from latencies (see the module's note).
                tolerance: f64::INFINITY,
            }),
            in_flight: AtomicU32::new(0),
            queued: AtomicU32::new(0),
            freed: Notify::new(),
            rest_began: Notify::new(),
            queue_health: QueueHealth::new(),
            shed: AtomicU64::new(0),
            shed_early: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            shed_log: ShedLog::new(),
            worst_delay_ns: AtomicU64::new(0),
            work_began: Arc::new(Notify::new()),
            #[cfg(test)]
            samples: AtomicU64::new(0),
        }
    }

    /// Whether a request arriving now would be shed: no place, and the queue full, resting
    /// or absent.
    fn saturated(&self) -> bool {
        if self.in_flight.load(Ordering::Acquire) < self.limit.current() {
            return false;
        }
        if self.queue_health.resting() {
            return true;
        }
        let overflows = self.queued.load(Ordering::Acquire) >= self.config.queue;
        if overflows && self.queue_health.overflowed() {
            // No place and no room to wait: sustained overload. The waiters are shed now.
            self.rest_began.notify_waiters();
        }
        overflows
    }

    /// The answer to `request` when it would be shed anyway (never to a health or readiness
    /// check): a prepared 503, counted, logged within `SHED_LINES_PER_SECOND`. `None`: serve
    /// it (it may still wait in the queue, or be shed there).
    pub fn refuse_at_once<B>(&self, request: &http::Request<B>) -> Option<Response> {
        if is_probe(request.uri().path()) || !self.saturated() {
            return None;
        }
        self.shed.fetch_add(1, Ordering::Relaxed);
        self.shed_early.fetch_add(1, Ordering::Relaxed);
        self.shed_log.note(request);
        Some(overloaded())
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
            let resting = self.rest_began.notified();
            let mut resting = std::pin::pin!(resting);
            loop {
                let freed = self.freed.notified();
                if let Some(ticket) = self.try_admit() {
                    self.waited(false);
                    break Some(ticket.queued());
                }
                tokio::select! {
                    freed = tokio::time::timeout_at(deadline, freed) => if freed.is_err() {
                        let ticket = self.try_admit().map(Ticket::queued);
                        self.waited(ticket.is_none());
                        break ticket;
                    },
                    () = &mut resting => break None,
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
        let before = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        if before == 0 {
            self.work_began.notify_waiters();
        }
        Some(Ticket {
            admission: self,
            queued: false,
        })
    }

    /// A wait in the queue ended (`in_vain`: without a place); when that starts the queue's
    /// rest, the requests still waiting are shed at once.
    fn waited(&self, in_vain: bool) {
        if self.queue_health.waited(in_vain) {
            self.rest_began.notify_waiters();
        }
    }

    /// The limit now (whole requests).
    pub fn limit(&self) -> u32 {
        self.limit.current()
    }

    /// Starts sampling the workers' scheduling delay for the limit, until `self` is dropped:
    /// on each worker thread of `thread-per-core` (each is measured; the most delayed one
    /// shrinks the limit), else on the current runtime. Must run inside a tokio runtime.
    pub fn watch(self: &Arc<Self>) {
        let admission = Arc::downgrade(self);
        let work_began = self.work_began.clone();
        crate::server::workers::spawn_on_each(move |worker| {
            sample_delay(admission.clone(), work_began.clone(), worker == 0)
        });
    }

    /// Notes one worker's sample; the learning one (`learns`) then learns from the worst
    /// noted since it last did.
    fn sampled(&self, delay: Duration, learns: bool) {
        #[cfg(test)]
        self.samples.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.worst_delay_ns.fetch_max(nanos, Ordering::AcqRel);
        if learns {
            let worst = self.worst_delay_ns.swap(0, Ordering::AcqRel);
            self.learn(Duration::from_nanos(worst));
        }
    }

    /// Learns from one sample of the scheduling delay.
    fn learn(&self, delay: Duration) {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let target = self.config.max_delay;
        let pressure = if delay > target {
            Pressure::Over(delay.as_secs_f64() / target.as_secs_f64())
        } else if delay > target / 8 {
            Pressure::Near
        } else {
            Pressure::Clear
        };
        self.limit
            .learn_pressure(pressure, in_flight, SHRINK_SPACING);
    }
}

/// Every `SAMPLE_EVERY` while requests are in flight: how long this task, after yielding,
/// waits to be polled again (it goes behind the work already woken, as a backend's answer
/// does). While nothing is in flight there is no delay to learn from: it waits for work.
async fn sample_delay(admission: Weak<Admission>, work_began: Arc<Notify>, learns: bool) {
    loop {
        // Registered before the check, so a request admitted in between still wakes it.
        let began = work_began.notified();
        let mut began = std::pin::pin!(began);
        began.as_mut().enable();
        let idle = match admission.upgrade() {
            Some(admission) => admission.in_flight.load(Ordering::Acquire) == 0,
            None => return,
        };
        if idle {
            began.await;
            continue;
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
        let started = Instant::now();
        tokio::task::yield_now().await;
        let delay = started.elapsed();
        let Some(admission) = admission.upgrade() else {
            return;
        };
        admission.sampled(delay, learns);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // Idle samplers wait for work: wake them to find the admission gone.
        self.work_began.notify_waiters();
    }
}

impl Ticket<'_> {
    fn queued(mut self) -> Self {
        self.queued = true;
        self
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.admission.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.admission.freed.notify_one();
    }
}

fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Runs `run(request)` once it has a place (with no `admission`, at once). Health and
/// readiness checks never wait and are never shed.
pub async fn serve<F>(
    admission: Option<&Admission>,
    request: Request,
    run: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = Response>,
{
    let admission = admission.filter(|_| !is_probe(request.uri().path()));
    let Some(admission) = admission else {
        return run(request).await;
    };
    let record = Stamp::record(request.extensions()).cloned();
    let note = |admitted| {
        if let Some(record) = &record {
            record.set_admitted(admitted);
        }
    };
    let Some(ticket) = admission.admit().await else {
        note(Admitted::Shed);
        return overloaded();
    };
    note(if ticket.queued {
        Admitted::Queued
    } else {
        Admitted::Now
    });
    let response = run(request).await;
    drop(ticket);
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
        o.header(
            "manifold_admission_shed_early_total",
            "counter",
            "Of the requests shed, those refused by the listener before routing (these are not \
             in manifold_http_requests_total).",
        );
        o.line(
            "manifold_admission_shed_early_total",
            &[],
            self.shed_early.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests;
