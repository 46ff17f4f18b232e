//! The route table: path prefixes from config proxied to an upstream (`/api/accounts/*` ->
//! accounts), with an optional prefix rewrite, per-route auth and required scopes, hop-by-hop
//! headers removed both ways, the forwarding headers written by the gateway (`forwarded`),
//! the verified identity set for the backend, and bodies streamed both ways — a proxied body
//! is never held whole in memory, and is cut off at the route's `max_body` (413).

mod forwarded;

pub use forwarded::{FORWARDED, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::service_fn;

use crate::cache::{CachedUpstream, Exchange};
use crate::config::{AuthPolicy, Config};
use crate::edge::compress::AsEncoded;
use crate::error::{Code, Problem};
use crate::request::{CallContext, Deadline, REQUEST_ID_HEADER, Stamp};
use crate::rest::Deprecations;
use crate::server::around::{Around, Next};
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

/// The proxy routes, found by the longest prefix a path starts with (of `/v1/` and
/// `/v1/raw/users/`, the longer takes `/v1/raw/users/42`). Not routes of the router: the
/// layer in front of every route asks the table about a request the router matched to no
/// route (`Proxied`), so a path the BFF's own routes, the health endpoints or a declared
/// endpoint match is theirs whatever prefix covers it, and a path no prefix covers goes on
/// to the router's fallback. One lookup and the route's guard around the exchange: no
/// route of their own, no route parameter decoded, no handler extractors (about 5% of a
/// proxied request's instructions, `bench/profile.py proxy-plain --callgrind`).
pub struct Table<G> {
    /// Longest prefix first.
    routes: Arc<[Mounted<G>]>,
}

impl<G> Clone for Table<G> {
    fn clone(&self) -> Self {
        Table {
            routes: self.routes.clone(),
        }
    }
}

struct Mounted<G> {
    route: ProxyRoute,
    /// Authentication and limits under the route's policy; `None`: nothing to check.
    guard: Option<G>,
    /// How the metrics and the access log name the route: the prefix itself, and the
    /// paths below it (the patterns a router would have matched).
    exact_label: Arc<str>,
    below_label: Arc<str>,
    /// The `Deprecation`, `Sunset` and `Link` headers of a deprecated prefix.
    deprecation: Box<[(HeaderName, HeaderValue)]>,
}

impl<G: Around> Table<G> {
    /// Every configured route, each behind `guard(policy, scopes)`. Routes were validated
    /// with the config: prefixes are literal, unique, and name configured upstreams.
    pub fn new(
        config: &Config,
        upstreams: &BTreeMap<String, CachedUpstream>,
        deprecations: Option<&Deprecations>,
        guard: impl Fn(AuthPolicy, &[String]) -> Option<G>,
    ) -> Self {
        let proto = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut routes: Vec<Mounted<G>> = config
            .routes
            .iter()
            .filter_map(|route| {
                let upstream = upstreams.get(&route.upstream)?;
                let deprecation = deprecations
                    .and_then(|d| d.headers_of(&route.prefix))
                    .unwrap_or_default();
                Some(Mounted {
                    route: ProxyRoute {
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
                    },
                    guard: guard(route.auth, &route.scopes),
                    exact_label: route.prefix.as_str().into(),
                    below_label: format!("{}{{*rest}}", route.prefix).into(),
                    deprecation: deprecation.into(),
                })
            })
            .collect();
        routes.sort_by_key(|m| std::cmp::Reverse(m.route.prefix.len()));
        Table {
            routes: routes.into(),
        }
    }

    /// The route that proxies `path`, if a prefix covers it.
    pub fn find(&self, path: &str) -> Option<Proxied<G>> {
        let index = self
            .routes
            .iter()
            .position(|m| path.starts_with(m.route.prefix.as_str()))?;
        Some(Proxied {
            table: self.clone(),
            index,
            exact: path.len() == self.routes[index].route.prefix.len(),
        })
    }
}

/// A request's proxy route, found.
pub struct Proxied<G> {
    table: Table<G>,
    index: usize,
    /// The path is the prefix itself.
    exact: bool,
}

impl<G: Around> Proxied<G> {
    fn mounted(&self) -> &Mounted<G> {
        &self.table.routes[self.index]
    }

    /// How the metrics and the access log name the route.
    pub fn label(&self) -> Arc<str> {
        let mounted = self.mounted();
        if self.exact {
            mounted.exact_label.clone()
        } else {
            mounted.below_label.clone()
        }
    }

    /// Authenticates and charges the request under the route's guard, then proxies it.
    pub async fn serve(self, request: Request) -> Response {
        let mounted = self.mounted();
        let mut response = match &mounted.guard {
            None => forward(&mounted.route, request).await,
            Some(guard) => {
                let table = self.table.clone();
                let index = self.index;
                let exchange = service_fn(move |request| {
                    let routes = table.routes.clone();
                    async move { Ok::<_, Infallible>(forward(&routes[index].route, request).await) }
                });
                guard.around(request, Next::new(exchange)).await
            }
        };
        for (name, value) in &mounted.deprecation {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response
    }
}

async fn forward(route: &ProxyRoute, request: Request) -> Response {
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
