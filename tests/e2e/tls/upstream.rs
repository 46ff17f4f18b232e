//! TLS the gateway speaks as a client, against real rustls servers on loopback with a CA
//! made here: `https://` backends (a proxy route and a typed call; HTTP/2 by ALPN; a client
//! certificate when the backend requires one), an `https://` JWKS, and OTLP export to an
//! `https://` collector.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use bytes::Bytes;
use jsonwebtoken::Header;
use manifold::config::{ClientTlsConfig, UpstreamConfig};
use manifold::request::{CallContext, Deadline};
use manifold::upstream::Upstream;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::serve::{TlsServer, users_backend};
use super::support::{CertDir, TestCa};
use crate::harness::Stack;
use crate::security::forge::{KeyServer, good_claims};

fn ctx() -> CallContext {
    CallContext::new(None, Deadline::after(Duration::from_secs(5)), "test".into())
}

/// An upstream config for `url` trusting `tls`, without health checks (a call's outcome
/// is then about the call alone).
fn upstream(url: String, tls: Option<ClientTlsConfig>) -> UpstreamConfig {
    let mut config = UpstreamConfig::new(url);
    config.health.enabled = false;
    config.retry.attempts = 1;
    config.tls = tls;
    config
}

fn trusting(ca_file: std::path::PathBuf) -> ClientTlsConfig {
    ClientTlsConfig {
        ca_file: Some(ca_file),
        ..ClientTlsConfig::default()
    }
}

#[tokio::test]
async fn an_https_backend_is_reached_by_proxy_and_typed_calls_with_http2_where_offered() {
    let ca = TestCa::new();
    let dir = CertDir::new();
    let ca_file = dir.file("backend-ca.pem", &ca.pem);
    let h2 = TlsServer::start(&ca.issue(), None, true, users_backend()).await;
    let h1 = TlsServer::start(&ca.issue(), None, false, users_backend()).await;

    // Through a proxy route of bff-web, whose users upstream is the HTTP/2 backend.
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        let users = config.upstreams.get_mut("users").unwrap();
        users.url = Some(h2.url());
        users.tls = Some(trusting(ca_file.clone()));
    })
    .await;
    let token = stack.token("42", "web", &[]).await;
    let response = stack.get_as("/api/users/42", &token).await;
    assert_eq!(response.status(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["version"], "HTTP/2.0", "{seen}");
    assert_eq!(seen["x-user-id"], "42", "{seen}");

    // A typed call: HTTP/2 where ALPN offers it, HTTP/1.1 where it does not.
    for (server, version) in [(&h2, "HTTP/2.0"), (&h1, "HTTP/1.1")] {
        let users = Upstream::new(
            "users",
            &upstream(server.url(), Some(trusting(ca_file.clone()))),
        )
        .unwrap();
        let seen: Value = users.get_json(&ctx(), "/users/7").await.unwrap();
        assert_eq!(seen["id"], "7");
        assert_eq!(seen["version"], version, "{seen}");
    }

    // The public roots do not know this CA: the backend's certificate is refused.
    let untrusting = Upstream::new("users", &upstream(h2.url(), None)).unwrap();
    let refused = untrusting
        .get_json::<Value>(&ctx(), "/users/7")
        .await
        .unwrap_err();
    assert_eq!(
        refused.code().as_str(),
        "UPSTREAM_UNAVAILABLE",
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_backend_requiring_a_client_certificate_gets_the_gateways() {
    let (server_ca, client_ca) = (TestCa::new(), TestCa::new());
    let dir = CertDir::new();
    let ca_file = dir.file("backend-ca.pem", &server_ca.pem);
    let gateway_cert = client_ca.issue_client("manifold-gateway");
    let cert = dir.file("gateway-cert.pem", &gateway_cert.cert_pem);
    let key = dir.file("gateway-key.pem", &gateway_cert.key_pem);
    let backend =
        TlsServer::start(&server_ca.issue(), Some(&client_ca), true, users_backend()).await;
    let with_cert = ClientTlsConfig {
        ca_file: Some(ca_file.clone()),
        cert: Some(cert),
        key: Some(key),
        // The backend is addressed by IP; its certificate names localhost as well.
        server_name: Some("localhost".into()),
    };

    // Without the gateway's certificate the backend refuses the handshake.
    let anonymous =
        Upstream::new("users", &upstream(backend.url(), Some(trusting(ca_file)))).unwrap();
    let refused = anonymous
        .get_json::<Value>(&ctx(), "/users/7")
        .await
        .unwrap_err();
    assert_eq!(
        refused.code().as_str(),
        "UPSTREAM_UNAVAILABLE",
        "{refused:?}"
    );

    // With it: a typed call...
    let users = Upstream::new("users", &upstream(backend.url(), Some(with_cert.clone()))).unwrap();
    let seen: Value = users.get_json(&ctx(), "/users/7").await.unwrap();
    assert_eq!(seen["client_cert"], true, "{seen}");

    // ...and a proxy route.
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        let users = config.upstreams.get_mut("users").unwrap();
        users.url = Some(backend.url());
        users.tls = Some(with_cert);
    })
    .await;
    let token = stack.token("42", "web", &[]).await;
    let response = stack.get_as("/api/users/42", &token).await;
    assert_eq!(response.status(), 200);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["client_cert"], true, "{seen}");
    assert_eq!(seen["version"], "HTTP/2.0", "{seen}");
}

