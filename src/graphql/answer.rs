//! How GraphQL answers are written (GraphQL over HTTP): the media type the client accepts,
//! the status of a refused document, every error of a refusal with an `extensions.code`,
//! and the codes of an answer's errors handed to `observe::track` (a response extension)
//! to be counted by operation and code.

use async_graphql::ServerError;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::plain::Prewritten;
use crate::observe::GraphqlErrors;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";
/// `extensions.code` of refused documents, as Apollo Server and most clients know them.
pub(super) const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
pub(super) const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
pub(super) const BAD_REQUEST: &str = crate::error::Code::BadRequest.as_str();

/// Validation or variable coercion refused the operation: nothing ran, so there is no data,
/// and no error has a path into it.
pub(super) fn refused_before_running(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// The status of a document that does not parse, validate or fit its variables: 400 for a
/// client that reads `application/graphql-response+json`, 200 for older ones.
pub(super) fn document_status(content_type: &'static str) -> StatusCode {
    if content_type == GRAPHQL_RESPONSE_JSON {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// An answer without `data`: the request did not run. Each error without a code of its
/// own gets `code` (clients and the error counters match on it).
pub(super) fn refused(
    status: StatusCode,
    content_type: &'static str,
    mut errors: Vec<ServerError>,
    code: &'static str,
) -> Response {
    for error in &mut errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", code);
        }
    }
    let body = serde_json::json!({ "errors": errors });
    let mut response = respond(
        status,
        content_type,
        serde_json::to_vec(&body).unwrap_or_default(),
    );
    response.extensions_mut().insert(error_codes(&errors));
    response
}

/// The codes of an answer's errors, for `observe::track` to count.
fn error_codes(errors: &[ServerError]) -> GraphqlErrors {
    let code = |e: &ServerError| {
        let code = e.extensions.as_ref()?.get("code")?;
        match code {
            async_graphql::Value::String(code) => Some(code.clone()),
            _ => None,
        }
    };
    GraphqlErrors(errors.iter().map(code).collect())
}

/// `refused`, the one error carrying `code` in its extensions (clients match on it).
pub(super) fn refused_with_code(
    status: StatusCode,
    content_type: &'static str,
    error: ServerError,
    code: crate::error::Code,
) -> Response {
    refused(status, content_type, vec![error], code.as_str())
}

/// `response` written as the answer's body, with the plain answers `prewritten` kept.
pub(super) fn answer(
    content_type: &'static str,
    response: &async_graphql::Response,
    prewritten: Option<&Prewritten>,
) -> Response {
    // Most answers fit the first 4 KiB: one allocation rather than doubling from 128 bytes.
    let mut bytes = Vec::with_capacity(4096);
    match super::json::write_response(&mut bytes, response, prewritten) {
        Ok(()) => {
            let mut answer = respond(StatusCode::OK, content_type, bytes);
            if !response.errors.is_empty() {
                answer
                    .extensions_mut()
                    .insert(error_codes(&response.errors));
            }
            answer
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// GraphQL-over-HTTP: the new media type when the client names it, else plain JSON (also for
/// `*/*` and no `Accept` at all, as the spec asks while older clients are about).
pub(super) fn negotiate(headers: &HeaderMap) -> &'static str {
    let accepts_new = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(GRAPHQL_RESPONSE_JSON));
    if accepts_new {
        GRAPHQL_RESPONSE_JSON
    } else {
        APPLICATION_JSON
    }
}

pub(super) fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
