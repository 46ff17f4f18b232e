//! Renders every metric of one BFF as Prometheus text (exposition format 0.0.4). Label sets
//! are small and fixed: route templates, bounded operation names, upstream names and
//! instance URLs from the config, outcome classes — never user ids or raw paths.

use std::fmt::Write;

use crate::cache::CacheStats;
use crate::gateway::Gateway;
use crate::observe::Observer;
use crate::observe::metrics::{BUCKETS, HistogramSnapshot, STATUS_CLASSES};
use crate::upstream::{BreakerState, UpstreamStats};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The whole `/metrics` page.
pub fn render(gateway: &Gateway) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let observer = gateway.observer();
    let o = &mut out;

    header(o, "manifold_build_info", "gauge", "Build of this process.");
    line(
        o,
        "manifold_build_info",
        &[
            ("bff", observer.name()),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1,
    );
    header(
        o,
        "manifold_uptime_seconds",
        "gauge",
        "Seconds since start.",
    );
    line(
        o,
        "manifold_uptime_seconds",
        &[],
        observer.started.elapsed().as_secs(),
    );

    header(
        o,
        "manifold_http_requests_in_flight",
        "gauge",
        "Client requests being served.",
    );
    line(
        o,
        "manifold_http_requests_in_flight",
        &[],
        observer.requests.in_flight.get(),
    );
    let series = observer.requests.snapshot();
    header(
        o,
        "manifold_http_requests_total",
        "counter",
        "Client requests by route template, GraphQL operation and status class.",
    );
    for (route, op, s) in &series {
        for (i, class) in STATUS_CLASSES.iter().enumerate() {
            let n = s.by_class[i].get();
            if n > 0 {
                line(
                    o,
                    "manifold_http_requests_total",
                    &[("route", route), ("operation", op), ("class", class)],
                    n,
                );
            }
        }
    }
    header(
        o,
        "manifold_http_request_duration_seconds",
        "histogram",
        "Client request latency by route template and GraphQL operation.",
    );
    for (route, op, s) in &series {
        histogram(
            o,
            "manifold_http_request_duration_seconds",
            &[("route", route), ("operation", op)],
            &s.latency.snapshot(),
        );
    }

    upstreams(o, gateway);
    rate_limits(o, gateway);
    if let Some(stats) = gateway.cache().map(|c| c.stats()) {
        cache(o, &stats);
    }
    reloads(o, gateway);
    if observer.exporter().is_some() {
        spans(o, observer);
    }
    out
}

fn cache(o: &mut String, cache: &CacheStats) {
    header(
        o,
        "manifold_cache_requests_total",
        "counter",
        "Entity cache lookups by result (stale: served past freshness, in a stale window).",
    );
    for (result, n) in [
        ("hit", cache.hits),
        ("miss", cache.misses),
        ("stale", cache.stale_served),
    ] {
        line(o, "manifold_cache_requests_total", &[("result", result)], n);
    }
    for (name, help, kind, n) in [
        (
            "manifold_cache_coalesced_waits_total",
            "Lookups that waited for another's fetch.",
            "counter",
            cache.coalesced_waits,
        ),
        (
            "manifold_cache_evictions_total",
            "Entries evicted to stay within max_bytes.",
            "counter",
            cache.evictions,
        ),
        (
            "manifold_cache_bytes",
            "Bytes held by the local cache tier.",
            "gauge",
            cache.bytes_used,
        ),
    ] {
        header(o, name, kind, help);
        line(o, name, &[], n);
    }
}

fn reloads(o: &mut String, gateway: &Gateway) {
    let reloads = gateway.lifecycle().reloads();
    header(
        o,
        "manifold_config_reloads_total",
        "counter",
        "Config reloads by result (a failed one keeps the old config).",
    );
    line(
        o,
        "manifold_config_reloads_total",
        &[("result", "success")],
        reloads.succeeded_total(),
    );
    line(
        o,
        "manifold_config_reloads_total",
        &[("result", "failure")],
        reloads.failed_total(),
    );
}

fn spans(o: &mut String, observer: &Observer) {
    header(
        o,
        "manifold_spans_exported_total",
        "counter",
        "Spans sent over OTLP.",
    );
    line(
        o,
        "manifold_spans_exported_total",
        &[],
        observer.export_stats.exported.get(),
    );
    header(
        o,
        "manifold_spans_dropped_total",
        "counter",
        "Spans dropped: export queue full.",
    );
    let dropped = observer.exporter().map_or(0, |e| e.dropped.get());
    line(o, "manifold_spans_dropped_total", &[], dropped);
}

/// Reads one counter of an upstream's stats.
type StatOf = fn(&UpstreamStats) -> u64;

