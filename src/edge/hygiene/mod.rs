//! Request hygiene, the outermost layer, before routing and auth. The request target and the
//! headers are held to `[limits]` (414, 431); the head must frame its body one way only and
//! name its host once (400, `head`), a host this gateway serves (421); the path is
//! normalised ONCE (`path`) so routing, auth and the backend all see the same path; and a
//! declared body larger than its route accepts is refused (413) before a byte of it is read,
//! so a client waiting on `Expect: 100-continue` never gets its `100 Continue`.
//!
//! Streamed bodies are capped where they are read: whole by the routes that parse them
//! (`[server] max_request_body`), as they pass by the proxy routes (`proxy`).

mod head;
mod path;

pub use path::normalise_path;

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::uri::PathAndQuery;
use http::{HeaderValue, header};
use tower::Service;
use tower::util::Either;

use super::cors;
use crate::config::{Config, CorsConfig, PathSemicolons};
use crate::error::{Code, Problem};

/// What the hygiene layer enforces.
#[derive(Clone, Debug)]
pub struct HygienePolicy {
    max_uri: usize,
    max_header_bytes: usize,
    max_headers: usize,
    /// Proxy route prefixes a `..` must not climb out of.
    route_prefixes: Arc<[String]>,
    /// Each proxy route's prefix with its body cap, longest prefix first.
    route_bodies: Arc<[(String, u64)]>,
    /// The body cap of every other route.
    max_body: u64,
    /// Empty: any host.
    allowed_hosts: Arc<[String]>,
    semicolons: PathSemicolons,
}

impl HygienePolicy {
    pub fn new(config: &Config) -> Self {
        let limits = &config.limits;
        let mut route_bodies: Vec<(String, u64)> = config
            .routes
            .iter()
            .map(|r| {
                let cap = r.max_body.unwrap_or(limits.max_proxy_body);
                (r.prefix.clone(), cap.bytes())
            })
            .collect();
        route_bodies.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Self {
            max_uri: usize::try_from(limits.max_uri.bytes()).unwrap_or(usize::MAX),
            max_header_bytes: usize::try_from(limits.max_header_bytes.bytes())
                .unwrap_or(usize::MAX),
            max_headers: limits.max_headers,
            route_prefixes: config.routes.iter().map(|r| r.prefix.clone()).collect(),
            route_bodies: route_bodies.into(),
            max_body: config.server.max_request_body.bytes(),
            allowed_hosts: limits.allowed_hosts.iter().cloned().collect(),
            semicolons: limits.path_semicolons,
        }
    }

    /// The body cap of the route `path` leads to.
    fn body_cap(&self, path: &str) -> u64 {
        self.route_bodies
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map_or(self.max_body, |(_, cap)| *cap)
    }
}

/// Why a request was refused before routing.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HygieneError {
    #[error("the request target is longer than {0} bytes")]
    UriTooLong(usize),
    #[error("the request has more than {0} header fields")]
    TooManyHeaders(usize),
    #[error("the request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    #[error("bad request path: {0}")]
    BadPath(&'static str),
    #[error("bad request header: {0}")]
    BadHeader(&'static str),
    /// Framing two parsers could read two ways: the connection is closed after the answer.
    #[error("ambiguous request framing: {0}")]
    BadFraming(&'static str),
    #[error("this host is not served here")]
    MisdirectedHost,
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(u64),
}

impl IntoResponse for HygieneError {
    fn into_response(self) -> Response {
        let code = match self {
            HygieneError::UriTooLong(_) => Code::UriTooLong,
            HygieneError::TooManyHeaders(_) | HygieneError::HeadersTooLarge(_) => {
                Code::HeadersTooLarge
            }
            HygieneError::BadPath(_) => Code::BadPath,
            HygieneError::BadHeader(_) | HygieneError::BadFraming(_) => Code::BadHeader,
            HygieneError::MisdirectedHost => Code::MisdirectedRequest,
            HygieneError::BodyTooLarge(_) => Code::PayloadTooLarge,
        };
        // Whatever follows an unread or ambiguously framed body on this connection cannot be
        // told apart from it.
        let close = matches!(
            self,
            HygieneError::BadFraming(_) | HygieneError::BodyTooLarge(_)
        );
        let mut response = Problem::new(code, self.to_string()).into_response();
        if close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// What runs before routing, as one service rather than a middleware each: hygiene (refuse
/// or normalise), then CORS ([`cors::Gate`]: its preflight answers need no token), then the
/// router. A middleware layer clones the service behind it and boxes a `Next` per request.
#[derive(Clone)]
pub struct BeforeRouting {
    policy: Arc<HygienePolicy>,
    routed: Either<cors::Gate, Router>,
}

impl BeforeRouting {
    pub fn new(policy: HygienePolicy, cors: &CorsConfig, router: Router) -> Self {
        BeforeRouting {
            policy: Arc::new(policy),
            routed: cors::Gate::wrap(cors, router),
        }
    }
}

impl Service<Request> for BeforeRouting {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both are always ready: a `Router` (axum's docs) and a `Gate` of routers.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.serve(request)
    }
}

impl BeforeRouting {
    /// `call` through a shared reference: the request's future takes a copy of the router
    /// alone (one reference count), not of this whole service.
    pub fn serve(&self, request: Request) -> BoxFuture<'static, Result<Response, Infallible>> {
        match check(&self.policy, request) {
            Ok(request) => match &self.routed {
                Either::Left(gate) => gate.serve(request),
                Either::Right(router) => Box::pin(router.clone().call(request)),
            },
            Err(e) => {
                tracing::debug!(reason = %e, "request refused by hygiene checks");
                Box::pin(std::future::ready(Ok(e.into_response())))
            }
        }
    }
}

fn check(policy: &HygienePolicy, mut request: Request) -> Result<Request, HygieneError> {
    let target_len = request
        .uri()
        .path_and_query()
        .map_or(1, |pq| pq.as_str().len());
    if target_len > policy.max_uri {
        return Err(HygieneError::UriTooLong(policy.max_uri));
    }
    let headers = request.headers();
    if headers.len() > policy.max_headers {
        return Err(HygieneError::TooManyHeaders(policy.max_headers));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > policy.max_header_bytes {
        return Err(HygieneError::HeadersTooLarge(policy.max_header_bytes));
    }
    head::check(&request, &policy.allowed_hosts)?;
    let encoded =
        path::semicolons(request.uri().path(), policy.semicolons).map_err(HygieneError::BadPath)?;
    let normalised = match normalise_path(&encoded, &policy.route_prefixes) {
        Ok(Cow::Borrowed(_)) => encoded.clone(),
        Ok(Cow::Owned(path)) => Cow::Owned(path),
        Err(e) => return Err(HygieneError::BadPath(e)),
    };
    let cap = policy.body_cap(&normalised);
    if head::declared_length(request.headers()).is_some_and(|n| n > cap) {
        return Err(HygieneError::BodyTooLarge(cap));
    }
    if let Cow::Owned(path) = normalised {
        let target = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = Some(
            PathAndQuery::try_from(target).map_err(|_| HygieneError::BadPath("invalid path"))?,
        );
        *request.uri_mut() =
            http::Uri::from_parts(parts).map_err(|_| HygieneError::BadPath("invalid path"))?;
    }
    Ok(request)
}
