//! Fan-out to many services for one request, declared in config (`[[endpoints]]`): each call
//! runs as soon as the calls its templates name have answered (the others in parallel), every
//! call through the upstream's cache and pipeline under the endpoint's deadline; the answers
//! are shaped (`shape`) and placed in one JSON object. A failed optional call becomes an entry
//! in `degraded` (and the calls that needed its answer are skipped, and listed too); a failed
//! critical call fails the request with the mapped problem (502/503/504). Every answer has
//! an `ETag` (`If-None-Match` -> 304), as the REST facades' coded GETs do, and takes
//! `?fields=` when the declaration says what its fields are (`EndpointConfig::fields`).

mod shape;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};

use crate::cache::CachedUpstream;
use crate::config::{
    AuthPolicy, CallConfig, Config, DEGRADED, EndpointConfig, FIELDS, Part, Reference, Step,
};
use crate::error::{Code, Problem};
use crate::request::{CallContext, Deadline, Identity, Principal};
use crate::rest::{FieldSelection, KnownQuery, refuse_unknown_query, select_fields};
use crate::upstream::{UpstreamError, path_segment, query};

/// One declared endpoint, ready to serve.
struct Endpoint {
    calls: Vec<Call>,
    timeout: Duration,
    /// Whether any template reads the query string (else it is not parsed).
    reads_query: bool,
}

struct Call {
    config: CallConfig,
    upstream: CachedUpstream,
    path: Vec<Part>,
    query: Vec<(String, Vec<Part>)>,
    /// The calls whose answers this one's templates read.
    needs: Vec<usize>,
}

/// Mounts every declared endpoint behind `guard` (authentication under its policy, and the
/// rate limits). Endpoints were validated with the config.
pub fn routes(
    config: &Config,
    upstreams: &BTreeMap<String, CachedUpstream>,
    guard: impl Fn(Router, AuthPolicy, &[String]) -> Router,
) -> Router {
    let mut router = Router::new();
    for declared in &config.endpoints {
        let Some(endpoint) = Endpoint::new(declared, upstreams) else {
            continue;
        };
        // `?fields=` where the answer's fields are known (inside `conditional`, so the ETag
        // is the trimmed answer's); `ETag` on every answer, `If-None-Match` -> 304,
        // `Age`/`Warning` from the cache; a query parameter no template reads is a 400.
        let mut known = declared.query_params();
        let mut mounted = Router::new().route(&declared.path, get(serve));
        if let Some(fields) = declared.fields() {
            known.push(FIELDS.to_owned());
            let selection = FieldSelection::resource(fields, vec![DEGRADED.to_owned()]);
            mounted = mounted.route_layer(from_fn_with_state(selection, select_fields));
        }
        let mounted = mounted
            .route_layer(axum::middleware::from_fn(crate::cache::http::conditional))
            .route_layer(from_fn_with_state(
                KnownQuery::new(known),
                refuse_unknown_query,
            ))
            .with_state(Arc::new(endpoint));
        router = router.merge(guard(mounted, declared.auth, &declared.scopes));
    }
    router
}

impl Endpoint {
    fn new(config: &EndpointConfig, upstreams: &BTreeMap<String, CachedUpstream>) -> Option<Self> {
        let deps = config.dependencies();
        let calls = config
            .calls
            .iter()
            .zip(deps)
            .map(|(call, needs)| {
                Some(Call {
                    config: call.clone(),
                    upstream: upstreams.get(&call.upstream)?.clone(),
                    path: crate::config::parse_template(&call.path).ok()?,
                    query: call
                        .query
                        .iter()
                        .map(|(k, t)| Some((k.clone(), crate::config::parse_template(t).ok()?)))
                        .collect::<Option<_>>()?,
                    needs,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        // A cycle (refused by `--check`) would never start.
        config.waves()?;
        Some(Self {
            calls,
            timeout: config.timeout,
            reads_query: !config.query_params().is_empty(),
        })
    }
}

/// What a call came to.
enum Outcome {
    Answered(Value),
    Failed(UpstreamError),
    /// Not made: a call it needed failed or was skipped.
    Skipped,
}

/// The values a request's templates read besides earlier answers.
struct Inputs<'a> {
    path: &'a HashMap<String, String>,
    query: HashMap<String, String>,
    identity: Option<&'a Identity>,
}

async fn serve(
    State(endpoint): State<Arc<Endpoint>>,
    Path(path): Path<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let mut ctx = CallContext::from_parts(&parts);
    if ctx.deadline.remaining() > endpoint.timeout {
        ctx.deadline = Deadline::after(endpoint.timeout);
    }
    let query = parts
        .uri
        .query()
        .filter(|_| endpoint.reads_query)
        .and_then(|q| serde_urlencoded::from_str::<HashMap<String, String>>(q).ok())
        .unwrap_or_default();
    let identity = ctx.identity.clone();
    let inputs = Inputs {
        path: &path,
        query,
        identity: identity.as_deref(),
    };
    let outcomes = run_calls(&endpoint.calls, &inputs, &ctx).await;
    respond(&endpoint, outcomes)
}

/// Every call, each started as soon as the calls it needs have settled (the definition has
/// no cycle: `--check` refuses one).
async fn run_calls(calls: &[Call], inputs: &Inputs<'_>, ctx: &CallContext) -> Vec<Option<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = calls.iter().map(|_| None).collect();
    let mut started = vec![false; calls.len()];
    let mut running = FuturesUnordered::new();
    loop {
        for (i, call) in calls.iter().enumerate() {
            if started[i] || call.needs.iter().any(|&d| outcomes[d].is_none()) {
                continue;
            }
            started[i] = true;
            let blocked = call
                .needs
                .iter()
                .any(|&d| !matches!(outcomes[d], Some(Outcome::Answered(_))));
            let answers = Answers {
                calls,
                outcomes: &outcomes,
            };
            let target = (!blocked).then(|| call.target(inputs, &answers));
            running.push(async move {
                let outcome = match target {
                    None => Outcome::Skipped,
                    Some(target) => match call.upstream.get_json::<Value>(ctx, &target).await {
                        Ok(value) => Outcome::Answered(value),
                        Err(e) => Outcome::Failed(e),
                    },
                };
                (i, outcome)
            });
        }
        match running.next().await {
            Some((i, outcome)) => outcomes[i] = Some(outcome),
            None => return outcomes,
        }
    }
}

impl Call {
    /// The path and query of this call for one request.
    fn target(&self, inputs: &Inputs<'_>, answers: &Answers<'_>) -> String {
        // Path values are encoded one segment each; query values by `query` below.
        let mut target = fill(&self.path, inputs, answers, path_segment);
        let pairs: Vec<(&str, String)> = self
            .query
            .iter()
            .map(|(name, parts)| (name.as_str(), fill(parts, inputs, answers, str::to_owned)))
            .collect();
        if !pairs.is_empty() {
            let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            target.push_str(&query(&borrowed));
        }
        target
    }
}

/// `parts` with each reference's values put in, passed through `encode`, a list's values
/// comma-joined.
fn fill(
    parts: &[Part],
    inputs: &Inputs<'_>,
    answers: &Answers<'_>,
    encode: impl Fn(&str) -> String,
) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Ref(r) => {
                let values: Vec<String> = resolve(r, inputs, answers)
                    .iter()
                    .map(|v| encode(v))
                    .collect();
                out.push_str(&values.join(","));
            }
        }
    }
    out
}

