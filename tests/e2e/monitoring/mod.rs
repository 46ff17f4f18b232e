//! The monitoring files kept true to the code. The three BFFs run (one set of demo backends,
//! a little traffic each, one backend failing for a moment so that a 5xx is counted), their
//! `/metrics` are scraped, and every metric that deploy/prometheus/alerts.yml and
//! deploy/grafana/manifold.json select must be in one of them: by its sample name, or as a
//! declared family (`# TYPE`), or as a histogram family's `_bucket`, `_sum` or `_count`. Each
//! label a selector matches on must be a label of that metric, and each `label="value"` a
//! value some series has. A misspelt name or label fails the test. Each scrape also passes
//! `promtool check metrics`, Prometheus's own linter, when promtool is installed (CI); and
//! scraped as Prometheus scrapes (OpenMetrics first), each page passes prometheus_client's
//! strict OpenMetrics parser (`openmetrics-check`, installed by CI).

mod promql;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use demo_services::Service;
use serde_json::{Value, json};
use yaml_rust2::YamlLoader;

use crate::harness::{Stack, run_tool};
use crate::mobile::HOME;
use crate::observe::prom::Samples;
use promql::Reads;

/// The project root (this crate is `tests/`).
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Labels Prometheus gives every series from the scrape target: a selector may match them
/// whatever the exposition says.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// What the BFFs expose: sample names with their label sets, and declared families by type.
#[derive(Default)]
struct Exposed {
    series: BTreeMap<String, Vec<BTreeMap<String, String>>>,
    families: BTreeMap<String, String>,
}

impl Exposed {
    fn add(&mut self, text: &str) {
        for (name, labels) in Samples::parse(text).series() {
            let sets = self.series.entry(name.to_owned()).or_default();
            sets.push(labels.clone());
        }
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                self.families.insert(name.to_owned(), kind.to_owned());
            }
        }
    }

    /// The label sets of `name`, or why it is not exposed.
    fn label_sets(&self, name: &str) -> Result<&[BTreeMap<String, String>], String> {
        if let Some(sets) = self.series.get(name) {
            return Ok(sets);
        }
        let histogram_part = ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .and_then(|family| self.families.get(family))
                .is_some_and(|kind| kind == "histogram" || kind == "summary")
        });
        if histogram_part || self.families.contains_key(name) {
            return Ok(&[]);
        }
        Err(format!("{name} is not in any BFF's /metrics"))
    }
}

/// Everything wrong with `query` (read at `place`) against what the BFFs expose.
fn problems_of(
    place: &str,
    query: &str,
    exposed: &Exposed,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    let Reads {
        selectors,
        recorded: reads_recorded,
    } = promql::reads(query);
    let mut problems = Vec::new();
    for name in reads_recorded {
        if !recorded.contains(&name) {
            problems.push(format!(
                "{place}: {name} is recorded by no rule in alerts.yml"
            ));
        }
    }
    for selector in selectors {
        let sets = match exposed.label_sets(&selector.metric) {
            Ok(sets) => sets,
            Err(e) => {
                problems.push(format!("{place}: {e}"));
                continue;
            }
        };
        for m in &selector.matchers {
            if TARGET_LABELS.contains(&m.label.as_str()) || m.label == "__name__" {
                continue;
            }
            // The exposition's own `instance` (a backend's URL) is renamed by Prometheus.
            let label = if m.label == "exported_instance" {
                "instance"
            } else {
                &m.label
            };
            let mut values = sets
                .iter()
                .filter_map(|labels| labels.get(label))
                .peekable();
            if sets.is_empty() {
                problems.push(format!(
                    "{place}: no series of {} to check the label {} against: the test's traffic should make one",
                    selector.metric, m.label
                ));
            } else if values.peek().is_none() {
                problems.push(format!(
                    "{place}: {} has no label {}",
                    selector.metric, m.label
                ));
            } else if m.op == "=" && !values.any(|v| *v == m.value) {
                problems.push(format!(
                    "{place}: no series {}{{{}=\"{}\"}}",
                    selector.metric, m.label, m.value
                ));
            }
        }
    }
    problems
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (where, query) of every rule in alerts.yml, and the names its recording rules define.
fn alert_queries() -> (Vec<(String, String)>, BTreeSet<String>) {
    let docs = YamlLoader::load_from_str(&read("deploy/prometheus/alerts.yml"))
        .expect("alerts.yml parses");
    let mut queries = Vec::new();
    let mut recorded = BTreeSet::new();
    for group in docs[0]["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .expect("alert or record");
            if let Some(record) = rule["record"].as_str() {
                recorded.insert(record.to_owned());
            }
            let expr = rule["expr"].as_str().expect("expr").to_owned();
            queries.push((format!("alerts.yml {name}"), expr));
        }
    }
    (queries, recorded)
}

