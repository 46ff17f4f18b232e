//! A small HTTPS server for the tests of TLS the gateway speaks as a client: real rustls on
//! 127.0.0.1:0, HTTP/2 offered by ALPN or not, a client certificate required or not, and an
//! axum app that sees, per request, the HTTP version and whether the connection presented a
//! client certificate. Its accept loop stops when it is dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, Request};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::support::{ServerCert, TestCa};

/// Whether the request's connection presented a (verified) client certificate.
#[derive(Clone, Copy)]
pub(super) struct ClientCertSeen(pub(super) bool);

pub(super) struct TlsServer {
    pub(super) addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsServer {
    /// Serves `app` over TLS with `cert`; with `client_ca`, only to clients presenting a
    /// certificate it issued; ALPN offers `h2` first when `h2`.
    pub(super) async fn start(
        cert: &ServerCert,
        client_ca: Option<&TestCa>,
        h2: bool,
        app: Router,
    ) -> TlsServer {
        let builder =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.der.clone()).unwrap();
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::new(rustls::crypto::ring::default_provider()),
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let mut config = builder
            .with_single_cert(vec![cert.der.clone()], key)
            .unwrap();
        config.alpn_protocols = if h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A refused handshake (no or a foreign client certificate) ends here.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let seen = ClientCertSeen(stream.get_ref().1.peer_certificates().is_some());
                    let app = app.layer(Extension(seen));
                    let service = TowerToHyperService::new(
                        app.map_request(|r: Request<hyper::body::Incoming>| r.map(Body::new)),
                    );
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TlsServer { addr, task }
    }

    pub(super) fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A users backend: `GET /users/{id}` answers what it saw (HTTP version, client
/// certificate, the identity header the gateway set); `GET /healthz` for health checks.
pub(super) fn users_backend() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/users/{id}",
            get(
                |Path(id): Path<String>,
                 Extension(ClientCertSeen(client_cert)): Extension<ClientCertSeen>,
                 request: Request| async move {
                    let user = request
                        .headers()
                        .get("x-user-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    axum::Json(json!({
                        "id": id,
                        "version": format!("{:?}", request.version()),
                        "client_cert": client_cert,
                        "x-user-id": user,
                    }))
                },
            ),
        )
}
