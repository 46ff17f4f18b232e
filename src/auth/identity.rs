//! `Identity`: who is calling, with which scopes, as established at the edge; and the headers
//! that carry it to backends. Backends trust these headers, so a client must never be able to
//! set them: `strip_client_identity` removes every one of them from each incoming request.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers that carry identity to backends. A client-sent copy is always removed.
pub const USER_ID_HEADER: HeaderName = HeaderName::from_static("x-user-id");
pub const SCOPES_HEADER: HeaderName = HeaderName::from_static("x-scopes");
pub const API_CLIENT_HEADER: HeaderName = HeaderName::from_static("x-api-client");
const FORWARDED_USER_HEADER: &str = "x-forwarded-user";
const USER_HEADER_PREFIX: &str = "x-user-";

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

/// Removes every identity-bearing header a client sent. (Headers a client names in
/// `Connection` are hop-by-hop and dropped by the proxy, which is the only place that
/// forwards client headers at all.)
pub fn strip_client_identity(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_identity_header(name.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
}

fn is_identity_header(name: &str) -> bool {
    name.starts_with(USER_HEADER_PREFIX)
        || name == SCOPES_HEADER.as_str()
        || name == API_CLIENT_HEADER.as_str()
        || name == FORWARDED_USER_HEADER
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
        strip_client_identity(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("accept"));
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
