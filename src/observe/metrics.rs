//! The metric primitives (counter, gauge, latency histogram with fixed buckets) every
//! component counts with, and the series this gateway records per request: by route template
//! and GraphQL operation (both from small, bounded sets), by outcome class. Each component
//! writes its own series as Prometheus text (`exposition`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (requests in flight).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency buckets; `+Inf` is implied.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with the fixed `BUCKETS` (non-cumulative counts; rendering sums them).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A copy of a histogram at one moment.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HistogramSnapshot {
    /// Cumulative counts per bucket of `BUCKETS`, then `+Inf`.
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let index = BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

impl HistogramSnapshot {
    /// The bucket bound under which `q` (0..1) of the observations fall: an upper estimate.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        let index = self.cumulative.iter().position(|c| *c >= rank)?;
        Some(BUCKETS.get(index).copied().unwrap_or(f64::INFINITY))
    }
}

/// Outcome class of a client request, from its status.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Label for requests that matched no route, and for GraphQL operations past the cap.
pub const UNMATCHED: &str = "unmatched";
pub const OTHER: &str = "other";
/// Requests that are not GraphQL operations.
pub const NO_OPERATION: &str = "";

/// Distinct operation names kept as labels; later ones are counted as `other`.
const MAX_OPERATIONS: usize = 64;

/// One series set: a route template and an operation.
#[derive(Debug, Default)]
pub struct RouteSeries {
    pub by_class: [Counter; 5],
    pub latency: Histogram,
}

impl RouteSeries {
    pub fn record(&self, status: u16, took: Duration) {
        let class = status_class(status);
        if let Some(i) = STATUS_CLASSES.iter().position(|c| *c == class) {
            self.by_class[i].inc();
        }
        self.latency.observe(took);
    }

    pub fn total(&self) -> u64 {
        self.by_class.iter().map(Counter::get).sum()
    }

    pub fn errors(&self) -> u64 {
        self.by_class[4].get()
    }
}

type SeriesKey = (Arc<str>, Arc<str>);

/// Request series by (route template, operation), plus requests in flight.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    series: Mutex<HashMap<SeriesKey, Arc<RouteSeries>>>,
    operations: Mutex<Vec<Arc<str>>>,
    pub in_flight: Gauge,
}

impl RequestMetrics {
    /// The series of `route` (a template from the config or the BFF's code, never a raw path)
    /// and `operation` (already bounded by `operation_label`).
    pub fn series(&self, route: &str, operation: &str) -> Arc<RouteSeries> {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = series
            .iter()
            .find(|((r, o), _)| &**r == route && &**o == operation)
            .map(|(_, s)| s.clone())
        {
            return s;
        }
        let s = Arc::new(RouteSeries::default());
        series.insert((route.into(), operation.into()), s.clone());
        s
    }

    /// A GraphQL operation name as a label: the name when it is plain and among the first
    /// `MAX_OPERATIONS` seen, else `other` (clients choose names; labels must stay few).
    pub fn operation_label(&self, name: Option<&str>) -> Arc<str> {
        let Some(name) = name else {
            return "anonymous".into();
        };
        let plain = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain {
            return OTHER.into();
        }
        let mut known = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = known.iter().find(|k| &***k == name) {
            return k.clone();
        }
        if known.len() >= MAX_OPERATIONS {
            return OTHER.into();
        }
        let label: Arc<str> = name.into();
        known.push(label.clone());
        label
    }

    /// Every series, sorted by route then operation.
    pub fn snapshot(&self) -> Vec<(Arc<str>, Arc<str>, Arc<RouteSeries>)> {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = series
            .iter()
            .map(|((r, o), s)| (r.clone(), o.clone(), s.clone()))
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[4], 2);
        assert_eq!(*s.cumulative.last().unwrap(), 3);
        assert_eq!(s.quantile(0.5), Some(0.05));
        assert_eq!(s.quantile(1.0), Some(f64::INFINITY));
    }

    #[test]
    fn operation_labels_stay_few() {
        let m = RequestMetrics::default();
        assert_eq!(&*m.operation_label(Some("Home")), "Home");
        assert_eq!(&*m.operation_label(Some("user 42")), OTHER);
        assert_eq!(&*m.operation_label(None), "anonymous");
        for i in 0..100 {
            m.operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(&*m.operation_label(Some("Op99")), OTHER);
        assert_eq!(&*m.operation_label(Some("Home")), "Home");
    }
}
