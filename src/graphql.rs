//! Shared GraphQL plumbing: the axum endpoint (POST JSON, GraphQL-over-HTTP content
//! negotiation, parsed documents remembered by query text, and once found valid not
//! validated again), schema hardening from config (depth, complexity, introspection), the
//! per-request data every resolver finds (`Scope`), the scope guard for fields and mutations
//! (`RequireScope`), and the one mapping from a failed backend call to a GraphQL error
//! (`extensions.code`, `extensions.service`).

use async_graphql::{
    ErrorExtensions, ObjectType, Schema, SchemaBuilder, SubscriptionType, ValidationMode,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::auth::Identity;
use crate::backends::{Backends, Loaders};
use crate::config::{AuthPolicy, GraphqlConfig};
use crate::gateway::Gateway;
use crate::ratelimit::OperationCharge;
use crate::upstream::{CallContext, UpstreamError};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// What a resolver needs to call backends for the current client request.
pub struct Scope {
    pub backends: Backends,
    pub call: CallContext,
    pub loaders: Loaders,
}

impl Scope {
    /// The scope of the request being resolved. Every request executed through `endpoint`
    /// has one.
    pub fn of<'a>(ctx: &async_graphql::Context<'a>) -> async_graphql::Result<&'a Scope> {
        ctx.data::<Scope>()
    }
}

/// Who is calling, as request data of its own (the guard needs nothing else, so schema tests
/// can run guarded fields without backends).
pub struct Caller(pub Option<Arc<Identity>>);

/// Field guard: `#[graphql(guard = "RequireScope(\"orders:write\")")]`. A caller without
/// the scope gets a `FORBIDDEN` error on that field only (it resolves to `null`); the rest of
/// the operation runs, and the field's resolver, hence any backend call, never does.
pub struct RequireScope(pub &'static str);

impl async_graphql::Guard for RequireScope {
    async fn check(&self, ctx: &async_graphql::Context<'_>) -> async_graphql::Result<()> {
        let identity = ctx.data::<Caller>()?.0.as_deref();
        match identity {
            Some(identity) if identity.has_scope(self.0) => Ok(()),
            Some(_) => Err(error(
                "FORBIDDEN",
                format!("this requires scope {}", self.0),
            )),
            None => Err(error("UNAUTHENTICATED", "a token is required")),
        }
    }
}

/// Applies the config's limits to a schema under construction.
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
    if config.introspection {
        builder
    } else {
        builder.disable_introspection()
    }
}

/// One schema, built twice from the same builder. `strict` runs every validation rule;
/// `known` runs async-graphql's fast set only (fragment cycles, uploads) and the limits
/// (depth, complexity). `known` executes only a remembered document that `strict` already
/// found valid with the same inputs (no variables, no operation name): validation depends
/// on nothing else, so its verdict cannot have changed. Validation was 9% of the mobile
/// home query's instructions.
pub struct Schemas<Q, M, S> {
    strict: Schema<Q, M, S>,
    known: Schema<Q, M, S>,
}

impl<Q, M, S> Clone for Schemas<Q, M, S> {
    fn clone(&self) -> Self {
        Self {
            strict: self.strict.clone(),
            known: self.known.clone(),
        }
    }
}

impl<Q, M, S> Schemas<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    /// `builder` hardened with `config`'s limits, finished in both modes.
    pub fn new(builder: impl Fn() -> SchemaBuilder<Q, M, S>, config: &GraphqlConfig) -> Self {
        Self {
            strict: harden(builder(), config).finish(),
            known: harden(builder(), config)
                .validation_mode(ValidationMode::Fast)
                .finish(),
        }
    }
}

/// `POST` handler executing operations against `schemas`.
pub fn endpoint<Q, M, S>(schemas: Schemas<Q, M, S>) -> MethodRouter<Gateway>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let documents = Documents::default();
    post(
        move |State(gateway): State<Gateway>,
              call: CallContext,
              charge: Option<Extension<Arc<OperationCharge>>>,
              headers: HeaderMap,
              body: Bytes| {
            let schemas = schemas.clone();
            let documents = documents.clone();
            async move {
                let charge = charge.map(|Extension(c)| c);
                let (request, remembered) = match parse_request(&body, &documents) {
                    Ok(parsed) => parsed,
                    Err(e) => return not_a_request(negotiate(&headers), &e),
                };
                execute(
                    &schemas,
                    &gateway,
                    call,
                    charge.as_deref(),
                    &headers,
                    request,
                    remembered,
                )
                .await
            }
        },
    )
}

