//! The instances of one upstream and how a call picks one: power-of-two-choices by load
//! (in-flight calls x latency EWMA) among the instances that are healthy, not ejected, and
//! whose circuit breaker admits a call. An instance's EWMA fades while it gets no calls, and
//! is forgotten when it passes its health checks again, so an instance once slow (or down)
//! is tried again instead of losing every comparison for good. Active health checks and
//! passive outlier ejection take bad instances out and bring them back. When every instance
//! is unhealthy or ejected, all of them are tried anyway (a wrong health signal must not
//! black-hole a service); only open breakers make a call fail fast.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use tokio::time::Instant;

use super::breaker::{BreakerState, CircuitBreaker, Outcome, Permit};
use super::client::{HttpClient, Origin};
use crate::config::{HealthConfig, OutlierConfig, UpstreamConfig};

/// How fast an instance's latency EWMA fades while it takes no calls (the time constant).
const LATENCY_FADE: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Instance {
    /// Base URL without a trailing slash.
    pub base: String,
    /// `base`, parsed once for the client (`None` only for a URL config validation refuses).
    pub origin: Option<Origin>,
    pub breaker: CircuitBreaker,
    in_flight: AtomicUsize,
    /// Latency EWMA in microseconds (0 = no sample yet), as of `sampled_us`.
    ewma_us: AtomicU64,
    /// When the EWMA last took a sample, in microseconds since `epoch`.
    sampled_us: AtomicU64,
    epoch: Instant,
    healthy: AtomicBool,
    health_streak: AtomicU32,
    failures_in_a_row: AtomicU32,
    /// Ejected until this many microseconds since `epoch` (0: not ejected). An atomic, as
    /// every pick reads it.
    ejected_until_us: AtomicU64,
}

/// A snapshot for metrics and the admin API.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InstanceStatus {
    pub url: String,
    pub healthy: bool,
    pub ejected: bool,
    pub breaker: BreakerState,
    pub breaker_transitions: u64,
    pub in_flight: usize,
    pub latency_ewma_ms: f64,
}

