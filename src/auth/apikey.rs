//! Partner API keys. Only SHA-256 hashes are held (API keys are long random strings, so a
//! fast hash is enough); a presented key is hashed and compared against every stored hash in
//! constant time, so timing reveals neither which key nor how much of one matched.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Identity, Principal};
use crate::config::ApiKeyConfig;

struct StoredKey {
    hash: [u8; 32],
    /// Built once; `None` for a disabled key, or one whose id cannot travel in a header.
    identity: Option<Arc<Identity>>,
}

#[derive(Default)]
pub struct ApiKeys {
    keys: Vec<StoredKey>,
}

impl ApiKeys {
    /// Keys whose hash does not decode were already refused by config validation.
    pub fn from_config(config: &BTreeMap<String, ApiKeyConfig>) -> Self {
        let keys = config
            .iter()
            .filter_map(|(id, k)| {
                let identity = k.enabled.then(|| {
                    Identity::new(
                        Principal::ApiClient(id.clone()),
                        k.scopes.clone(),
                        k.tier.clone(),
                    )
                });
                Some(StoredKey {
                    hash: decode_hex32(k.sha256.expose())?,
                    identity: identity.and_then(Result::ok).map(Arc::new),
                })
            })
            .collect();
        Self { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The identity of an enabled key matching `presented`, if any.
    pub fn verify(&self, presented: &str) -> Option<Arc<Identity>> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&StoredKey> = None;
        for key in &self.keys {
            // Look at every key, whatever matched before.
            if constant_time_eq(&hash, &key.hash) {
                found = Some(key);
            }
        }
        found?.identity.clone()
    }
}

/// Hex SHA-256 of a key, for writing config files.
pub fn hash_api_key(plain: &str) -> String {
    Sha256::digest(plain.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        let mut config = BTreeMap::new();
        for (id, plain, enabled) in [("acme", "acme-secret", true), ("old", "old-secret", false)] {
            config.insert(
                id.to_string(),
                ApiKeyConfig {
                    sha256: hash_api_key(plain).into(),
                    scopes: vec!["invoices:read".into()],
                    tier: Some("gold".into()),
                    enabled,
                },
            );
        }
        ApiKeys::from_config(&config)
    }

    #[test]
    fn the_right_key_maps_to_its_client() {
        let id = keys().verify("acme-secret").expect("valid key");
        assert_eq!(id.principal(), &Principal::ApiClient("acme".into()));
        assert!(id.has_scope("invoices:read"));
        assert_eq!(id.tier(), Some("gold"));
    }

    #[test]
    fn wrong_or_disabled_keys_are_refused() {
        assert!(keys().verify("acme-secreT").is_none());
        assert!(keys().verify("").is_none());
        assert!(keys().verify("old-secret").is_none());
    }
}
