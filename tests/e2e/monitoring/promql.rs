//! A rough reader of PromQL: enough to list the metric names a query selects, with the label
//! matchers written on each, and the recorded series (names with a colon) it reads. Not a
//! parser: identifiers are read outside string literals, and one followed by `{` is a
//! selector. Functions, keywords and the label names of `by (...)` are told apart from the
//! BFFs' metrics by the `manifold_` prefix every one of those has. Grafana's variables
//! (`$bff`, `${bff}`, `$__rate_interval`) are skipped.

/// A metric selected by a query, with the matchers written in its braces.
#[derive(Debug, PartialEq)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<Matcher>,
}

/// `label op "value"` in a selector's braces.
#[derive(Debug, PartialEq)]
pub struct Matcher {
    pub label: String,
    pub op: String,
    pub value: String,
}

/// What one query reads.
#[derive(Debug, Default, PartialEq)]
pub struct Reads {
    /// Selectors of the BFFs' own metrics (`manifold_` names).
    pub selectors: Vec<Selector>,
    /// Recorded series: names with a colon (`bff:manifold_http_requests:rate5m`).
    pub recorded: Vec<String>,
}

const PREFIX: &str = "manifold_";

fn starts_identifier(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn continues_identifier(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// The metric names and matchers `query` reads.
pub fn reads(query: &str) -> Reads {
    let bytes = query.as_bytes();
    let mut reads = Reads::default();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            i = after_string(bytes, i);
        } else if c == b'$' {
            i = after_variable(bytes, i);
        } else if c == b'{' {
            // A selector without a name (`{__name__=~"..."}`): nothing of ours to check.
            i = read_matchers(query, i).1;
        } else if starts_identifier(c) && (i == 0 || !continues_identifier(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && continues_identifier(bytes[i]) {
                i += 1;
            }
            let name = &query[start..i];
            let mut next = i;
            while next < bytes.len() && bytes[next].is_ascii_whitespace() {
                next += 1;
            }
            let mut matchers = Vec::new();
            if bytes.get(next) == Some(&b'{') {
                (matchers, i) = read_matchers(query, next);
            }
            if name.contains(':') {
                reads.recorded.push(name.to_owned());
            } else if name.starts_with(PREFIX) {
                reads.selectors.push(Selector {
                    metric: name.to_owned(),
                    matchers,
                });
            }
        } else {
            i += 1;
        }
    }
    reads
}

/// The index after the string literal that starts at `start` (escapes honoured, except in
/// backquoted raw strings).
fn after_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != quote {
        i += if bytes[i] == b'\\' && quote != b'`' {
            2
        } else {
            1
        };
    }
    i + 1
}

/// The index after a Grafana variable: `$name` or `${name}` / `${name:format}`.
fn after_variable(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    if bytes.get(i) == Some(&b'{') {
        while i < bytes.len() && bytes[i] != b'}' {
            i += 1;
        }
        return i + 1;
    }
    while i < bytes.len() && continues_identifier(bytes[i]) {
        i += 1;
    }
    i
}

/// The matchers in the braces that open at `open`, and the index after the closing brace.
fn read_matchers(query: &str, open: usize) -> (Vec<Matcher>, usize) {
    let bytes = query.as_bytes();
    let mut matchers = Vec::new();
    let mut i = open + 1;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b'}' {
            return (matchers, i + 1);
        }
        let start = i;
        while i < bytes.len() && continues_identifier(bytes[i]) {
            i += 1;
        }
        let label = query[start..i].to_owned();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let op_start = i;
        while i < bytes.len() && matches!(bytes[i], b'=' | b'!' | b'~') {
            i += 1;
        }
        let op = query[op_start..i].to_owned();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if label.is_empty() || op.is_empty() || !matches!(bytes.get(i), Some(b'"' | b'\'')) {
            // Not a matcher list this reader understands: stop here, report what it has.
            return (matchers, i.max(open + 1));
        }
        let end = after_string(bytes, i);
        let value = query[i + 1..end - 1].to_owned();
        matchers.push(Matcher { label, op, value });
        i = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(query: &str) -> Vec<String> {
        reads(query)
            .selectors
            .into_iter()
            .map(|s| s.metric)
            .collect()
    }

    #[test]
    fn finds_metrics_and_their_matchers_but_not_functions_labels_or_strings() {
        let query = r#"histogram_quantile(0.99, sum by (bff, le) (
            rate(manifold_http_request_duration_seconds_bucket{route!="/healthz", op=~"a|b"}[5m])
            * on (job, instance) group_left (bff) manifold_build_info{bff=~"$bff"}
        )) > 0.5 and manifold_admission_limit"#;
        let found = reads(query);
        assert_eq!(
            names(query),
            [
                "manifold_http_request_duration_seconds_bucket",
                "manifold_build_info",
                "manifold_admission_limit"
            ]
        );
        assert_eq!(
            found.selectors[0].matchers,
            [
                Matcher {
                    label: "route".into(),
                    op: "!=".into(),
                    value: "/healthz".into()
                },
                Matcher {
                    label: "op".into(),
                    op: "=~".into(),
                    value: "a|b".into()
                },
            ]
        );
        assert_eq!(found.selectors[1].matchers[0].value, "$bff");
        assert!(found.recorded.is_empty());
    }

    #[test]
    fn recorded_series_variables_and_strings_are_not_metrics() {
        let query = r#"bff:manifold_http_requests:rate5m{class="manifold_x"} / ${manifold_var}
            + rate(manifold_upstream_calls_total [$__rate_interval]) + label_replace(up, "a", "manifold_y", "", "")"#;
        let found = reads(query);
        assert_eq!(found.recorded, ["bff:manifold_http_requests:rate5m"]);
        assert_eq!(names(query), ["manifold_upstream_calls_total"]);
    }
}
