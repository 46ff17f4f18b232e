//! The pipeline every buffered call runs, its steps written down once, in order: the
//! deadline, the bulkhead, the retry budget (`admit`), an instance whose breaker admits the
//! call (`lease`), one try bounded by `min(per-try timeout, time left)`, the outcome fed
//! back, then a retry only for idempotent calls, only for retryable failures, only within the
//! deadline and the retry budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, header};
use tokio::time::Instant;

use super::breaker::Outcome;
use super::client;
use super::instances::{Instances, Lease};
use super::span::ClientSpan;
use super::wire::{APPLICATION_JSON, Carried, Outgoing};
use super::{Fetched, FetchedHead, Idempotency, Upstream, UpstreamError, UpstreamErrorKind};
use crate::request::{BackendCall, CallContext};

/// A retry is not worth sending with less time than this left.
const MIN_USEFUL_TRY: Duration = Duration::from_millis(5);

/// One buffered backend call, as the pipeline runs it (every try sends the same).
pub(super) struct Call<'a> {
    pub method: Method,
    pub path_and_query: &'a str,
    pub body: Option<Bytes>,
    /// Extra headers (`Idempotency-Key`); the ones every call carries are added per try.
    pub headers: &'a [(&'static str, &'a str)],
    pub idempotency: Idempotency,
}

impl Upstream {
    /// A buffered call, measured: its latency and outcome go to the upstream's counters and
    /// to the client request's record (access log: how many calls, which was slow or failed).
    /// The clock is read when the call starts and when each try ends, every step before
    /// and after a try working from those readings (each reading the clock itself, a call
    /// read it twelve times).
    pub(super) async fn execute(
        &self,
        ctx: &CallContext,
        call: &Call<'_>,
    ) -> Result<Fetched, UpstreamError> {
        let started = Instant::now();
        let mut ended = started;
        let result = self.run_pipeline(ctx, call, started, &mut ended).await;
        self.observe_call(ctx, ended - started, result.as_ref().err());
        result
    }

    pub(super) fn observe_call(
        &self,
        ctx: &CallContext,
        took: Duration,
        error: Option<&UpstreamError>,
    ) {
        let counters = &self.0.counters;
        counters.latency.observe(took);
        if error.is_none() {
            counters.succeeded.inc();
        }
        if let Some(record) = &ctx.record {
            record.backend_call(BackendCall {
                upstream: self.0.name.as_str().into(),
                took,
                error: error.map(|e| e.code().as_str()),
            });
        }
    }

    /// The pipeline every buffered call runs, in this order, from the clock reading
    /// `started`; `ended` is set to the reading when its last try ended.
    async fn run_pipeline(
        &self,
        ctx: &CallContext,
        call: &Call<'_>,
        started: Instant,
        ended: &mut Instant,
    ) -> Result<Fetched, UpstreamError> {
        let counters = &self.0.counters;
        // 1.-3. Deadline, bulkhead, retry budget.
        let (_, instances, _slot) = self.admit(ctx, self.0.timeout, started)?;

        let mut tried: Vec<usize> = Vec::with_capacity(self.0.attempts as usize);
        let mut attempt = 1;
        let mut now = started;
        loop {
            // 4. An instance: healthy and not ejected if possible, not tried yet if possible,
            //    and whose breaker admits the call (else fail fast).
            let lease = self.lease(instances, &tried, now)?;
            tried.push(lease.index);
            // 5. One try, bounded by min(per-try timeout, time left in the request).
            counters.attempts.inc();
            let result = self.try_once(&lease, ctx, call, now).await;
            *ended = Instant::now();
            self.learn(*ended - now, result.as_ref().err());
            // 6. The outcome feeds the breaker and outlier detection (server faults and
            //    timeouts count; a client's bad request does not).
            instances.finish(lease, Outcome::of(result.as_ref().err()), *ended);
            let error = match result {
                Ok(bytes) => return Ok(bytes),
                Err(e) => e,
            };
            counters.record_failure(&error);
            tracing::debug!(service = %self.name(), path = %call.path_and_query, attempt, code = %error.code(), detail = %error.detail, "upstream try failed");
            // 7. Retry only what is safe, useful, affordable, and fits in the deadline.
            let retry = call.idempotency == Idempotency::Idempotent
                && error.is_retryable()
                && attempt < self.0.attempts;
            if !retry {
                return Err(error);
            }
            let wait = self
                .0
                .backoff
                .delay(attempt, fastrand::f64())
                .max(error.retry_after.unwrap_or_default());
            if ctx.deadline.remaining_at(*ended) < wait + MIN_USEFUL_TRY {
                return Err(error);
            }
            if !self.0.budget.withdraw() {
                counters.budget_exhausted.inc();
                return Err(error);
            }
            counters.retries.inc();
            tokio::time::sleep(wait).await;
            now = Instant::now();
            attempt += 1;
        }
    }

