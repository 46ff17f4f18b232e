//! The TLS side of the public listener: the certificate chain and key read from PEM files, the
//! rustls `ServerConfig` (TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1`, the `ring`
//! provider chosen explicitly), and the reload of the files while running.
//!
//! Reloading swaps the `CertifiedKey` that `CurrentCertificate` hands to each NEW handshake;
//! connections already established keep the certificate they were made with, so nothing in
//! flight is dropped. A file that does not parse, or a key that does not match the certificate
//! (e.g. the cert was replaced and the key not yet), keeps the old certificate and is logged
//! once. Accepting and serving connections is `server::https`.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::{PemError, PemPair, TlsConfig, crypto_provider};

/// Why the listener cannot terminate TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Files(#[from] PemError),
    #[error("cannot build the TLS configuration: {0}")]
    Setup(rustls::Error),
}

impl TlsError {
    /// The `[tls]` key the problem is about: `cert` or `key`.
    pub fn config_key(&self) -> &'static str {
        match self {
            TlsError::Files(e) => e.config_key(),
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
pub struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<CurrentCertificate>,
    loaded: PemPair,
    cert_path: PathBuf,
    key_path: PathBuf,
    reload_interval: Duration,
    handshake_timeout: Duration,
}

impl Tls {
    /// Loads the files named by `config` and builds the rustls configuration.
    pub fn load(config: &TlsConfig) -> Result<Tls, TlsError> {
        let loaded = PemPair::read(&config.cert, &config.key)?;
        let current = Arc::new(CurrentCertificate::new(
            loaded.certified_key(&config.cert, &config.key)?,
        ));
        let mut server = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            current,
            loaded,
            cert_path: config.cert.clone(),
            key_path: config.key.clone(),
            reload_interval: config.reload_interval,
            handshake_timeout: config.handshake_timeout,
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

    /// Polls the two files every `reload_interval` and swaps the certificate when their
    /// content changed and loads cleanly. Runs until dropped (the listener aborts it).
    pub fn reload_task(&self) -> impl Future<Output = ()> + Send + 'static {
        let current = self.current.clone();
        let mut seen = self.loaded.clone();
        let (cert_path, key_path) = (self.cert_path.clone(), self.key_path.clone());
        let interval = self.reload_interval;
        async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut last_read_error = None::<String>;
            loop {
                ticks.tick().await;
                let read = {
                    let (cert, key) = (cert_path.clone(), key_path.clone());
                    tokio::task::spawn_blocking(move || PemPair::read(&cert, &key)).await
                };
                let files = match read {
                    Ok(Ok(files)) => files,
                    Ok(Err(e)) => {
                        // A file missing for a moment while it is being replaced is normal;
                        // say so once, not every tick.
                        let shown = e.to_string();
                        if last_read_error.as_ref() != Some(&shown) {
                            tracing::warn!(error = %shown, "TLS certificate reload: keeping the current certificate");
                            last_read_error = Some(shown);
                        }
                        continue;
                    }
                    Err(_) => continue,
                };
                last_read_error = None;
                if files == seen {
                    continue;
                }
                match files.certified_key(&cert_path, &key_path) {
                    Ok(key) => {
                        current.replace(key);
                        tracing::info!(cert = %cert_path.display(), "TLS certificate reloaded");
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "TLS certificate reload: keeping the current certificate"
                    ),
                }
                seen = files;
            }
        }
    }
}
