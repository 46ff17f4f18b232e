//! One issuer's JWKS: fetched at start (the BFF is not ready before), cached for its TTL and
//! refreshed in the background, refetched early when a token names an unknown `kid` — at
//! most once per cool-down however many such tokens arrive. When a fetch fails, the keys
//! already known stay in use.
//!
//! Each key is bound to ONE algorithm taken from the JWKS (its `alg`, or the only sensible
//! one for its type), never from a token. Symmetric keys are never accepted from a JWKS.
//! Token checks live in `jwt`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;

use crate::config::{ClientTlsConfig, ClientTlsError, SecretUrl};
use crate::outbound::OutboundClient;

/// A JWKS larger than this is refused: a key set is a few KiB.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// At most this many keys are kept from one JWKS.
const MAX_KEYS: usize = 64;

/// A verification key and the one algorithm it verifies.
pub(super) struct VerifyKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

pub(super) struct Jwks {
    /// Logged with its password (if any) redacted; exposed only to fetch.
    url: SecretUrl,
    ttl: Duration,
    cooldown: Duration,
    http: OutboundClient,
    keys: RwLock<Arc<HashMap<String, Arc<VerifyKey>>>>,
    loaded: AtomicBool,
    /// When the last unknown-`kid` refetch happened; the lock also makes it single-flight.
    last_kid_refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    /// Fails only when the CA file in `tls` cannot be loaded (validation reads it too).
    pub fn new(
        url: SecretUrl,
        tls: &ClientTlsConfig,
        ttl: Duration,
        cooldown: Duration,
    ) -> Result<Arc<Self>, ClientTlsError> {
        let http = OutboundClient::new(tls, Duration::from_secs(2), Duration::from_secs(5))?;
        Ok(Arc::new(Self {
            url,
            ttl,
            cooldown,
            http,
            keys: RwLock::new(Arc::new(HashMap::new())),
            loaded: AtomicBool::new(false),
            last_kid_refetch: tokio::sync::Mutex::new(None),
        }))
    }

    /// True once a JWKS has been loaded.
    pub fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The key named `kid`, if the cached set holds it.
    pub fn get(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }

    /// The key named `kid`, refetching the JWKS first when it is unknown and the cool-down
    /// since the last such refetch has passed. Concurrent callers wait for that one fetch.
    pub async fn get_or_refetch(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        if let Some(key) = self.get(kid) {
            return Some(key);
        }
        let mut last = self.last_kid_refetch.lock().await;
        // Another caller may have fetched it while this one waited for the lock.
        if let Some(key) = self.get(kid) {
            return Some(key);
        }
        if last.is_some_and(|at| at.elapsed() < self.cooldown) {
            return None;
        }
        *last = Some(Instant::now());
        if let Err(why) = self.refresh().await {
            tracing::warn!(%why, url = %self.url, "JWKS refetch for an unknown kid failed");
        }
        drop(last);
        self.get(kid)
    }

    /// Fetches the JWKS and replaces the key set. On failure the known keys stay.
    pub async fn refresh(&self) -> Result<usize, String> {
        let body = self.fetch().await?;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("the JWKS is not valid: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in set.keys.iter().take(MAX_KEYS) {
            match verify_key(jwk) {
                Ok((kid, key)) => {
                    keys.insert(kid, Arc::new(key));
                }
                Err(why) => tracing::warn!(%why, url = %self.url, "skipping a JWKS key"),
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

    async fn fetch(&self) -> Result<bytes::Bytes, String> {
        self.http
            .get(self.url.expose(), MAX_JWKS_BYTES)
            .await
            .map_err(|e| format!("fetching the JWKS failed: {e}"))
    }

    /// Keeps the keys fresh: retries quickly until the first load succeeds, then refetches
    /// each time the cached set's TTL runs out. Ends when the set is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let Some(this) = weak.upgrade() else { return };
                let wait = match this.refresh().await {
                    Ok(n) => {
                        tracing::debug!(keys = n, url = %this.url, "JWKS loaded");
                        backoff = Duration::from_millis(100);
                        this.ttl
                    }
                    Err(why) => {
                        tracing::warn!(%why, url = %this.url, "JWKS refresh failed; known keys stay in use");
                        backoff = (backoff * 2).min(Duration::from_secs(5)).min(this.ttl);
                        backoff
                    }
                };
                drop(this);
                tokio::time::sleep(wait).await;
            }
        });
    }
}

fn verify_key(jwk: &Jwk) -> Result<(String, VerifyKey), String> {
    let kid = jwk.common.key_id.clone().ok_or("key without kid")?;
    let algorithm = key_algorithm(jwk)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid}: {e}"))?;
    Ok((kid, VerifyKey { key, algorithm }))
}

/// The one algorithm a JWKS key may verify: its `alg`, or the only sensible one for its type.
fn key_algorithm(jwk: &Jwk) -> Result<Algorithm, String> {
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("unsupported curve".to_owned()),
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are not accepted".into()),
        _ => return Err("unsupported key type".into()),
    };
    let Some(declared) = jwk.common.key_algorithm else {
        return Ok(inferred);
    };
    let declared = match declared {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        other => {
            return Err(format!(
                "algorithm {other:?} is not accepted for signatures"
            ));
        }
    };
    // The declared algorithm must belong to the key's family: an RSA key never verifies ES256.
    let same_family = matches!(
        (inferred, declared),
        (
            Algorithm::RS256,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) | (Algorithm::ES256, Algorithm::ES256)
            | (Algorithm::ES384, Algorithm::ES384)
            | (Algorithm::EdDSA, Algorithm::EdDSA)
    );
    if same_family {
        Ok(declared)
    } else {
        Err(format!("algorithm {declared:?} does not fit the key type"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(json: serde_json::Value) -> Jwk {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn keys_are_bound_to_one_algorithm_and_symmetric_ones_are_refused() {
        let rsa = serde_json::json!({"kty": "RSA", "kid": "a", "n": "AQAB", "e": "AQAB"});
        assert_eq!(key_algorithm(&jwk(rsa.clone())), Ok(Algorithm::RS256));
        let mut ps = rsa.clone();
        ps["alg"] = "PS384".into();
        assert_eq!(key_algorithm(&jwk(ps)), Ok(Algorithm::PS384));
        let mut es_on_rsa = rsa.clone();
        es_on_rsa["alg"] = "ES256".into();
        assert!(key_algorithm(&jwk(es_on_rsa)).is_err());
        let mut hs_on_rsa = rsa;
        hs_on_rsa["alg"] = "HS256".into();
        assert!(key_algorithm(&jwk(hs_on_rsa)).is_err());
        let oct = serde_json::json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"});
        assert!(key_algorithm(&jwk(oct)).is_err());
    }
}
