//! Bearer JWT verification against the trusted issuers (`[[auth.jwt]]`).
//!
//! A token is bounded in size before anything parses it; its `iss` (read unverified, only to
//! pick the issuer) must name a configured issuer; its `kid` must be a short plain string
//! naming a key of THAT issuer's JWKS (`jwks`), and the key's pinned algorithm is the only
//! one accepted — the token's `alg`, `jku`, `jwk`, `x5u` are never trusted. `iss`, `aud`, `exp`
//! and `sub` are required; `nbf` and `iat` are checked when present, with the configured
//! leeway. A token that passed is remembered (by its SHA-256) until its `exp`, for at most a
//! minute, so a client's repeated requests cost one signature check, not one each.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::Deserialize;

use super::jwks::Jwks;
use super::{AuthError, Identity, Principal};
use crate::config::{ClientTlsConfig, ClientTlsError, JwtConfig};

/// Longest token accepted; real access tokens are 1-2 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 << 10;
/// Longest `kid` accepted.
const MAX_KID_BYTES: usize = 128;

/// Every trusted issuer, each with its own keys.
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
    /// Tokens that passed every check, by their exact text, until their `exp` (and at most
    /// `VERIFIED_TTL`): a client sends the same token many times, and an RSA check costs far
    /// more than the rest of a request. (Keyed by a SHA-256 of the token it spent 2% of the
    /// mobile home query hashing.) Bounded by bytes: tokens are up to `MAX_TOKEN_BYTES`.
    verified: moka::sync::Cache<Box<str>, Arc<Verified>, foldhash::fast::RandomState>,
    /// Full signature checks done (cache misses), for tests and metrics.
    signature_checks: AtomicU64,
}

struct Verified {
    identity: Arc<Identity>,
    /// Unix seconds.
    exp: f64,
}

/// How long a verified token is trusted without a new check: bounds how long a key removed
/// from the JWKS keeps working for tokens already seen.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Bytes of verified tokens kept (with `VERIFIED_ENTRY_OVERHEAD` each): ~40,000 typical
/// 1 KiB tokens.
const VERIFIED_CAPACITY: u64 = 48 << 20;
const VERIFIED_ENTRY_OVERHEAD: u32 = 256;

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
    /// Checked by `jsonwebtoken` (required); kept to bound the verified cache.
    exp: f64,
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
    /// Fails only when an issuer's `jwks_ca_file` cannot be loaded.
    pub fn new(configs: &[JwtConfig]) -> Result<Self, ClientTlsError> {
        let issuers = configs
            .iter()
            .map(|config| {
                Ok(Issuer {
                    jwks: Jwks::new(
                        config.jwks_url.clone(),
                        &ClientTlsConfig::with_ca(config.jwks_ca_file.as_deref()),
                        config.cache_ttl,
                        config.unknown_kid_cooldown,
                    )?,
                    validations: SIGNATURE_ALGORITHMS
                        .iter()
                        .map(|alg| (*alg, validation(config, *alg)))
                        .collect(),
                    config: config.clone(),
                })
            })
            .collect::<Result<_, ClientTlsError>>()?;
        Ok(Self {
            issuers,
            verified: moka::sync::Cache::<Box<str>, Arc<Verified>>::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .weigher(|token, _| {
                    u32::try_from(token.len())
                        .unwrap_or(u32::MAX)
                        .saturating_add(VERIFIED_ENTRY_OVERHEAD)
                })
                .time_to_live(VERIFIED_TTL)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            signature_checks: AtomicU64::new(0),
        })
    }

    /// How many tokens had their signature checked (not answered from the verified cache).
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks.load(Ordering::Relaxed)
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
    pub async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken("token too large"));
        }
        if let Some(seen) = self.verified.get(token) {
            if unix_now() < seen.exp {
                return Ok(seen.identity.clone());
            }
            // Expired since: the full check below decides (with its leeway) and says why.
            self.verified.invalidate(token);
        }
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
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
            let now = unix_now();
            if !iat.is_finite() || iat > now + issuer.config.leeway.as_secs_f64() {
                return Err(AuthError::InvalidToken("token issued in the future"));
            }
        }
        let scopes = match (claims.scope, claims.scp) {
            (Some(s), _) => s.split_whitespace().map(str::to_owned).collect(),
            (None, Some(list)) => list,
            (None, None) => Vec::new(),
        };
        let identity = Identity::new(Principal::User(claims.sub), scopes, claims.tier)
            .map_err(AuthError::InvalidToken)?;
        let identity = Arc::new(identity);
        self.verified.insert(
            token.into(),
            Arc::new(Verified {
                identity: identity.clone(),
                exp: claims.exp,
            }),
        );
        Ok(identity)
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

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
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
