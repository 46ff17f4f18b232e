//! bff-mobile: the lean GraphQL API of the mobile app. Its one job is the home screen in one
//! request: eight backend services called concurrently in at most two waves (catalog and
//! shipping batched through the request's loaders), trimmed to what the screen draws —
//! counts instead of lists, one small image URL instead of six sizes.

#![forbid(unsafe_code)]

mod schema;

use backends::{Backends, Scope};
use manifold::axum::Router;
use manifold::config::GraphqlConfig;
use manifold::{BffSpec, Gateway, graphql};

pub use schema::MobileSchema;

/// bff-mobile as the core runs it.
pub const SPEC: BffSpec = BffSpec {
    name: "bff-mobile",
    version: env!("CARGO_PKG_VERSION"),
    default_config_path: "config/mobile.toml",
    embedded_config: include_str!("../../config/mobile.toml"),
    upstreams: &[
        "users",
        "cart",
        "notifications",
        "orders",
        "shipping",
        "recommendations",
        "catalog",
        "promotions",
    ],
    routes,
};

/// The schema, with the config's limits applied.
pub fn schema(config: &GraphqlConfig) -> MobileSchema {
    schema::build(config)
}

/// `POST /graphql`, each request with the shop's clients over this generation's upstreams.
fn routes(gateway: &Gateway) -> Router<Gateway> {
    let backends = Backends::new(gateway.upstreams());
    graphql::routes(gateway, schema::builder, move |request, call| {
        Scope::attach(&backends, request, call)
    })
}

#[cfg(test)]
mod tests {
    /// `schemas/mobile.graphql` is generated from this code.
    #[test]
    fn checked_in_schema_matches_the_code() {
        let sdl = super::schema(&Default::default()).sdl();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/mobile.graphql");
        if let Err(e) = manifold::graphql::check_schema_file(path, &sdl, "bff-mobile") {
            panic!("{e}");
        }
    }
}
