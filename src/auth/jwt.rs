//! Bearer JWT verification against the trusted issuers (`[[auth.jwt]]`).
//!
//! A token is bounded in size before anything parses it; its `iss` (read unverified, only to
//! pick the issuer) must name a configured issuer; its `kid` must be a short plain string
//! naming a key of THAT issuer's JWKS (`jwks`), and the key's pinned algorithm is the only
//! one accepted — the token's `alg`, `jku`, `jwk`, `x5u` are never trusted. `iss`, `aud`, `exp`
//! and `sub` are required; `nbf` and `iat` are checked when present, with the configured
//! leeway.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::Deserialize;

use super::jwks::Jwks;
use super::{AuthError, Identity, Principal};
use crate::config::JwtConfig;

/// Longest token accepted; real access tokens are 1-2 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 << 10;
/// Longest `kid` accepted.
const MAX_KID_BYTES: usize = 128;

/// Every trusted issuer, each with its own keys.
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
}

struct Issuer {
    config: JwtConfig,
    jwks: Arc<Jwks>,
    /// The validation rules for each algorithm a JWKS key may pin, built once.
    validations: Vec<(Algorithm, Validation)>,
}

/// The algorithms `jwks` may bind a key to.
const SIGNATURE_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Deserialize)]
struct UnverifiedIssuer {
    iss: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// OAuth 2 style: space-separated.
    #[serde(default)]
    scope: Option<String>,
    /// Some issuers send a list instead.
    #[serde(default)]
    scp: Option<Vec<String>>,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    iat: Option<f64>,
}

impl JwtVerifier {
    pub fn new(configs: &[JwtConfig]) -> Self {
        let issuers = configs
            .iter()
            .map(|config| Issuer {
                jwks: Jwks::new(
                    config.jwks_url.clone(),
                    config.cache_ttl,
                    config.unknown_kid_cooldown,
                ),
                validations: SIGNATURE_ALGORITHMS
                    .iter()
                    .map(|alg| (*alg, validation(config, *alg)))
                    .collect(),
                config: config.clone(),
            })
            .collect();
        Self { issuers }
    }

    /// Starts loading and refreshing every issuer's JWKS in the background.
    pub fn spawn_refresh(&self) {
        for issuer in &self.issuers {
            issuer.jwks.spawn_refresh();
        }
    }

    /// Loads every issuer's JWKS now (tests; the background task does it otherwise).
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut total = 0;
        for issuer in &self.issuers {
            total += issuer.jwks.refresh().await?;
        }
        Ok(total)
    }

    /// True once every issuer's JWKS has been loaded.
    pub fn is_ready(&self) -> bool {
        self.issuers.iter().all(|i| i.jwks.is_ready())
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies a compact JWT and returns the identity it carries.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken("token too large"));
        }
        let (header_b64, payload_b64) = segments(token)?;
        let header = decode_header(header_b64)?;
        let kid = header
            .kid
            .as_deref()
            .ok_or(AuthError::InvalidToken("token has no key id"))?;
        if !is_plain_kid(kid) {
            return Err(AuthError::InvalidToken("unknown signing key"));
        }
        let issuer = self.issuer_of(payload_b64)?;
        let key = issuer
            .jwks
            .get_or_refetch(kid)
            .await
            .ok_or(AuthError::InvalidToken("unknown signing key"))?;
        if header.alg != key.algorithm {
            return Err(AuthError::InvalidToken(
                "algorithm not allowed for this key",
            ));
        }
        let validation = issuer
            .validations
            .iter()
            .find(|(alg, _)| *alg == key.algorithm)
            .map(|(_, v)| v)
            .ok_or(AuthError::InvalidToken(
                "algorithm not allowed for this key",
            ))?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, validation)
            .map_err(|e| AuthError::InvalidToken(reason(e.kind())))?
            .claims;
        if let Some(iat) = claims.iat {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            if !iat.is_finite() || iat > now + issuer.config.leeway.as_secs_f64() {
                return Err(AuthError::InvalidToken("token issued in the future"));
            }
        }
        let scopes = match (claims.scope, claims.scp) {
            (Some(s), _) => s.split_whitespace().map(str::to_owned).collect(),
            (None, Some(list)) => list,
            (None, None) => Vec::new(),
        };
        Identity::new(Principal::User(claims.sub), scopes, claims.tier)
            .map_err(AuthError::InvalidToken)
    }

    /// The configured issuer named by the token's (not yet verified) `iss`.
    fn issuer_of(&self, payload_b64: &str) -> Result<&Issuer, AuthError> {
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| AuthError::InvalidToken("malformed token"))?;
        let peek: UnverifiedIssuer = serde_json::from_slice(&payload)
            .map_err(|_| AuthError::InvalidToken("malformed token"))?;
        let iss = peek
            .iss
            .ok_or(AuthError::InvalidToken("a required claim is missing"))?;
        self.issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or(AuthError::InvalidToken("wrong issuer"))
    }
}

/// The claim checks of `config`'s tokens signed with `algorithm` (and only that one).
fn validation(config: &JwtConfig, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = config.leeway.as_secs();
    validation.validate_nbf = true;
    validation
}

/// The header and payload segments of a compact JWS: exactly three base64url parts.
fn segments(token: &str) -> Result<(&str, &str), AuthError> {
    let malformed = AuthError::InvalidToken("malformed token");
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed);
    };
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(malformed);
    }
    if !(base64url(header) && base64url(payload) && base64url(signature)) {
        return Err(malformed);
    }
    Ok((header, payload))
}

/// The JOSE header; unknown algorithms (`none` among them) fail here.
fn decode_header(header_b64: &str) -> Result<jsonwebtoken::Header, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| AuthError::InvalidToken("malformed token"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::InvalidToken("malformed token or unsupported algorithm"))
}

/// A `kid` worth looking up (and possibly refetching the JWKS for): short, visible ASCII.
fn is_plain_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KID_BYTES && kid.bytes().all(|b| b.is_ascii_graphic())
}

fn reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "algorithm not allowed for this key",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        _ => "invalid token",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_base64url_segments_are_a_token() {
        assert!(segments("a.b.c").is_ok());
        assert!(segments("a.b.").is_err());
        assert!(segments("a.b").is_err());
        assert!(segments("a.b.c.d").is_err());
        assert!(segments("a.b+.c").is_err());
        assert!(segments("a.b=.c").is_err());
    }

    #[test]
    fn kids_are_short_and_plain() {
        assert!(is_plain_kid("demo-1-0a1b2c3d"));
        assert!(!is_plain_kid(""));
        assert!(!is_plain_kid("a b"));
        assert!(!is_plain_kid("../../etc/passwd\n"));
        assert!(!is_plain_kid(&"k".repeat(MAX_KID_BYTES + 1)));
    }

    #[test]
    fn unsupported_algorithms_are_malformed_headers() {
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k"}"#);
        assert!(decode_header(&none).is_err());
        let rs = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k","jku":"http://x"}"#);
        assert_eq!(decode_header(&rs).unwrap().alg, Algorithm::RS256);
    }
}
