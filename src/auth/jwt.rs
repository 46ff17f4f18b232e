//! Bearer JWT verification against an issuer's JWKS.
//!
//! Keys are fetched at start (the BFF is not ready before they are), refreshed in the
//! background, and refetched early when a token names an unknown `kid` — at most once per
//! cool-down however many such tokens arrive. Each key is bound to ONE algorithm taken from
//! the JWKS, never from the token: a token whose `alg` differs (`none`, `HS256` signed with
//! the public key, ...) is refused. `iss`, `aud`, `exp` and `sub` are required.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;

use super::{AuthError, Identity, Principal};
use crate::config::JwtConfig;

/// A verification key and the validation rules pinned to its algorithm.
struct VerifyKey {
    key: DecodingKey,
    validation: Validation,
}

pub struct JwtVerifier {
    config: JwtConfig,
    http: reqwest::Client,
    keys: RwLock<Arc<HashMap<String, VerifyKey>>>,
    loaded: AtomicBool,
    /// When the last unknown-`kid` refetch happened; the lock also makes it single-flight.
    last_kid_refetch: tokio::sync::Mutex<Option<Instant>>,
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
}

impl JwtVerifier {
    pub fn new(config: JwtConfig) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            config,
            http,
            keys: RwLock::new(Arc::new(HashMap::new())),
            loaded: AtomicBool::new(false),
            last_kid_refetch: tokio::sync::Mutex::new(None),
        })
    }

    /// True once a JWKS has been loaded (the BFF is not ready before).
    pub fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Fetches the JWKS and replaces the key set. On failure the known keys stay.
    pub async fn refresh(&self) -> Result<usize, String> {
        let set: JwkSet = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("fetching the JWKS failed: {e}"))?
            .json()
            .await
            .map_err(|e| format!("the JWKS is not valid JSON: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            match self.verify_key(jwk) {
                Ok((kid, key)) => {
                    keys.insert(kid, key);
                }
                Err(why) => tracing::warn!(%why, "skipping a JWKS key"),
            }
        }
        let count = keys.len();
        if count == 0 {
            return Err("the JWKS holds no usable signing key".into());
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        self.loaded.store(true, Ordering::Release);
        Ok(count)
    }

    /// Keeps the keys fresh: retries quickly until the first load succeeds, then refreshes
    /// at the configured interval. Ends when the verifier is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let Some(this) = weak.upgrade() else { return };
                let wait = match this.refresh().await {
                    Ok(n) => {
                        tracing::debug!(keys = n, url = %this.config.jwks_url, "JWKS loaded");
                        backoff = Duration::from_millis(100);
                        this.config.refresh_interval
                    }
                    Err(why) => {
                        tracing::warn!(%why, url = %this.config.jwks_url, "JWKS refresh failed; known keys stay in use");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        backoff
                    }
                };
                drop(this);
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// Verifies a compact JWT and returns the identity it carries.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::InvalidToken("malformed token or unsupported algorithm"))?;
        let kid = header
            .kid
            .ok_or(AuthError::InvalidToken("token has no key id"))?;
        let keys = match self.find(&kid) {
            Some(keys) => keys,
            None => {
                self.refetch_for_unknown_kid().await;
                self.find(&kid)
                    .ok_or(AuthError::InvalidToken("unknown signing key"))?
            }
        };
        let key = &keys[&kid];
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation)
            .map_err(|e| AuthError::InvalidToken(reason(e.kind())))?;
        let claims = data.claims;
        let scopes = match (claims.scope, claims.scp) {
            (Some(s), _) => s.split_whitespace().map(str::to_owned).collect(),
            (None, Some(list)) => list,
            (None, None) => Vec::new(),
        };
        Identity::new(Principal::User(claims.sub), scopes, claims.tier)
            .map_err(AuthError::InvalidToken)
    }

    /// The current key set if it holds `kid`.
    fn find(&self, kid: &str) -> Option<Arc<HashMap<String, VerifyKey>>> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        keys.contains_key(kid).then_some(keys)
    }

    async fn refetch_for_unknown_kid(&self) {
        let mut last = self.last_kid_refetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.config.unknown_kid_cooldown) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(why) = self.refresh().await {
            tracing::warn!(%why, "JWKS refetch for an unknown kid failed");
        }
    }

    fn verify_key(&self, jwk: &Jwk) -> Result<(String, VerifyKey), String> {
        let kid = jwk.common.key_id.clone().ok_or("key without kid")?;
        let algorithm = key_algorithm(jwk)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid}: {e}"))?;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        Ok((kid, VerifyKey { key, validation }))
    }
}

/// The one algorithm a JWKS key may verify: its `alg`, or the only sensible one for its type.
/// Symmetric keys are never accepted from a JWKS.
fn key_algorithm(jwk: &Jwk) -> Result<Algorithm, String> {
    let declared = jwk.common.key_algorithm.map(|a| match a {
        KeyAlgorithm::RS256 => Ok(Algorithm::RS256),
        KeyAlgorithm::RS384 => Ok(Algorithm::RS384),
        KeyAlgorithm::RS512 => Ok(Algorithm::RS512),
        KeyAlgorithm::PS256 => Ok(Algorithm::PS256),
        KeyAlgorithm::PS384 => Ok(Algorithm::PS384),
        KeyAlgorithm::PS512 => Ok(Algorithm::PS512),
        KeyAlgorithm::ES256 => Ok(Algorithm::ES256),
        KeyAlgorithm::ES384 => Ok(Algorithm::ES384),
        KeyAlgorithm::EdDSA => Ok(Algorithm::EdDSA),
        other => Err(format!(
            "algorithm {other:?} is not accepted for signatures"
        )),
    });
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Ok(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Ok(Algorithm::ES256),
            EllipticCurve::P384 => Ok(Algorithm::ES384),
            _ => Err("unsupported curve".to_owned()),
        },
        AlgorithmParameters::OctetKeyPair(_) => Ok(Algorithm::EdDSA),
        AlgorithmParameters::OctetKey(_) => Err("symmetric keys are not accepted".to_owned()),
        _ => Err("unsupported key type".to_owned()),
    };
    match declared {
        Some(alg) => {
            let alg = alg?;
            // `DecodingKey::from_jwk` checks the key matches; we only refuse symmetric ones.
            inferred.map(|_| alg)
        }
        None => inferred,
    }
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