/// (where, query) of every panel query and query variable of the dashboard.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/manifold.json")).expect("dashboard JSON");
    let mut queries = Vec::new();
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        let query = &variable["query"];
        if let Some(q) = query["query"]
            .as_str()
            .or(query.as_str())
            .filter(|_| variable["type"] == "query")
        {
            queries.push((
                format!(
                    "manifold.json variable ${}",
                    variable["name"].as_str().unwrap_or_default()
                ),
                q.to_owned(),
            ));
        }
    }
    let panels = dashboard["panels"].as_array().expect("panels");
    let nested = panels
        .iter()
        .filter_map(|p| p["panels"].as_array())
        .flatten();
    for panel in panels.iter().chain(nested) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let place = format!(
                "manifold.json panel {:?} {}",
                panel["title"].as_str().unwrap_or_default(),
                target["refId"].as_str().unwrap_or_default()
            );
            queries.push((place, target["expr"].as_str().expect("expr").to_owned()));
        }
    }
    queries
}

/// Prometheus 2.x's scrape `Accept`: OpenMetrics first.
pub(crate) const PROMETHEUS_ACCEPT: &str = concat!(
    "application/openmetrics-text;version=1.0.0,",
    "application/openmetrics-text;version=0.0.1;q=0.75,",
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
);

/// An OpenMetrics page (or why there is none) from `openmetrics-check`, prometheus_client's
/// strict parser (.ci/openmetrics-check.py, linked by CI); `None` where it is not installed,
/// outside CI.
pub(crate) fn openmetrics_check(page: &str) -> Option<Result<String, String>> {
    let out = run_tool("openmetrics-check", &[], Some(page))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Some(if out.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    })
}

/// The three BFFs on one set of backends, after a little traffic each (a 5xx included):
/// their `/metrics` as Prometheus text.
async fn scrape_after_traffic() -> Vec<String> {
    scrape_after_traffic_as("text/plain").await
}

