//! `Identity`: who is calling, with which scopes, as established at the edge (`auth` builds
//! it), and the headers that carry it to backends.

use http::{HeaderName, HeaderValue};

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

/// `user:42` or `client:acme`: who, never how (the access log's `caller`).
impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::User(id) => write!(f, "user:{id}"),
            Principal::ApiClient(id) => write!(f, "client:{id}"),
        }
    }
}

/// A verified caller. Built by `auth` after a token or key checked out.
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

#[cfg(test)]
mod tests {
    use super::*;

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