/// The usual GraphQL BFF: `POST /graphql` executing the schema `builder` makes, behind the
/// caller's JWT (and the rate limits).
pub fn routes<Q, M, S>(
    gateway: &Gateway,
    builder: impl Fn() -> SchemaBuilder<Q, M, S>,
) -> Router<Gateway>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let schemas = Schemas::new(builder, &gateway.config().graphql);
    let api = Router::new().route("/graphql", endpoint(schemas));
    gateway.protect(api, AuthPolicy::Jwt)
}

/// Parsed documents by query text. Clients send the same few operations again and again,
/// and parsing one (async-graphql's parser) was the largest single cost of the mobile home
/// query. Bounded in count, and only short texts are kept, so a client sending a stream of
/// distinct queries only churns it. Every request is still checked against the limits, and
/// against every validation rule unless `Schemas` says the verdict is already known.
#[derive(Clone)]
struct Documents(moka::sync::Cache<String, Arc<Remembered>>);

/// A remembered document, and whether the strict schema found it valid when sent alone
/// (no variables, no operation name).
struct Remembered {
    document: ExecutableDocument,
    valid_alone: AtomicBool,
}

impl Remembered {
    /// May `request` skip the rules the strict schema already passed it on?
    fn known_valid(&self, request: &async_graphql::Request) -> bool {
        is_alone(request) && self.valid_alone.load(Ordering::Relaxed)
    }
}

/// A request whose validation depends on its document alone.
fn is_alone(request: &async_graphql::Request) -> bool {
    request.variables.is_empty() && request.operation_name.is_none()
}

impl Documents {
    const CAPACITY: u64 = 512;
    const MAX_QUERY_BYTES: usize = 16 * 1024;
}

impl Default for Documents {
    fn default() -> Self {
        Self(moka::sync::Cache::new(Self::CAPACITY))
    }
}

/// The GraphQL request in `body`, with its document from `documents` when known (parsed
/// and remembered otherwise), and the remembered entry.
fn parse_request(
    body: &[u8],
    documents: &Documents,
) -> Result<(async_graphql::Request, Option<Arc<Remembered>>), serde_json::Error> {
    let mut request: async_graphql::Request = serde_json::from_slice(body)?;
    let remembered = if let Some(remembered) = documents.0.get(&request.query) {
        request.set_parsed_query(remembered.document.clone());
        Some(remembered)
    } else if request.query.len() <= Documents::MAX_QUERY_BYTES
        && let Ok(document) = request.parsed_query()
    {
        // A query that does not parse is not kept: execution reports the parser's error.
        let remembered = Arc::new(Remembered {
            document: document.clone(),
            valid_alone: AtomicBool::new(false),
        });
        documents
            .0
            .insert(request.query.clone(), remembered.clone());
        Some(remembered)
    } else {
        None
    };
    Ok((request, remembered))
}

