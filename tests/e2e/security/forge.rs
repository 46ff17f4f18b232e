//! An attacker's toolbox: an RSA key of our own with its JWKS served on loopback (counting
//! fetches), tokens signed with any header and claims, base64url surgery on real tokens, and
//! raw HTTP/1.1 requests (reqwest would normalise `..` and `%2e` before sending them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A signing key we hold, its JWKS served at `jwks_url`.
pub struct KeyServer {
    pub kid: String,
    pub jwks_url: String,
    pub public_jwk: Value,
    encoding: EncodingKey,
    fetches: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyServer {
    pub async fn start(kid: &str) -> KeyServer {
        let kid = kid.to_owned();
        let (encoding, public_jwk) = tokio::task::spawn_blocking({
            let kid = kid.clone();
            move || {
                let private = RsaPrivateKey::new(&mut OsRng, 2048).expect("RSA key");
                let der = private.to_pkcs1_der().expect("DER");
                let jwk = json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                    "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
                    "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
                });
                (EncodingKey::from_rsa_der(der.as_bytes()), jwk)
            }
        })
        .await
        .expect("keygen");
        let fetches = Arc::new(AtomicU64::new(0));
        let set = json!({ "keys": [public_jwk.clone()] });
        let counter = fetches.clone();
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let set = set.clone();
                async move { axum::Json(set) }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        KeyServer {
            kid,
            jwks_url: format!("http://{addr}/jwks.json"),
            public_jwk,
            encoding,
            fetches,
            task,
        }
    }

    /// How often its JWKS was fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// An RS256 token over `claims` with this key and `header` (its `kid` defaults to ours).
    pub fn sign(&self, mut header: Header, claims: &Value) -> String {
        header.alg = Algorithm::RS256;
        if header.kid.is_none() {
            header.kid = Some(self.kid.clone());
        }
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims a verifier for (`iss`, `aud`) would accept, valid for 15 minutes.
pub fn good_claims(iss: &str, aud: &str) -> Value {
    let now = now();
    json!({ "iss": iss, "aud": aud, "sub": "42", "iat": now, "nbf": now, "exp": now + 900,
            "scope": "orders:read" })
}

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

pub fn unb64(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

pub fn header_of(token: &str) -> Value {
    unb64(token.split('.').next().unwrap())
}

pub fn claims_of(token: &str) -> Value {
    unb64(token.split('.').nth(1).unwrap())
}

/// `token` with its header replaced (the signature kept, so it no longer matches).
pub fn with_header(token: &str, header: &Value) -> String {
    let mut parts = token.splitn(2, '.');
    parts.next();
    format!("{}.{}", b64(header), parts.next().unwrap())
}

/// `token` with its claims replaced (the signature kept, so it no longer matches).
pub fn with_claims(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(claims), parts[2])
}

/// An HS256 signature over `header.claims` with `secret`.
pub fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    use jsonwebtoken::crypto::sign;
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature = sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .expect("HS256");
    format!("{message}.{signature}")
}

/// Sends `head` (request line and headers, without the final blank line) plus `body` on a new
/// connection; returns the status code, or `None` when the server closed without answering.
pub async fn raw_request(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    stream.write_all(body).await.ok()?;
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    if response.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    read.expect("no answer within 10 s");
    let text = String::from_utf8_lossy(&response);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// `GET path` with a Host header, as raw HTTP/1.1.
pub async fn raw_get(addr: std::net::SocketAddr, path: &str, extra: &str) -> Option<u16> {
    raw_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nhost: gw{extra}"),
        b"",
    )
    .await
}
