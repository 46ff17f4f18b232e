//! `cargo run --release -p demo`: the whole Manifold demo in one process — the nine sample
//! backend services and the demo identity provider on ports 9100-9109, and the three BFFs
//! (mobile 8081, web 8082, partner 8083) with their default configs (`config/*.toml` when
//! run from the repository, else the copies built into the binaries). It waits until all
//! are ready, prints the URLs, a fresh token and a curl per BFF, and stops everything
//! cleanly on Ctrl-C or SIGTERM. The GraphQL BFFs run in development mode (introspection,
//! suggestions, GraphiQL at `/ide`) whatever their config says: the shipped configs are for
//! production. `--tls` serves the BFFs over HTTPS (HTTP/2 by ALPN) with a
//! self-signed certificate made at start.

#![forbid(unsafe_code)]

mod tls;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;

use demo_services::{Backends, Service};
use manifold::config::{Config, GraphqlMode, LogFormat};
use manifold::{BffSpec, RunningBff};
use serde_json::{Value, json};

use crate::tls::DemoCertificate;

const BFFS: [&BffSpec; 3] = [&bff_mobile::SPEC, &bff_web::SPEC, &bff_partner::SPEC];
const DEMO_PARTNER_KEY: &str = "demo-partner-key";

const USAGE: &str = "usage: demo [--tls | --backends-only]\n\nStarts the sample backends (9100-9109) and bff-mobile (8081), bff-web (8082)\n\
    and bff-partner (8083); Ctrl-C stops everything. The GraphQL BFFs run in development mode\n\
    (introspection, suggestions, GraphiQL at /ide). Configs: config/*.toml when present,\n\
    MANIFOLD_* environment overrides apply to all three BFFs. RUST_LOG sets the log filter.\n\n  \
    --tls  serve the BFFs over HTTPS with a self-signed certificate for localhost and\n         \
    127.0.0.1, made at start (use curl -k, or --cacert with the printed file)\n  \
    --backends-only  only the sample backends, on every interface (0.0.0.0:9100-9109), for\n                   \
    docker-compose, where the BFFs run in their own containers";

fn main() -> ExitCode {
    let mut with_tls = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--backends-only" => return backends_only(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--tls" => with_tls = true,
            other => {
                eprintln!("unknown argument {other:?}\n\n{USAGE}");
                return ExitCode::from(manifold::bff::EXIT_CONFIG);
            }
        }
    }
    // Load every config before starting anything, so a bad one costs nothing.
    let mut configs = Vec::new();
    for spec in BFFS {
        match Config::load(
            None,
            Path::new(spec.default_config_path),
            spec.embedded_config,
            spec.upstreams,
        ) {
            Ok((mut config, _)) => {
                if spec.name != bff_partner::SPEC.name {
                    config.graphql.mode = GraphqlMode::Development;
                }
                configs.push(config);
            }
            Err(errors) => {
                eprintln!("{errors}");
                return ExitCode::from(manifold::bff::EXIT_CONFIG);
            }
        }
    }
    let certificate = match with_tls.then(DemoCertificate::generate).transpose() {
        Ok(certificate) => certificate,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(certificate) = &certificate {
        for config in &mut configs {
            config.tls = Some(certificate.config());
        }
    }
    // One process, one log stream: JSON when any BFF's `[log] format` asks for it (as
    // `MANIFOLD_LOG__FORMAT=json` does for all three).
    let format = if configs.iter().any(|c| c.log.format == LogFormat::Json) {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    manifold::bff::init_logging_as(format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(configs, certificate.as_ref()))
}

/// `--backends-only`: the ten sample services on 0.0.0.0:9100-9109 until SIGTERM/Ctrl-C.
fn backends_only() -> ExitCode {
    manifold::bff::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let backends = match Backends::start(IpAddr::V4(Ipv4Addr::UNSPECIFIED), Some(9100)).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("cannot start the sample backends on ports 9100-9109: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("sample backends listening on 0.0.0.0:9100-9109");
        manifold::server::termination_signal().await;
        drop(backends);
        ExitCode::SUCCESS
    })
}

async fn run(configs: Vec<Config>, certificate: Option<&DemoCertificate>) -> ExitCode {
    let started = Instant::now();
    let backends = match Backends::start(IpAddr::V4(Ipv4Addr::LOCALHOST), Some(9100)).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "cannot start the sample backends on ports 9100-9109: {e}\n(is the demo already running?)"
            );
            return ExitCode::FAILURE;
        }
    };
    let mut bffs: Vec<(&BffSpec, RunningBff)> = Vec::new();
    for (spec, config) in BFFS.into_iter().zip(configs) {
        match manifold::bff::start(spec, config).await {
            Ok(bff) => bffs.push((spec, bff)),
            Err(e) => {
                eprintln!("cannot start {}: {e}", spec.name);
                stop(bffs, backends).await;
                return ExitCode::FAILURE;
            }
        }
    }
    for (spec, bff) in &bffs {
        if !bff.ready(Duration::from_secs(15)).await {
            eprintln!(
                "{} did not become ready within 15 s (is the IdP reachable?)",
                spec.name
            );
            stop(bffs, backends).await;
            return ExitCode::FAILURE;
        }
    }
    let ready_in = started.elapsed();

    let idp = backends.url(Service::Auth);
    let mobile_token = mint(&idp, "mobile").await;
    let web_token = mint(&idp, "web").await;
    print_welcome(
        &bffs,
        &backends,
        ready_in,
        &mobile_token,
        &web_token,
        certificate,
    );

    manifold::server::termination_signal().await;
    println!("\nstopping...");
    stop(bffs, backends).await;
    ExitCode::SUCCESS
}

