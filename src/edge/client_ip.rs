//! The client's address. The configured forwarding header (`X-Forwarded-For` or `Forwarded`,
//! never both) is believed only when the socket peer is a configured trusted proxy, and then only up to the rightmost hop that is not
//! itself trusted (anything left of it was written by the client and can be forged).
//! Otherwise the client is the socket peer. Owns nothing else: what the address is used for
//! (rate limits, logs) is up to the modules that read it from the request's `Stamp`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use http::HeaderMap;

use crate::config::{Cidr, ClientIpConfig, ForwardedHeader};
use crate::request::Stamp;

pub use crate::request::ClientIp;

/// The proxies whose forwarding header is believed, and which header that is.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    blocks: Arc<[Cidr]>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    pub fn new(config: &ClientIpConfig) -> Self {
        Self {
            blocks: config.trusted_proxies.as_slice().into(),
            header: config.header,
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|block| block.contains(ip))
    }

    /// The client of a request from `peer` carrying `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for(headers, self.header);
        // Walk from the nearest hop outwards; the first untrusted one is the client. A hop
        // that does not parse ends the walk at the last good hop: it cannot be believed.
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop else { break };
            client = ip.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// Notes the client's address (and whether the peer is a trusted proxy) in the request's
/// `Stamp` (`edge::admit` put it there), before auth, the limits and the proxy routes read
/// them.
pub fn attach(proxies: &TrustedProxies, request: &mut Request) {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let Some(peer) = peer else {
        return;
    };
    let client = proxies.resolve(peer, request.headers());
    if let Some(stamp) = request.extensions_mut().get_mut::<Stamp>() {
        stamp.client = Some(ClientIp(client));
        stamp.from_trusted_proxy = proxies.trusts(peer.to_canonical());
    }
}

/// The hops a request went through, client first, from `X-Forwarded-For` or RFC 7239
/// `Forwarded: for=`. `None` marks a hop that is not an address (`unknown`, `_hidden`).
fn forwarded_for(headers: &HeaderMap, which: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let joined = |name: &str| {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    match which {
        ForwardedHeader::XForwardedFor => joined("x-forwarded-for")
            .map(|xff| xff.split(',').map(|hop| parse_node(hop.trim())).collect())
            .unwrap_or_default(),
        ForwardedHeader::Forwarded => joined("forwarded")
            .map(|forwarded| {
                forwarded
                    .split(',')
                    .map(|element| {
                        element
                            .split(';')
                            .filter_map(|pair| pair.split_once('='))
                            .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                            .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn proxies(blocks: &[&str]) -> TrustedProxies {
        proxies_with(blocks, ForwardedHeader::XForwardedFor)
    }

    fn proxies_with(blocks: &[&str], header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies::new(&ClientIpConfig {
            trusted_proxies: blocks.iter().map(|b| b.parse().unwrap()).collect(),
            header,
        })
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(p.resolve(ip("203.0.113.9"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        // The client forged 6.6.6.6; 198.51.100.7 connected to our first proxy 10.0.0.2.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(p.resolve(ip("10.0.0.1"), &h), ip("198.51.100.7"));
        // Only trusted hops: the leftmost one.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.2")]);
        assert_eq!(p.resolve(ip("10.0.0.1"), &h), ip("10.9.9.9"));
        // Garbage stops the walk at the last believable hop.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, nonsense, 10.0.0.2")]);
        assert_eq!(p.resolve(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        // No header: the proxy itself.
        assert_eq!(p.resolve(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let h = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
            ),
            ("x-forwarded-for", "5.5.5.5"),
        ]);
        let forwarded = proxies_with(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        assert_eq!(
            forwarded.resolve(ip("10.0.0.1"), &h),
            ip("2001:db8:cafe::17")
        );
        let xff = proxies(&["10.0.0.0/8"]);
        assert_eq!(xff.resolve(ip("10.0.0.1"), &h), ip("5.5.5.5"));
        // A client-sent `Forwarded` is ignored when the proxies write X-Forwarded-For.
        let h = headers(&[("forwarded", "for=198.51.100.1:8080;by=10.0.0.1")]);
        assert_eq!(xff.resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        assert_eq!(forwarded.resolve(ip("10.0.0.1"), &h), ip("198.51.100.1"));
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a = ClientIp(ip("2001:db8:1:2:aaaa::1")).limit_key();
        let b = ClientIp(ip("2001:db8:1:2:bbbb::2")).limit_key();
        let c = ClientIp(ip("2001:db8:1:3::1")).limit_key();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, ip("2001:db8:1:2::"));
        assert_eq!(
            ClientIp(ip("::ffff:192.0.2.1")).limit_key(),
            ip("192.0.2.1")
        );
    }
}
