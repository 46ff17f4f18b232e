//! Counters of one upstream, recorded on every call: client-caused calls, tries sent,
//! retries, budget exhaustion, fast failures (open circuit, full bulkhead), failures by
//! class. The operations issue exports them to Prometheus; tests read them directly.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

use super::{InstanceStatus, UpstreamError, UpstreamErrorKind};
use crate::observe::metrics::{Histogram, HistogramSnapshot};

#[derive(Default)]
pub(super) struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub(super) struct Counters {
    pub calls: Counter,
    pub attempts: Counter,
    pub retries: Counter,
    pub budget_exhausted: Counter,
    pub circuit_open: Counter,
    pub saturated: Counter,
    pub timeouts: Counter,
    pub unavailable: Counter,
    pub bad_responses: Counter,
    pub rejected: Counter,
    /// Calls that returned a response (after any retries).
    pub succeeded: Counter,
    /// Whole calls, all tries and backoff included.
    pub latency: Histogram,
    pub in_flight: AtomicUsize,
}

impl Counters {
    pub fn record_failure(&self, e: &UpstreamError) {
        match e.kind {
            UpstreamErrorKind::Timeout | UpstreamErrorKind::DeadlineExceeded => self.timeouts.inc(),
            UpstreamErrorKind::Connect
            | UpstreamErrorKind::Reset
            | UpstreamErrorKind::ServerError(_) => self.unavailable.inc(),
            UpstreamErrorKind::BadResponse => self.bad_responses.inc(),
            UpstreamErrorKind::NotFound | UpstreamErrorKind::Rejected(_) => self.rejected.inc(),
            UpstreamErrorKind::NotConfigured
            | UpstreamErrorKind::CircuitOpen
            | UpstreamErrorKind::Saturated => {}
        }
    }

    pub fn snapshot(
        &self,
        name: &str,
        concurrency_limit: usize,
        instances: Vec<InstanceStatus>,
    ) -> UpstreamStats {
        UpstreamStats {
            name: name.to_owned(),
            calls: self.calls.get(),
            attempts: self.attempts.get(),
            retries: self.retries.get(),
            budget_exhausted: self.budget_exhausted.get(),
            circuit_open: self.circuit_open.get(),
            saturated: self.saturated.get(),
            timeouts: self.timeouts.get(),
            unavailable: self.unavailable.get(),
            bad_responses: self.bad_responses.get(),
            rejected: self.rejected.get(),
            succeeded: self.succeeded.get(),
            latency: self.latency.snapshot(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            concurrency_limit,
            instances,
        }
    }
}

/// A point-in-time view of one upstream.
#[derive(Clone, Debug, Serialize)]
pub struct UpstreamStats {
    pub name: String,
    /// Calls clients caused (first tries), whatever became of them.
    pub calls: u64,
    /// Tries actually sent to an instance.
    pub attempts: u64,
    pub retries: u64,
    pub budget_exhausted: u64,
    /// Calls failed fast because every instance's breaker was open.
    pub circuit_open: u64,
    /// Calls failed fast because the bulkhead was full.
    pub saturated: u64,
    pub timeouts: u64,
    pub unavailable: u64,
    pub bad_responses: u64,
    pub rejected: u64,
    /// Calls that ended with a response.
    pub succeeded: u64,
    /// Duration of whole calls (tries and backoff together).
    pub latency: HistogramSnapshot,
    pub in_flight: usize,
    /// The bulkhead's cap now (it adapts unless `bulkhead.adaptive = false`).
    pub concurrency_limit: usize,
    pub instances: Vec<InstanceStatus>,
}
