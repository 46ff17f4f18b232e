//! The `[tls]` section: terminate TLS on the public listener with a certificate chain and a
//! private key read from PEM files, reloaded from disk while running. Without the section the
//! listener speaks plain HTTP. What the files mean at run time (handshakes, reloads) is owned
//! by `server::tls`; this module owns the keys, their defaults and their validation, and so
//! also reading the two files it names into a certificate and key that belong together (the
//! listener reuses that for every reload).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units;
use super::validate::Problems;

pub use super::client_ca::ClientCaFiles;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the two files are checked for a new certificate.
    #[serde(default = "reload_interval", with = "units::duration")]
    pub reload_interval: Duration,
    /// Longest a client may take to complete the TLS handshake.
    #[serde(default = "handshake_timeout", with = "units::duration")]
    pub handshake_timeout: Duration,
    /// PEM bundle of the CAs whose client certificates are accepted (partners identified by
    /// certificate, `[auth.client_certs]`); no certificate is asked for without it.
    /// Reloaded like `cert`.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// `required` (the default with `client_ca`): a handshake without a valid certificate
    /// fails; `optional`: a client may present none and authenticate otherwise.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// PEM revocation list(s) of the client CA: a revoked certificate fails the handshake.
    /// Reloaded like `cert`.
    #[serde(default)]
    pub client_crl: Option<PathBuf>,
}

/// Whether the listener insists on a client certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
}

fn reload_interval() -> Duration {
    Duration::from_secs(2)
}

fn handshake_timeout() -> Duration {
    Duration::from_secs(10)
}

impl TlsConfig {
    /// TLS with these files and the default intervals.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            reload_interval: reload_interval(),
            handshake_timeout: handshake_timeout(),
            client_ca: None,
            client_auth: None,
            client_crl: None,
        }
    }

    /// Problems with the section, including files that cannot be read or do not hold a
    /// usable certificate and matching key (checked now, so `--check` and start-up catch
    /// them with exit status 64 rather than at the first handshake).
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            !self.reload_interval.is_zero(),
            "tls.reload_interval",
            "must be greater than 0",
        );
        p.check(
            !self.handshake_timeout.is_zero(),
            "tls.handshake_timeout",
            "must be greater than 0",
        );
        if let Err(e) = load_certified_key(&self.cert, &self.key) {
            p.push(format!("tls.{}", e.config_key()), e.to_string());
        }
        match &self.client_ca {
            Some(_) => {
                if let Err(e) = ClientCaFiles::read(self).and_then(|files| files.verifier()) {
                    p.push(format!("tls.{}", e.key()), e.to_string());
                }
            }
            None => {
                p.check(
                    self.client_auth.is_none(),
                    "tls.client_auth",
                    "needs tls.client_ca (the CAs client certificates are checked against)",
                );
                p.check(
                    self.client_crl.is_none(),
                    "tls.client_crl",
                    "needs tls.client_ca (the CAs client certificates are checked against)",
                );
            }
        }
    }
}

/// Which of the two files a problem is about (named like its config key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemFile {
    Cert,
    Key,
}

/// Why the two PEM files do not make a usable certificate and key.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        file: PemFile,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Parse {
        file: PemFile,
        path: PathBuf,
        reason: String,
    },
    #[error("{}: the key does not match the certificate ({reason})", path.display())]
    Mismatch { path: PathBuf, reason: String },
}

impl PemError {
    /// The `[tls]` key the problem is about: `cert` or `key`.
    pub fn config_key(&self) -> &'static str {
        let file = match self {
            PemError::Read { file, .. } | PemError::Parse { file, .. } => *file,
            PemError::Mismatch { .. } => PemFile::Key,
        };
        match file {
            PemFile::Cert => "cert",
            PemFile::Key => "key",
        }
    }
}

/// The one crypto provider of the TLS listener. Chosen explicitly (not the process default),
/// so nothing panics if another crate enables aws-lc-rs as well.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the two PEM files (what config validation and each reload do).
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, PemError> {
    let files = PemPair::read(cert, key)?;
    files.certified_key(cert, key)
}

/// The bytes of both files, compared between polls to notice a replacement.
#[derive(Clone, PartialEq, Eq)]
pub struct PemPair {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl PemPair {
    pub fn read(cert: &Path, key: &Path) -> Result<PemPair, PemError> {
        let read = |file, path: &Path| {
            std::fs::read(path).map_err(|source| PemError::Read {
                file,
                path: path.to_path_buf(),
                source,
            })
        };
        Ok(PemPair {
            cert: read(PemFile::Cert, cert)?,
            key: read(PemFile::Key, key)?,
        })
    }

    /// The certificate chain and key in these bytes; the paths only name them in errors.
    pub fn certified_key(
        &self,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<CertifiedKey, PemError> {
        let parse_error = |file, path: &Path, reason: String| PemError::Parse {
            file,
            path: path.to_path_buf(),
            reason,
        };
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| parse_error(PemFile::Cert, cert_path, format!("invalid PEM: {e}")))?;
        if chain.is_empty() {
            return Err(parse_error(
                PemFile::Cert,
                cert_path,
                "no CERTIFICATE block found".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| {
            parse_error(
                PemFile::Key,
                key_path,
                format!("no usable PRIVATE KEY block ({e})"),
            )
        })?;
        CertifiedKey::from_der(chain, key, &crypto_provider()).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => PemError::Mismatch {
                path: key_path.to_path_buf(),
                reason: e.to_string(),
            },
            rustls::Error::InvalidCertificate(_) => {
                parse_error(PemFile::Cert, cert_path, e.to_string())
            }
            other => parse_error(PemFile::Key, key_path, other.to_string()),
        })
    }
}
