//! Shared GraphQL plumbing: the axum endpoint (`http`: GraphQL over HTTP, POST JSON
//! and GET; bad requests refused with their status, `params`), a document's size and cost
//! bounded before validation (`bounds`, `cost`), persisted operations (`persisted`: APQ and
//! trusted documents), failed fields made `null` as the spec says (`completion`), parsed
//! documents remembered by query text and, once found valid, not validated again
//! (`documents`), objects that only hold data answered in one pass (`plain`), schema
//! hardening from config (depth, complexity, and the mode: introspection and suggestions in
//! development only, `introspection`), GraphiQL at `/ide` in
//! development (`ide`), the scope guard for fields and mutations (`RequireScope`), and the one
//! mapping from a failed backend call to a GraphQL error (`extensions.code`,
//! `extensions.service`), and per-request batching of calls by id (`batch`). What a resolver calls backends with is the BFF's own request data
//! (`routes`' `data`): the core knows no client.

mod answer;
pub mod batch;
mod bounds;
mod completion;
mod cost;
mod documents;
mod http;
mod ide;
mod introspection;
mod json;
mod params;
mod persisted;
mod plain;
mod sdl;
mod verdict;

use std::sync::Arc;

use async_graphql::{ErrorExtensions, ObjectType, SchemaBuilder, SubscriptionType};
use axum::Router;

pub use completion::Completion;
pub use cost::CostModel;
pub use documents::Schemas;
pub use http::endpoint;
pub use plain::{
    Fallible, Nested, Plain, PlainField, PlainList, PlainObject, PlainValue, Unwritten, Writing,
};

use crate::config::{AuthPolicy, GraphqlConfig};
use crate::error::Code;
use crate::gateway::Gateway;
use crate::request::{CallContext, Identity};
use crate::upstream::UpstreamError;

/// What a BFF adds to each request before it runs: its typed clients and batch loaders for
/// the caller's `CallContext` (`routes`).
pub type RequestData =
    Arc<dyn Fn(async_graphql::Request, &CallContext) -> async_graphql::Request + Send + Sync>;

/// Who is calling, as request data of its own (the guard needs nothing else, so schema tests
/// can run guarded fields without backends).
pub struct Caller(pub Option<Arc<Identity>>);

/// Field guard: `#[graphql(guard = "RequireScope(\"invoices:write\")")]`. A caller without
/// the scope gets a `FORBIDDEN` error on that field only (it resolves to `null`); the rest of
/// the operation runs, and the field's resolver, hence any backend call, never does.
pub struct RequireScope(pub &'static str);

impl async_graphql::Guard for RequireScope {
    async fn check(&self, ctx: &async_graphql::Context<'_>) -> async_graphql::Result<()> {
        let identity = ctx.data::<Caller>()?.0.as_deref();
        match identity {
            Some(identity) if identity.has_scope(self.0) => Ok(()),
            Some(_) => Err(error(
                Code::Forbidden,
                format!("this requires scope {}", self.0),
            )),
            None => Err(error(Code::Unauthenticated, "a token is required")),
        }
    }
}

/// Applies the config's limits and mode to a schema under construction: in production no
/// introspection, and no "did you mean" suggestions (they name the schema's fields to anyone
/// who misspells one).
pub fn harden<Q, M, S>(
    builder: SchemaBuilder<Q, M, S>,
    config: &GraphqlConfig,
) -> SchemaBuilder<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let builder = builder
        .limit_depth(config.max_depth)
        .limit_complexity(config.max_complexity)
        .limit_recursive_depth(32);
    if config.mode.is_development() {
        builder
    } else {
        builder.disable_introspection().disable_suggestions()
    }
}

/// The usual GraphQL BFF: `POST /graphql` executing the schema `builder` makes, behind the
/// caller's JWT (and the rate limits); in development mode also the IDE at `GET /ide`, which
/// is public (the operations it sends carry the caller's own header). `data` adds the BFF's own request data (its typed
/// clients, its batch loaders) to each request before it runs.
pub fn routes<Q, M, S>(
    gateway: &Gateway,
    builder: impl Fn() -> SchemaBuilder<Q, M, S>,
    data: impl Fn(async_graphql::Request, &CallContext) -> async_graphql::Request
    + Send
    + Sync
    + 'static,
) -> Router<Gateway>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let schemas = Schemas::new(builder, &gateway.config().graphql);
    let api = Router::new().route(
        "/graphql",
        endpoint(schemas, &gateway.config().graphql, Arc::new(data)),
    );
    let api = gateway.protect_operations(api, AuthPolicy::Jwt);
    if gateway.config().graphql.mode.is_development() {
        api.merge(ide::routes())
    } else {
        api
    }
}

impl ErrorExtensions for UpstreamError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.public_message()).extend_with(|_, e| {
            e.set("code", self.code().as_str());
            e.set("service", self.service.as_str());
        })
    }
}

/// `.gql()` on a backend result: the error becomes a GraphQL error with its code and service
/// (a plain `?` would keep only the message).
pub trait UpstreamResultExt<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> UpstreamResultExt<T> for Result<T, UpstreamError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| e.extend())
    }
}

/// A GraphQL error with a stable code, for resolvers' own failures.
pub fn error(code: Code, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, e| e.set("code", code.as_str()))
}

/// For the test that guards a checked-in schema file (`schemas/*.graphql`): with
/// `UPDATE_SCHEMAS` set it rewrites `path` with `sdl`; otherwise it fails, naming the file and
/// the command that regenerates it, when the file differs from the code.
pub fn check_schema_file(path: &str, sdl: &str, package: &str) -> Result<(), String> {
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(path, sdl).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    if on_disk == sdl {
        Ok(())
    } else {
        Err(format!(
            "{path} differs from the code; run UPDATE_SCHEMAS=1 cargo test -p {package}"
        ))
    }
}
