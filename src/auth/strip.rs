//! `ClientHeaderStrip`: backends trust the identity headers the gateway sets, so a client
//! must never be able to set them; this removes every one of them (the configured set, plus
//! anything the client named in `Connection`) from each incoming request before anything
//! reads it. Names match in every spelling: any case (hyper lowercases them) and with `_` for
//! `-`, because servers behind CGI-style stacks (nginx, Gunicorn, PHP, Rails) fold
//! `X_User_Id` and `X-User-Id` into the same variable.

use http::{HeaderMap, HeaderName};

use crate::request::identity::{API_CLIENT_HEADER, SCOPES_HEADER, USER_ID_HEADER};

/// The client headers removed at the edge: exact names and `prefix*` patterns from
/// `[auth] strip_headers`, the headers the gateway itself sets for backends (always, whatever
/// the config says: a client copy could otherwise replace the verified one), and every header
/// the client named in `Connection`.
#[derive(Clone, Debug)]
pub struct ClientHeaderStrip {
    exact: Vec<HeaderName>,
    prefixes: Vec<String>,
    /// The first bytes (all ASCII) the names and prefixes begin with, one bit each: most
    /// headers (`host`, `accept`, `authorization`) begin with none of them and are passed
    /// without comparing them to the lists.
    initials: u128,
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
            let pattern = pattern.to_ascii_lowercase().replace('_', "-");
            match pattern.strip_suffix('*') {
                Some(prefix) => prefixes.push(prefix.to_owned()),
                None => exact.extend(HeaderName::from_bytes(pattern.as_bytes()).ok()),
            }
        }
        let initials = exact
            .iter()
            .map(HeaderName::as_str)
            .chain(prefixes.iter().map(String::as_str))
            .filter_map(|name| name.bytes().next())
            .fold(0, |set, first| set | initial(first));
        Self {
            exact,
            prefixes,
            initials,
        }
    }

    /// Removes every header of the set, and every header named in `Connection`, from
    /// `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        // Most requests carry none: one pass to find out, the lists only when they do.
        let connection = headers.contains_key(http::header::CONNECTION);
        if !connection && !headers.keys().any(|name| self.matches(name)) {
            return;
        }
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
        let name = name.as_str();
        let first = name
            .bytes()
            .next()
            .map_or(b'-', |b| if b == b'_' { b'-' } else { b });
        if self.initials & initial(first) == 0 {
            return false;
        }
        let folded = if name.contains('_') {
            std::borrow::Cow::Owned(name.replace('_', "-"))
        } else {
            std::borrow::Cow::Borrowed(name)
        };
        self.exact.iter().any(|e| e.as_str() == folded)
            || self.prefixes.iter().any(|p| folded.starts_with(p.as_str()))
    }
}

/// `byte`'s bit in `ClientHeaderStrip::initials` (none for a byte past ASCII, which no
/// header name holds).
fn initial(byte: u8) -> u128 {
    1u128.checked_shl(u32::from(byte)).unwrap_or(0)
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
    use http::HeaderValue;

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

    /// The first-byte filter in front of the lists passes nothing they would match: a name
    /// beginning with any initial of the set (`_` folded to `-`) is still compared, and
    /// stripped when it matches. (The filter itself only saves work; this guards its edges.)
    #[test]
    fn the_first_byte_filter_lets_through_every_name_the_set_would_match() {
        let strip = ClientHeaderStrip::new(&["tenant".into(), "A_*".into()]);
        let mut headers = HeaderMap::new();
        for name in [
            "tenant",
            "a-role",
            "a_b",
            "accept",
            "x-user-id",
            "host",
            "_tenant",
        ] {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        strip.apply(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["_tenant", "accept", "host"]);
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
    fn underscore_spellings_are_the_same_header() {
        let strip = ClientHeaderStrip::new(&["x-user-*".into(), "X_Tenant".into()]);
        let mut headers = HeaderMap::new();
        for name in [
            "X_User_Id",
            "x_user_roles",
            "x_scopes",
            "x_api-client",
            "x-tenant",
        ] {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("evil"),
            );
        }
        headers.insert("x_other", HeaderValue::from_static("kept"));
        strip.apply(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x_other"]);
    }
}
