//! The metric primitives (counter, gauge, latency histogram with fixed buckets) every
//! component counts with, and the series this gateway records per request: by route template
//! and GraphQL operation (both from small, bounded sets), by outcome class. Each component
//! writes its own series as Prometheus text (`exposition`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

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

/// The index of the bucket `secs` falls in (`BUCKETS.len()` for `+Inf`).
fn bucket(secs: f64) -> usize {
    BUCKETS
        .iter()
        .position(|bound| secs <= *bound)
        .unwrap_or(BUCKETS.len())
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        self.observe_in(bucket(took.as_secs_f64()), took);
    }

    /// `observe`, the bucket already found.
    fn observe_in(&self, index: usize, took: Duration) {
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

/// One observation of a histogram with the trace it belongs to: an OpenMetrics exemplar,
/// which links a latency bucket to a trace that landed in it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    pub trace_id: u128,
    pub seconds: f64,
    pub at: SystemTime,
}

/// The latest exemplar of each bucket of a histogram (`BUCKETS`, then `+Inf`). Written only
/// for requests whose trace is exported, so it costs nothing while tracing is off.
#[derive(Debug, Default)]
pub struct Exemplars([Mutex<Option<Exemplar>>; BUCKETS.len() + 1]);

impl Exemplars {
    fn record(&self, index: usize, seconds: f64, trace_id: u128) {
        let exemplar = Exemplar {
            trace_id,
            seconds,
            at: SystemTime::now(),
        };
        *self.0[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(exemplar);
    }

    /// By bucket, as `HistogramSnapshot::cumulative` orders them.
    pub fn snapshot(&self) -> Vec<Option<Exemplar>> {
        self.0
            .iter()
            .map(|slot| *slot.lock().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }
}

impl HistogramSnapshot {
    /// The `q` quantile (0..1) estimated as Prometheus' `histogram_quantile` does: the
    /// bucket holding the rank, then linear interpolation between its bounds (from 0 for
    /// the first). A rank in the `+Inf` bucket gives the highest finite bound, the most that
    /// can be said. `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * self.count as f64;
        let index = self.cumulative.iter().position(|c| *c as f64 >= rank)?;
        let Some(&upper) = BUCKETS.get(index) else {
            return BUCKETS.last().copied();
        };
        let lower = index.checked_sub(1).map_or(0.0, |i| BUCKETS[i]);
        let below = index.checked_sub(1).map_or(0, |i| self.cumulative[i]);
        let inside = self.cumulative[index] - below;
        if inside == 0 {
            return Some(lower);
        }
        Some(lower + (upper - lower) * (rank - below as f64) / inside as f64)
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

/// Label for requests that matched no route, and for GraphQL operations past the cap.
pub const UNMATCHED: &str = "unmatched";
pub const OTHER: &str = "other";
/// Requests that are not GraphQL operations.
pub const NO_OPERATION: &str = "";

/// Distinct operation names kept as labels; later ones are counted as `other`.
const MAX_OPERATIONS: usize = 64;
/// Distinct GraphQL error codes kept as labels; later ones are counted as `OTHER`.
const MAX_ERROR_CODES: usize = 32;
/// The status codes a series counts one by one: 100 to 599 (a status above is counted as
/// 599, which no server sends on purpose). A route answers with a handful of them, and a
/// code's series appears only once it has been answered, so the label stays small.
const STATUS_CODES: std::ops::RangeInclusive<u16> = 100..=599;

/// One series set: a route template and an operation.
#[derive(Debug)]
pub struct RouteSeries {
    by_code: Box<[Counter]>,
    pub latency: Histogram,
    /// Traced requests in `latency`'s buckets (`record`).
    pub exemplars: Exemplars,
}

impl Default for RouteSeries {
    fn default() -> Self {
        let slots = usize::from(STATUS_CODES.end() - STATUS_CODES.start()) + 1;
        Self {
            by_code: (0..slots).map(|_| Counter::default()).collect(),
            latency: Histogram::default(),
            exemplars: Exemplars::default(),
        }
    }
}

impl RouteSeries {
    /// One answered request; `trace`, the trace id when its trace is exported, becomes the
    /// exemplar of its latency bucket.
    pub fn record(&self, status: u16, took: Duration, trace: Option<u128>) {
        let code = status.clamp(*STATUS_CODES.start(), *STATUS_CODES.end());
        self.by_code[usize::from(code - STATUS_CODES.start())].inc();
        let seconds = took.as_secs_f64();
        let index = bucket(seconds);
        self.latency.observe_in(index, took);
        if let Some(trace) = trace {
            self.exemplars.record(index, seconds, trace);
        }
    }

    /// Every status answered so far, with its count, in order.
    pub fn codes(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.by_code
            .iter()
            .zip(STATUS_CODES)
            .map(|(count, code)| (code, count.get()))
            .filter(|(_, n)| *n > 0)
    }

    /// Requests answered with a status of `class` (`"4xx"`).
    pub fn class(&self, class: &str) -> u64 {
        self.codes()
            .filter(|(code, _)| status_class(*code) == class)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.codes().map(|(_, n)| n).sum()
    }

    pub fn errors(&self) -> u64 {
        self.class("5xx")
    }
}

pub type SeriesKey = (Arc<str>, Arc<str>);

/// Request series by (route template, operation), plus requests in flight.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    series: Mutex<HashMap<SeriesKey, Arc<RouteSeries>>>,
    operations: Mutex<Vec<Arc<str>>>,
    pub in_flight: Gauge,
    /// GraphQL errors by (operation, `extensions.code`).
    graphql_errors: Mutex<BTreeMap<SeriesKey, u64>>,
    error_codes: Mutex<Vec<Arc<str>>>,
    /// Answers served with a backend's part missing, by (route, upstream).
    partial: Mutex<BTreeMap<SeriesKey, u64>>,
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
        bounded_label(&self.operations, name, MAX_OPERATIONS, OTHER)
    }

    /// Counts the errors of one GraphQL answer to `operation`, by their codes (already
    /// bounded by `error_code_label`).
    pub fn graphql_errors(&self, operation: &Arc<str>, codes: &[Arc<str>]) {
        let mut errors = self
            .graphql_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for code in codes {
            *errors.entry((operation.clone(), code.clone())).or_default() += 1;
        }
    }

    /// A GraphQL error's `extensions.code` as a label: the code when it is plain and among
    /// the first `MAX_ERROR_CODES` seen, `OTHER` past them, `NONE` when it has none.
    pub fn error_code_label(&self, code: Option<&str>) -> Arc<str> {
        let Some(code) = code else {
            return "NONE".into();
        };
        let plain = !code.is_empty()
            && code.len() <= 64
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !plain {
            return "OTHER".into();
        }
        bounded_label(&self.error_codes, code, MAX_ERROR_CODES, "OTHER")
    }

    /// An answer on `route` served although `upstream`'s part of it failed.
    pub fn partial_response(&self, route: &Arc<str>, upstream: &Arc<str>) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        *partial
            .entry((route.clone(), upstream.clone()))
            .or_default() += 1;
    }

