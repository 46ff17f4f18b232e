//! The `[graphql]` section: production or development mode (what the schema tells a caller
//! about itself, and the IDE), how deep, large and costly one operation may be, how many
//! errors one answer carries, and request budgets for named operations.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::persisted::PersistedQueriesConfig;
use super::units;
use super::validate::{Problems, positive};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GraphqlConfig {
    /// What the schema tells callers about itself; production unless said otherwise.
    #[serde(default)]
    pub mode: GraphqlMode,
    #[serde(default = "defaults::max_depth")]
    pub max_depth: usize,
    #[serde(default = "defaults::max_complexity")]
    pub max_complexity: usize,
    /// Fields an operation may select once its fragments are expanded (every spread counted),
    /// checked in linear time before validation: a fragment bomb is refused at once.
    #[serde(default = "defaults::max_fields")]
    pub max_fields: u64,
    /// Directives on one field, fragment or definition.
    #[serde(default = "defaults::max_directives")]
    pub max_directives: usize,
    /// Errors in one answer; the rest are summarised in one more.
    #[serde(default = "defaults::max_errors")]
    pub max_errors: usize,
    /// The most an operation may cost (`graphql::cost`: a field is one, times the items of
    /// every list around it), checked before it runs.
    #[serde(default = "defaults::max_cost")]
    pub max_cost: u64,
    /// Operations one POST may carry as a JSON array (a batch), each costed, charged and
    /// answered on its own; 0, the default, accepts no batch.
    #[serde(default)]
    pub max_batch: usize,
    /// Items a list field without a `first`/`last`/`limit` argument is assumed to return.
    #[serde(default = "defaults::default_list_size")]
    pub default_list_size: u64,
    /// The same, per field: `list_sizes = { "Order.items" = 20 }`.
    #[serde(default)]
    pub list_sizes: BTreeMap<String, u64>,
    /// `[graphql.persisted_queries]`: APQ and trusted documents.
    #[serde(default)]
    pub persisted_queries: PersistedQueriesConfig,
    /// Request budgets by operation name, replacing `server.request_timeout` for them:
    /// `operation_timeouts = { Home = "800ms" }`.
    #[serde(default, with = "units::duration_map")]
    pub operation_timeouts: BTreeMap<String, Duration>,
}

/// The old `introspection` switch, and what replaced it (`load` says so instead of "unknown
/// key"): `mode` decides introspection, suggestions and the IDE together, so no config can
/// open the schema again in production with one forgotten line.
pub(super) const REMOVED_INTROSPECTION: (&str, &str) = (
    "graphql.introspection",
    "removed: use graphql.mode = \"development\" (introspection, suggestions and the IDE at \
     /ide) or \"production\" (all three off, the default)",
);

/// `mode = "production" | "development"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GraphqlMode {
    /// For clients you do not control: no introspection (`__schema`, `__type`), no "did you
    /// mean" suggestions naming fields in errors, no IDE.
    #[default]
    Production,
    /// For people building clients: introspection (the standard IntrospectionQuery too, past
    /// the depth and complexity limits), suggestions, and GraphiQL at `GET /ide`.
    Development,
}

impl GraphqlMode {
    pub fn is_development(self) -> bool {
        self == Self::Development
    }
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            mode: GraphqlMode::default(),
            max_depth: defaults::max_depth(),
            max_complexity: defaults::max_complexity(),
            max_fields: defaults::max_fields(),
            max_directives: defaults::max_directives(),
            max_errors: defaults::max_errors(),
            max_cost: defaults::max_cost(),
            max_batch: 0,
            default_list_size: defaults::default_list_size(),
            list_sizes: BTreeMap::new(),
            persisted_queries: PersistedQueriesConfig::default(),
            operation_timeouts: BTreeMap::new(),
        }
    }
}

impl GraphqlConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.max_depth > 0,
            "graphql.max_depth",
            "must be greater than 0",
        );
        p.check(
            self.max_complexity > 0,
            "graphql.max_complexity",
            "must be greater than 0",
        );
        p.check(
            self.max_fields > 0,
            "graphql.max_fields",
            "must be greater than 0",
        );
        p.check(
            self.max_directives > 0,
            "graphql.max_directives",
            "must be greater than 0",
        );
        p.check(
            self.max_errors > 0,
            "graphql.max_errors",
            "must be greater than 0",
        );
        p.check(
            self.max_cost > 0,
            "graphql.max_cost",
            "must be greater than 0",
        );
        self.persisted_queries.validate(p);
        for (field, size) in &self.list_sizes {
            p.check(
                field
                    .split_once('.')
                    .is_some_and(|(t, f)| !t.is_empty() && !f.is_empty()),
                format!("graphql.list_sizes.{field}"),
                "must name a field as \"Type.field\"",
            );
            p.check(
                *size > 0,
                format!("graphql.list_sizes.{field}"),
                "must be greater than 0",
            );
        }
        for (operation, budget) in &self.operation_timeouts {
            p.check(
                positive(*budget),
                format!("graphql.operation_timeouts.{operation}"),
                "must be greater than 0",
            );
        }
    }
}

mod defaults {
    pub fn max_depth() -> usize {
        12
    }
    pub fn max_complexity() -> usize {
        1000
    }
    pub fn max_fields() -> u64 {
        2000
    }
    pub fn max_directives() -> usize {
        4
    }
    pub fn max_errors() -> usize {
        20
    }
    pub fn max_cost() -> u64 {
        10_000
    }
    pub fn default_list_size() -> u64 {
        10
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, GraphqlMode};

    fn parse(graphql: &str) -> Result<Config, crate::config::ConfigErrors> {
        let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n[graphql]\n{graphql}\n");
        Config::parse(&text, "test", Vec::new(), &[])
    }

    #[test]
    fn the_mode_is_production_unless_development_is_asked_for() {
        assert_eq!(parse("").unwrap().graphql.mode, GraphqlMode::Production);
        let config = parse("mode = \"development\"").unwrap();
        assert!(config.graphql.mode.is_development());
        let shown = serde_json::to_value(&config.graphql).unwrap();
        assert_eq!(shown["mode"], "development");
        assert!(shown.get("introspection").is_none(), "{shown}");
    }

    #[test]
    fn a_wrong_mode_and_the_removed_introspection_key_are_named() {
        let wrong = parse("mode = \"staging\"").unwrap_err();
        assert_eq!(wrong.errors[0].key, "graphql.mode", "{wrong}");
        for old in ["introspection = true", "introspection = false"] {
            let removed = parse(old).unwrap_err();
            assert_eq!(removed.errors.len(), 1, "{removed}");
            assert_eq!(removed.errors[0].key, "graphql.introspection", "{removed}");
            assert!(
                removed.errors[0].message.contains("graphql.mode"),
                "{removed}"
            );
        }
    }
}
