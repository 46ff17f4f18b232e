//! Prometheus text (exposition format 0.0.4), written by the components that own the
//! metrics: each implements `MetricFamilies` for what it counts, and a `Registry` lists them
//! in the order the page shows them. Label sets are small and fixed: route templates, bounded
//! operation names, upstream names and instance URLs from the config, outcome classes, never
//! user ids or raw paths.

use std::fmt::Write;
use std::sync::Arc;

use super::metrics::{BUCKETS, HistogramSnapshot};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

    /// The whole `/metrics` page.
    pub fn render(&self) -> String {
        let mut out = Exposition(String::with_capacity(16 * 1024));
        for families in &self.0 {
            families.write(&mut out);
        }
        out.0
    }
}

/// A page of Prometheus text being written.
pub struct Exposition(String);

impl Exposition {
    /// `# HELP` and `# TYPE` of one family.
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample.
    pub fn line(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let o = &mut self.0;
        o.push_str(name);
        write_labels(o, labels, None);
        let _ = writeln!(o, " {value}");
    }

    /// The buckets, sum and count of one histogram.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let o = &mut self.0;
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
