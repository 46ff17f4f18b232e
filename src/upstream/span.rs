//! The client span of one try: its id goes out in `traceparent` (same trace as the client's
//! request, a new span id per try); when the try ends, the span is handed to the request's
//! record for export. Attributes name the service and instance, never the path or query
//! (they carry user and entity ids).

use std::time::SystemTime;

use tokio::time::Instant;

use http::Method;

use super::UpstreamError;
use crate::request::CallContext;
use crate::request::trace::{AttrValue, SpanKind, SpanRecord, new_span_id};

pub(super) struct ClientSpan {
    pub id: u64,
    method: Method,
    wall_start: SystemTime,
    started: Instant,
}

impl ClientSpan {
    pub fn start(method: &Method) -> Self {
        Self {
            id: new_span_id(),
            method: method.clone(),
            wall_start: SystemTime::now(),
            started: Instant::now(),
        }
    }

    pub fn finish(
        self,
        ctx: &CallContext,
        upstream: &str,
        instance: &str,
        error: Option<&UpstreamError>,
    ) {
        let Some(record) = ctx.record.as_ref().filter(|r| r.wants_spans()) else {
            return;
        };
        let mut attributes = vec![
            ("manifold.upstream", AttrValue::Str(upstream.to_owned())),
            ("server.address", AttrValue::Str(instance.to_owned())),
            (
                "http.request.method",
                AttrValue::Str(self.method.to_string()),
            ),
        ];
        if let Some(e) = error {
            attributes.push(("error.type", AttrValue::Str(e.code().as_str().to_owned())));
        }
        record.add_span(SpanRecord {
            trace_id: ctx.trace.trace_id,
            span_id: self.id,
            parent_id: Some(ctx.trace.span_id),
            name: format!("{} {upstream}", self.method),
            kind: SpanKind::Client,
            start: self.wall_start,
            end: self.wall_start + self.started.elapsed(),
            error: error.is_some(),
            attributes,
        });
    }
}
