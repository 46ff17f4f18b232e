//! `[[endpoints]]`: aggregate endpoints declared in config (`compose` runs them). An endpoint
//! is a path template and named backend calls; each call's path and query are templates
//! filled from the path parameters (`{path.id}`), the query string (`{query.q}`), the
//! caller (`{identity.id}`) or an earlier call's answer (`{orders.items[].id}`: every `id` of
//! the list, joined by commas, for one batched call). A call waits only for the calls its
//! templates name. This module owns the keys, the template syntax and the checks that make a
//! definition that cannot work a config error naming its key.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::route::AuthPolicy;
use super::validate::Problems;
use super::{Config, units};

/// The key listing the optional calls that failed, in an endpoint's answer.
pub const DEGRADED: &str = "degraded";

/// The query parameter selecting an answer's fields (`rest::select_fields`); no template may
/// read it.
pub const FIELDS: &str = "fields";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EndpointConfig {
    /// `/v1/customers/{id}/overview`: literal segments and `{name}` parameters.
    pub path: String,
    #[serde(default)]
    pub auth: AuthPolicy,
    /// Scopes the caller must hold (all of them); 403 otherwise.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The budget of all the calls together.
    #[serde(default = "timeout", with = "units::duration")]
    pub timeout: Duration,
    pub calls: Vec<CallConfig>,
    /// What a REST facade's API description says of it (nothing here changes what is
    /// served): a unique operation name (`getCustomerOverview`), one line, a paragraph
    /// (Markdown), the group it is listed under.
    #[serde(default)]
    pub operation_id: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
}

fn timeout() -> Duration {
    Duration::from_secs(2)
}

/// One backend `GET` of an endpoint, and where its answer goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallConfig {
    pub name: String,
    pub upstream: String,
    /// Path template, e.g. `/users/{path.id}` (each value percent-encoded as one segment).
    pub path: String,
    /// Query templates, e.g. `{ userId = "{path.id}", limit = "3" }`.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// A failed critical call fails the request (502/504 problem); a failed optional one is
    /// listed in `degraded` and its key left out.
    #[serde(default)]
    pub critical: bool,
    /// The answer's key in the result (default: the call's name); `""` merges an object's
    /// fields into the root.
    #[serde(default)]
    pub at: Option<String>,
    /// A dotted path into the answer to keep instead of all of it (`items`).
    #[serde(default)]
    pub select: Option<String>,
    /// Fields kept (of the object, or of each object of a list); empty: all.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Fields dropped.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Fields renamed, `{ old = "new" }`.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Instead of a key of its own: each element of this list is put into the element of the
    /// list at `into` whose `key` equals its `on`, as `as`.
    #[serde(default)]
    pub join: Option<JoinConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JoinConfig {
    /// The result key of the list joined into (another call's `at`).
    pub into: String,
    /// The field of this call's elements to match...
    pub on: String,
    /// ...with this field of the list's elements.
    pub key: String,
    /// The field the matching element is put under.
    #[serde(rename = "as")]
    pub as_field: String,
}

impl CallConfig {
    /// Where the answer goes in the result.
    pub fn key(&self) -> &str {
        self.at.as_deref().unwrap_or(&self.name)
    }

    /// Every template of the call: the path, then the query values.
    pub fn templates(&self) -> impl Iterator<Item = (String, &str)> {
        std::iter::once(("path".to_owned(), self.path.as_str())).chain(
            self.query
                .iter()
                .map(|(name, t)| (format!("query.{name}"), t.as_str())),
        )
    }
}

/// A parsed template: literal text and references.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    Ref(Reference),
}

/// `{source.a.b[].c}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// `path`, `query`, `identity` or a call's name.
    pub source: String,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Field(String),
    /// Every element of a list.
    Each,
}

/// Parses `template`; the error says what is wrong with it.
pub fn parse_template(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{template:?}: a '{{' without its '}}'"))?;
        let inner = &rest[open + 1..open + close];
        parts.push(Part::Ref(
            parse_reference(inner).map_err(|e| format!("{template:?}: {e}"))?,
        ));
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("{template:?}: a '}}' without its '{{'"));
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

