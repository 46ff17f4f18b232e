//! bff-web: the rich GraphQL API of the web client. The same services as the mobile app, a
//! richer shape: the viewer's profile, cart and orders as a cursor connection (each order with
//! its items, their products and review summaries, and its shipment), product details with
//! reviews, catalog search as a connection, and the cart and checkout mutations. Products,
//! review summaries and shipments go through the request's batch loaders, so however many
//! orders and items a page shows, catalog, reviews and shipping are each called once per wave.
//! The REST pass-through routes of `config/web.toml` are served by the core, not here.

#![forbid(unsafe_code)]

mod schema;

use backends::{Backends, Scope};
use manifold::axum::Router;
use manifold::config::GraphqlConfig;
use manifold::{BffSpec, Gateway, graphql};

pub use schema::WebSchema;

/// bff-web as the core runs it.
pub const SPEC: BffSpec = BffSpec {
    name: "bff-web",
    version: env!("CARGO_PKG_VERSION"),
    default_config_path: "config/web.toml",
    embedded_config: include_str!("../../config/web.toml"),
    upstreams: &["users", "orders", "catalog", "cart", "reviews", "shipping"],
    routes,
};

/// The schema, with the config's limits applied.
pub fn schema(config: &GraphqlConfig) -> WebSchema {
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
    /// `schemas/web.graphql` is generated from this code.
    #[test]
    fn checked_in_schema_matches_the_code() {
        let sdl = super::schema(&Default::default()).sdl();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/web.graphql");
        if let Err(e) = manifold::graphql::check_schema_file(path, &sdl, "bff-web") {
            panic!("{e}");
        }
    }
}
