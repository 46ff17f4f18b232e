//! The gateway's HTTP clients under TLS: the connector every outbound client uses for
//! `https://` (hyper-rustls over hyper-util's `HttpConnector`, plain `http://` passed
//! through), and the small client of the gateway's own calls off the request path — fetching
//! a JWKS, posting spans to an OTLP collector. Backend calls have their own pooled client
//! (`upstream::client`), built on the same connector.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::config::{ClientTlsConfig, ClientTlsError};

/// Which HTTP versions a connector offers by ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// `h2` then `http/1.1`: HTTP/2 where the server offers it (backends).
    Http2AndHttp1,
    /// `http/1.1` only (one request now and then: the JWKS, the collector).
    Http1,
}

/// A connector speaking TLS to `https://` URIs with `tls` and plain TCP to `http://` ones,
/// connecting within `connect_timeout`. The `ClientConfig` (and so its session cache, which
/// resumes TLS sessions) is shared by every connection the connector makes.
pub fn https_connector(
    tls: ClientConfig,
    server_name: Option<ServerName<'static>>,
    connect_timeout: Duration,
    alpn: Alpn,
) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    // hyper-rustls refuses `https://` through an HttpConnector that enforces `http://`.
    http.enforce_http(false);
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match server_name {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => builder,
    };
    match alpn {
        Alpn::Http2AndHttp1 => builder.enable_all_versions().wrap_connector(http),
        Alpn::Http1 => builder.enable_http1().wrap_connector(http),
    }
}

/// A client for the gateway's own occasional calls (http or https), each bounded by a
/// timeout. Redirects are not followed.
#[derive(Clone, Debug)]
pub struct OutboundClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl OutboundClient {
    /// A client trusting `tls` for `https://` URLs.
    pub fn new(
        tls: &ClientTlsConfig,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, ClientTlsError> {
        let connector = https_connector(
            tls.client_config()?,
            tls.server_name()?,
            connect_timeout,
            Alpn::Http1,
        );
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(2)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self { client, timeout })
    }

    /// `GET url`: the body of a 2xx answer, refused past `max_bytes`.
    pub async fn get(&self, url: &str, max_bytes: usize) -> Result<Bytes, String> {
        let request = Request::get(url)
            .body(Full::default())
            .map_err(|e| format!("bad URL: {e}"))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| chain(&e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("answered {status}"));
            }
            Limited::new(response.into_body(), max_bytes)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(|e| format!("reading the body failed: {e}"))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }

    /// Sends `request`; the whole answer, its body refused past `max_bytes`.
    pub async fn send(
        &self,
        request: Request<Bytes>,
        max_bytes: usize,
    ) -> Result<http::Response<Bytes>, String> {
        let request = request.map(Full::new);
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| chain(&e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max_bytes)
                .collect()
                .await
                .map_err(|e| format!("reading the body failed: {e}"))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }

    /// `POST url` with `body`; the answer's status (its body is read and dropped).
    pub async fn post(
        &self,
        url: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<StatusCode, String> {
        let request = Request::post(url)
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("bad URL: {e}"))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| chain(&e))?;
            let status = response.status();
            // Read to the end so the connection goes back to the pool.
            let _ = response.into_body().collect().await;
            Ok(status)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}

/// `e` and its sources, so logs show the root cause (a refused certificate, ...).
fn chain(e: &dyn std::error::Error) -> String {
    let mut shown = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        shown.push_str(": ");
        shown.push_str(&s.to_string());
        source = s.source();
    }
    shown
}