/// The answers so far, by call name.
struct Answers<'a> {
    calls: &'a [Call],
    outcomes: &'a [Option<Outcome>],
}

impl Answers<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        let i = self.calls.iter().position(|c| c.config.name == name)?;
        match &self.outcomes[i] {
            Some(Outcome::Answered(value)) => Some(value),
            _ => None,
        }
    }
}

/// The values `r` stands for: one for a scalar, one per element under `[]`, none when absent.
fn resolve(r: &Reference, inputs: &Inputs<'_>, answers: &Answers<'_>) -> Vec<String> {
    let Some(Step::Field(first)) = r.steps.first() else {
        return Vec::new();
    };
    match r.source.as_str() {
        "path" => inputs.path.get(first).cloned().into_iter().collect(),
        "query" => inputs.query.get(first).cloned().into_iter().collect(),
        "identity" => inputs
            .identity
            .map(|i| match i.principal() {
                Principal::User(id) | Principal::ApiClient(id) => id.clone(),
            })
            .into_iter()
            .collect(),
        call => {
            let mut values = Vec::new();
            if let Some(answer) = answers.get(call) {
                collect(answer, &r.steps, &mut values);
            }
            values
        }
    }
}

/// Follows `steps` into `value`, collecting the scalars it reaches as text.
fn collect(value: &Value, steps: &[Step], out: &mut Vec<String>) {
    match (steps.first(), value) {
        (None, Value::String(s)) => out.push(s.clone()),
        (None, Value::Number(n)) => out.push(n.to_string()),
        (None, Value::Bool(b)) => out.push(b.to_string()),
        (None, _) => {}
        (Some(Step::Field(name)), Value::Object(map)) => {
            if let Some(inner) = map.get(name) {
                collect(inner, &steps[1..], out);
            }
        }
        (Some(Step::Each), Value::Array(items)) => {
            for item in items {
                collect(item, &steps[1..], out);
            }
        }
        _ => {}
    }
}

fn respond(endpoint: &Endpoint, outcomes: Vec<Option<Outcome>>) -> Response {
    let mut root = Map::new();
    let mut degraded = Vec::new();
    let mut joins = Vec::new();
    for (call, outcome) in endpoint.calls.iter().zip(outcomes) {
        match outcome {
            Some(Outcome::Answered(value)) => {
                let shaped = shape::shape(value, &call.config);
                match &call.config.join {
                    Some(join) => joins.push((join, shaped)),
                    None => shape::place(&mut root, call.config.key(), shaped),
                }
            }
            Some(Outcome::Failed(e)) if call.config.critical => {
                return Problem::from(e).into_response();
            }
            Some(Outcome::Skipped) if call.config.critical => {
                return Problem::new(
                    Code::UpstreamUnavailable,
                    format!(
                        "{} could not be called: a call it needs failed",
                        call.config.name
                    ),
                )
                .into_response();
            }
            _ => degraded.push(Value::String(call.config.name.clone())),
        }
    }
    for (join, shaped) in joins {
        shape::join(&mut root, join, shaped);
    }
    if !degraded.is_empty() {
        root.insert(DEGRADED.into(), Value::Array(degraded));
    }
    axum::Json(Value::Object(root)).into_response()
}
