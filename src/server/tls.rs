//! The TLS side of the public listener: the certificate chain and key read from PEM files, the
//! rustls `ServerConfig` (TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1`, the `ring`
//! provider chosen explicitly), and the reload of the files while running.
//!
//! Reloading swaps the `CertifiedKey` that `CurrentCertificate` hands to each NEW handshake;
//! connections already established keep the certificate they were made with, so nothing in
//! flight is dropped. A file that does not parse, or a key that does not match the certificate
//! (e.g. the cert was replaced and the key not yet), keeps the old certificate and is logged
//! once. With `client_ca`, handshakes ask for a client certificate (`server::client_auth`),
//! and the CA bundle and revocation list are polled and swapped the same way. Accepting and
//! serving connections is `server::https`.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::client_auth::CurrentClientVerifier;
use crate::config::{ClientCaFiles, ClientTlsError, PemError, PemPair, TlsConfig, crypto_provider};

/// Why the listener cannot terminate TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Files(#[from] PemError),
    #[error(transparent)]
    ClientCa(#[from] ClientTlsError),
    #[error("cannot build the TLS configuration: {0}")]
    Setup(rustls::Error),
}

impl TlsError {
    /// The `[tls]` key the problem is about: `cert`, `key`, `client_ca` or `client_crl`.
    pub fn config_key(&self) -> &'static str {
        match self {
            TlsError::Files(e) => e.config_key(),
            TlsError::ClientCa(e) => e.key(),
            TlsError::Setup(_) => "key",
        }
    }
}

/// The certificate new handshakes get. The lock is only held to clone or swap an `Arc`.
pub struct CurrentCertificate {
    key: RwLock<Arc<CertifiedKey>>,
}

impl CurrentCertificate {
    fn new(key: CertifiedKey) -> Self {
        Self {
            key: RwLock::new(Arc::new(key)),
        }
    }

    pub fn get(&self) -> Arc<CertifiedKey> {
        match self.key.read() {
            Ok(key) => Arc::clone(&key),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn replace(&self, new: CertifiedKey) {
        let new = Arc::new(new);
        match self.key.write() {
            Ok(mut key) => *key = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

impl fmt::Debug for CurrentCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentCertificate").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// Everything the listener needs to terminate TLS: built once at start from `[tls]`.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<CurrentCertificate>,
    loaded: PemPair,
    /// With `client_ca`: the verifier handshakes use and the files it was built from.
    client: Option<(Arc<CurrentClientVerifier>, ClientCaFiles)>,
    cert_path: PathBuf,
    key_path: PathBuf,
    reload_interval: Duration,
    handshake_timeout: Duration,
    /// Whether a listener serving this runs the reload task (one of a server's listeners
    /// does; the others share what it reloads).
    pub(super) reloads: bool,
}

impl Tls {
    /// Loads the files named by `config` and builds the rustls configuration.
    pub fn load(config: &TlsConfig) -> Result<Tls, TlsError> {
        let loaded = PemPair::read(&config.cert, &config.key)?;
        let current = Arc::new(CurrentCertificate::new(
            loaded.certified_key(&config.cert, &config.key)?,
        ));
        let builder = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Setup)?;
        let client = match &config.client_ca {
            Some(_) => {
                let files = ClientCaFiles::read(config)?;
                let verifier = Arc::new(CurrentClientVerifier::new(&files, files.verifier()?));
                Some((verifier, files))
            }
            None => None,
        };
        let builder = match &client {
            Some((verifier, _)) => builder.with_client_cert_verifier(verifier.clone()),
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_cert_resolver(current.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            current,
            loaded,
            client,
            cert_path: config.cert.clone(),
            key_path: config.key.clone(),
            reload_interval: config.reload_interval,
            handshake_timeout: config.handshake_timeout,
            reloads: true,
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The certificate currently handed to new handshakes.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.get()
    }

    /// The same certificates for another listener of the same server: it sees every reload,
    /// and does not run one of its own.
    pub(super) fn follower(&self) -> Tls {
        Tls {
            reloads: false,
            ..self.clone()
        }
    }

    /// Polls the files every `reload_interval` and swaps the certificate (and the client
    /// CA and revocation list) when their content changed and loads cleanly. Runs until
    /// dropped (the listener aborts it).
    pub fn reload_task(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut certificate = CertificateFiles {
            current: self.current.clone(),
            seen: self.loaded.clone(),
            cert_path: self.cert_path.clone(),
            key_path: self.key_path.clone(),
            last_read_error: None,
        };
        let mut client_ca = self.client.as_ref().map(|(verifier, files)| ClientCaWatch {
            current: verifier.clone(),
            seen: files.clone(),
            last_error: None,
        });
        let interval = self.reload_interval;
        async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                certificate.poll().await;
                if let Some(client_ca) = &mut client_ca {
                    client_ca.poll().await;
                }
            }
        }
    }
}

/// The certificate and key files as last loaded, and where they go.
struct CertificateFiles {
    current: Arc<CurrentCertificate>,
    seen: PemPair,
    cert_path: PathBuf,
    key_path: PathBuf,
    last_read_error: Option<String>,
}

impl CertificateFiles {
    async fn poll(&mut self) {
        let read = {
            let (cert, key) = (self.cert_path.clone(), self.key_path.clone());
            tokio::task::spawn_blocking(move || PemPair::read(&cert, &key)).await
        };
        let files = match read {
            Ok(Ok(files)) => files,
            Ok(Err(e)) => {
                // A file missing for a moment while it is being replaced is normal; say so
                // once, not every tick.
                let shown = e.to_string();
                if self.last_read_error.as_ref() != Some(&shown) {
                    tracing::warn!(error = %shown, "TLS certificate reload: keeping the current certificate");
                    self.last_read_error = Some(shown);
                }
                return;
            }
            Err(_) => return,
        };
        self.last_read_error = None;
        if files == self.seen {
            return;
        }
        match files.certified_key(&self.cert_path, &self.key_path) {
            Ok(key) => {
                self.current.replace(key);
                tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(
                error = %e,
                "TLS certificate reload: keeping the current certificate"
            ),
        }
        self.seen = files;
    }
}

/// The client CA and revocation list as last loaded, and the verifier they make.
struct ClientCaWatch {
    current: Arc<CurrentClientVerifier>,
    seen: ClientCaFiles,
    last_error: Option<String>,
}

impl ClientCaWatch {
    async fn poll(&mut self) {
        let seen = self.seen.clone();
        let read = tokio::task::spawn_blocking(move || {
            let files = seen.reread()?;
            // Built off the runtime too: a large bundle or CRL takes a moment to parse.
            let verifier = (files != seen).then(|| files.verifier()).transpose()?;
            Ok::<_, ClientTlsError>((files, verifier))
        })
        .await;
        match read {
            Ok(Ok((files, Some(verifier)))) => {
                self.current.replace(verifier);
                tracing::info!(ca = %files.ca_path().display(), "TLS client CA reloaded");
                self.seen = files;
                self.last_error = None;
            }
            Ok(Ok((_, None))) => self.last_error = None,
            Ok(Err(e)) => {
                let shown = e.to_string();
                if self.last_error.as_ref() != Some(&shown) {
                    tracing::warn!(error = %shown, "TLS client CA reload: keeping the current CAs");
                    self.last_error = Some(shown);
                }
            }
            Err(_) => {}
        }
    }
}