    /// GraphQL error counts by (operation, code), sorted.
    pub fn graphql_error_counts(&self) -> Vec<(SeriesKey, u64)> {
        let errors = self
            .graphql_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        errors.iter().map(|(k, n)| (k.clone(), *n)).collect()
    }

    /// Partial-answer counts by (route, upstream), sorted.
    pub fn partial_counts(&self) -> Vec<(SeriesKey, u64)> {
        let partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        partial.iter().map(|(k, n)| (k.clone(), *n)).collect()
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

/// `value` when it is among the first `max` of `known` (kept there), else `past`.
fn bounded_label(known: &Mutex<Vec<Arc<str>>>, value: &str, max: usize, past: &str) -> Arc<str> {
    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = known.iter().find(|k| &***k == value) {
        return k.clone();
    }
    if known.len() >= max {
        return past.into();
    }
    let label: Arc<str> = value.into();
    known.push(label.clone());
    label
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
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_as_prometheus_does() {
        let h = Histogram::default();
        // 10 requests between 25 and 50 ms, 10 between 50 and 100 ms.
        for _ in 0..10 {
            h.observe(Duration::from_millis(30));
            h.observe(Duration::from_millis(70));
        }
        let s = h.snapshot();
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
        // Rank 10 is the top of the (0.025, 0.05] bucket; rank 19 is 9/10 into (0.05, 0.1].
        assert!(close(s.quantile(0.5), 0.05), "{:?}", s.quantile(0.5));
        assert!(
            close(s.quantile(0.95), 0.05 + 0.05 * 0.9),
            "{:?}",
            s.quantile(0.95)
        );
        assert!(close(s.quantile(0.25), 0.025 + 0.025 * 0.5));
        // Past the last finite bucket: its bound, not infinity.
        h.observe(Duration::from_secs(60));
        assert_eq!(h.snapshot().quantile(1.0), Some(10.0));
        assert_eq!(Histogram::default().snapshot().quantile(0.5), None);
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
