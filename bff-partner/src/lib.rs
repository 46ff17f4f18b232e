//! bff-partner: the versioned REST API partners integrate with. Partners authenticate with an
//! API key (`Authorization: Bearer <key>` or `X-Api-Key`), every route under `/v1` needs a
//! scope, errors are `application/problem+json`, `/openapi.json` describes it all and `/docs` renders that.
//!
//! The route table in `api` is the single source of both the router and the OpenAPI document
//! (`openapi`), so what is served and what is documented cannot drift apart. `handlers` and
//! `lists` hold the request handlers, `model` the partner-facing resource shapes and their
//! schemas, `ids` the one rule for ids that both the handlers and the document follow.

#![forbid(unsafe_code)]

pub mod api;
mod docs;
mod handlers;
pub mod ids;
mod lists;
mod model;
pub mod openapi;

use manifold::BffSpec;

pub use api::ROUTES;

/// bff-partner as the core runs it.
pub const SPEC: BffSpec = BffSpec {
    name: "bff-partner",
    default_config_path: "config/partner.toml",
    embedded_config: include_str!("../../config/partner.toml"),
    upstreams: &["orders", "catalog", "shipping"],
    routes: api::router,
};
