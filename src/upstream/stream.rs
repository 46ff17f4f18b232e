//! The proxy's exchange: streamed both ways, never retried (the request body is consumed as
//! it is sent), with the same first steps, instance choice and breaker as a buffered call.

use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Method, Response};
use tokio::time::Instant;

use super::breaker::Outcome;
use super::client::{self, DeadlineBody};
use super::span::ClientSpan;
use super::wire::{Carried, Outgoing};
use super::{Upstream, UpstreamError};
use crate::request::CallContext;

impl Upstream {
    /// A streamed exchange for the proxy: same deadline, bulkhead, instance choice and
    /// breaker, but never retried (the request body is consumed as it is sent). A 5xx answer
    /// is returned to the caller as is, and counted against the instance. `timeout` bounds
    /// the whole exchange, the response body included.
    pub async fn stream(
        &self,
        ctx: &CallContext,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Body,
        timeout: Duration,
    ) -> Result<Response<Body>, UpstreamError> {
        let counters = &self.0.counters;
        let started = Instant::now();
        let (timeout, instances, _slot) = self.admit(ctx, timeout, started)?;
        let lease = self.lease(instances, &[], started)?;
        counters.attempts.inc();
        let span = ClientSpan::start(ctx, &method);
        let mut deadline = Box::pin(tokio::time::sleep_until(started + timeout));
        let exchange = async {
            match (self.0.client.owned(), &lease.instance.origin) {
                // An owned connection: the head written straight from the parts.
                (Some(pools), Some(origin)) => {
                    self.check_path(path_and_query)?;
                    let carried = Carried::new(ctx, &span, timeout);
                    let target = (&method, path_and_query);
                    let head = |host: &HeaderValue, sending| {
                        let prefix = origin.prefix();
                        Self::streamed_head(host, prefix, target, &headers, &carried, sending)
                    };
                    let sent = pools.send_written(origin.authority(), &method, head, body);
                    let (head, body) = sent.await.map_err(|e| client::failure(self.name(), e))?;
                    Ok(head.into_response(body))
                }
                _ => {
                    let outgoing = Outgoing {
                        method,
                        path_and_query,
                        headers,
                        body,
                    };
                    let request = self.request(lease.instance, ctx, &span, outgoing, timeout)?;
                    self.0.client.send(self.name(), request).await
                }
            }
        };
        let result = tokio::select! {
            biased;
            response = exchange => response,
            () = deadline.as_mut() => Err(client::timed_out(self.name())),
        };
        let failure = match &result {
            Ok(r) if r.status().is_server_error() => Some(UpstreamError::from_response(
                self.name(),
                r.status(),
                r.headers(),
            )),
            Ok(_) => None,
            Err(e) => Some(e.clone()),
        };
        span.finish(ctx, self.name(), &lease.instance.base, failure.as_ref());
        let ended = Instant::now();
        let took = ended - started;
        self.observe_call(ctx, took, failure.as_ref());
        self.learn(took, failure.as_ref());
        instances.finish(lease, Outcome::of(failure.as_ref()), ended);
        if let Err(e) = &result {
            counters.record_failure(e);
        }
        result.map(|response| response.map(|body| Body::new(DeadlineBody::new(body, deadline))))
    }
}
