//! The route table: path prefixes from config proxied to an upstream (`/api/users/*` ->
//! users), with an optional prefix rewrite, per-route auth and required scopes, hop-by-hop headers removed both
//! ways, the verified identity set for the backend, and bodies streamed both ways — a proxied
//! body is never held whole in memory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::cache::policy;
use crate::cache::proxy::ProxyLookup;
use crate::config::{AuthPolicy, RouteConfig};
use crate::edge::REQUEST_ID_HEADER;
use crate::rest::Problem;
use crate::upstream::{CallContext, Deadline, REQUEST_TIMEOUT_HEADER, Upstream, UpstreamError};

/// One compiled route.
struct ProxyRoute {
    prefix: String,
    /// What replaces `prefix` upstream (the prefix itself when there is no rewrite).
    target_prefix: String,
    upstream: Upstream,
    timeout: Duration,
}

/// Mounts every configured route, each behind `guard` (authentication under the route's
/// policy, and the rate limits). Routes were validated with the config: prefixes are
/// literal, unique, and name configured upstreams.
pub fn routes(
    config: &[RouteConfig],
    upstreams: &BTreeMap<String, Upstream>,
    guard: impl Fn(Router, AuthPolicy, &[String]) -> Router,
) -> Router {
    let mut router = Router::new();
    for route in config {
        let Some(upstream) = upstreams.get(&route.upstream) else {
            continue;
        };
        let state = Arc::new(ProxyRoute {
            prefix: route.prefix.clone(),
            target_prefix: route
                .rewrite
                .clone()
                .unwrap_or_else(|| route.prefix.clone()),
            upstream: upstream.clone(),
            timeout: route.timeout,
        });
        let mounted = Router::new()
            .route(&format!("{}{{*rest}}", route.prefix), any(forward))
            .route(&route.prefix, any(forward))
            .with_state(state);
        router = router.merge(guard(mounted, route.auth, &route.scopes));
    }
    router
}

async fn forward(State(route): State<Arc<ProxyRoute>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut ctx = CallContext::from_parts(&parts);
    // A proxied exchange may move a large body: it runs on the route's budget.
    ctx.deadline = Deadline::after(route.timeout);

    let rest = parts
        .uri
        .path()
        .strip_prefix(route.prefix.as_str())
        .unwrap_or("");
    let target = match parts.uri.query() {
        Some(q) => format!("{}{rest}?{q}", route.target_prefix),
        None => format!("{}{rest}", route.target_prefix),
    };
    let mut headers = end_to_end(&parts.headers);
    headers.remove(header::HOST);
    headers.remove(REQUEST_ID_HEADER);
    headers.remove(REQUEST_TIMEOUT_HEADER);
    if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        append_forwarded_for(&mut headers, peer);
    }

    // A plain GET of a cached service may be answered, or stood in for, by the cache.
    let cache = route
        .upstream
        .cache()
        .filter(|_| parts.method == Method::GET && !parts.headers.contains_key(header::RANGE));
    let cache_key = cache.map(|_| policy::request_key(route.upstream.name(), &target));
    let mut stale = None;
    if let (Some(cache), Some(key)) = (cache, &cache_key) {
        match cache.proxy_lookup(&ctx, key, &parts.headers).await {
            ProxyLookup::Hit(response) => return response,
            ProxyLookup::Miss { stale: s } => stale = s,
        }
    }
    let request_headers = parts.headers.clone();

    let upstream_body = reqwest::Body::wrap_stream(body.into_data_stream());
    let response = match route
        .upstream
        .stream(
            &ctx,
            parts.method.clone(),
            &target,
            headers,
            upstream_body,
            route.timeout,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(service = %e.service, detail = %e.detail, "proxied call failed");
            if let Some(answer) =
                cache.and_then(|c| c.proxy_stale(&ctx, &e, stale.as_ref(), &request_headers))
            {
                return answer;
            }
            return Problem::from(e).into_response();
        }
    };

    let status = response.status();
    let headers = end_to_end(response.headers());
    if let (Some(cache), Some(key)) = (cache, &cache_key) {
        if status.is_server_error() {
            let e = UpstreamError::from_status(route.upstream.name(), status);
            if let Some(answer) = cache.proxy_stale(&ctx, &e, stale.as_ref(), &request_headers) {
                return answer;
            }
        } else if cache.proxy_storable(&ctx, status, &headers, response.content_length()) {
            // Small and known-length (checked above): buffering it is bounded.
            return match response.bytes().await {
                Ok(body) => {
                    cache
                        .proxy_store(&ctx, key, &headers, body, &request_headers)
                        .await
                }
                Err(e) => Problem::from(UpstreamError::from_transport(route.upstream.name(), &e))
                    .into_response(),
            };
        }
    }
    let stream = response.bytes_stream().map_err(std::io::Error::other);
    let mut out = Response::new(Body::from_stream(stream));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// The headers that belong to the message, not to the connection (RFC 9110 §7.6.1): without
/// the hop-by-hop set and without any header the sender named in `Connection`.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if HOP_BY_HOP.contains(&name.as_str()) || named.contains(name) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: &SocketAddr) {
    let ip = peer.ip().to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {ip}"),
        None => ip,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        let out = end_to_end(&h);
        assert_eq!(out.len(), 1);
        assert!(out.contains_key("accept"));
    }
}
