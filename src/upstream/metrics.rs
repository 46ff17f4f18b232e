//! The upstreams' metric families: calls, tries, retries and failures per upstream, breaker
//! state and health per instance.

use super::{BreakerState, Upstream, UpstreamStats};
use crate::observe::exposition::{Exposition, MetricFamilies};

/// Every upstream of one gateway generation, as metric families.
pub struct UpstreamFamilies(pub Vec<Upstream>);

impl MetricFamilies for UpstreamFamilies {
    fn write(&self, o: &mut Exposition) {
        let stats: Vec<_> = self.0.iter().map(Upstream::stats).collect();
        counters(o, &stats);
        instances(o, &stats);
    }
}

/// Reads one counter of an upstream's stats.
type StatOf = fn(&UpstreamStats) -> u64;

/// The per-upstream series.
fn counters(o: &mut Exposition, stats: &[UpstreamStats]) {
    let counters: [(&str, &str, StatOf); 5] = [
        (
            "manifold_upstream_calls_total",
            "Backend calls clients caused (first tries).",
            |s| s.calls,
        ),
        (
            "manifold_upstream_attempts_total",
            "Tries sent to an instance.",
            |s| s.attempts,
        ),
        ("manifold_upstream_retries_total", "Retries sent.", |s| {
            s.retries
        }),
        (
            "manifold_upstream_retry_budget_exhausted_total",
            "Retries not sent because the retry budget was spent.",
            |s| s.budget_exhausted,
        ),
        (
            "manifold_upstream_succeeded_total",
            "Calls that got a response.",
            |s| s.succeeded,
        ),
    ];
    for (name, help, get) in counters {
        o.header(name, "counter", help);
        for s in stats {
            o.line(name, &[("upstream", &s.name)], get(s));
        }
    }
    o.header(
        "manifold_upstream_failures_total",
        "counter",
        "Failed tries and fast failures by class.",
    );
    for s in stats {
        for (class, n) in [
            ("timeout", s.timeouts),
            ("unavailable", s.unavailable),
            ("bad_response", s.bad_responses),
            ("rejected", s.rejected),
            ("circuit_open", s.circuit_open),
            ("saturated", s.saturated),
        ] {
            o.line(
                "manifold_upstream_failures_total",
                &[("upstream", &s.name), ("class", class)],
                n,
            );
        }
    }
    o.header(
        "manifold_upstream_in_flight",
        "gauge",
        "Backend calls in flight.",
    );
    for s in stats {
        o.line(
            "manifold_upstream_in_flight",
            &[("upstream", &s.name)],
            s.in_flight,
        );
    }
    o.header(
        "manifold_upstream_concurrency_limit",
        "gauge",
        "The bulkhead's cap on calls in flight (adaptive: it shrinks while the backend slows down).",
    );
    for s in stats {
        o.line(
            "manifold_upstream_concurrency_limit",
            &[("upstream", &s.name)],
            s.concurrency_limit,
        );
    }
    o.header(
        "manifold_upstream_call_duration_seconds",
        "histogram",
        "Whole backend calls, tries and backoff included.",
    );
    for s in stats {
        o.histogram(
            "manifold_upstream_call_duration_seconds",
            &[("upstream", &s.name)],
            &s.latency,
        );
    }
}

fn instances(o: &mut Exposition, stats: &[UpstreamStats]) {
    o.header(
        "manifold_upstream_breaker_state",
        "gauge",
        "1 for the state each instance's circuit breaker is in.",
    );
    for s in stats {
        for i in &s.instances {
            for (state, name) in [
                (BreakerState::Closed, "closed"),
                (BreakerState::Open, "open"),
                (BreakerState::HalfOpen, "half_open"),
            ] {
                o.line(
                    "manifold_upstream_breaker_state",
                    &[("upstream", &s.name), ("instance", &i.url), ("state", name)],
                    u8::from(i.breaker == state),
                );
            }
        }
    }
    o.header(
        "manifold_upstream_breaker_transitions_total",
        "counter",
        "Circuit-breaker state changes per instance.",
    );
    for s in stats {
        for i in &s.instances {
            o.line(
                "manifold_upstream_breaker_transitions_total",
                &[("upstream", &s.name), ("instance", &i.url)],
                i.breaker_transitions,
            );
        }
    }
    o.header(
        "manifold_upstream_instance_healthy",
        "gauge",
        "1 when the instance passes health checks and is not ejected.",
    );
    for s in stats {
        for i in &s.instances {
            o.line(
                "manifold_upstream_instance_healthy",
                &[("upstream", &s.name), ("instance", &i.url)],
                u8::from(i.healthy && !i.ejected),
            );
        }
    }
}
