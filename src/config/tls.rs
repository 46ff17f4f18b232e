//! The `[tls]` section: terminate TLS on the public listener with a certificate chain and a
//! private key read from PEM files, reloaded from disk while running. Without the section the
//! listener speaks plain HTTP. What the files mean at run time (handshakes, reloads) is owned
//! by `server::tls`; this module owns the keys, their defaults and their validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, units};

#[derive(Clone, Debug, Deserialize)]
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
        }
    }

    /// Problems with the section, including files that cannot be read or do not hold a
    /// usable certificate and matching key (checked now, so `--check` and start-up catch
    /// them with exit status 64 rather than at the first handshake).
    pub(super) fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.reload_interval.is_zero() {
            errors.push(ConfigError::new(
                "tls.reload_interval",
                "must be greater than 0",
            ));
        }
        if self.handshake_timeout.is_zero() {
            errors.push(ConfigError::new(
                "tls.handshake_timeout",
                "must be greater than 0",
            ));
        }
        if let Err(e) = crate::server::tls::load_certified_key(&self.cert, &self.key) {
            errors.push(ConfigError::new(
                format!("tls.{}", e.config_key()),
                e.to_string(),
            ));
        }
        errors
    }
}