impl Instance {
    fn new(base: &str, config: &UpstreamConfig) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            base: base.to_owned(),
            origin: Origin::parse(base),
            breaker: CircuitBreaker::new(&config.breaker),
            in_flight: AtomicUsize::new(0),
            ewma_us: AtomicU64::new(0),
            sampled_us: AtomicU64::new(0),
            epoch: Instant::now(),
            healthy: AtomicBool::new(true),
            health_streak: AtomicU32::new(0),
            failures_in_a_row: AtomicU32::new(0),
            ejected_until_us: AtomicU64::new(0),
        }
    }

    fn is_ejected(&self, now: Instant) -> bool {
        let until = self.ejected_until_us.load(Ordering::Relaxed);
        until != 0 && self.micros(now) < until
    }

    fn is_available(&self, now: Instant) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.is_ejected(now)
    }

    /// Lower is better: in-flight calls weighted by typical latency.
    fn load(&self, now: Instant) -> u64 {
        let ewma = self.ewma(now).max(1);
        (self.in_flight.load(Ordering::Relaxed) as u64 + 1) * ewma
    }

    /// The latency EWMA, faded by the time since its last sample (e^(-idle/LATENCY_FADE)).
    /// Without the fade, two instances called one at a time are compared by EWMA alone, and
    /// the one with the higher (possibly stale) number would never be called again.
    fn ewma(&self, now: Instant) -> u64 {
        self.ewma_at(self.micros(now))
    }

    /// `ewma` at `now_us` microseconds since `epoch`.
    fn ewma_at(&self, now_us: u64) -> u64 {
        let ewma = self.ewma_us.load(Ordering::Relaxed);
        let idle = now_us.saturating_sub(self.sampled_us.load(Ordering::Relaxed));
        if ewma == 0 || idle == 0 {
            return ewma;
        }
        (ewma as f64 * (-(idle as f64) / LATENCY_FADE.as_micros() as f64).exp()) as u64
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    fn sample(&self, latency_us: u64, now: Instant) {
        // One conversion of `now` for the fade and the sample's time.
        let now_us = self.micros(now);
        let old = self.ewma_at(now_us);
        let new = if old == 0 {
            latency_us
        } else {
            (old * 4 + latency_us) / 5
        };
        self.ewma_us.store(new.max(1), Ordering::Relaxed);
        self.sampled_us.store(now_us, Ordering::Relaxed);
    }

    pub fn status(&self) -> InstanceStatus {
        InstanceStatus {
            url: self.base.clone(),
            healthy: self.healthy.load(Ordering::Relaxed),
            ejected: self.is_ejected(Instant::now()),
            breaker: self.breaker.state(),
            breaker_transitions: self.breaker.transitions(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            latency_ewma_ms: self.ewma(Instant::now()) as f64 / 1000.0,
        }
    }
}

/// A call's hold on one instance: counts it in flight and carries its breaker permit.
pub struct Lease<'a> {
    pub instance: &'a Instance,
    pub index: usize,
    permit: Option<Permit<'a>>,
    started: Instant,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.instance.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct Instances {
    list: Vec<Arc<Instance>>,
    outlier: OutlierConfig,
}

impl Instances {
    pub fn new(config: &UpstreamConfig) -> Arc<Self> {
        let list = config
            .endpoints()
            .into_iter()
            .map(|url| Arc::new(Instance::new(url, config)))
            .collect();
        Arc::new(Self {
            list,
            outlier: config.outlier.clone(),
        })
    }

    pub fn statuses(&self) -> Vec<InstanceStatus> {
        self.list.iter().map(|i| i.status()).collect()
    }

    /// An instance to call at `now`, avoiding `tried` when another is available; `None` when
    /// every candidate's breaker refuses. The candidates are the available untried instances,
    /// else the untried ones, else all; nothing is allocated (a pick is on every call's path).
    pub fn pick(&self, tried: &[usize], now: Instant) -> Option<Lease<'_>> {
        let all = 0..self.list.len();
        let untried = |i: usize| !tried.contains(&i);
        let available = |i: usize| untried(i) && self.list[i].is_available(now);
        let candidate: &dyn Fn(usize) -> bool = if all.clone().any(available) {
            &available
        } else if all.clone().any(untried) {
            &untried
        } else {
            &|_| true
        };
        let candidates = || all.clone().filter(|&i| candidate(i));
        let count = candidates().count();
        // Power of two choices: the less loaded of two random candidates goes first.
        let best = if count > 1 {
            let a = fastrand::usize(..count);
            let mut b = fastrand::usize(..count - 1);
            if b >= a {
                b += 1;
            }
            let nth = |k| candidates().nth(k).unwrap_or_default();
            let (first, second) = (nth(a), nth(b));
            if self.list[second].load(now) < self.list[first].load(now) {
                second
            } else {
                first
            }
        } else {
            candidates().next()?
        };
        std::iter::once(best)
            .chain(candidates().filter(|&i| i != best))
            .find_map(|index| {
                let instance = &self.list[index];
                let permit = instance.breaker.try_acquire()?;
                instance.in_flight.fetch_add(1, Ordering::Relaxed);
                Some(Lease {
                    instance,
                    index,
                    permit: Some(permit),
                    started: now,
                })
            })
    }

    /// Feeds a call finished at `now` back: breaker, outlier detection, latency.
    pub fn finish(&self, mut lease: Lease<'_>, outcome: Outcome, now: Instant) {
        let instance = lease.instance;
        if let Some(permit) = lease.permit.take() {
            permit.finish(outcome, now);
        }
        match outcome {
            Outcome::Success => {
                instance.failures_in_a_row.store(0, Ordering::Relaxed);
                let latency = now.saturating_duration_since(lease.started).as_micros();
                instance.sample(u64::try_from(latency).unwrap_or(u64::MAX), now);
            }
            Outcome::Failure => {
                let n = instance.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= self.outlier.consecutive_failures {
                    self.eject(lease.index, now);
                }
            }
            Outcome::Ignored => {}
        }
    }

    fn eject(&self, index: usize, now: Instant) {
        let ejected = self.list.iter().filter(|i| i.is_ejected(now)).count();
        // Never take out more than the allowed share (a lone instance is never ejected).
        if (ejected + 1) as f64 > self.outlier.max_ejected_ratio * self.list.len() as f64 {
            return;
        }
        let instance = &self.list[index];
        let until = instance.micros(now + self.outlier.ejection).max(1);
        instance.ejected_until_us.store(until, Ordering::Relaxed);
        instance.failures_in_a_row.store(0, Ordering::Relaxed);
        tracing::warn!(instance = %instance.base, ejection = ?self.outlier.ejection, "instance ejected after failures in a row");
    }

    /// Probes every instance's health endpoint at the configured interval until the
    /// upstream is dropped.
    pub(crate) fn spawn_health_checks(self: &Arc<Self>, client: HttpClient, config: HealthConfig) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(config.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                let probes = this.list.iter().map(|instance| {
                    let client = client.clone();
                    let uri = instance.origin.as_ref().map(|o| o.uri(&config.path));
                    async move {
                        let Some(Ok(uri)) = uri else {
                            return (instance, false);
                        };
                        let mut request = http::Request::new(axum::body::Body::empty());
                        *request.uri_mut() = uri;
                        let probe = client.send("health check", request);
                        let ok = tokio::time::timeout(config.timeout, probe)
                            .await
                            .is_ok_and(|r| r.is_ok_and(|r| r.status().is_success()));
                        (instance, ok)
                    }
                });
                for (instance, ok) in futures_util::future::join_all(probes).await {
                    update_health(instance, ok, &config);
                }
            }
        });
    }
}

