//! The per-request context every backend call carries: who the caller is (forwarded as
//! identity headers), the request id, the trace context, and the deadline all calls of the
//! request share.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::id::new_request_id;
use super::{CacheNotes, Deadline, Identity, RequestRecord, Stamp, TraceContext};

/// What every backend call made on behalf of one client request carries with it.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub identity: Option<Arc<Identity>>,
    pub deadline: Deadline,
    pub request_id: Arc<str>,
    /// The request's place in a distributed trace; each backend call is a child span.
    pub trace: TraceContext,
    /// Where the calls report themselves for the access log and spans (absent outside a
    /// routed request).
    pub record: Option<Arc<RequestRecord>>,
    /// What the cache served this request (ages, stale data), for the facade to report.
    pub cache_notes: Arc<CacheNotes>,
}

impl CallContext {
    pub fn new(identity: Option<Arc<Identity>>, deadline: Deadline, request_id: Arc<str>) -> Self {
        Self {
            identity,
            deadline,
            request_id,
            trace: TraceContext::new_root(),
            record: None,
            cache_notes: Arc::default(),
        }
    }

    /// The verified user id, for backends whose API takes it as a parameter.
    pub fn user_id(&self) -> Option<&str> {
        self.identity.as_deref().and_then(Identity::user_id)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CallContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

impl CallContext {
    /// The context of the request these parts belong to (identity set by `AuthGuard::admit`,
    /// deadline and id by `edge`). Outside that stack it gets a fresh default budget.
    pub fn from_parts(parts: &Parts) -> Self {
        let identity = parts.extensions.get::<Arc<Identity>>().cloned();
        let Some(stamp) = Stamp::of(&parts.extensions) else {
            let deadline = Deadline::after(Duration::from_secs(3));
            return CallContext::new(identity, deadline, new_request_id().into());
        };
        let mut ctx = CallContext::new(identity, stamp.deadline, stamp.id.0.clone());
        ctx.trace = stamp.trace;
        ctx.record = stamp.record.clone();
        // A facade that reports what the cache did (`cache::http`) put its notes here.
        if let Some(notes) = parts.extensions.get::<Arc<CacheNotes>>() {
            ctx.cache_notes = notes.clone();
        }
        ctx
    }
}
