//! Partners identified by their client certificate at bff-partner's TLS listener: a mapped
//! certificate is the partner (its client id reaches the backends and the rate limiter), a
//! certificate from an unknown CA is refused at the handshake, no certificate is refused
//! when required and falls back to an API key when optional, and a replaced client CA file
//! is picked up while running.

use std::net::SocketAddr;
use std::time::Duration;

use demo_services::Service;
use http::StatusCode;
use manifold::config::{ClientAuth, ClientCertConfig};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::support::{CertDir, Client, H2, HTTP11, ServerCert, TestCa, connect};
use crate::harness::Stack;

/// The plain text of the API key in config/partner.toml.
const DEMO_KEY: &str = "demo-partner-key";
const PARTNER_CN: &str = "acme-partner";

/// bff-partner over TLS with `server` as its certificate, asking for client certificates
/// issued by the CA in `client_ca_pem` (`required` or `optional`), `acme-partner` mapped to
/// the client `acme`.
async fn partner_stack(
    dir: &CertDir,
    server: &ServerCert,
    client_ca_pem: &str,
    auth: ClientAuth,
) -> Stack {
    dir.install(server);
    let mut tls = dir.config();
    tls.client_ca = Some(dir.file("client-ca.pem", client_ca_pem));
    tls.client_auth = Some(auth);
    Stack::start_with(&bff_partner::SPEC, |config| {
        config.tls = Some(tls);
        config.auth.client_certs.insert(
            "acme".into(),
            ClientCertConfig {
                common_name: Some(PARTNER_CN.into()),
                dns_name: None,
                uri: None,
                scopes: vec!["products:read".into()],
                tier: Some("standard".into()),
                enabled: true,
            },
        );
    })
    .await
}

/// `GET path` over a new connection made with `connector`, with `key` as the bearer: the
/// status and body, or why there was none (a refused handshake surfaces at the handshake or,
/// under TLS 1.3, at the first read).
async fn try_get(
    connector: &TlsConnector,
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
) -> Result<(StatusCode, String), String> {
    let stream = connect(connector, addr).await.map_err(|e| e.to_string())?;
    let mut client = Client::try_over(stream).await?;
    let (status, _, body) = client.try_get(addr, path, key).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn a_partner_is_identified_by_its_certificate_and_strangers_are_refused() {
    let (server_ca, partner_ca, stranger_ca) = (TestCa::new(), TestCa::new(), TestCa::new());
    let dir = CertDir::new();
    let stack = partner_stack(
        &dir,
        &server_ca.issue(),
        &partner_ca.pem,
        ClientAuth::Required,
    )
    .await;
    let addr = stack.bff.addr();
    stack.reset_stats().await;

    // The mapped certificate, no key: the partner `acme`, as the backend sees it.
    let partner = server_ca.client_with_cert(&[H2, HTTP11], &partner_ca.issue_client(PARTNER_CN));
    let (status, body) = try_get(&partner, addr, "/v1/products/p1", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = &stack.stats(Service::Catalog).await["last_request"]["headers"];
    assert_eq!(seen["x-api-client"], "acme", "{seen}");

    // A certificate of the right CA that no entry maps, and no key: 401.
    let unmapped = server_ca.client_with_cert(&[H2], &partner_ca.issue_client("someone-else"));
    let (status, body) = try_get(&unmapped, addr, "/v1/products/p1", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A certificate from a CA the listener does not trust: refused at the handshake.
    let stranger = server_ca.client_with_cert(&[H2], &stranger_ca.issue_client(PARTNER_CN));
    let refused = try_get(&stranger, addr, "/v1/products/p1", None).await;
    assert!(refused.is_err(), "{refused:?}");

    // No certificate at all, even with a valid key: required means refused.
    let anonymous = server_ca.client(&[H2], rustls::DEFAULT_VERSIONS);
    let refused = try_get(&anonymous, addr, "/v1/products/p1", Some(DEMO_KEY)).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn optional_client_certificates_fall_back_to_api_keys() {
    let (server_ca, partner_ca, stranger_ca) = (TestCa::new(), TestCa::new(), TestCa::new());
    let dir = CertDir::new();
    let stack = partner_stack(
        &dir,
        &server_ca.issue(),
        &partner_ca.pem,
        ClientAuth::Optional,
    )
    .await;
    let addr = stack.bff.addr();
    let anonymous = server_ca.client(&[H2, HTTP11], rustls::DEFAULT_VERSIONS);

    let (status, body) = try_get(&anonymous, addr, "/v1/products/p1", Some(DEMO_KEY))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = &stack.stats(Service::Catalog).await["last_request"]["headers"];
    assert_eq!(seen["x-api-client"], "demo", "{seen}");
    let (status, _) = try_get(&anonymous, addr, "/v1/products/p1", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Another product: p1 is in the entity cache now, and the backend must see this call.
    let partner = server_ca.client_with_cert(&[HTTP11], &partner_ca.issue_client(PARTNER_CN));
    let (status, body) = try_get(&partner, addr, "/v1/products/p2", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = &stack.stats(Service::Catalog).await["last_request"]["headers"];
    assert_eq!(seen["x-api-client"], "acme", "{seen}");

    // Optional is not "anything goes": a foreign certificate still fails the handshake.
    let stranger = server_ca.client_with_cert(&[H2], &stranger_ca.issue_client(PARTNER_CN));
    assert!(
        try_get(&stranger, addr, "/v1/products/p1", None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_replaced_client_ca_is_trusted_after_the_reload() {
    let (server_ca, old_ca, new_ca) = (TestCa::new(), TestCa::new(), TestCa::new());
    let dir = CertDir::new();
    let stack = partner_stack(&dir, &server_ca.issue(), &old_ca.pem, ClientAuth::Required).await;
    let addr = stack.bff.addr();
    let renewed = server_ca.client_with_cert(&[H2], &new_ca.issue_client(PARTNER_CN));
    let refused = try_get(&renewed, addr, "/v1/products/p1", None).await;
    assert!(refused.is_err(), "{refused:?}");

    dir.file("client-ca.pem", &new_ca.pem);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_get(&renewed, addr, "/v1/products/p1", None).await {
            Ok((status, body)) => {
                assert_eq!(status, StatusCode::OK, "{body}");
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "the new client CA was not trusted within 10 s: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The old CA is no longer trusted.
    let old = server_ca.client_with_cert(&[H2], &old_ca.issue_client(PARTNER_CN));
    assert!(try_get(&old, addr, "/v1/products/p1", None).await.is_err());
}