async fn stop(bffs: Vec<(&BffSpec, RunningBff)>, backends: Backends) {
    for (spec, bff) in bffs {
        if let Err(e) = bff.shutdown().await {
            eprintln!("{}: {e}", spec.name);
        }
    }
    backends.shutdown();
}

/// A token for user 42, or a placeholder explaining why there is none.
async fn mint(idp: &str, audience: &str) -> String {
    let body = json!({ "sub": "42", "aud": audience, "scopes": ["orders:read", "orders:write", "cart:write"], "ttl_s": 3600 });
    let token = async {
        reqwest::Client::new()
            .post(format!("{idp}/token"))
            .json(&body)
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()?
            .get("access_token")?
            .as_str()
            .map(str::to_owned)
    };
    token
        .await
        .unwrap_or_else(|| "<the IdP did not answer>".into())
}

fn print_welcome(
    bffs: &[(&BffSpec, RunningBff)],
    backends: &Backends,
    ready_in: Duration,
    mobile_token: &str,
    web_token: &str,
    certificate: Option<&DemoCertificate>,
) {
    // A self-signed certificate is trusted by no client: curl needs -k (or --cacert).
    let curl = if certificate.is_some() {
        "curl -sk"
    } else {
        "curl -s"
    };
    let url = |name: &str| {
        bffs.iter()
            .find(|(s, _)| s.name == name)
            .map(|(_, b)| b.url())
            .unwrap_or_default()
    };
    println!(
        "\nManifold demo: everything ready in {} ms\n",
        ready_in.as_millis()
    );
    println!("  BFFs");
    for (spec, bff) in bffs {
        match bff.admin_url() {
            Some(admin) => println!(
                "    {:<12} {}   dashboard and /metrics: {admin}/",
                spec.name,
                bff.url()
            ),
            None => println!("    {:<12} {}", spec.name, bff.url()),
        }
    }
    if let Some(certificate) = certificate {
        println!(
            "\n  TLS: HTTP/1.1 and HTTP/2, self-signed certificate for localhost and 127.0.0.1\n    \
             {}\n    (curl -k, or curl --cacert {})",
            certificate.dir().display(),
            certificate.cert_path().display()
        );
    }
    println!(
        "\n  GraphQL in development mode (introspection, suggestions; never in production):\n    \
         GraphiQL IDE  {}/ide  {}/ide  (put the token in its Headers tab)",
        url("bff-mobile"),
        url("bff-web")
    );
    println!("\n  Sample backends");
    for service in Service::ALL {
        println!("    {:<16} {}", service.name(), backends.url(service));
    }
    println!("\n  A mobile token for user 42 (1 h):\n    export TOKEN={mobile_token}\n");
    println!("  Mobile home screen in one request:");
    println!(
        "    {curl} {}/graphql -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n      \
         -d '{{\"query\":\"{{ home {{ greeting me {{ name }} cart {{ itemCount }} notifications {{ unreadCount }} recentOrders(first: 3) {{ id status eta }} recommendations(first: 3) {{ title price {{ amount currency }} }} banners {{ title }} }} }}\"}}'\n",
        url("bff-mobile")
    );
    println!("  Web: the viewer's orders (GraphQL), and a REST pass-through route:");
    println!("    export WEB_TOKEN={web_token}");
    println!(
        "    {curl} {}/graphql -H \"authorization: Bearer $WEB_TOKEN\" -H 'content-type: application/json' \\\n      \
         -d '{{\"query\":\"{{ viewer {{ profile {{ name }} orders(first: 2) {{ edges {{ node {{ id status shipment {{ eta }} }} }} }} }} }}\"}}'",
        url("bff-web")
    );
    println!(
        "    {curl} {}/api/users/42 -H \"authorization: Bearer $WEB_TOKEN\"\n",
        url("bff-web")
    );
    println!("  Partner REST API (API key), and its OpenAPI document:");
    println!(
        "    {curl} {}/v1/orders/o-42-1 -H 'x-api-key: {DEMO_PARTNER_KEY}'",
        url("bff-partner")
    );
    println!("    {curl} {}/openapi.json\n", url("bff-partner"));
    println!(
        "  New tokens: curl -s {}/token -d '{{\"sub\":\"7\",\"aud\":\"mobile\"}}' -H 'content-type: application/json'",
        backends.url(Service::Auth)
    );
    println!("\nCtrl-C stops everything.");
}