async fn execute<Q, M, S>(
    schemas: &Schemas<Q, M, S>,
    gateway: &Gateway,
    call: CallContext,
    charge: Option<&OperationCharge>,
    headers: &HeaderMap,
    mut request: async_graphql::Request,
    remembered: Option<Arc<Remembered>>,
) -> Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let content_type = negotiate(headers);
    if let Some(charge) = charge {
        // Parsed once here; execution reuses the document. A query that does not parse
        // costs one unit and fails in execution with the parser's error.
        let cost = request.parsed_query().map_or(1, operation_cost);
        if let Err(refused) = charge.charge(cost).await {
            return refused;
        }
    }
    let operation = operation_name(&mut request);
    if let Some(record) = &call.record {
        let label = gateway
            .observer()
            .requests
            .operation_label(operation.as_deref());
        record.set_operation(label);
    }
    // An operation with its own budget runs on it instead of the server-wide one.
    let mut call = call;
    let budgets = &gateway.config().graphql.operation_timeouts;
    if let Some(budget) = operation.and_then(|name| budgets.get(&name)) {
        call.deadline = crate::upstream::Deadline::after(*budget);
    }
    let backends = gateway.backends().clone();
    let caller = Caller(call.identity.clone());
    let notes = call.cache_notes.clone();
    let scope = Scope {
        loaders: Loaders::new(backends.clone(), call.clone()),
        backends,
        call,
    };
    let mut response = run(
        schemas,
        request.data(scope).data(caller),
        remembered.as_deref(),
    )
    .await;
    // Data a failing backend could not give, served stale from the cache instead: the
    // response says which service and how old (`extensions.degraded`).
    let degraded = notes.degraded();
    if !degraded.is_empty()
        && let Ok(value) = serde_json::to_value(&degraded)
        && let Ok(value) = async_graphql::Value::from_json(value)
    {
        response.extensions.insert("degraded".to_owned(), value);
    }
    match serde_json::to_vec(&response) {
        Ok(bytes) => respond(StatusCode::OK, content_type, bytes),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Executes `request` on the strict schema, or on the known one when its remembered document
/// passed the strict rules with the same inputs; a strict pass is remembered.
async fn run<Q, M, S>(
    schemas: &Schemas<Q, M, S>,
    request: async_graphql::Request,
    remembered: Option<&Remembered>,
) -> async_graphql::Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    if remembered.is_some_and(|r| r.known_valid(&request)) {
        return schemas.known.execute(request).await;
    }
    let alone = is_alone(&request);
    let response = schemas.strict.execute(request).await;
    // Validation refused it iff nothing was executed: no data at all.
    if alone
        && let Some(remembered) = remembered
        && response.data != async_graphql::Value::Null
    {
        remembered.valid_alone.store(true, Ordering::Relaxed);
    }
    response
}

/// The name of the operation a request will run: `operationName`, or the document's only
/// operation's name. The parse is kept in the request, so execution does not parse again.
fn operation_name(request: &mut async_graphql::Request) -> Option<String> {
    if let Some(name) = &request.operation_name {
        return Some(name.clone());
    }
    match &request.parsed_query().ok()?.operations {
        async_graphql::parser::types::DocumentOperations::Single(_) => None,
        async_graphql::parser::types::DocumentOperations::Multiple(ops) if ops.len() == 1 => {
            ops.keys().next().map(|name| name.to_string())
        }
        async_graphql::parser::types::DocumentOperations::Multiple(_) => None,
    }
}

