//! TLS to what the gateway calls (backends, the JWKS, the OTLP collector): which roots are
//! trusted (Mozilla's, from `webpki-roots`, or a configured CA bundle instead), the client
//! certificate presented for mutual TLS, and the name the server's certificate must carry.
//! Validation builds the rustls `ClientConfig` exactly as the clients do at start, so
//! `--check` refuses what would fail then, naming the key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::tls::{PemPair, crypto_provider};
use super::validate::Problems;

/// `[upstreams.X.tls]`: how the gateway speaks TLS to one backend's `https://` instances.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientTlsConfig {
    /// PEM bundle of the CAs trusted for this backend, INSTEAD of the public roots (a
    /// private CA should not share trust with the whole web PKI).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the backend (mutual TLS); needs `key`.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// The name sent as SNI and checked in the backend's certificate, when it differs
    /// from the host in the URL (e.g. instances addressed by IP).
    pub server_name: Option<String>,
}

/// Why a client TLS configuration cannot be built; `key()` names the config key.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Parse {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{reason}")]
    Invalid { key: &'static str, reason: String },
}

impl ClientTlsError {
    /// The key (inside its section) the problem is about: `ca_file`, `cert`, `key`, ...
    pub fn key(&self) -> &'static str {
        match self {
            ClientTlsError::Read { key, .. }
            | ClientTlsError::Parse { key, .. }
            | ClientTlsError::Invalid { key, .. } => key,
        }
    }

    /// The same problem about another key (the JWKS's `jwks_ca_file`, ...).
    fn renamed(self, new: &'static str) -> Self {
        match self {
            ClientTlsError::Read { path, source, .. } => ClientTlsError::Read {
                key: new,
                path,
                source,
            },
            ClientTlsError::Parse { path, reason, .. } => ClientTlsError::Parse {
                key: new,
                path,
                reason,
            },
            ClientTlsError::Invalid { reason, .. } => ClientTlsError::Invalid { key: new, reason },
        }
    }
}

impl ClientTlsConfig {
    /// Only a CA bundle (or the public roots when `None`): what the JWKS and OTLP clients use.
    pub fn with_ca(ca_file: Option<&Path>) -> Self {
        Self {
            ca_file: ca_file.map(Path::to_path_buf),
            ..Self::default()
        }
    }

    /// The rustls configuration: TLS 1.3 and 1.2 with the ring provider, the roots, the
    /// client certificate if any. Its session cache (resumption) lives as long as it does,
    /// so a client keeps ONE and shares it across its connections. ALPN is the connector's.
    pub fn client_config(&self) -> Result<ClientConfig, ClientTlsError> {
        let roots = match &self.ca_file {
            Some(path) => ca_roots(path, "ca_file")?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        self.server_name()?;
        let builder = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClientTlsError::Invalid {
                key: "ca_file",
                reason: e.to_string(),
            })?
            .with_root_certificates(roots);
        Ok(match (&self.cert, &self.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let certified = PemPair::read(cert, key)
                    .and_then(|pair| pair.certified_key(cert, key))
                    .map_err(|e| ClientTlsError::Invalid {
                        key: e.config_key(),
                        reason: e.to_string(),
                    })?;
                builder.with_client_cert_resolver(Arc::new(ClientCertificate(Arc::new(certified))))
            }
            (Some(_), None) => {
                return Err(ClientTlsError::Invalid {
                    key: "key",
                    reason: "is required with `cert` (the client certificate's private key)".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ClientTlsError::Invalid {
                    key: "cert",
                    reason: "is required with `key` (the client certificate itself)".into(),
                });
            }
        })
    }

    /// `server_name` as rustls takes it (`None`: the URL's host).
    pub fn server_name(&self) -> Result<Option<ServerName<'static>>, ClientTlsError> {
        let Some(name) = &self.server_name else {
            return Ok(None);
        };
        ServerName::try_from(name.clone())
            .map(Some)
            .map_err(|e| ClientTlsError::Invalid {
                key: "server_name",
                reason: format!("{name:?} is not a DNS name or IP address ({e})"),
            })
    }

    /// Problems with the block at key path `at` (`upstreams.accounts.tls`).
    pub(super) fn validate(&self, at: &str, p: &mut Problems) {
        if let Err(e) = self.client_config() {
            p.push(format!("{at}.{}", e.key()), e.to_string());
        }
    }
}

