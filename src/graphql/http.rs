//! GraphQL over HTTP: `POST` JSON in, the operation charged to the rate limits, run on the
//! request's budget (or its operation's own), answered as `application/graphql-response+json`
//! when the client accepts it, else plain JSON.

use async_graphql::{ObjectType, SubscriptionType};
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::sync::Arc;

use super::bounds::Bounds;
use super::completion::Completion;
use super::cost::CostModel;
use super::documents::{Documents, Remembered, Schemas, parse_request, run};
use super::{Caller, RequestData};
use crate::config::GraphqlConfig;
use crate::gateway::Gateway;
use crate::ratelimit::OperationCharge;
use crate::request::{CallContext, Deadline};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// `POST` handler executing operations against `schemas`, each with the BFF's `data`.
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
        max_errors: config.max_errors,
        max_cost: config.max_cost,
        data,
    });
    post(
        move |State(gateway): State<Gateway>,
              call: CallContext,
              charge: Option<Extension<Arc<OperationCharge>>>,
              headers: HeaderMap,
              body: Bytes| {
            let endpoint = endpoint.clone();
            async move {
                let charge = charge.map(|Extension(c)| c);
                let (request, remembered) = match parse_request(&body, &endpoint.documents) {
                    Ok(parsed) => parsed,
                    Err(e) => return not_a_request(negotiate(&headers), &e),
                };
                let execution = Execution {
                    call,
                    charge: charge.as_deref(),
                    headers: &headers,
                    remembered,
                };
                endpoint.execute(&gateway, execution, request).await
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
    /// What operations cost, and the most one may.
    cost: CostModel,
    max_cost: u64,
    /// Failed fields made `null`, as the schema's nullability says.
    completion: Completion,
    data: RequestData,
}

/// What one request brings to its execution besides the operation.
struct Execution<'a> {
    call: CallContext,
    charge: Option<&'a OperationCharge>,
    headers: &'a HeaderMap,
    remembered: Option<Arc<Remembered>>,
}

impl<Q, M, S> Endpoint<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    async fn execute(
        &self,
        gateway: &Gateway,
        execution: Execution<'_>,
        mut request: async_graphql::Request,
    ) -> Response {
        let Execution {
            call,
            charge,
            headers,
            remembered,
        } = execution;
        let content_type = negotiate(headers);
        let cost = match self.admit(&mut request, remembered.as_deref()) {
            Ok(cost) => cost,
            Err(error) => {
                let response = async_graphql::Response::from_errors(vec![error]);
                return answer(content_type, &response);
            }
        };
        if let Some(record) = &call.record {
            record.set_cost(cost);
        }
        if let Some(charge) = charge {
            let units = u32::try_from(cost).unwrap_or(u32::MAX);
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
        let request = (self.data)(request.data(caller), &call);
        let mut response = run(&self.schemas, request, remembered.as_deref()).await;
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
        answer(content_type, &response)
    }
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

fn answer(content_type: &'static str, response: &async_graphql::Response) -> Response {
    match serde_json::to_vec(response) {
        Ok(bytes) => respond(StatusCode::OK, content_type, bytes),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
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
        let operation = request.operation_name.clone();
        let variables = request.variables.clone();
        let Ok(document) = request.parsed_query() else {
            return Ok(1);
        };
        let cost = self.cost.cost(document, operation.as_deref(), &variables);
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
