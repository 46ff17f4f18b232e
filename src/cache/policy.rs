//! What may be stored, under which key, and for how long: `Cache-Control` and `Vary` read
//! from a backend's answer (RFC 9111, as a shared cache), and the key every lookup builds.
//! Nothing here touches the store.

use std::time::Duration;

use http::{HeaderMap, HeaderName, header};

use crate::config::CachePolicyConfig;
use crate::request::{CallContext, anonymous_digest};

/// The `Cache-Control` directives a shared cache acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub public: bool,
    pub private: bool,
    pub no_store: bool,
    pub no_cache: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

impl CacheControl {
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut cc = CacheControl::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let secs = || arg.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "public" => cc.public = true,
                    // `private="field"` restricts fields; we treat any form as all private.
                    "private" => cc.private = true,
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "max-age" => cc.max_age = secs(),
                    "s-maxage" => cc.s_maxage = secs(),
                    "stale-while-revalidate" => cc.stale_while_revalidate = secs(),
                    "stale-if-error" => cc.stale_if_error = secs(),
                    _ => {}
                }
            }
        }
        cc
    }
}

/// Where an answer may live once stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// `public`: one entry for every caller.
    Shared,
    /// Anything else: one entry per identity (the exact identity headers the backend saw).
    PerIdentity,
}

/// The lifetimes of a storable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub sharing: Sharing,
    pub fresh: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

impl Lifetime {
    /// How long the store must keep the entry for any use.
    pub fn keep(&self) -> Duration {
        self.fresh + self.stale_while_revalidate.max(self.stale_if_error)
    }
}

/// Whether a successful answer may be stored and for how long; `None` means never.
/// Errors never get here: only 200 answers are offered to the cache.
pub fn lifetime(
    headers: &HeaderMap,
    body_len: usize,
    max_entry: u64,
    policy: &CachePolicyConfig,
) -> Option<Lifetime> {
    if body_len as u64 > max_entry || headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    let cc = CacheControl::parse(headers);
    if cc.no_store || cc.no_cache {
        return None;
    }
    // `Vary: *` can never match a later request.
    vary_names(headers)?;
    // s-maxage speaks to shared caches, and wins over max-age.
    let ttl = cc.s_maxage.or(cc.max_age)?;
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let fresh = Duration::from_secs(ttl.saturating_sub(age)).min(policy.max_ttl);
    let window =
        |stated: Option<u64>, default: Duration| stated.map(Duration::from_secs).unwrap_or(default);
    Some(Lifetime {
        sharing: if cc.public && !cc.private {
            Sharing::Shared
        } else {
            Sharing::PerIdentity
        },
        fresh,
        stale_while_revalidate: window(cc.stale_while_revalidate, policy.stale_while_revalidate),
        stale_if_error: window(cc.stale_if_error, policy.stale_if_error),
    })
}

/// The header names an answer varies on; `None` for `Vary: *`.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in headers.get_all(header::VARY) {
        let Ok(value) = value.to_str() else { continue };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            if let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Some(names)
}

/// A batch endpoint of a backend, as the entity cache sees it.
pub struct BatchEndpoint<'a> {
    /// The entity kind, first half of each item's tag: `item` -> `item:i1`.
    pub kind: &'a str,
    /// The item field holding its id: `id`, `itemId`.
    pub id_field: &'a str,
    /// Path and query of the call for these ids.
    pub path: &'a (dyn Fn(&[&str]) -> String + Send + Sync),
    /// The projection `path` asks for, when it asks the backend for only some fields
    /// (`fields=id,title`): its items are kept apart from the whole entity's, under the same
    /// tag, so a purge of `item:i1` drops every view of it. `None`: the whole entity.
    pub view: Option<&'a str>,
}

impl BatchEndpoint<'_> {
    /// The tag and the cache key of the entity `id` as this endpoint answers it.
    pub fn entity(&self, upstream: &str, id: &str) -> (String, String) {
        view_entity(upstream, self.kind, self.view, id)
    }
}

/// The tag and the cache key of the entity `{kind}:{id}` in `view` (see `BatchEndpoint`).
pub fn view_entity(upstream: &str, kind: &str, view: Option<&str>, id: &str) -> (String, String) {
    let tag = concat(&[kind, ":", id]);
    let mut key = entity_key(upstream, &tag);
    if let Some(view) = view {
        key.push_str(" |view=");
        key.push_str(view);
    }
    (tag, key)
}