/// The client TLS configuration trusting `ca_file` (or the public roots), for a single
/// `..._ca_file` key such as `auth.jwt[0].jwks_ca_file`; errors are about `key`.
pub fn ca_client_config(
    ca_file: Option<&Path>,
    key: &'static str,
) -> Result<ClientConfig, ClientTlsError> {
    ClientTlsConfig::with_ca(ca_file)
        .client_config()
        .map_err(|e| e.renamed(key))
}

/// The certificates of a PEM CA bundle (at least one); errors are about `key`.
pub fn load_ca_bundle(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    let bytes = std::fs::read(path).map_err(|source| ClientTlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })?;
    parse_ca_bundle(&bytes, path, key)
}

/// The certificates of PEM CA bundle bytes read from `path` (named in errors).
pub fn parse_ca_bundle(
    bytes: &[u8],
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    let parse = |reason: String| ClientTlsError::Parse {
        key,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse(format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(parse("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

/// A root store of the bundle at `path`, every certificate usable as a trust anchor.
pub fn ca_roots(path: &Path, key: &'static str) -> Result<RootCertStore, ClientTlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_ca_bundle(path, key)? {
        roots.add(cert).map_err(|e| ClientTlsError::Parse {
            key,
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// The one client certificate presented to every server that asks.
#[derive(Debug)]
struct ClientCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(tls: &ClientTlsConfig) -> Vec<String> {
        let mut p = Problems::default();
        tls.validate("upstreams.users.tls", &mut p);
        p.0.iter().map(ToString::to_string).collect()
    }

    fn temp(name: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("manifold-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn pair(name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (
            temp(&format!("{name}-cert.pem"), &cert.pem()),
            temp(&format!("{name}-key.pem"), &key.serialize_pem()),
        )
    }

    #[test]
    fn the_public_roots_need_no_file() {
        assert!(problems(&ClientTlsConfig::default()).is_empty());
    }

    #[test]
    fn a_missing_or_unparsable_ca_file_names_ca_file() {
        let missing = ClientTlsConfig::with_ca(Some(Path::new("/nonexistent/ca.pem")));
        let found = problems(&missing);
        assert!(
            found[0].starts_with("upstreams.users.tls.ca_file: cannot read"),
            "{found:?}"
        );
        let garbage = ClientTlsConfig::with_ca(Some(&temp("garbage.pem", "not a certificate")));
        let found = problems(&garbage);
        assert!(
            found[0].starts_with("upstreams.users.tls.ca_file:")
                && found[0].contains("no CERTIFICATE"),
            "{found:?}"
        );
    }

    #[test]
    fn a_cert_needs_its_own_key() {
        let (cert, key) = pair("one");
        let (_, other_key) = pair("two");
        let only_cert = ClientTlsConfig {
            cert: Some(cert.clone()),
            ..ClientTlsConfig::default()
        };
        let found = problems(&only_cert);
        assert!(
            found[0].starts_with("upstreams.users.tls.key: is required"),
            "{found:?}"
        );
        let only_key = ClientTlsConfig {
            key: Some(key.clone()),
            ..ClientTlsConfig::default()
        };
        assert!(problems(&only_key)[0].starts_with("upstreams.users.tls.cert: is required"));
        let mismatched = ClientTlsConfig {
            cert: Some(cert.clone()),
            key: Some(other_key),
            ..ClientTlsConfig::default()
        };
        let found = problems(&mismatched);
        assert!(
            found[0].starts_with("upstreams.users.tls.key:") && found[0].contains("does not match"),
            "{found:?}"
        );
        let missing_key = ClientTlsConfig {
            cert: Some(cert.clone()),
            key: Some(PathBuf::from("/nonexistent/key.pem")),
            ..ClientTlsConfig::default()
        };
        assert!(problems(&missing_key)[0].starts_with("upstreams.users.tls.key: cannot read"));
        let good = ClientTlsConfig {
            cert: Some(cert),
            key: Some(key),
            server_name: Some("backend.internal".into()),
            ..ClientTlsConfig::default()
        };
        assert!(problems(&good).is_empty(), "{:?}", problems(&good));
    }

    #[test]
    fn a_bad_server_name_names_server_name() {
        let bad = ClientTlsConfig {
            server_name: Some("not a name".into()),
            ..ClientTlsConfig::default()
        };
        assert!(problems(&bad)[0].starts_with("upstreams.users.tls.server_name:"));
    }
}
