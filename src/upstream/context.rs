//! The per-request context every backend call carries: who the caller is (forwarded as
//! identity headers), the request id, the trace context, and the deadline all calls of the
//! request share.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::auth::Identity;
use crate::cache::CacheNotes;
use crate::observe::{RequestRecord, TraceContext};

/// The point in time by which a client's request must be answered.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn instant(&self) -> Instant {
        self.0
    }
}

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