fn upstreams(o: &mut String, gateway: &Gateway) {
    let stats: Vec<_> = gateway.upstreams().values().map(|u| u.stats()).collect();
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
        header(o, name, "counter", help);
        for s in &stats {
            line(o, name, &[("upstream", &s.name)], get(s));
        }
    }
    header(
        o,
        "manifold_upstream_failures_total",
        "counter",
        "Failed tries and fast failures by class.",
    );
    for s in &stats {
        for (class, n) in [
            ("timeout", s.timeouts),
            ("unavailable", s.unavailable),
            ("bad_response", s.bad_responses),
            ("rejected", s.rejected),
            ("circuit_open", s.circuit_open),
            ("saturated", s.saturated),
        ] {
            line(
                o,
                "manifold_upstream_failures_total",
                &[("upstream", &s.name), ("class", class)],
                n,
            );
        }
    }
    header(
        o,
        "manifold_upstream_in_flight",
        "gauge",
        "Backend calls in flight.",
    );
    for s in &stats {
        line(
            o,
            "manifold_upstream_in_flight",
            &[("upstream", &s.name)],
            s.in_flight,
        );
    }
    header(
        o,
        "manifold_upstream_call_duration_seconds",
        "histogram",
        "Whole backend calls, tries and backoff included.",
    );
    for s in &stats {
        histogram(
            o,
            "manifold_upstream_call_duration_seconds",
            &[("upstream", &s.name)],
            &s.latency,
        );
    }
    instances(o, &stats);
}

/// The per-instance series: breaker state and transitions, health.
fn instances(o: &mut String, stats: &[UpstreamStats]) {
    header(
        o,
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
                line(
                    o,
                    "manifold_upstream_breaker_state",
                    &[("upstream", &s.name), ("instance", &i.url), ("state", name)],
                    u8::from(i.breaker == state),
                );
            }
        }
    }
    header(
        o,
        "manifold_upstream_breaker_transitions_total",
        "counter",
        "Circuit-breaker state changes per instance.",
    );
    for s in stats {
        for i in &s.instances {
            line(
                o,
                "manifold_upstream_breaker_transitions_total",
                &[("upstream", &s.name), ("instance", &i.url)],
                i.breaker_transitions,
            );
        }
    }
    header(
        o,
        "manifold_upstream_instance_healthy",
        "gauge",
        "1 when the instance passes health checks and is not ejected.",
    );
    for s in stats {
        for i in &s.instances {
            line(
                o,
                "manifold_upstream_instance_healthy",
                &[("upstream", &s.name), ("instance", &i.url)],
                u8::from(i.healthy && !i.ejected),
            );
        }
    }
}

fn rate_limits(o: &mut String, gateway: &Gateway) {
    let snapshot = gateway
        .rate_limiter()
        .map(|l| l.metrics().snapshot())
        .unwrap_or_default();
    header(
        o,
        "manifold_ratelimit_decisions_total",
        "counter",
        "Rate-limit decisions: allowed, refused (429), unavailable (503, shared store down).",
    );
    for (decision, n) in [
        ("allowed", snapshot.allowed),
        ("refused", snapshot.refused),
        ("unavailable", snapshot.unavailable),
    ] {
        line(
            o,
            "manifold_ratelimit_decisions_total",
            &[("decision", decision)],
            n,
        );
    }
    header(
        o,
        "manifold_ratelimit_local_fallback_total",
        "counter",
        "Decisions taken on local counters because Redis could not be used.",
    );
    line(
        o,
        "manifold_ratelimit_local_fallback_total",
        &[],
        snapshot.fallback,
    );
    header(
        o,
        "manifold_ratelimit_store_degraded",
        "gauge",
        "1 while the shared rate-limit store is out of use.",
    );
    line(
        o,
        "manifold_ratelimit_store_degraded",
        &[],
        u8::from(snapshot.degraded),
    );
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn line(o: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    o.push_str(name);
    write_labels(o, labels, None);
    let _ = writeln!(o, " {value}");
}

fn histogram(o: &mut String, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
    for (i, count) in h.cumulative.iter().enumerate() {
        let le = BUCKETS
            .get(i)
            .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
        let _ = write!(o, "{name}_bucket");
        write_labels(o, labels, Some(&le));
        let _ = writeln!(o, " {count}");
    }
    let _ = write!(o, "{name}_sum");
    write_labels(o, labels, None);
    let _ = writeln!(o, " {}", h.sum_seconds);
    let _ = write!(o, "{name}_count");
    write_labels(o, labels, None);
    let _ = writeln!(o, " {}", h.count);
}

fn write_labels(o: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    o.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            o.push(',');
        }
        first = false;
        let _ = write!(o, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => o.push_str("\\\\"),
                '"' => o.push_str("\\\""),
                '\n' => o.push_str("\\n"),
                c => o.push(c),
            }
        }
        o.push('"');
    }
    o.push('}');
}
