//! GraphQL over HTTP (the GraphQL-over-HTTP draft, as graphql-http's audit checks it):
//! `POST` with a JSON body, or `GET` with the parameters in the query string (queries only: a
//! mutation over GET is 405). The answer is `application/graphql-response+json` when the
//! client accepts it, else `application/json`. A request that cannot run is 400 (415 for a
//! POST that is not JSON); a document that does not parse or validate, or whose variables do
//! not fit, is 400 without `data` for `application/graphql-response+json` and, as the spec
//! keeps for older clients, 200 with `errors` for `application/json`. What runs is charged to
//! the rate limits and runs on the request's budget (or its operation's own).

use async_graphql::parser::types::OperationType;
use async_graphql::{ObjectType, ServerError, SubscriptionType};
use axum::body::Bytes;
use axum::extract::{Extension, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use std::sync::Arc;

use super::answer::{
    BAD_REQUEST, PARSE_FAILED, VALIDATION_FAILED, answer, document_status, negotiate, refused,
    refused_before_running, refused_with_code, respond,
};
use super::batch;
use super::bounds::Bounds;
use super::completion::Completion;
use super::cost::CostModel;
use super::documents::{Documents, Remembered, Schemas, run};
use super::params::{BadRequest, Params, is_batch};
use super::persisted::Persisted;
use super::plain::Prewritten;
use super::{Caller, RequestData};
use crate::config::GraphqlConfig;
use crate::gateway::Gateway;
use crate::observe::GraphqlErrors;
use crate::ratelimit::OperationCharge;
use crate::request::{CallContext, Deadline};

/// `GET` and `POST` handlers executing operations against `schemas`, each with the BFF's
/// `data`.
pub fn endpoint<Q, M, S>(
    schemas: Schemas<Q, M, S>,
    config: &GraphqlConfig,
    data: RequestData,
) -> MethodRouter<Gateway>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let sdl = schemas.sdl();
    let endpoint = Arc::new(Endpoint {
        cost: CostModel::new(&sdl, config),
        completion: Completion::new(&sdl),
        schemas,
        documents: Documents::new(Bounds::from(config)),
        persisted: Persisted::new(&config.persisted_queries),
        max_errors: config.max_errors,
        max_cost: config.max_cost,
        max_batch: config.max_batch,
        data,
    });
    let on_get = endpoint.clone();
    get(
        move |State(gateway): State<Gateway>,
              call: CallContext,
              charge: Option<Extension<Arc<OperationCharge>>>,
              headers: HeaderMap,
              RawQuery(query): RawQuery| {
            let endpoint = on_get.clone();
            async move {
                let params = Params::from_get(query.as_deref());
                let charge = charge.map(|Extension(c)| c);
                let execution = Execution::of(Method::GET, call, charge.as_deref(), &headers);
                endpoint.serve(&gateway, execution, params).await
            }
        },
    )
    .post(
        move |State(gateway): State<Gateway>,
              call: CallContext,
              charge: Option<Extension<Arc<OperationCharge>>>,
              headers: HeaderMap,
              body: Bytes| {
            let endpoint = endpoint.clone();
            async move {
                let charge = charge.map(|Extension(c)| c);
                let execution = Execution::of(Method::POST, call, charge.as_deref(), &headers);
                if endpoint.max_batch > 0 && is_batch(&body) {
                    let batch = Params::batch_from_post(&headers, &body, endpoint.max_batch);
                    return endpoint.serve_batch(&gateway, execution, batch).await;
                }
                let params = Params::from_post(&headers, &body);
                endpoint.serve(&gateway, execution, params).await
            }
        },
    )
}

/// One GraphQL endpoint: its schemas, the documents it has seen, the BFF's request data.
struct Endpoint<Q, M, S> {
    schemas: Schemas<Q, M, S>,
    documents: Documents,
    /// Errors one answer carries before the rest are summarised.
    max_errors: usize,
    /// Operations one batch may carry (0: no batches).
    max_batch: usize,
    /// Queries known by hash (APQ), or the only ones that run (trusted documents).
    persisted: Persisted,
    /// What operations cost, and the most one may.
    cost: CostModel,
    max_cost: u64,
    /// Failed fields made `null`, as the schema's nullability says.
    completion: Completion,
    data: RequestData,
}

/// What one request brings to its execution besides its parameters.
struct Execution<'a> {
    method: Method,
    call: CallContext,
    charge: Option<&'a OperationCharge>,
    headers: &'a HeaderMap,
    /// Whether the rate limits already charged this operation its first unit (they charge
    /// each request one; the second and later operations of a batch pay in full).
    first_unit_paid: bool,
}

