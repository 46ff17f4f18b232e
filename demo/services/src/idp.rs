//! The demo identity provider (auth, 9100): RS256 tokens on demand for tests and the demo,
//! the JWKS a gateway verifies them with, and key rotation.
//!
//! It owns its RSA keys (the current one and the one before the last rotation, both published)
//! and nothing else: no users, no passwords, no refresh tokens. Whoever can reach it can mint
//! any token, which is exactly what a demo and a test suite need.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};

use crate::data;
use crate::error::ApiError;
use crate::shell::lock;

const KEY_BITS: usize = 2048;
const DEFAULT_TTL_S: i64 = 900;
/// Ten years either way: enough for any test, small enough to never overflow a timestamp.
const MAX_TTL_S: i64 = 10 * 365 * 86_400;

pub(crate) fn routes(idp: Arc<Idp>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/token", post(token))
        .route("/_rotate", post(rotate))
        .with_state(idp)
}

/// Why the IdP could not produce a signing key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("RSA key generation failed: {0}")]
    Generate(#[from] rsa::Error),
    #[error("RSA key encoding failed: {0}")]
    Encode(#[from] rsa::pkcs1::Error),
    #[error("key generation task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        ApiError::Internal(err.to_string())
    }
}

/// One RSA key: the private half for signing, the public half as published in the JWKS.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    public: PublicJwk,
}

#[derive(Clone, Serialize)]
struct PublicJwk {
    kty: &'static str,
    #[serde(rename = "use")]
    usage: &'static str,
    alg: &'static str,
    kid: String,
    n: String,
    e: String,
}

impl SigningKey {
    /// CPU-heavy (tens to hundreds of milliseconds): call on a blocking thread.
    fn generate(serial: u32) -> Result<SigningKey, KeyError> {
        let private = RsaPrivateKey::new(&mut OsRng, KEY_BITS)?;
        let der = private.to_pkcs1_der()?;
        let modulus = private.n().to_bytes_be();
        // Readable ("which rotation is this?") and unique across IdP instances in one process.
        let kid = format!("demo-{serial}-{:08x}", fingerprint(&modulus));
        Ok(SigningKey {
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            public: PublicJwk {
                kty: "RSA",
                usage: "sig",
                alg: "RS256",
                kid: kid.clone(),
                n: URL_SAFE_NO_PAD.encode(&modulus),
                e: URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
            },
            kid,
        })
    }
}

/// FNV-1a, 32 bits: a short, stable tag for a modulus (not a security property).
fn fingerprint(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

struct KeyRing {
    current: Arc<SigningKey>,
    previous: Option<Arc<SigningKey>>,
    /// How many keys this IdP has generated; numbers the kids.
    generated: u32,
}

/// The IdP's state: its issuer URL and key ring.
pub(crate) struct Idp {
    issuer: String,
    ring: Mutex<Option<KeyRing>>,
    /// Serialises key generation (the first key, rotations) so concurrent callers never
    /// generate twice or lose a rotation.
    keygen: tokio::sync::Mutex<()>,
}

impl Idp {
    /// An IdP whose tokens carry `iss = issuer`; its first key is made on first use.
    pub(crate) fn new(issuer: &str) -> Self {
        Idp {
            issuer: issuer.to_owned(),
            ring: Mutex::new(None),
            keygen: tokio::sync::Mutex::new(()),
        }
    }

    /// Makes the first key now rather than on the first request.
    pub(crate) async fn warm_up(&self) -> Result<(), KeyError> {
        self.current().await.map(drop)
    }

    fn existing(&self) -> Option<Arc<SigningKey>> {
        lock(&self.ring).as_ref().map(|ring| ring.current.clone())
    }

    async fn current(&self) -> Result<Arc<SigningKey>, KeyError> {
        if let Some(key) = self.existing() {
            return Ok(key);
        }
        let _generating = self.keygen.lock().await;
        if let Some(key) = self.existing() {
            return Ok(key);
        }
        let key = Arc::new(generate(1).await?);
        *lock(&self.ring) = Some(KeyRing {
            current: key.clone(),
            previous: None,
            generated: 1,
        });
        Ok(key)
    }

    async fn rotate(&self) -> Result<Arc<SigningKey>, KeyError> {
        let _generating = self.keygen.lock().await;
        let serial = lock(&self.ring).as_ref().map_or(0, |ring| ring.generated) + 1;
        let key = Arc::new(generate(serial).await?);
        let mut ring = lock(&self.ring);
        let previous = ring.take().map(|old| old.current);
        *ring = Some(KeyRing {
            current: key.clone(),
            previous,
            generated: serial,
        });
        Ok(key)
    }

    fn published(&self) -> Vec<PublicJwk> {
        lock(&self.ring)
            .as_ref()
            .map(|ring| {
                std::iter::once(&ring.current)
                    .chain(&ring.previous)
                    .map(|key| key.public.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

async fn generate(serial: u32) -> Result<SigningKey, KeyError> {
    tokio::task::spawn_blocking(move || SigningKey::generate(serial)).await?
}

#[derive(Serialize)]
struct JwkSet {
    keys: Vec<PublicJwk>,
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Result<Json<JwkSet>, ApiError> {
    idp.warm_up().await?;
    Ok(Json(JwkSet {
        keys: idp.published(),
    }))
}

#[derive(Deserialize)]
struct TokenRequest {
    sub: String,
    aud: String,
    #[serde(default)]
    scopes: Vec<String>,
    ttl_s: Option<i64>,
    tier: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<&'a str>,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
}

async fn token(
    State(idp): State<Arc<Idp>>,
    request: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let Json(request) = request?;
    if request.sub.is_empty() || request.aud.is_empty() {
        return Err(ApiError::bad("sub and aud must not be empty"));
    }
    let ttl = request.ttl_s.unwrap_or(DEFAULT_TTL_S);
    if !(-MAX_TTL_S..=MAX_TTL_S).contains(&ttl) {
        return Err(ApiError::bad(format!("ttl_s: must be within ±{MAX_TTL_S}")));
    }
    let key = idp.current().await?;
    let now = data::now_secs();
    let claims = Claims {
        iss: &idp.issuer,
        sub: &request.sub,
        aud: &request.aud,
        iat: now,
        nbf: now,
        // Negative TTLs are allowed on purpose: tests mint expired tokens.
        exp: now + ttl,
        scope: request.scopes.join(" "),
        tier: request.tier.as_deref(),
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    // One RS256 signature is about a millisecond: cheap enough to do inline.
    let access_token = jsonwebtoken::encode(&header, &claims, &key.encoding)
        .map_err(|err| ApiError::Internal(format!("signing failed: {err}")))?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
    }))
}

#[derive(Serialize)]
struct Rotated {
    kid: String,
}

async fn rotate(State(idp): State<Arc<Idp>>) -> Result<Json<Rotated>, ApiError> {
    let key = idp.rotate().await?;
    Ok(Json(Rotated {
        kid: key.kid.clone(),
    }))
}