/// The key of a request: `{upstream} GET {path}?{sorted query}`. Query pairs are sorted so
/// `?a=1&b=2` and `?b=2&a=1` share an entry; the path is kept as sent (the typed clients
/// and the edge already normalise it).
pub fn request_key(upstream: &str, path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut key = concat(&[upstream, " GET ", path]);
    if let Some(query) = query {
        let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        pairs.sort_unstable();
        if !pairs.is_empty() {
            key.push('?');
            key.push_str(&pairs.join("&"));
        }
    }
    key
}

/// The forwarding headers a backend may build an answer from (absolute links, redirects)
/// without saying `Vary`: the host and scheme the client asked for. The client's address is
/// left out (it would give every client its own entry); a backend whose answer depends on it
/// must not mark that answer public.
const FORWARDED_HOST_AND_PROTO: [HeaderName; 2] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
];

/// `base` narrowed to the host and scheme forwarded to the backend (`sent` is what it is
/// sent): `X-Forwarded-Host`, `X-Forwarded-Proto`, and the `host=` and `proto=` of every
/// `Forwarded` element, so an answer built for one host is never served to a request for
/// another.
pub fn forwarded_key(base: &str, sent: &HeaderMap) -> String {
    let mut key = String::from(base);
    for name in &FORWARDED_HOST_AND_PROTO {
        for value in sent.get_all(name) {
            key.push_str(" |");
            key.push_str(name.as_str());
            key.push('=');
            key.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
    }
    for value in sent.get_all("forwarded") {
        let Ok(value) = value.to_str() else { continue };
        let pairs = value
            .split([',', ';'])
            .filter_map(|pair| pair.split_once('='));
        for (name, value) in pairs {
            let name = name.trim().to_ascii_lowercase();
            if name == "host" || name == "proto" {
                key.push_str(" |forwarded.");
                key.push_str(&name);
                key.push('=');
                key.push_str(value.trim());
            }
        }
    }
    key
}

/// The key of one entity served by a batch endpoint: `{upstream} {kind}:{id}`, e.g.
/// `inventory item:i1` (its tag is `item:i1`).
pub fn entity_key(upstream: &str, tag: &str) -> String {
    concat(&[upstream, " ", tag])
}

/// `base` narrowed to the values of the `Vary` headers, taken from what the backend was
/// sent (the identity headers, the only caller-dependent headers a GET carries).
pub fn varied_key(base: &str, names: &[HeaderName], ctx: &CallContext) -> String {
    let mut key = String::from(base);
    for name in names {
        key.push_str(" |");
        key.push_str(name.as_str());
        key.push('=');
        let value = ctx.identity.as_deref().and_then(|id| {
            id.forwarded_headers()
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.to_str().ok())
        });
        key.push_str(value.unwrap_or(""));
    }
    key
}

/// `base` narrowed to the caller: a digest of every identity header the backend saw (no
/// identity is a partition of its own), so a per-identity entry can only match the same
/// caller. The digest is kept with the identity (`Identity::digest`).
pub fn identity_key(base: &str, ctx: &CallContext) -> String {
    let digest = match ctx.identity.as_deref() {
        Some(identity) => identity.digest(),
        None => anonymous_digest(),
    };
    concat(&[base, " @", digest])
}