impl<'a> Execution<'a> {
    /// A request's execution, its first unit already charged by the rate-limit layer.
    fn of(
        method: Method,
        call: CallContext,
        charge: Option<&'a OperationCharge>,
        headers: &'a HeaderMap,
    ) -> Self {
        Self {
            method,
            call,
            charge,
            headers,
            first_unit_paid: true,
        }
    }
}

impl<Q, M, S> Endpoint<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    /// A batch: each operation served on its own (costed, charged, run) and concurrently,
    /// the answers in one JSON array. A refusal by the rate limits or of the batch itself is
    /// the answer to the whole batch.
    async fn serve_batch(
        &self,
        gateway: &Gateway,
        execution: Execution<'_>,
        batch: Result<Vec<Params>, BadRequest>,
    ) -> Response {
        let content_type = negotiate(execution.headers);
        let batch = match batch {
            Ok(batch) => batch,
            Err(bad) => {
                let error = ServerError::new(bad.message, None);
                return refused(bad.status, content_type, vec![error], BAD_REQUEST);
            }
        };
        let answers =
            futures_util::future::join_all(batch.into_iter().enumerate().map(|(i, params)| {
                let one = Execution {
                    method: Method::POST,
                    call: execution.call.clone(),
                    charge: execution.charge,
                    headers: execution.headers,
                    first_unit_paid: i == 0,
                };
                self.serve(gateway, one, Ok(params))
            }))
            .await;
        let mut body = Vec::from(&b"["[..]);
        let mut errors = GraphqlErrors::default();
        for (i, answer) in answers.into_iter().enumerate() {
            let status = answer.status();
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                return answer;
            }
            if let Some(each) = answer.extensions().get::<GraphqlErrors>() {
                errors.0.extend(each.0.iter().cloned());
            }
            let Ok(bytes) = axum::body::to_bytes(answer.into_body(), usize::MAX).await else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&bytes);
        }
        body.push(b']');
        let mut response = respond(StatusCode::OK, content_type, body);
        if !errors.0.is_empty() {
            response.extensions_mut().insert(errors);
        }
        response
    }

    /// One request, from its parameters to its answer.
    async fn serve(
        &self,
        gateway: &Gateway,
        execution: Execution<'_>,
        params: Result<Params, BadRequest>,
    ) -> Response {
        let content_type = negotiate(execution.headers);
        let params = match params {
            Ok(params) => self.persisted.resolve(params).await.map_err(|refusal| {
                let status = refusal.code.status();
                let error = ServerError::new(refusal.message, None);
                refused_with_code(status, content_type, error, refusal.code)
            }),
            Err(bad) => Err(refused(
                bad.status,
                content_type,
                vec![ServerError::new(bad.message, None)],
                BAD_REQUEST,
            )),
        };
        let params = match params {
            Ok(params) => params,
            Err(response) => return response,
        };
        let mut request = match params.into_request() {
            Ok(request) => request,
            Err(bad) => {
                return refused(
                    bad.status,
                    content_type,
                    vec![ServerError::new(bad.message, None)],
                    BAD_REQUEST,
                );
            }
        };
        let remembered = self.documents.remember(&mut request);
        let name = request.operation_name.take();
        let parsed = request
            .parsed_query()
            .map(|d| operation_type(d, name.as_deref()));
        request.operation_name = name;
        let operation_type = match parsed {
            Ok(ty) => ty,
            Err(e) => {
                let error = e.clone();
                let status = document_status(content_type);
                return refused(status, content_type, vec![error], PARSE_FAILED);
            }
        };
        if execution.method == Method::GET && operation_type == Some(OperationType::Mutation) {
            let error = ServerError::new("a mutation must be sent with POST", None);
            let status = StatusCode::METHOD_NOT_ALLOWED;
            let code = crate::error::Code::MethodNotAllowed.as_str();
            let mut response = refused(status, content_type, vec![error], code);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let is_get = execution.method == Method::GET;
        let mut response = self
            .execute(gateway, execution, request, remembered, content_type)
            .await;
        if is_get && response.status() == StatusCode::OK {
            // Answers are for the caller who sent the token: never stored by shared caches.
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
        }
        response
    }

    async fn execute(
        &self,
        gateway: &Gateway,
        execution: Execution<'_>,
        mut request: async_graphql::Request,
        remembered: Option<Arc<Remembered>>,
        content_type: &'static str,
    ) -> Response {
        let Execution {
            call,
            charge,
            first_unit_paid,
            ..
        } = execution;
        let cost = match self.admit(&mut request, remembered.as_deref()) {
            Ok(cost) => cost,
            Err(error) => {
                let status = document_status(content_type);
                return refused(status, content_type, vec![error], VALIDATION_FAILED);
            }
        };
        if let Some(record) = &call.record {
            record.set_cost(cost);
        }
        if let Some(charge) = charge {
            let units = u32::try_from(cost).unwrap_or(u32::MAX);
            let units = if first_unit_paid {
                units
            } else {
                units.saturating_add(1)
            };
            if let Err(refused) = charge.charge(units).await {
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
        if let Some(budget) = operation.as_ref().and_then(|name| budgets.get(name)) {
            call.deadline = Deadline::after(*budget);
        }
        // Field errors are completed against the document; a remembered one is kept already.
        let unremembered = match remembered {
            Some(_) => None,
            None => request.parsed_query().ok().cloned(),
        };
        let caller = Caller(call.identity.clone());
        let notes = call.cache_notes.clone();
        let mut request = (self.data)(request.data(caller), &call);
        // Plain answers are written as JSON as they resolve, where the document allows it.
        let prewritten = remembered
            .as_deref()
            .is_some_and(Remembered::keys_unique)
            .then(Prewritten::default);
        if let Some(prewritten) = &prewritten {
            request = request.data(prewritten.clone());
        }
        // Batches leave when each wave of resolvers has asked, loaded in this task.
        let execution = run(&self.schemas, request, remembered.as_deref());
        let mut response = batch::in_waves(execution).await;
        let document = remembered
            .as_deref()
            .map(Remembered::document)
            .or(unremembered.as_ref());
        if let Some(document) = document {
            self.completion
                .complete(&mut response, document, operation.as_deref());
        }
        // Data a failing backend could not give, served stale from the cache instead: the
        // response says which service and how old (`extensions.degraded`).
        let degraded = notes.degraded();
        if !degraded.is_empty()
            && let Ok(value) = serde_json::to_value(&degraded)
            && let Ok(value) = async_graphql::Value::from_json(value)
        {
            response.extensions.insert("degraded".to_owned(), value);
        }
        cap_errors(&mut response, self.max_errors);
        if refused_before_running(&response) {
            let status = document_status(content_type);
            return refused(status, content_type, response.errors, VALIDATION_FAILED);
        }
        answer(content_type, &response, prewritten.as_ref())
    }
}

/// The type of the operation `name` (or the only one) of `document`, if it has it.
fn operation_type(
    document: &async_graphql::parser::types::ExecutableDocument,
    name: Option<&str>,
) -> Option<OperationType> {
    document
        .operations
        .iter()
        .find(|(n, _)| name.is_none() || n.map(|n| n.as_str()) == name)
        .map(|(_, op)| op.node.ty)
}

/// At most `max` errors, the rest summarised in one more: a document that makes an error
/// per alias or per directive does not make an answer thousands of times its size.
fn cap_errors(response: &mut async_graphql::Response, max: usize) {
    let total = response.errors.len();
    if total > max {
        response.errors.truncate(max);
        let rest = async_graphql::ServerError::new(
            format!("{} more errors not shown (of {total})", total - max),
            None,
        );
        response.errors.push(rest);
    }
}

impl<Q, M, S> Endpoint<Q, M, S> {
    /// The checks before any validation rule runs, each in time linear in the document: its
    /// size once fragments are expanded (a fragment bomb is refused here), then its cost.
    /// Gives the cost (one for a document that does not parse: execution reports why).
    fn admit(
        &self,
        request: &mut async_graphql::Request,
        remembered: Option<&Remembered>,
    ) -> Result<u64, async_graphql::ServerError> {
        self.documents
            .bounded(request, remembered)
            .map_err(|out| async_graphql::ServerError::new(out.message, out.pos))?;
        let cost = match remembered {
            // The remembered document: nothing of the request is copied.
            Some(remembered) => remembered.cost(request, |document| {
                let operation = request.operation_name.as_deref();
                self.cost.cost(document, operation, &request.variables)
            }),
            None => {
                let operation = request.operation_name.clone();
                let variables = request.variables.clone();
                let Ok(document) = request.parsed_query() else {
                    return Ok(1);
                };
                self.cost.cost(document, operation.as_deref(), &variables)
            }
        };
        if cost > self.max_cost {
            return Err(async_graphql::ServerError::new(
                format!(
                    "the operation costs {cost}, more than the limit of {}",
                    self.max_cost
                ),
                None,
            ));
        }
        Ok(cost)
    }
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
