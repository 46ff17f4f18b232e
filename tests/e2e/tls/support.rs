//! What the TLS tests share: a test CA issuing server certificates, a directory of PEM files
//! replaced the way deployment tools do, a bff-web stack serving them, and an HTTP client over
//! tokio-rustls that speaks HTTP/2 or HTTP/1.1 as ALPN decided.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use manifold::config::TlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::harness::Stack;

pub(super) const H2: &[u8] = b"h2";
pub(super) const HTTP11: &[u8] = b"http/1.1";

/// A CA the test client trusts, issuing server certificates for 127.0.0.1 / localhost.
pub(super) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub(super) der: CertificateDer<'static>,
    pub(super) pem: String,
}

pub(super) struct ServerCert {
    pub(super) cert_pem: String,
    pub(super) key_pem: String,
    pub(super) der: CertificateDer<'static>,
}

impl TestCa {
    pub(super) fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Manifold test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            der: cert.der().clone(),
            pem: cert.pem(),
        }
    }

    /// A client certificate with `common_name` as its subject's CN (a partner's).
    pub(super) fn issue_client(&self, common_name: &str) -> ServerCert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// Like `client`, presenting `cert` when the server asks for a client certificate.
    pub(super) fn client_with_cert(&self, alpn: &[&[u8]], cert: &ServerCert) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(vec![cert.der.clone()], key)
                .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }

    pub(super) fn issue(&self) -> ServerCert {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    pub(super) fn client(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

/// A directory for one test's PEM files, removed afterwards.
pub(super) struct CertDir(pub(super) PathBuf);

impl CertDir {
    pub(super) fn new() -> CertDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "manifold-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        CertDir(dir)
    }

    pub(super) fn cert(&self) -> PathBuf {
        self.0.join("cert.pem")
    }

    pub(super) fn key(&self) -> PathBuf {
        self.0.join("key.pem")
    }

    /// Replaces the files as deployment tools do: write aside, then rename over.
    pub(super) fn install(&self, cert: &ServerCert) {
        replace(&self.cert(), cert.cert_pem.as_bytes());
        replace(&self.key(), cert.key_pem.as_bytes());
    }

    /// Writes `content` as `name` in the directory (replacing it as deployment tools do).
    pub(super) fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        replace(&path, content.as_bytes());
        path
    }

    pub(super) fn config(&self) -> TlsConfig {
        let mut tls = TlsConfig::new(self.cert(), self.key());
        tls.reload_interval = Duration::from_millis(50);
        tls
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn replace(path: &Path, content: &[u8]) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, content).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// bff-web (it has proxy routes, which make slow requests easy) serving TLS with `cert`.
pub(super) async fn tls_stack(dir: &CertDir, cert: &ServerCert) -> Stack {
    dir.install(cert);
    let tls = dir.config();
    Stack::start_with(&bff_web::SPEC, |config| config.tls = Some(tls)).await
}

pub(super) async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    connector.connect(name, tcp).await
}

pub(super) fn served_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("a server certificate")[0]
        .clone()
}

pub(super) fn alpn(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

pub(super) fn tls_version(stream: &TlsStream<TcpStream>) -> Option<ProtocolVersion> {
    stream.get_ref().1.protocol_version()
}

/// An HTTP connection over an established TLS stream, speaking what ALPN chose.
pub(super) enum Client {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Client {
    pub(super) async fn over(stream: TlsStream<TcpStream>) -> Client {
        Client::try_over(stream).await.unwrap()
    }

    /// An HTTP connection, or why none could be made over `stream`.
    pub(super) async fn try_over(stream: TlsStream<TcpStream>) -> Result<Client, String> {
        let io = TokioIo::new(stream);
        if alpn(io.inner()).as_deref() == Some(H2) {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Ok(Client::H2(send))
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Ok(Client::H1(send))
        }
    }

    /// GET `path`; returns status, HTTP version and body.
    pub(super) async fn get(
        &mut self,
        addr: SocketAddr,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, Version, Bytes) {
        self.try_get(addr, path, token).await.expect("response")
    }

    /// GET `path`: status, HTTP version and body, or why there was no answer.
    pub(super) async fn try_get(
        &mut self,
        addr: SocketAddr,
        path: &str,
        token: Option<&str>,
    ) -> Result<(StatusCode, Version, Bytes), String> {
        let mut request =
            Request::get(format!("https://{addr}{path}")).header("host", addr.to_string());
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Empty::new()).unwrap();
        let response = match self {
            Client::H1(send) => {
                // HTTP/1.1 requests carry the path alone; the host is in its header.
                let (mut parts, body) = request.into_parts();
                parts.uri = path.parse().unwrap();
                send.send_request(Request::from_parts(parts, body)).await
            }
            Client::H2(send) => send.send_request(request).await,
        }
        .map_err(|e| e.to_string())?;
        let (status, version) = (response.status(), response.version());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, version, body))
    }
}