fn update_health(instance: &Instance, ok: bool, config: &HealthConfig) {
    let healthy = instance.healthy.load(Ordering::Relaxed);
    if ok == healthy {
        instance.health_streak.store(0, Ordering::Relaxed);
        return;
    }
    let streak = instance.health_streak.fetch_add(1, Ordering::Relaxed) + 1;
    let needed = if ok {
        config.healthy_after
    } else {
        config.unhealthy_after
    };
    if streak >= needed {
        instance.healthy.store(ok, Ordering::Relaxed);
        instance.health_streak.store(0, Ordering::Relaxed);
        if ok {
            // Back in service: a stale ejection must not keep it out, and its latency from
            // before is old news (unknown, it is tried first).
            instance.ejected_until_us.store(0, Ordering::Relaxed);
            instance.ewma_us.store(0, Ordering::Relaxed);
            tracing::info!(instance = %instance.base, "instance healthy again");
        } else {
            tracing::warn!(instance = %instance.base, "instance failed its health checks");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn upstream(n: usize) -> UpstreamConfig {
        let mut config = UpstreamConfig::new("http://127.0.0.1:1");
        config.url = None;
        config.instances = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", 1000 + i))
            .collect();
        config.outlier.consecutive_failures = 2;
        config
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_goes_to_another_instance() {
        let instances = Instances::new(&upstream(2));
        for _ in 0..20 {
            let first = instances.pick(&[], Instant::now()).expect("lease").index;
            let second = instances
                .pick(&[first], Instant::now())
                .expect("lease")
                .index;
            assert_ne!(first, second);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failing_instances_are_ejected_then_return() {
        let instances = Instances::new(&upstream(2));
        for _ in 0..2 {
            let lease = instances.pick(&[1], Instant::now()).unwrap();
            assert_eq!(lease.index, 0);
            instances.finish(lease, Outcome::Failure, Instant::now());
        }
        for _ in 0..20 {
            assert_eq!(
                instances.pick(&[], Instant::now()).unwrap().index,
                1,
                "instance 0 is ejected"
            );
        }
        // The other one may not be ejected too: at most half the instances are out.
        for _ in 0..2 {
            let lease = instances.pick(&[], Instant::now()).unwrap();
            instances.finish(lease, Outcome::Failure, Instant::now());
        }
        assert!(!instances.list[1].is_ejected(Instant::now()));
        tokio::time::advance(Duration::from_secs(10)).await;
        let picked: Vec<usize> = (0..50)
            .map(|_| instances.pick(&[], Instant::now()).unwrap().index)
            .collect();
        assert!(picked.contains(&0), "instance 0 is back after its ejection");
    }

    #[tokio::test(start_paused = true)]
    async fn the_less_loaded_instance_is_preferred() {
        let instances = Instances::new(&upstream(2));
        let busy: Vec<_> = (0..5)
            .map(|_| instances.pick(&[1], Instant::now()).unwrap())
            .collect();
        for _ in 0..20 {
            assert_eq!(instances.pick(&[], Instant::now()).unwrap().index, 1);
        }
        drop(busy);
    }

    /// The instance `pick` puts first when nothing is in flight, asked `n` times.
    fn firsts(instances: &Instances, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| instances.pick(&[], Instant::now()).unwrap().index)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_once_slower_is_tried_again_as_its_latency_fades() {
        let instances = Instances::new(&upstream(2));
        instances.list[0].sample(1_000, Instant::now());
        instances.list[1].sample(3_000, Instant::now());
        assert!(firsts(&instances, 20).iter().all(|&i| i == 0));
        // Instance 0 keeps answering in 1 ms; instance 1 is not called for 20 s.
        for _ in 0..20 {
            tokio::time::advance(Duration::from_secs(1)).await;
            instances.list[0].sample(1_000, Instant::now());
        }
        assert!(
            firsts(&instances, 20).iter().all(|&i| i == 1),
            "its old 3 ms has faded below the other's 1 ms: it is tried again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_back_from_failed_health_checks_is_tried_first() {
        let instances = Instances::new(&upstream(2));
        let health = HealthConfig::default();
        instances.list[0].sample(1_000, Instant::now());
        instances.list[1].sample(3_000, Instant::now());
        for ok in [false, false, false, true, true, true] {
            update_health(&instances.list[1], ok, &health);
        }
        assert!(instances.list[1].healthy.load(Ordering::Relaxed));
        assert!(firsts(&instances, 20).iter().all(|&i| i == 1));
    }

    #[test]
    fn health_changes_after_the_configured_streaks() {
        let config = upstream(1);
        let instance = Instance::new("http://127.0.0.1:1", &config);
        let health = HealthConfig {
            unhealthy_after: 2,
            healthy_after: 1,
            ..HealthConfig::default()
        };
        update_health(&instance, false, &health);
        assert!(instance.healthy.load(Ordering::Relaxed));
        update_health(&instance, false, &health);
        assert!(!instance.healthy.load(Ordering::Relaxed));
        update_health(&instance, true, &health);
        assert!(instance.healthy.load(Ordering::Relaxed));
    }
}
