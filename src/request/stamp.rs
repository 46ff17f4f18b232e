//! What the gateway's own layers note about one request, kept in one request extension.

use std::sync::Arc;

use super::{ClientIp, Deadline, RequestId, RequestRecord, TraceContext};

/// The request's id, trace context and deadline (`edge::admit` inserts it), its client's
/// address (`edge::client_ip`) and its record (`observe::track`), as ONE request extension:
/// `http::Extensions` boxes each value into a hash map that grows as they come; one instead
/// of the five (six from a trusted proxy) these were saves ~900 instructions of a proxied
/// request.
#[derive(Clone)]
pub struct Stamp {
    pub id: RequestId,
    pub trace: TraceContext,
    pub deadline: Deadline,
    /// The client's address, once known.
    pub client: Option<ClientIp>,
    /// The peer is a trusted proxy: its forwarding headers stand.
    pub from_trusted_proxy: bool,
    /// What the access log and the spans are made from, while `observe::track` runs.
    pub record: Option<Arc<RequestRecord>>,
}

impl Stamp {
    pub fn new(id: RequestId, trace: TraceContext, deadline: Deadline) -> Self {
        Self {
            id,
            trace,
            deadline,
            client: None,
            from_trusted_proxy: false,
            record: None,
        }
    }

    /// The stamp of a request with these extensions, if the edge stamped it.
    pub fn of(extensions: &http::Extensions) -> Option<&Stamp> {
        extensions.get::<Stamp>()
    }

    /// The record of a request with these extensions, while `observe::track` runs.
    pub fn record(extensions: &http::Extensions) -> Option<&Arc<RequestRecord>> {
        Self::of(extensions)?.record.as_ref()
    }
}
