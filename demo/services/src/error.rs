//! The error every handler returns and the one place it becomes the README's error body,
//! `{"error": "<code>", "message": "<text>"}`. Chaos-injected errors use [`error_response`]
//! directly, since their status is whatever the fault config says.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why a request to a demo service failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// A query parameter, header or body field is missing or malformed.
    #[error("{0}")]
    BadParameter(String),
    /// The request lacks the `x-user-id` header the gateway is supposed to set.
    #[error("missing x-user-id header")]
    MissingIdentity,
    /// An id in the path or a required parameter names nothing.
    #[error("unknown {kind} {id:?}")]
    NotFound { kind: &'static str, id: String },
    /// The service itself failed (key generation, signing). Not the caller's fault.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        ApiError::BadParameter(message.into())
    }

    pub(crate) fn not_found(kind: &'static str, id: &str) -> Self {
        ApiError::NotFound {
            kind,
            id: id.to_owned(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadParameter(_) | ApiError::MissingIdentity => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadParameter(_) | ApiError::MissingIdentity => "bad_request",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "demo service failed");
        }
        error_response(self.status(), self.code(), &self.to_string())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadParameter(rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::BadParameter(rejection.body_text())
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

/// An error answer with the README's body shape.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: code,
            message,
        }),
    )
        .into_response()
}