fn parse_reference(inner: &str) -> Result<Reference, String> {
    let mut fields = inner.split('.');
    let source = fields.next().unwrap_or("").trim();
    if source.is_empty() {
        return Err("an empty reference".into());
    }
    let mut steps = Vec::new();
    for field in fields {
        let (name, each) = match field.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (field, false),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("{inner:?} has a bad field name {name:?}"));
        }
        steps.push(Step::Field(name.to_owned()));
        if each {
            steps.push(Step::Each);
        }
    }
    if steps.is_empty() {
        return Err(format!("{inner:?} names no field (e.g. `path.id`)"));
    }
    Ok(Reference {
        source: source.to_owned(),
        steps,
    })
}

/// The `{name}` parameters of an endpoint path.
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

impl EndpointConfig {
    /// The query parameters the calls' templates read (`{query.X}`).
    pub fn query_params(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .calls
            .iter()
            .flat_map(|call| call.templates().filter_map(|(_, t)| parse_template(t).ok()))
            .flatten()
            .filter_map(|part| match part {
                Part::Ref(r) if r.source == "query" => match r.steps.first() {
                    Some(Step::Field(name)) => Some(name.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The top-level fields of the answer, which `?fields=` selects among: the keys calls
    /// place the answers under, the (allow-listed, renamed) fields of those merged at the
    /// root, and `degraded` when a call is optional. `None` when a call merged at the root
    /// has no allow-list: its fields are whatever its backend sends, so no selection can be
    /// checked, and the endpoint does not take `fields`.
    pub fn fields(&self) -> Option<Vec<String>> {
        let mut fields: Vec<String> = Vec::new();
        for call in self.calls.iter().filter(|c| c.join.is_none()) {
            match call.key() {
                "" if call.allow.is_empty() => return None,
                "" => fields.extend(
                    call.allow
                        .iter()
                        .filter(|f| !call.deny.contains(f))
                        .map(|f| call.rename.get(f).unwrap_or(f).clone()),
                ),
                key => fields.push(key.to_owned()),
            }
        }
        if self.calls.iter().any(|c| !c.critical) {
            fields.push(DEGRADED.to_owned());
        }
        let mut seen = std::collections::BTreeSet::new();
        fields.retain(|f| seen.insert(f.clone()));
        Some(fields)
    }

    /// The calls each call waits for (by index), from its templates' references.
    pub fn dependencies(&self) -> Vec<Vec<usize>> {
        self.calls
            .iter()
            .map(|call| {
                let mut deps: Vec<usize> = call
                    .templates()
                    .filter_map(|(_, t)| parse_template(t).ok())
                    .flatten()
                    .filter_map(|part| match part {
                        Part::Ref(r) => self.calls.iter().position(|c| c.name == r.source),
                        Part::Text(_) => None,
                    })
                    .collect();
                deps.sort_unstable();
                deps.dedup();
                deps
            })
            .collect()
    }

    /// The calls in waves: each wave only after the calls it depends on. `None`: a cycle.
    pub fn waves(&self) -> Option<Vec<Vec<usize>>> {
        let deps = self.dependencies();
        let mut done = vec![false; self.calls.len()];
        let mut waves = Vec::new();
        while done.iter().any(|d| !d) {
            let wave: Vec<usize> = (0..self.calls.len())
                .filter(|&i| !done[i] && deps[i].iter().all(|&d| done[d]))
                .collect();
            if wave.is_empty() {
                return None;
            }
            for &i in &wave {
                done[i] = true;
            }
            waves.push(wave);
        }
        Some(waves)
    }

    pub(super) fn validate(&self, i: usize, config: &Config, p: &mut Problems) {
        let at = format!("endpoints[{i}]");
        p.check(
            self.path.starts_with('/') && !self.path.contains(['*', '?']),
            format!("{at}.path"),
            "must start with '/' and hold only literal segments and {name} parameters",
        );
        p.check(
            !self.calls.is_empty(),
            format!("{at}.calls"),
            "needs at least one call",
        );
        let params = path_params(&self.path);
        for (j, call) in self.calls.iter().enumerate() {
            let key = |field: &str| format!("{at}.calls[{j}].{field}");
            p.check(
                !call.name.is_empty()
                    && !["path", "query", "identity"].contains(&call.name.as_str())
                    && self.calls.iter().filter(|c| c.name == call.name).count() == 1,
                key("name"),
                "must be unique, and not path, query or identity",
            );
            p.check(
                config.upstreams.contains_key(&call.upstream),
                key("upstream"),
                format!("{:?} is not a configured upstream", call.upstream),
            );
            p.check(
                call.path.starts_with('/'),
                key("path"),
                "must start with '/'",
            );
            for (field, template) in call.templates() {
                let parts = match parse_template(template) {
                    Ok(parts) => parts,
                    Err(e) => {
                        p.push(key(&field), e);
                        continue;
                    }
                };
                for part in parts {
                    let Part::Ref(r) = part else { continue };
                    if let Some(problem) = self.reference_problem(&r, call, &params) {
                        p.push(key(&field), problem);
                    }
                }
            }
            if let Some(join) = &call.join {
                p.check(
                    self.calls
                        .iter()
                        .any(|c| c.name != call.name && c.key() == join.into),
                    key("join.into"),
                    format!("{:?} is not the key of another call", join.into),
                );
            }
        }
        if self.waves().is_none() {
            p.push(
                format!("{at}.calls"),
                "the calls depend on each other in a cycle",
            );
        }
    }

    fn reference_problem(
        &self,
        r: &Reference,
        call: &CallConfig,
        params: &[&str],
    ) -> Option<String> {
        let first = match r.steps.first() {
            Some(Step::Field(f)) => f.as_str(),
            _ => "",
        };
        match r.source.as_str() {
            "path" if !params.contains(&first) => Some(format!(
                "{{path.{first}}} is not a parameter of the endpoint's path"
            )),
            "identity" if first != "id" => Some("the caller is `{identity.id}`".into()),
            "query" if first == FIELDS => Some(format!(
                "{{query.{FIELDS}}} is the answer's field selection (`?{FIELDS}=`), not a \
                 value for a call"
            )),
            "path" | "query" | "identity" => None,
            name if name == call.name => Some(format!("{{{name}...}} names the call itself")),
            name if !self.calls.iter().any(|c| c.name == name) => {
                Some(format!("{{{name}...}} names no call of this endpoint"))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_into_text_and_references() {
        let parts = parse_template("/shipments/{orders.items[].id}x").unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Text("/shipments/".into()),
                Part::Ref(Reference {
                    source: "orders".into(),
                    steps: vec![
                        Step::Field("items".into()),
                        Step::Each,
                        Step::Field("id".into())
                    ],
                }),
                Part::Text("x".into()),
            ]
        );
        assert!(parse_template("/a/{path").is_err());
        assert!(parse_template("/a/{path}").is_err());
        assert!(parse_template("/a/}").is_err());
        assert_eq!(path_params("/v1/customers/{id}/overview"), vec!["id"]);
    }

    fn endpoint(calls: &str) -> EndpointConfig {
        toml::from_str(&format!("path = \"/x/{{id}}\"\n{calls}")).unwrap()
    }

    #[test]
    fn the_fields_of_an_answer_are_known_from_its_declaration() {
        let overview = endpoint(
            r#"
            [[calls]]
            name = "profile"
            upstream = "users"
            path = "/users/{path.id}"
            critical = true
            at = ""
            allow = ["id", "name", "email", "secret"]
            deny = ["secret"]
            rename = { name = "fullName" }
            [[calls]]
            name = "orders"
            upstream = "orders"
            path = "/orders"
            at = "latestOrders"
            [[calls]]
            name = "shipments"
            upstream = "shipping"
            path = "/shipments"
            join = { into = "latestOrders", on = "orderId", key = "id", as = "shipment" }
            "#,
        );
        assert_eq!(
            overview.fields().unwrap(),
            ["id", "fullName", "email", "latestOrders", "degraded"]
        );
        // Every call critical: nothing is ever degraded.
        let critical =
            endpoint("[[calls]]\nname = \"a\"\nupstream = \"u\"\npath = \"/\"\ncritical = true");
        assert_eq!(critical.fields().unwrap(), ["a"]);
        // Merged at the root without an allow-list: the backend's fields, unknowable.
        let open = endpoint("[[calls]]\nname = \"a\"\nupstream = \"u\"\npath = \"/\"\nat = \"\"");
        assert_eq!(open.fields(), None);
    }
}
