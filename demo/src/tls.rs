//! `demo --tls`: a self-signed certificate for `localhost` and `127.0.0.1`, made at start
//! (rcgen, pure Rust) into a fresh temporary directory, removed again when the demo stops.
//! The BFFs serve it with their usual `[tls]` machinery, reload included.

use std::path::{Path, PathBuf};

use manifold::config::TlsConfig;

pub struct DemoCertificate {
    dir: PathBuf,
}

impl DemoCertificate {
    pub fn generate() -> Result<DemoCertificate, String> {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
        let dir = std::env::temp_dir().join(format!("manifold-demo-tls-{}", std::process::id()));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("cert.pem"), made.cert.pem()))
            .and_then(|()| std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()));
        let certificate = DemoCertificate { dir };
        written.map_err(|e| format!("cannot write to {}: {e}", certificate.dir.display()))?;
        Ok(certificate)
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> TlsConfig {
        TlsConfig::new(self.cert_path(), self.dir.join("key.pem"))
    }
}

impl Drop for DemoCertificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
