//! `Identity`: who is calling, with which scopes, as established at the edge; and the headers
//! that carry it to backends. Backends trust these headers, so a client must never be able to
//! set them: `ClientHeaderStrip` removes every one of them (the configured set, plus anything
//! the client named in `Connection`) from each incoming request before anything reads it.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers that carry identity to backends. A client-sent copy is always removed.
pub const USER_ID_HEADER: HeaderName = HeaderName::from_static("x-user-id");
pub const SCOPES_HEADER: HeaderName = HeaderName::from_static("x-scopes");
pub const API_CLIENT_HEADER: HeaderName = HeaderName::from_static("x-api-client");

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// An end user, from a verified JWT's `sub`.
    User(String),
    /// A partner, from an API key's id.
    ApiClient(String),
}

/// A verified caller. Built only by `auth` after a token or key checked out.
#[derive(Clone, Debug)]
pub struct Identity {
    principal: Principal,
    scopes: Vec<String>,
    tier: Option<String>,
    /// The headers backends receive, built once per identity.
    forwarded: Vec<(HeaderName, HeaderValue)>,
}

impl Identity {
    /// Fails when the subject or a scope cannot travel in a header (control characters).
    pub fn new(
        principal: Principal,
        scopes: Vec<String>,
        tier: Option<String>,
    ) -> Result<Self, &'static str> {
        let mut forwarded = Vec::with_capacity(2);
        let (name, id) = match &principal {
            Principal::User(id) => (USER_ID_HEADER, id),
            Principal::ApiClient(id) => (API_CLIENT_HEADER, id),
        };
        if id.is_empty() {
            return Err("empty subject");
        }
        forwarded.push((
            name,
            HeaderValue::from_str(id).map_err(|_| "subject is not a valid header value")?,
        ));
        forwarded.push((
            SCOPES_HEADER,
            HeaderValue::from_str(&scopes.join(" ")).map_err(|_| "invalid scope")?,
        ));
        Ok(Self {
            principal,
            scopes,
            tier,
            forwarded,
        })
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The end user's id, when the caller is a user.
    pub fn user_id(&self) -> Option<&str> {
        match &self.principal {
            Principal::User(id) => Some(id),
            Principal::ApiClient(_) => None,
        }
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn tier(&self) -> Option<&str> {
        self.tier.as_deref()
    }

    pub fn forwarded_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.forwarded
    }
}

/// The client headers removed at the edge: exact names and `prefix*` patterns from
/// `[auth] strip_headers`, the headers the gateway itself sets for backends (always, whatever
/// the config says: a client copy could otherwise replace the verified one), and every header
/// the client named in `Connection`.
#[derive(Clone, Debug)]
pub struct ClientHeaderStrip {
    exact: Vec<HeaderName>,
    prefixes: Vec<String>,
}

/// Headers hyper has already used to frame the request; naming them in `Connection` must not
/// make them vanish from what handlers see.
const FRAMING: [HeaderName; 3] = [
    http::header::HOST,
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
];

impl ClientHeaderStrip {
    /// `patterns` were validated with the config; invalid ones are skipped.
    pub fn new(patterns: &[String]) -> Self {
        let mut exact = vec![USER_ID_HEADER, SCOPES_HEADER, API_CLIENT_HEADER];
        let mut prefixes = Vec::new();
        for pattern in patterns {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_suffix('*') {
                Some(prefix) => prefixes.push(prefix.to_owned()),
                None => exact.extend(HeaderName::from_bytes(pattern.as_bytes()).ok()),
            }
        }
        Self { exact, prefixes }
    }

    /// Removes every header of the set, and every header named in `Connection`, from
    /// `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let named: Vec<HeaderName> = headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .filter(|name| !FRAMING.contains(name))
            .collect();
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| self.matches(name) || named.contains(name))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
    }

    fn matches(&self, name: &HeaderName) -> bool {
        self.exact.contains(name) || self.prefixes.iter().any(|p| name.as_str().starts_with(p))
    }
}

impl Default for ClientHeaderStrip {
    /// The default `[auth] strip_headers` set.
    fn default() -> Self {
        Self::new(&crate::config::AuthConfig::default().strip_headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_identity_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-user-id", HeaderValue::from_static("1"));
        headers.insert("x-user-role", HeaderValue::from_static("admin"));
        headers.insert("x-scopes", HeaderValue::from_static("admin"));
        headers.insert("x-api-client", HeaderValue::from_static("acme"));
        headers.insert("x-forwarded-user", HeaderValue::from_static("root"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        ClientHeaderStrip::default().apply(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("accept"));
    }

    #[test]
    fn the_set_is_configurable_and_connection_named_headers_go_too() {
        let strip = ClientHeaderStrip::new(&["x-tenant".into(), "x-internal-*".into()]);
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", HeaderValue::from_static("t1"));
        headers.insert("x-internal-role", HeaderValue::from_static("admin"));
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Secret, content-length"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("content-length", HeaderValue::from_static("0"));
        headers.insert("x-user-role", HeaderValue::from_static("7"));
        strip.apply(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(headers.contains_key("connection"));
        assert!(headers.contains_key("content-length"));
        // Not in this configured set, but not a header the gateway sets either.
        assert!(headers.contains_key("x-user-role"));
    }

    #[test]
    fn the_headers_the_gateway_sets_are_stripped_whatever_the_config() {
        let strip = ClientHeaderStrip::new(&[]);
        let mut headers = HeaderMap::new();
        headers.insert("x-user-id", HeaderValue::from_static("1"));
        headers.insert("x-scopes", HeaderValue::from_static("admin"));
        headers.insert("x-api-client", HeaderValue::from_static("acme"));
        headers.insert("x-user-role", HeaderValue::from_static("admin"));
        strip.apply(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-user-role"));
    }

    #[test]
    fn a_subject_with_control_characters_is_refused() {
        assert!(Identity::new(Principal::User("4\r\n2".into()), vec![], None).is_err());
        let id = Identity::new(
            Principal::User("42".into()),
            vec!["a".into(), "b".into()],
            None,
        )
        .unwrap();
        assert_eq!(id.forwarded_headers()[0].1, "42");
        assert_eq!(id.forwarded_headers()[1].1, "a b");
    }
}
