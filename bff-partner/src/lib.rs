//! bff-partner: the versioned REST API partners integrate with. Partners authenticate with an
//! API key (`Authorization: Bearer <key>` or `X-Api-Key`), every route under `/v1` needs a
//! scope (but `/v1/usage`, where any key reads its own quotas and limits), errors are
//! `application/problem+json`, `/openapi.json` describes it all and `/docs` renders that.
//!
//! The route table in `api` is the single source of both the router and the OpenAPI document
//! (`openapi`), so what is served and what is documented cannot drift apart. `handlers` and
//! `lists` hold the request handlers, `model` the partner-facing resource shapes and their
//! schemas, `ids` the one rule for ids that both the handlers and the document follow,
//! `usage` the schemas of a key's usage (served by the core).

#![forbid(unsafe_code)]

pub mod api;
mod docs;
mod handlers;
pub mod ids;
mod lists;
mod model;
pub mod openapi;
mod usage;

use manifold::BffSpec;

pub use api::ROUTES;

/// bff-partner as the core runs it.
pub const SPEC: BffSpec = BffSpec {
    name: "bff-partner",
    version: env!("CARGO_PKG_VERSION"),
    default_config_path: "config/partner.toml",
    embedded_config: include_str!("../../config/partner.toml"),
    upstreams: &["orders", "catalog", "shipping"],
    routes: api::router,
};