/// A cheap estimate of what an operation costs: the number of fields it selects (fragments
/// counted once where defined), at least one. No schema lookup, no variables.
pub fn operation_cost(document: &ExecutableDocument) -> u32 {
    fn fields(set: &SelectionSet) -> u32 {
        set.items.iter().fold(0u32, |sum, item| {
            sum.saturating_add(match &item.node {
                Selection::Field(f) => 1u32.saturating_add(fields(&f.node.selection_set.node)),
                Selection::InlineFragment(f) => fields(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
        })
    }
    let operations = document
        .operations
        .iter()
        .map(|(_, op)| fields(&op.node.selection_set.node));
    let fragments = document
        .fragments
        .values()
        .map(|f| fields(&f.node.selection_set.node));
    operations
        .chain(fragments)
        .fold(0u32, u32::saturating_add)
        .max(1)
}

/// The 400 answer to a body that is not a GraphQL request.
fn not_a_request(content_type: &'static str, e: &serde_json::Error) -> Response {
    let error = async_graphql::ServerError::new(format!("invalid GraphQL request body: {e}"), None);
    let body = serde_json::json!({ "errors": [error] });
    respond(
        StatusCode::BAD_REQUEST,
        content_type,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// GraphQL-over-HTTP: the new media type when the client accepts it, else plain JSON.
fn negotiate(headers: &HeaderMap) -> &'static str {
    let accepts_new = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(GRAPHQL_RESPONSE_JSON));
    if accepts_new {
        GRAPHQL_RESPONSE_JSON
    } else {
        "application/json"
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

impl ErrorExtensions for UpstreamError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.public_message()).extend_with(|_, e| {
            e.set("code", self.code());
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
pub fn error(code: &'static str, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, e| e.set("code", code))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(query: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "query": query })).unwrap()
    }

    #[test]
    fn a_parsed_document_is_remembered_and_reused_by_its_text() {
        let documents = Documents::default();
        let query = "{ home { greeting } }";
        parse_request(&body(query), &documents).unwrap();
        assert!(documents.0.contains_key(query), "not remembered");

        // The second request with that text gets the remembered document: the parsed copy
        // is already set, even though this request never ran the parser itself.
        documents.0.insert(
            query.to_owned(),
            Arc::new(Remembered {
                document: async_graphql::parser::parse_query("{ other }").unwrap(),
                valid_alone: AtomicBool::new(false),
            }),
        );
        let (mut again, _) = parse_request(&body(query), &documents).unwrap();
        let Ok(doc) = again.parsed_query() else {
            panic!("no document")
        };
        assert!(
            format!("{doc:?}").contains("other"),
            "not the remembered one"
        );
    }

    struct Greeter;

    #[async_graphql::Object]
    impl Greeter {
        async fn hello(&self, name: Option<String>) -> String {
            format!("hello {}", name.unwrap_or_default())
        }
    }

    type GreeterSchemas =
        Schemas<Greeter, async_graphql::EmptyMutation, async_graphql::EmptySubscription>;

    fn greeter() -> GreeterSchemas {
        Schemas::new(
            || {
                Schema::build(
                    Greeter,
                    async_graphql::EmptyMutation,
                    async_graphql::EmptySubscription,
                )
            },
            &GraphqlConfig::default(),
        )
    }

    /// One request through `parse_request` and `run`, as the endpoint does.
    async fn send(
        schemas: &GreeterSchemas,
        documents: &Documents,
        body: &[u8],
    ) -> (async_graphql::Response, Arc<Remembered>) {
        let (request, remembered) = parse_request(body, documents).unwrap();
        let remembered = remembered.expect("remembered");
        (run(schemas, request, Some(&remembered)).await, remembered)
    }

    #[tokio::test]
    async fn a_document_found_valid_alone_skips_the_strict_rules_after() {
        let (schemas, documents) = (greeter(), Documents::default());
        let (first, remembered) = send(&schemas, &documents, &body("{ hello }")).await;
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        assert!(remembered.valid_alone.load(Ordering::Relaxed));
        let (again, _) = send(&schemas, &documents, &body("{ hello }")).await;
        assert_eq!(again.data, first.data);

        // The mark is what picks the known schema: on a document the strict rules refuse
        // (an argument of the wrong type), the known schema executes it, and the resolver's
        // argument parsing fails the field instead.
        let wrong = body(r#"{ hello(name: 1) }"#);
        let (strict, remembered) = send(&schemas, &documents, &wrong).await;
        assert_eq!(strict.data, async_graphql::Value::Null);
        assert!(!strict.errors.is_empty());
        remembered.valid_alone.store(true, Ordering::Relaxed);
        // A validation error has no path; an execution error names the field.
        assert!(strict.errors.iter().all(|e| e.path.is_empty()));
        let (known, _) = send(&schemas, &documents, &wrong).await;
        assert!(
            known.errors.iter().any(|e| !e.path.is_empty()),
            "{:?}",
            known.errors
        );
    }

    #[tokio::test]
    async fn invalid_documents_and_requests_with_inputs_stay_strict() {
        let (schemas, documents) = (greeter(), Documents::default());
        let wrong = body(r#"{ hello(name: 1) }"#);
        for _ in 0..2 {
            let (response, remembered) = send(&schemas, &documents, &wrong).await;
            assert_eq!(response.data, async_graphql::Value::Null);
            assert!(!response.errors.is_empty());
            assert!(!remembered.valid_alone.load(Ordering::Relaxed));
        }
        // Valid, but with variables (or an operation name) validation also depends on them.
        let query = "query Hi($n: String) { hello(name: $n) }";
        let inputs = [
            serde_json::json!({ "query": query, "variables": { "n": "x" } }),
            serde_json::json!({ "query": query, "operationName": "Hi", "variables": { "n": "x" } }),
            serde_json::json!({ "query": query, "operationName": "Hi" }),
        ];
        for input in inputs {
            let body = serde_json::to_vec(&input).unwrap();
            let (response, remembered) = send(&schemas, &documents, &body).await;
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            assert!(!remembered.valid_alone.load(Ordering::Relaxed), "{input}");
        }
    }

    #[test]
    fn unparseable_and_oversized_queries_are_not_kept() {
        let documents = Documents::default();
        parse_request(&body("{ not graphql"), &documents).unwrap();
        let long = format!(
            "{{ home {{ greeting }} }} #{}",
            "x".repeat(Documents::MAX_QUERY_BYTES)
        );
        parse_request(&body(&long), &documents).unwrap();
        documents.0.run_pending_tasks();
        assert_eq!(documents.0.entry_count(), 0);
        assert!(parse_request(b"not json", &documents).is_err());
    }
}