/// `scrape_after_traffic`, each page in the format `accept` asks for.
async fn scrape_after_traffic_as(accept: &str) -> Vec<String> {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let web = stack.start_instance(&bff_web::SPEC, |_| {}).await;
    let partner = stack.start_instance(&bff_partner::SPEC, |_| {}).await;
    let token = stack.token("42", "mobile", &[]).await;
    let (status, _) = stack.graphql(Some(&token), HOME, json!({})).await;
    assert_eq!(status, 200, "the home query");
    let order = stack
        .http
        .get(format!("{}/v1/orders/o-42-1", partner.url()))
        .header("x-api-key", "demo-partner-key")
        .send()
        .await
        .expect("bff-partner reachable");
    assert_eq!(order.status(), 200, "the partner's order");
    // users fails every call: bff-web's pass-through route answers a 5xx.
    stack
        .chaos(Service::Users, json!({ "error_rate": 1.0 }))
        .await;
    let web_token = stack.token("42", "web", &[]).await;
    let failed = stack
        .http
        .get(format!("{}/api/users/42", web.url()))
        .bearer_auth(&web_token)
        .send()
        .await
        .expect("bff-web reachable");
    assert!(failed.status().is_server_error(), "{}", failed.status());
    stack.reset_chaos(Service::Users).await;

    let mut pages = Vec::new();
    for admin in [stack.bff.admin_url(), web.admin_url(), partner.admin_url()] {
        let url = format!("{}/metrics", admin.expect("admin listener enabled"));
        let page = stack
            .http
            .get(url)
            .header("accept", accept)
            .send()
            .await
            .expect("admin reachable");
        assert_eq!(page.status(), 200);
        pages.push(page.text().await.expect("metrics text"));
    }
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboard_select_only_metrics_the_bffs_export() {
    let pages = scrape_after_traffic().await;
    let mut exposed = Exposed::default();
    for page in &pages {
        exposed.add(page);
    }
    let (mut queries, recorded) = alert_queries();
    let alerts = queries.len();
    queries.extend(dashboard_queries());
    assert!(
        alerts >= 8 && queries.len() > alerts + 20,
        "{alerts} rules, {} queries",
        queries.len()
    );
    let mut selected = BTreeSet::new();
    let mut problems = Vec::new();
    for (place, query) in &queries {
        selected.extend(promql::reads(query).selectors.into_iter().map(|s| s.metric));
        problems.extend(problems_of(place, query, &exposed, &recorded));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The families the brief names are all watched.
    for family in [
        "manifold_http_requests_total",
        "manifold_http_request_duration_seconds_bucket",
        "manifold_upstream_breaker_state",
        "manifold_admission_shed_total",
        "manifold_ratelimit_store_degraded",
        "manifold_cache_requests_total",
        "manifold_upstream_call_duration_seconds_bucket",
    ] {
        assert!(selected.contains(family), "nothing selects {family}");
    }
}

/// The check above is only worth something if it catches a slip: a misspelt name, a label
/// the metric does not have, a value no series has, an undefined recorded series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_metric_label_or_value_is_caught() {
    let pages = scrape_after_traffic().await;
    let mut exposed = Exposed::default();
    for page in &pages {
        exposed.add(page);
    }
    let recorded = BTreeSet::from(["bff:manifold_http_requests:rate5m".to_owned()]);
    let check = |query: &str| problems_of("test", query, &exposed, &recorded);
    // Right: a histogram's parts, a renamed instance label, a value present, a recorded name.
    for good in [
        r#"rate(manifold_http_request_duration_seconds_bucket{route="/graphql"}[5m])"#,
        "manifold_upstream_call_duration_seconds_count",
        r#"manifold_upstream_breaker_state{exported_instance=~".+", state="open", job="x"}"#,
        r#"rate(manifold_http_requests_total{class="5xx"}[5m])"#,
        "bff:manifold_http_requests:rate5m",
    ] {
        assert_eq!(check(good), Vec::<String>::new(), "{good}");
    }
    for (bad, says) in [
        (
            "rate(manifold_http_request_total[5m])",
            "manifold_http_request_total is not",
        ),
        (
            "manifold_admission_shed_count",
            "manifold_admission_shed_count is not",
        ),
        (
            r#"manifold_upstream_failures_total{klass="timeout"}"#,
            "has no label klass",
        ),
        (
            r#"manifold_upstream_failures_total{class="timed_out"}"#,
            "no series manifold_upstream_failures_total{class=\"timed_out\"}",
        ),
        (
            r#"manifold_http_requests_total{bff="bff-web"}"#,
            "has no label bff",
        ),
        ("bff:manifold_http_request:rate5m", "recorded by no rule"),
    ] {
        let found = check(bad);
        assert!(
            found.len() == 1 && found[0].contains(says),
            "{bad}: {found:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_pass_promtool_check_metrics() {
    let pages = scrape_after_traffic().await;
    for page in pages {
        let Some(out) = run_tool("promtool", &["check", "metrics"], Some(&page)) else {
            return;
        };
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool check metrics: {said}\n{page}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_asked_for_as_openmetrics_pass_its_parser() {
    for page in scrape_after_traffic_as(PROMETHEUS_ACCEPT).await {
        assert!(page.ends_with("# EOF\n"), "{page}");
        let Some(checked) = openmetrics_check(&page) else {
            return;
        };
        if let Err(e) = checked {
            panic!("openmetrics-check: {e}\n{page}");
        }
    }
}
