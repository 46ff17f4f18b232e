//! Prometheus text (exposition format 0.0.4), or OpenMetrics 1.0 for a scraper that asks
//! for it (Prometheus does, first), written by the components that own the metrics: each
//! implements `MetricFamilies` for what it counts, and a `Registry` lists them in the order
//! the page shows them. OpenMetrics differs only where its spec says: a counter family is
//! named without `_total` (its samples keep it), the page ends in `# EOF`, and a latency
//! bucket may carry an exemplar, the trace id of a request that landed in it (`Exemplars`),
//! so a dashboard can open the trace behind a slow bucket. Label sets are small and fixed:
//! route templates, bounded operation names, upstream names and instance URLs from the
//! config, outcome classes, never user ids or raw paths.

use std::fmt::Write;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::metrics::{BUCKETS, Exemplar, HistogramSnapshot};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPEN_METRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which text a page is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// What a scraper's `Accept` header asks for: OpenMetrics when it names it (with any
    /// version and a weight above 0: a scraper that lists it parses it), else the
    /// Prometheus text every scraper reads.
    pub fn negotiate(accept: Option<&str>) -> Format {
        // `q=0`: "not this one".
        let refused = |parameter: &str| {
            parameter.split_once('=').is_some_and(|(name, weight)| {
                name.trim() == "q" && weight.trim().parse::<f32>().is_ok_and(|w| w <= 0.0)
            })
        };
        let open_metrics = accept.unwrap_or("").split(',').any(|range| {
            let mut parts = range.split(';');
            parts.next().is_some_and(|media| {
                media
                    .trim()
                    .eq_ignore_ascii_case("application/openmetrics-text")
            }) && !parts.any(refused)
        });
        if open_metrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => CONTENT_TYPE,
            Format::OpenMetrics => OPEN_METRICS_CONTENT_TYPE,
        }
    }
}

/// The metric families of one component, written on each scrape.
pub trait MetricFamilies: Send + Sync {
    fn write(&self, out: &mut Exposition);
}

/// Every component's families, in page order. Built with each gateway generation.
#[derive(Clone, Default)]
pub struct Registry(Vec<Arc<dyn MetricFamilies>>);

impl Registry {
    pub fn register(&mut self, families: Arc<dyn MetricFamilies>) {
        self.0.push(families);
    }

    /// The whole `/metrics` page, in Prometheus text.
    pub fn render(&self) -> String {
        self.render_as(Format::Prometheus)
    }

    /// The whole `/metrics` page in `format`.
    pub fn render_as(&self, format: Format) -> String {
        let mut out = Exposition {
            text: String::with_capacity(16 * 1024),
            format,
        };
        for families in &self.0 {
            families.write(&mut out);
        }
        if format == Format::OpenMetrics {
            out.text.push_str("# EOF\n");
        }
        out.text
    }
}

/// A page being written.
pub struct Exposition {
    text: String,
    format: Format,
}

impl Exposition {
    /// `# HELP` and `# TYPE` of one family (`name` as its samples have it: a counter's ends
    /// in `_total`).
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let name = match self.format {
            Format::OpenMetrics if kind == "counter" => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample.
    pub fn line(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let o = &mut self.text;
        o.push_str(name);
        write_labels(o, labels, None);
        let _ = writeln!(o, " {value}");
    }

    /// The buckets, sum and count of one histogram.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        self.histogram_with_exemplars(name, labels, h, &[]);
    }

    /// `histogram`, each bucket with its exemplar (`exemplars` by bucket, as `h.cumulative`)
    /// when the page is OpenMetrics: Prometheus text has no place for one.
    pub fn histogram_with_exemplars(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        h: &HistogramSnapshot,
        exemplars: &[Option<Exemplar>],
    ) {
        let open_metrics = self.format == Format::OpenMetrics;
        let o = &mut self.text;
        for (i, count) in h.cumulative.iter().enumerate() {
            let le = BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = write!(o, "{name}_bucket");
            write_labels(o, labels, Some(&le));
            let _ = write!(o, " {count}");
            if let Some(Some(e)) = exemplars.get(i).filter(|_| open_metrics) {
                let at = e.at.duration_since(UNIX_EPOCH).unwrap_or_default();
                let _ = write!(
                    o,
                    " # {{trace_id=\"{:032x}\"}} {} {}.{:03}",
                    e.trace_id,
                    e.seconds,
                    at.as_secs(),
                    at.subsec_millis()
                );
            }
            o.push('\n');
        }
        let _ = write!(o, "{name}_sum");
        write_labels(o, labels, None);
        let _ = writeln!(o, " {}", h.sum_seconds);
        let _ = write!(o, "{name}_count");
        write_labels(o, labels, None);
        // OpenMetrics requires the count to be the `+Inf` bucket's; the two are read one after
        // the other while requests finish, so the bucket's (the same snapshot) is the one.
        let count = match h.cumulative.last() {
            Some(&inf) if open_metrics => inf,
            _ => h.count,
        };
        let _ = writeln!(o, " {count}");
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    struct Families;

    impl MetricFamilies for Families {
        fn write(&self, o: &mut Exposition) {
            o.header("demo_requests_total", "counter", "Requests.");
            o.line("demo_requests_total", &[("route", "/a")], 3);
            o.header("demo_seconds", "histogram", "Latency.");
            // Read while a request finished: its bucket counted, `count` not yet.
            let h = HistogramSnapshot {
                cumulative: vec![1; BUCKETS.len()].into_iter().chain([2]).collect(),
                count: 1,
                sum_seconds: 20.0,
            };
            let mut exemplars = vec![None; BUCKETS.len() + 1];
            exemplars[0] = Some(Exemplar {
                trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                seconds: 0.0005,
                at: UNIX_EPOCH + Duration::from_millis(1_733_078_400_250),
            });
            o.histogram_with_exemplars("demo_seconds", &[("route", "/a")], &h, &exemplars);
        }
    }

    fn page(format: Format) -> String {
        let mut registry = Registry::default();
        registry.register(Arc::new(Families));
        registry.render_as(format)
    }

    #[test]
    fn openmetrics_names_counters_without_total_ends_in_eof_and_carries_exemplars() {
        let open = page(Format::OpenMetrics);
        assert!(open.contains("# TYPE demo_requests counter\n"), "{open}");
        assert!(
            open.contains("\ndemo_requests_total{route=\"/a\"} 3\n"),
            "{open}"
        );
        assert!(
            open.contains(
                "\ndemo_seconds_bucket{route=\"/a\",le=\"0.001\"} 1 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.0005 1733078400.250\n"
            ),
            "{open}"
        );
        assert!(
            open.contains("\ndemo_seconds_count{route=\"/a\"} 2\n"),
            "the count is the +Inf bucket's: {open}"
        );
        assert!(open.ends_with("\n# EOF\n"));

        let text = page(Format::Prometheus);
        assert!(
            text.contains("# TYPE demo_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains("\ndemo_seconds_bucket{route=\"/a\",le=\"0.001\"} 1\n"));
        assert!(text.contains("\ndemo_seconds_count{route=\"/a\"} 1\n"));
        assert!(!text.contains("# EOF"));
        assert!(!text.contains("trace_id"));
    }

    #[test]
    fn the_format_is_what_the_scraper_accepts() {
        let prometheus =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        let refused = "application/openmetrics-text; q=0, text/plain";
        assert_eq!(Format::negotiate(Some(refused)), Format::Prometheus);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
    }
}
