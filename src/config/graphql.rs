//! The `[graphql]` section: how deep, large and costly one operation may be, how many errors
//! one answer carries, whether the schema may be introspected, and request budgets for named
//! operations.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::persisted::PersistedQueriesConfig;
use super::units;
use super::validate::{Problems, positive};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphqlConfig {
    #[serde(default = "defaults::max_depth")]
    pub max_depth: usize,
    #[serde(default = "defaults::max_complexity")]
    pub max_complexity: usize,
    #[serde(default = "defaults::enabled")]
    pub introspection: bool,
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

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: defaults::max_depth(),
            max_complexity: defaults::max_complexity(),
            introspection: true,
            max_fields: defaults::max_fields(),
            max_directives: defaults::max_directives(),
            max_errors: defaults::max_errors(),
            max_cost: defaults::max_cost(),
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
    pub fn enabled() -> bool {
        true
    }
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
