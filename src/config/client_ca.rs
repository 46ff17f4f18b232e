//! The client-certificate side of `[tls]`: the CA bundle (`client_ca`) and revocation list
//! (`client_crl`) read into the rustls verifier a handshake checks a partner's certificate
//! with. Like `PemPair` for the server certificate, the bytes are kept so the listener's
//! reload can tell when the files changed; what a verified certificate means (which client
//! it is) is `auth`'s business.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;

use super::client_tls::{ClientTlsError, parse_ca_bundle};
use super::tls::{ClientAuth, TlsConfig, crypto_provider};

/// The bytes of `client_ca` and `client_crl`, and how they are to be used.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCaFiles {
    ca_path: PathBuf,
    crl_path: Option<PathBuf>,
    auth: ClientAuth,
    ca: Vec<u8>,
    crl: Option<Vec<u8>>,
}

impl ClientCaFiles {
    /// Reads the files `tls` names. Only call it with `client_ca` set.
    pub fn read(tls: &TlsConfig) -> Result<Self, ClientTlsError> {
        let ca_path = tls.client_ca.clone().unwrap_or_default();
        let ca = read(&ca_path, "client_ca")?;
        let crl = match &tls.client_crl {
            Some(path) => Some(read(path, "client_crl")?),
            None => None,
        };
        Ok(Self {
            ca_path,
            crl_path: tls.client_crl.clone(),
            auth: tls.client_auth.unwrap_or_default(),
            ca,
            crl,
        })
    }

    /// Reads the same files again (the listener's reload).
    pub fn reread(&self) -> Result<Self, ClientTlsError> {
        let crl = match &self.crl_path {
            Some(path) => Some(read(path, "client_crl")?),
            None => None,
        };
        Ok(Self {
            ca: read(&self.ca_path, "client_ca")?,
            crl,
            ..self.clone()
        })
    }

    pub fn auth(&self) -> ClientAuth {
        self.auth
    }

    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The verifier of client certificates these bytes make: chains to one of the CAs,
    /// valid now, for client authentication, and not revoked by the CRL. Revocation is
    /// checked for the partner's own certificate; a certificate whose issuer published no
    /// list in `client_crl` is not refused for that.
    pub fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, ClientTlsError> {
        let mut roots = RootCertStore::empty();
        for cert in parse_ca_bundle(&self.ca, &self.ca_path, "client_ca")? {
            roots.add(cert).map_err(|e| ClientTlsError::Parse {
                key: "client_ca",
                path: self.ca_path.clone(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider());
        if let (Some(crl), Some(path)) = (&self.crl, &self.crl_path) {
            let crls = CertificateRevocationListDer::pem_slice_iter(crl)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| crl_error(path, format!("invalid PEM: {e}")))?;
            if crls.is_empty() {
                return Err(crl_error(path, "no X509 CRL block found".into()));
            }
            builder = builder
                .with_crls(crls)
                .only_check_end_entity_revocation()
                .allow_unknown_revocation_status();
        }
        if self.auth == ClientAuth::Optional {
            builder = builder.allow_unauthenticated();
        }
        builder.build().map_err(|e| {
            let key = if matches!(e, rustls::server::VerifierBuilderError::InvalidCrl(_)) {
                "client_crl"
            } else {
                "client_ca"
            };
            ClientTlsError::Invalid {
                key,
                reason: e.to_string(),
            }
        })
    }
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, ClientTlsError> {
    std::fs::read(path).map_err(|source| ClientTlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

fn crl_error(path: &Path, reason: String) -> ClientTlsError {
    ClientTlsError::Parse {
        key: "client_crl",
        path: path.to_path_buf(),
        reason,
    }
}