#[tokio::test]
async fn tokens_are_checked_against_a_jwks_served_over_https() {
    let ca = TestCa::new();
    let dir = CertDir::new();
    let ca_file = dir.file("idp-ca.pem", &ca.pem);
    let keys = KeyServer::start("tls-key").await;
    let set = json!({ "keys": [keys.public_jwk.clone()] });
    let idp = TlsServer::start(
        &ca.issue(),
        None,
        false,
        Router::new().route("/jwks.json", get(move || async move { axum::Json(set) })),
    )
    .await;
    let issuer = "https://idp.test";

    // Ready means the JWKS was fetched over TLS, trusting the configured CA.
    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        let jwt = &mut config.auth.jwt[0];
        jwt.jwks_url = format!("{}/jwks.json", idp.url()).into();
        jwt.jwks_ca_file = Some(ca_file.clone());
        jwt.issuer = issuer.into();
    })
    .await;
    let token = keys.sign(Header::default(), &good_claims(issuer, "web"));
    let response = stack.get_as("/api/users/42", &token).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

#[tokio::test]
async fn spans_are_exported_to_an_https_collector() {
    let ca = TestCa::new();
    let dir = CertDir::new();
    let ca_file = dir.file("collector-ca.pem", &ca.pem);
    let received: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
    let got = received.clone();
    let collector = TlsServer::start(
        &ca.issue(),
        None,
        true,
        Router::new().route(
            "/v1/traces",
            post(move |headers: http::HeaderMap, body: Bytes| async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                got.lock().unwrap().push((content_type, body));
                ""
            }),
        ),
    )
    .await;

    let stack = Stack::start_with(&bff_web::SPEC, |config| {
        config.tracing.otlp_endpoint = Some(collector.url());
        config.tracing.otlp_ca_file = Some(ca_file.clone());
        config.tracing.export_interval = Duration::from_millis(20);
        config.tracing.service_name = Some("bff-web-over-tls".into());
        // Plain protobuf, so the service name can be found in the bytes.
        config.tracing.compression = manifold::config::OtlpCompression::None;
    })
    .await;
    let token = stack.token("42", "web", &[]).await;
    assert_eq!(stack.get_as("/api/users/42", &token).await.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exported = received.lock().unwrap().iter().any(|(ct, body)| {
            ct == "application/x-protobuf" && body.windows(16).any(|w| w == b"bff-web-over-tls")
        });
        if exported {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no span reached the https collector"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
