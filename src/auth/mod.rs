//! Authentication at the edge: a bearer JWT, a partner API key or a partner's client
//! certificate (`client_cert`) becomes an `Identity`, or
//! the request is refused with 401 before any backend is called. Scope checks (`require_scope`)
//! and the headers that carry identity to backends (`identity`) live here too.

mod apikey;
mod client_cert;
mod jwks;
mod jwt;
mod strip;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};

pub use apikey::{ApiKeys, hash_api_key};
pub use client_cert::ClientCertificates;
pub use strip::ClientHeaderStrip;

/// The verified caller lives with the rest of what a request carries; `auth` builds it.
pub use crate::request::{Identity, PeerCertificate, Principal};
pub use jwt::{JwtVerifier, MAX_TOKEN_BYTES};

use crate::config::{AuthConfig, AuthPolicy, ClientTlsError};
use crate::error::{Code, Problem};
use crate::request::Stamp;

/// Why a request was refused at the edge.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials")]
    Missing,
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("invalid API key")]
    InvalidApiKey,
    #[error("the client certificate is not mapped to a client")]
    UnknownCertificate,
    #[error("this requires scope {0}")]
    Forbidden(String),
}

impl AuthError {
    /// The code a client sees: who you are failed, or what you may do did.
    pub fn code(&self) -> Code {
        match self {
            AuthError::Missing
            | AuthError::InvalidToken(_)
            | AuthError::InvalidApiKey
            | AuthError::UnknownCertificate => Code::Unauthenticated,
            AuthError::Forbidden(_) => Code::Forbidden,
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let challenge = match &self {
            AuthError::Missing => "Bearer".to_owned(),
            AuthError::InvalidToken(why) => {
                format!("Bearer error=\"invalid_token\", error_description=\"{why}\"")
            }
            AuthError::InvalidApiKey => {
                "Bearer error=\"invalid_token\", error_description=\"invalid API key\"".to_owned()
            }
            AuthError::UnknownCertificate => "Bearer".to_owned(),
            AuthError::Forbidden(scope) => {
                format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"")
            }
        };
        let mut response = Problem::new(self.code(), self.to_string()).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Turns credentials into identities, per the BFF's `[auth]` config.
pub struct Authenticator {
    jwt: JwtVerifier,
    api_keys: ApiKeys,
    client_certs: ClientCertificates,
}

impl Authenticator {
    /// Builds the verifiers and starts loading every issuer's JWKS in the background. Fails
    /// only when a `jwks_ca_file` cannot be loaded.
    pub fn new(config: &AuthConfig) -> Result<Self, ClientTlsError> {
        let jwt = JwtVerifier::new(&config.jwt)?;
        jwt.spawn_refresh();
        Ok(Self {
            jwt,
            api_keys: ApiKeys::from_config(&config.api_keys),
            client_certs: ClientCertificates::from_config(&config.client_certs),
        })
    }

    /// Whether every credential source is usable (every issuer's JWKS has been loaded).
    pub fn is_ready(&self) -> bool {
        self.jwt.is_ready()
    }

    pub fn jwt(&self) -> &JwtVerifier {
        &self.jwt
    }

    /// The identity a request proves under `policy`; `None` for `AuthPolicy::None`.
    /// `client_cert` is the connection's verified client certificate: where API keys are
    /// accepted, a certificate mapped in `[auth.client_certs]` is as good as a key (and wins
    /// over one); an unmapped one leaves the request to its key.
    pub async fn authenticate(
        &self,
        policy: AuthPolicy,
        headers: &HeaderMap,
        client_cert: Option<&PeerCertificate>,
    ) -> Result<Option<Arc<Identity>>, AuthError> {
        match policy {
            AuthPolicy::None => Ok(None),
            AuthPolicy::Jwt => {
                let token = bearer(headers).ok_or(AuthError::Missing)?;
                if self.jwt.is_empty() {
                    return Err(AuthError::InvalidToken("no token issuer configured"));
                }
                self.jwt.verify(token).await.map(Some)
            }
            AuthPolicy::ApiKey => {
                if let Some(identity) = client_cert.and_then(|c| self.client_certs.identify(c)) {
                    return Ok(Some(identity));
                }
                let key = presented_key(headers)?.ok_or(if client_cert.is_some() {
                    AuthError::UnknownCertificate
                } else {
                    AuthError::Missing
                })?;
                self.api_keys
                    .verify(key)
                    .map(Some)
                    .ok_or(AuthError::InvalidApiKey)
            }
        }
    }
}

/// The API key a request presents: `Authorization: Bearer <key>` or `X-Api-Key: <key>`.
/// Every credential sent must be usable: an `Authorization` that is not a bearer key (say
/// `Basic ...`) is not skipped in favour of `X-Api-Key` but refused, and so are two headers
/// naming different keys; a client is never served on a credential it did not mean.
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|_| bearer(headers).ok_or(AuthError::InvalidApiKey));
    let x_api_key = headers.get("x-api-key").map(|v| {
        v.to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(AuthError::InvalidApiKey)
    });
    match (authorization, x_api_key) {
        (None, None) => Ok(None),
        (Some(key), None) | (None, Some(key)) => key.map(Some),
        (Some(a), Some(b)) => {
            let (a, b) = (a?, b?);
            if a == b {
                Ok(Some(a))
            } else {
                Err(AuthError::InvalidApiKey)
            }
        }
    }
}