    /// One HTTP exchange with one instance, begun at `now`, the whole body read under the
    /// try's timeout.
    async fn try_once(
        &self,
        lease: &Lease<'_>,
        ctx: &CallContext,
        call: &Call<'_>,
        now: Instant,
    ) -> Result<Fetched, UpstreamError> {
        let timeout = self.call_timeout(ctx, self.0.timeout, now)?;
        let span = ClientSpan::start(ctx, &call.method);
        let exchange = async {
            let (status, head, body) = match (self.0.client.owned(), &lease.instance.origin) {
                // An owned connection: the head written straight from the call, the answer's
                // kept as read.
                (Some(pools), Some(origin)) => {
                    self.check(call)?;
                    let carried = Carried::new(ctx, &span, timeout);
                    let head = |host: &HeaderValue, sending| {
                        Self::written_head(host, origin.prefix(), call, &carried, sending)
                    };
                    let body = call.body.clone().map_or_else(Body::empty, Body::from);
                    let sent = pools.send_written(origin.authority(), &call.method, head, body);
                    let (head, body) = sent.await.map_err(|e| client::failure(self.name(), e))?;
                    (head.status(), FetchedHead::Read(head), body)
                }
                // hyper's client (`https://` instances), boxed: inline, its future alone
                // made every call's 2.5 KiB instead of 1.9.
                _ => {
                    let request = self.hyper_request(lease, ctx, &span, call, timeout)?;
                    let response = Box::pin(self.0.client.send(self.name(), request)).await?;
                    let (parts, body) = response.into_parts();
                    (parts.status, FetchedHead::Map(parts.headers), body)
                }
            };
            if !status.is_success() {
                let headers = head.headers();
                return Err(UpstreamError::from_response(self.name(), status, &headers));
            }
            let body = self.read_capped(body).await?;
            Ok(Fetched { head, body })
        };
        let result = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(client::timed_out(self.name())));
        span.finish(
            ctx,
            self.name(),
            &lease.instance.base,
            result.as_ref().err(),
        );
        result
    }

    /// `call` as a request for hyper's client (an upstream with `https://` instances).
    fn hyper_request(
        &self,
        lease: &Lease<'_>,
        ctx: &CallContext,
        span: &ClientSpan,
        call: &Call<'_>,
        timeout: Duration,
    ) -> Result<Request<Body>, UpstreamError> {
        // Room for what every call adds (accept, content type, request id, traceparent,
        // timeout, the caller's forwarded identity): growing the map twice per call was
        // 1.5% of the home query.
        let mut extra = HeaderMap::with_capacity(call.headers.len() + 8);
        extra.insert(header::ACCEPT, APPLICATION_JSON);
        for (name, value) in call.headers {
            let value = HeaderValue::from_str(value).map_err(|_| {
                UpstreamError::new(
                    self.name(),
                    UpstreamErrorKind::Rejected(400),
                    format!("invalid value for header {name}"),
                )
            })?;
            extra.append(*name, value);
        }
        let body = match call.body.clone() {
            Some(body) => {
                extra.insert(header::CONTENT_TYPE, APPLICATION_JSON);
                Body::from(body)
            }
            None => Body::empty(),
        };
        let outgoing = Outgoing {
            method: call.method.clone(),
            path_and_query: call.path_and_query,
            headers: extra,
            body,
        };
        self.request(lease.instance, ctx, span, outgoing, timeout)
    }

    /// The first steps of every call, in order, as of `now`: the deadline (a call that
    /// cannot start in time is not started), the bulkhead (over the concurrency cap, fail
    /// fast instead of queueing), and the retry budget, which learns of every call a client
    /// caused. Gives the time the call may take, the instances and the bulkhead place.
    pub(super) fn admit(
        &self,
        ctx: &CallContext,
        own_timeout: Duration,
        now: Instant,
    ) -> Result<(Duration, &Instances, BulkheadSlot<'_>), UpstreamError> {
        let timeout = self.call_timeout(ctx, own_timeout, now)?;
        let instances = self.instances()?;
        let slot = self.enter_bulkhead()?;
        self.0.budget.deposit(now);
        self.0.counters.calls.inc();
        Ok((timeout, instances, slot))
    }

    /// An instance for the next try at `now` (not among `tried` if possible), or fail fast
    /// when every instance's breaker is open.
    pub(super) fn lease<'a>(
        &self,
        instances: &'a Instances,
        tried: &[usize],
        now: Instant,
    ) -> Result<Lease<'a>, UpstreamError> {
        instances.pick(tried, now).ok_or_else(|| {
            self.0.counters.circuit_open.inc();
            UpstreamError::new(
                self.name(),
                UpstreamErrorKind::CircuitOpen,
                "every instance's circuit is open",
            )
        })
    }

    /// Time this call may take as of `now`: its own timeout, cut to what is left of the
    /// request. Fails without calling when nothing is left.
    fn call_timeout(
        &self,
        ctx: &CallContext,
        own: Duration,
        now: Instant,
    ) -> Result<Duration, UpstreamError> {
        let left = ctx.deadline.remaining_at(now);
        if left.is_zero() {
            return Err(UpstreamError::new(
                self.name(),
                UpstreamErrorKind::DeadlineExceeded,
                "no time left in the request",
            ));
        }
        Ok(own.min(left))
    }

    fn instances(&self) -> Result<&Instances, UpstreamError> {
        self.0.instances.as_deref().ok_or_else(|| {
            UpstreamError::new(
                self.name(),
                UpstreamErrorKind::NotConfigured,
                "no [upstreams] entry",
            )
        })
    }

    /// What the bulkhead learns from one try: its latency, and whether the backend was
    /// overloaded (a timeout, 503 or 429). Failures of ours or the client's teach nothing.
    pub(super) fn learn(&self, took: Duration, error: Option<&UpstreamError>) {
        let overloaded = match error.map(|e| e.kind) {
            None => false,
            Some(UpstreamErrorKind::Timeout | UpstreamErrorKind::ServerError(503 | 429)) => true,
            Some(_) => return,
        };
        let in_flight = self.0.counters.in_flight.load(Ordering::Relaxed);
        self.0.bulkhead.learn(took, overloaded, in_flight);
    }

    fn enter_bulkhead(&self) -> Result<BulkheadSlot<'_>, UpstreamError> {
        let in_flight = &self.0.counters.in_flight;
        let limit = self.0.bulkhead.limit();
        if in_flight.fetch_add(1, Ordering::AcqRel) >= limit {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            self.0.counters.saturated.inc();
            return Err(UpstreamError::new(
                self.name(),
                UpstreamErrorKind::Saturated,
                format!("{limit} calls in flight"),
            ));
        }
        Ok(BulkheadSlot(in_flight))
    }
}

/// A place in the bulkhead, given back on drop (also when the call is cancelled).
pub(super) struct BulkheadSlot<'a>(&'a AtomicUsize);

impl Drop for BulkheadSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
