//! `Identity`: who is calling, with which scopes, as established at the edge (`auth` builds
//! it), and the headers that carry it to backends.

use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

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
    /// `forwarded` digested (`digest`), made on first use.
    digest: OnceLock<Box<str>>,
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
            digest: OnceLock::new(),
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

    /// What backends are told of this caller, as a short digest that names no one: the
    /// first ten bytes of the SHA-256 of its forwarded headers (`name\0value\n` each), in
    /// hex. For data kept per caller (the cache's per-identity entries). Made once and kept
    /// with the identity, which `auth` keeps per token or key: the web orders page looked up
    /// 45 such entries and hashed and formatted the headers for each, 11% of its instructions.
    pub fn digest(&self) -> &str {
        self.digest.get_or_init(|| {
            let mut digest = Sha256::new();
            for (name, value) in &self.forwarded {
                digest.update(name.as_str().as_bytes());
                digest.update(b"\0");
                digest.update(value.as_bytes());
                digest.update(b"\n");
            }
            short_hex(&digest.finalize())
        })
    }
}

/// `digest` for a request without an identity (a partition of its own).
pub fn anonymous_digest() -> &'static str {
    static ANONYMOUS: OnceLock<Box<str>> = OnceLock::new();
    ANONYMOUS.get_or_init(|| short_hex(&Sha256::digest(b"anonymous")))
}

/// The first ten bytes of `hash` as twenty lowercase hex digits (`trace::write_hex`).
fn short_hex(hash: &[u8]) -> Box<str> {
    let mut first = [0u8; 16];
    first[6..].copy_from_slice(&hash[..10]);
    let mut digits = [0u8; 20];
    super::trace::write_hex(&mut digits, u128::from_be_bytes(first));
    String::from_utf8_lossy(&digits).into()
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

    /// The digest is the SHA-256 of the forwarded headers as `name\0value\n`, cut to ten
    /// bytes: keys made with it before it was kept with the identity still match.
    #[test]
    fn the_digest_is_the_forwarded_headers_sha256_cut_to_ten_bytes() {
        let hex =
            |bytes: &[u8]| -> String { bytes[..10].iter().map(|b| format!("{b:02x}")).collect() };
        let ada = Identity::new(
            Principal::User("ada".into()),
            vec!["orders:read".into()],
            None,
        )
        .unwrap();
        let expected = hex(&Sha256::digest(b"x-user-id\0ada\nx-scopes\0orders:read\n"));
        assert_eq!(ada.digest(), expected);
        // Kept: the same text, not a digest made again.
        assert!(std::ptr::eq(ada.digest(), ada.digest()));
        assert_eq!(anonymous_digest(), hex(&Sha256::digest(b"anonymous")));
        let bob = Identity::new(
            Principal::User("bob".into()),
            vec!["orders:read".into()],
            None,
        )
        .unwrap();
        assert_ne!(bob.digest(), ada.digest());
        let partner = Identity::new(Principal::ApiClient("ada".into()), vec![], None).unwrap();
        assert_ne!(partner.digest(), ada.digest());
    }
}
