//! The route table: path prefixes from config proxied to an upstream (`/api/accounts/*` ->
//! accounts), with an optional prefix rewrite, per-route auth and required scopes, hop-by-hop
//! headers removed both ways, the forwarding headers written by the gateway (`forwarded`),
//! the verified identity set for the backend, and bodies streamed both ways — a proxied body
//! is never held whole in memory, and is cut off at the route's `max_body` (413).

mod forwarded;

pub use forwarded::{FORWARDED, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::cache::{CachedUpstream, Exchange};
use crate::config::{AuthPolicy, Config};
use crate::edge::compress::AsEncoded;
use crate::error::{Code, Problem};
use crate::request::{CallContext, Deadline, REQUEST_ID_HEADER, Stamp};
use crate::upstream::REQUEST_TIMEOUT_HEADER;

/// One compiled route.
struct ProxyRoute {
    prefix: String,
    /// What replaces `prefix` upstream (the prefix itself when there is no rewrite).
    target_prefix: String,
    upstream: CachedUpstream,
    timeout: Duration,
    /// Largest body passed on; the exchange fails with 413 past it.
    max_body: u64,
    /// How clients reach this gateway, for `X-Forwarded-Proto`.
    proto: &'static str,
    /// Compress answers here; else they go out as the backend encoded them.
    compress: bool,
}

/// Mounts every configured route, each behind `guard` (authentication under the route's
/// policy, and the rate limits). Routes were validated with the config: prefixes are
/// literal, unique, and name configured upstreams.
pub fn routes(
    config: &Config,
    upstreams: &BTreeMap<String, CachedUpstream>,
    guard: impl Fn(Router, AuthPolicy, &[String]) -> Router,
) -> Router {
    let mut router = Router::new();
    let proto = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    for route in &config.routes {
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
            max_body: route
                .max_body
                .unwrap_or(config.limits.max_proxy_body)
                .bytes(),
            proto,
            compress: route.compress,
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
        .map(|ConnectInfo(peer)| peer.ip());
    // The forwarding headers of a trusted proxy stand (`edge::client_ip`); anyone else's go.
    let trusted = Stamp::of(&parts.extensions).is_some_and(|s| s.from_trusted_proxy);
    // A handle on the header's bytes, not a copy: the headers move into the exchange.
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        let authority = parts.uri.authority()?;
        HeaderValue::from_str(authority.as_str()).ok()
    });
    let outgoing = |mut headers: HeaderMap| {
        remove_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(REQUEST_ID_HEADER);
        headers.remove(REQUEST_TIMEOUT_HEADER);
        if let Some(peer) = peer {
            let hop = forwarded::Hop {
                peer,
                trusted,
                proto: route.proto,
                host: host.as_ref(),
            };
            forwarded::apply(&mut headers, &hop);
        }
        headers
    };
    // Only a client that accepts an encoding can have an answer compressed (`edge::compress`
    // negotiates on the header), so only its answer needs marking as the backend's own.
    let as_encoded = !route.compress && parts.headers.contains_key(header::ACCEPT_ENCODING);
    // Past the cap the body fails mid-stream, and the flag says why the exchange did. A
    // request without a body (most: GET) has nothing to cap.
    let over_cap =
        (!http_body::Body::is_end_stream(&body)).then(|| Arc::new(AtomicBool::new(false)));
    let body = match &over_cap {
        None => body,
        Some(flag) => {
            let tripped = Arc::clone(flag);
            Body::new(Limited::new(body, cap(route.max_body)).map_err(move |e| {
                if e.is::<LengthLimitError>() {
                    tripped.store(true, Ordering::Relaxed);
                }
                e
            }))
        }
    };
    let exchange = Exchange {
        method: parts.method,
        target: &target,
        headers: std::mem::take(&mut parts.headers),
        body,
        timeout: route.timeout,
    };
    let forwarded = route.upstream.forward(&ctx, exchange, outgoing).await;
    if over_cap.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
        let detail = format!("the request body is larger than {} bytes", route.max_body);
        let mut response = Problem::new(Code::PayloadTooLarge, detail).into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    match forwarded {
        Ok(mut response) => {
            remove_hop_by_hop(response.headers_mut());
            if as_encoded {
                response.extensions_mut().insert(AsEncoded);
            }
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
    // Most messages carry none: one pass over the names instead of a lookup for each.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
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

fn cap(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
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

        // Any one of them alone is found too (the pass that skips clean messages).
        for name in ["keep-alive", "proxy-connection", "te", "trailer"] {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            h.insert("accept", HeaderValue::from_static("application/json"));
            remove_hop_by_hop(&mut h);
            assert!(!h.contains_key(name), "{name}");
            assert_eq!(h.len(), 1);
        }
    }
}
