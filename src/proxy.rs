//! The route table: path prefixes from config proxied to an upstream (`/api/accounts/*` ->
//! accounts), with an optional prefix rewrite, per-route auth and required scopes, hop-by-hop headers removed both
//! ways, the verified identity set for the backend, and bodies streamed both ways — a proxied
//! body is never held whole in memory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::cache::{CachedUpstream, Exchange};
use crate::config::{AuthPolicy, RouteConfig};
use crate::error::Problem;
use crate::request::{CallContext, Deadline, REQUEST_ID_HEADER};
use crate::upstream::REQUEST_TIMEOUT_HEADER;

/// One compiled route.
struct ProxyRoute {
    prefix: String,
    /// What replaces `prefix` upstream (the prefix itself when there is no rewrite).
    target_prefix: String,
    upstream: CachedUpstream,
    timeout: Duration,
}

/// Mounts every configured route, each behind `guard` (authentication under the route's
/// policy, and the rate limits). Routes were validated with the config: prefixes are
/// literal, unique, and name configured upstreams.
pub fn routes(
    config: &[RouteConfig],
    upstreams: &BTreeMap<String, CachedUpstream>,
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
    let (mut parts, body) = request.into_parts();
    let mut ctx = CallContext::from_parts(&parts);
    // A proxied exchange may move a large body: it runs on the route's budget.
    ctx.deadline = Deadline::after(route.timeout);

    let rest = parts
        .uri
        .path()
        .strip_prefix(route.prefix.as_str())
        .unwrap_or("");
    let mut target = String::with_capacity(
        route.target_prefix.len() + rest.len() + parts.uri.query().map_or(0, |q| q.len() + 1),
    );
    target.push_str(&route.target_prefix);
    target.push_str(rest);
    if let Some(q) = parts.uri.query() {
        target.push('?');
        target.push_str(q);
    }

    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let outgoing = |mut headers: HeaderMap| {
        remove_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(REQUEST_ID_HEADER);
        headers.remove(REQUEST_TIMEOUT_HEADER);
        if let Some(peer) = &peer {
            append_forwarded_for(&mut headers, peer);
        }
        headers
    };
    let exchange = Exchange {
        method: parts.method,
        target: &target,
        headers: std::mem::take(&mut parts.headers),
        body,
        timeout: route.timeout,
    };
    let forwarded = route.upstream.forward(&ctx, exchange, outgoing).await;
    match forwarded {
        Ok(mut response) => {
            remove_hop_by_hop(response.headers_mut());
            response
        }
        Err(e) => {
            tracing::debug!(service = %e.service, detail = %e.detail, "proxied call failed");
            Problem::from(e).into_response()
        }
    }
}

/// Removes the headers that belong to the connection, not to the message (RFC 9110
/// §7.6.1): the hop-by-hop set and any header the sender named in `Connection`.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    const HOP_BY_HOP: [HeaderName; 9] = [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        HeaderName::from_static("proxy-connection"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ];
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: &SocketAddr) {
    const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    let ip = peer.ip();
    let value = match headers.get(&FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {ip}"),
        None => ip.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(FORWARDED_FOR, value);
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
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }
}
