//! The client span of one try: its id goes out in `traceparent` (same trace as the client's
//! request, a new span id per try); when the try ends, the span is handed to the request's
//! record for export. A try whose request exports no spans reads no clock for one. Attributes name the service and instance, never the path or query
//! (they carry user and entity ids).

use std::time::SystemTime;

use tokio::time::Instant;

use http::Method;

use super::UpstreamError;
use crate::request::CallContext;
use crate::request::trace::{AttrValue, SpanKind, SpanRecord, new_span_id};

pub(super) struct ClientSpan {
    pub id: u64,
    /// The method and when the try began, for a request that exports its spans.
    timed: Option<(Method, SystemTime, Instant)>,
}

impl ClientSpan {
    pub fn start(ctx: &CallContext, method: &Method) -> Self {
        let exported = ctx.record.as_ref().is_some_and(|r| r.wants_spans());
        Self {
            id: new_span_id(),
            timed: exported.then(|| (method.clone(), SystemTime::now(), Instant::now())),
        }
    }

    pub fn finish(
        self,
        ctx: &CallContext,
        upstream: &str,
        instance: &str,
        error: Option<&UpstreamError>,
    ) {
        let (Some(record), Some((method, wall_start, started))) = (&ctx.record, self.timed) else {
            return;
        };
        let mut attributes = vec![
            ("manifold.upstream", AttrValue::Str(upstream.to_owned())),
            ("server.address", AttrValue::Str(instance.to_owned())),
            ("http.request.method", AttrValue::Str(method.to_string())),
        ];
        if let Some(e) = error {
            attributes.push(("error.type", AttrValue::Str(e.code().as_str().to_owned())));
        }
        record.add_span(SpanRecord {
            trace_id: ctx.trace.trace_id,
            span_id: self.id,
            parent_id: Some(ctx.trace.span_id),
            name: format!("{method} {upstream}"),
            kind: SpanKind::Client,
            start: wall_start,
            end: wall_start + started.elapsed(),
            error: error.is_some(),
            attributes,
        });
    }
}