/// The pieces in one string, allocated once (`format!` cost several hundred instructions a
/// key, and a page of the web client makes a hundred keys).
fn concat(pieces: &[&str]) -> String {
    let mut out = String::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for piece in pieces {
        out.push_str(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn life(pairs: &[(&'static str, &'static str)]) -> Option<Lifetime> {
        lifetime(&headers(pairs), 10, 100, &CachePolicyConfig::default())
    }

    #[test]
    fn cache_control_is_parsed() {
        let cc = CacheControl::parse(&headers(&[
            ("cache-control", "Public, max-age=60"),
            ("cache-control", "s-maxage=\"30\", stale-if-error=5"),
        ]));
        assert!(cc.public && !cc.private);
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(30));
        assert_eq!(cc.stale_if_error, Some(5));
    }

    #[test]
    fn only_storable_answers_get_a_lifetime() {
        let l = life(&[("cache-control", "public, max-age=60")]).unwrap();
        assert_eq!(l.sharing, Sharing::Shared);
        assert_eq!(l.fresh, Duration::from_secs(60));
        let l = life(&[("cache-control", "public, max-age=60, s-maxage=5")]).unwrap();
        assert_eq!(l.fresh, Duration::from_secs(5));
        let l = life(&[("cache-control", "max-age=60"), ("age", "50")]).unwrap();
        assert_eq!(l.fresh, Duration::from_secs(10));
        assert_eq!(l.sharing, Sharing::PerIdentity);
        let l = life(&[("cache-control", "private, max-age=30")]).unwrap();
        assert_eq!(l.sharing, Sharing::PerIdentity);

        assert!(life(&[("cache-control", "private, no-store")]).is_none());
        assert!(life(&[("cache-control", "public, no-cache, max-age=9")]).is_none());
        assert!(life(&[("cache-control", "public")]).is_none());
        assert!(life(&[]).is_none());
        assert!(
            life(&[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "a=b")
            ])
            .is_none()
        );
        assert!(life(&[("cache-control", "public, max-age=60"), ("vary", "*")]).is_none());
        let big = lifetime(
            &headers(&[("cache-control", "public, max-age=60")]),
            101,
            100,
            &CachePolicyConfig::default(),
        );
        assert!(big.is_none());
    }

    #[test]
    fn keys_sort_the_query_and_partition_by_identity() {
        assert_eq!(
            request_key("inventory", "/items?b=2&a=1"),
            request_key("inventory", "/items?a=1&b=2")
        );
        assert_ne!(
            request_key("inventory", "/items?a=1"),
            request_key("ratings", "/items?a=1")
        );
        let ctx = CallContext::new(
            None,
            crate::request::Deadline::after(Duration::from_secs(1)),
            "t".into(),
        );
        let k = identity_key("inventory GET /x", &ctx);
        assert!(k.starts_with("inventory GET /x @"));
        assert_eq!(k, identity_key("inventory GET /x", &ctx));
        let user = |id: &str| {
            let identity = crate::request::Identity::new(
                crate::request::Principal::User(id.into()),
                vec![],
                None,
            )
            .unwrap();
            let mut ctx = ctx.clone();
            ctx.identity = Some(std::sync::Arc::new(identity));
            ctx
        };
        let (ada, bob) = (user("42"), user("43"));
        assert_ne!(identity_key("k", &ada), identity_key("k", &bob));
        assert_ne!(identity_key("k", &ada), k);
        assert_eq!(identity_key("k", &ada), identity_key("k", &user("42")));
        let sent = |host: &'static str| {
            headers(&[
                ("x-forwarded-host", host),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-for", "203.0.113.9"),
                ("forwarded", "for=203.0.113.9;proto=http;host=\"a.example\""),
            ])
        };
        let a = forwarded_key("k", &sent("a.example"));
        assert_eq!(
            a,
            "k |x-forwarded-host=a.example |x-forwarded-proto=http \
             |forwarded.proto=http |forwarded.host=\"a.example\""
        );
        assert_ne!(a, forwarded_key("k", &sent("evil.example")));
        assert_eq!(forwarded_key("k", &HeaderMap::new()), "k");
        let vary = [HeaderName::from_static("x-user-id")];
        assert_ne!(varied_key("k", &vary, &ada), varied_key("k", &vary, &bob));
    }

    #[test]
    fn a_view_of_an_entity_has_its_own_key_and_the_entity_tag() {
        let path = |_: &[&str]| String::new();
        let whole = BatchEndpoint {
            kind: "product",
            id_field: "id",
            path: &path,
            view: None,
        };
        let cards = BatchEndpoint {
            view: Some("id,title"),
            ..whole
        };
        let (tag, key) = whole.entity("catalog", "p1");
        assert_eq!(
            (tag.as_str(), key.as_str()),
            ("product:p1", "catalog product:p1")
        );
        let (view_tag, view_key) = cards.entity("catalog", "p1");
        assert_eq!(view_tag, tag);
        assert_ne!(view_key, key);
        assert!(
            view_key.starts_with(&key),
            "a purge by the entity's prefix drops its views"
        );
    }
}