/// `Authorization: Bearer <credential>`; the only place a token is read from.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    // UTF-8, not `to_str`'s visible ASCII: checked a word at a time, where `to_str` looks at
    // each of a JWT's ~700 bytes; a token outside ASCII fails verification instead.
    let value = std::str::from_utf8(headers.get(header::AUTHORIZATION)?.as_bytes()).ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|c| !c.is_empty())
}

/// Authentication under a route's policy and the scopes it requires (`admit`), in front of
/// the route's handler (`gateway`'s guard runs it before the rate limits).
#[derive(Clone)]
pub struct AuthGuard {
    pub authenticator: Arc<Authenticator>,
    pub policy: AuthPolicy,
    /// Scopes the identity must all hold (403 otherwise).
    pub scopes: Arc<[String]>,
}

impl AuthGuard {
    pub fn new(authenticator: Arc<Authenticator>, policy: AuthPolicy) -> Self {
        Self {
            authenticator,
            policy,
            scopes: Arc::from([]),
        }
    }

    /// Authenticates `request` under the guard's policy and checks its scopes: the caller's
    /// `Arc<Identity>` goes into its extensions (and its record), or the 401/403 to answer.
    pub async fn admit(&self, request: &mut Request) -> Result<(), Response> {
        let client_cert = request.extensions().get::<Arc<PeerCertificate>>();
        let authenticated = self
            .authenticator
            .authenticate(self.policy, request.headers(), client_cert.map(|c| &**c))
            .await;
        match authenticated {
            Ok(Some(identity)) => {
                if let Some(missing) = self.scopes.iter().find(|s| !identity.has_scope(s)) {
                    return Err(AuthError::Forbidden(missing.clone()).into_response());
                }
                if let Some(record) = Stamp::record(request.extensions()) {
                    record.set_caller(identity.clone());
                }
                request.extensions_mut().insert(identity);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::debug!(reason = %e, "request refused at the edge");
                Err(e.into_response())
            }
        }
    }
}

/// Middleware for a route inside the `AuthGuard` (or `Gateway::protect`): 403 unless the caller
/// holds `scope`. For facades whose scope differs per route of one protected router.
pub async fn require_route_scope(
    State(scope): State<&'static str>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let checked = match request.extensions().get::<Arc<Identity>>() {
        Some(identity) => require_scope(identity, scope),
        // Only reachable if the route was mounted without authentication in front.
        None => Err(AuthError::Missing),
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Fails with 403 unless the identity holds `scope`.
pub fn require_scope(identity: &Identity, scope: &str) -> Result<(), AuthError> {
    if identity.has_scope(scope) {
        Ok(())
    } else {
        Err(AuthError::Forbidden(scope.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn every_credential_sent_must_be_usable_and_name_one_key() {
        let key = |pairs| {
            presented_key(&headers(pairs))
                .map(|k| k.map(str::to_owned))
                .map_err(|e| e.to_string())
        };
        assert_eq!(key(&[]), Ok(None));
        assert_eq!(
            key(&[("authorization", "Bearer k1")]),
            Ok(Some("k1".to_owned()))
        );
        assert_eq!(key(&[("x-api-key", "k1")]), Ok(Some("k1".to_owned())));
        assert_eq!(
            key(&[("authorization", "Bearer k1"), ("x-api-key", "k1")]),
            Ok(Some("k1".to_owned()))
        );
        // Not skipped in favour of the other header: refused.
        assert!(key(&[("authorization", "Basic dTpw"), ("x-api-key", "k1")]).is_err());
        assert!(key(&[("authorization", "Bearer k1"), ("x-api-key", " ")]).is_err());
        assert!(key(&[("authorization", "Bearer k1"), ("x-api-key", "k2")]).is_err());
        assert!(key(&[("authorization", "Bearer")]).is_err());
    }
}
