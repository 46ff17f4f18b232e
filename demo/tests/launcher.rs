//! The demo as a newcomer runs it: the `demo` binary starts everything on the documented
//! ports, prints working tokens and URLs, answers the printed queries, and stops cleanly on
//! Ctrl-C (SIGINT). It needs ports 8081-8083, 9081-9083 and 9100-9109: when something else holds them
//! (a demo you are running yourself) the test says so and skips, except under CI.
//! `demo --tls` serves the same over HTTPS with the certificate whose file it prints;
//! `demo --backends-only` starts only the sample backends, on every interface.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tokio::time::Instant;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORTS: [u16; 16] = [
    8081, 8082, 8083, 9081, 9082, 9083, 9100, 9101, 9102, 9103, 9104, 9105, 9106, 9107, 9108, 9109,
];

fn ports_free() -> Result<(), u16> {
    for port in PORTS {
        TcpListener::bind(("127.0.0.1", port)).map_err(|_| port)?;
    }
    Ok(())
}

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The two tests need the same fixed ports: one at a time.
static PORTS_HELD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts `demo args` and reads its welcome text up to its last line (or skips: `None`).
fn start_demo(args: &[&str]) -> Option<(Demo, Vec<String>)> {
    start_demo_until(args, "Ctrl-C stops everything")
}

/// `start_demo`, reading up to the line that contains `last`.
fn start_demo_until(args: &[&str], last: &str) -> Option<(Demo, Vec<String>)> {
    start_demo_logging(args, last, &[], Stdio::null())
}

/// `start_demo_until` with extra environment, its log (stderr) going to `log`.
fn start_demo_logging(
    args: &[&str],
    last: &str,
    env: &[(&str, &str)],
    log: Stdio,
) -> Option<(Demo, Vec<String>)> {
    if let Err(port) = ports_free() {
        assert!(
            std::env::var_os("CI").is_none(),
            "port {port} is taken under CI"
        );
        println!("skipped: port {port} is in use (is a demo running?)");
        return None;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().expect("stdout");
    let demo = Demo(child);

    // Read the welcome text until its last line, with a deadline.
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut welcome = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines_rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no welcome within 60 s; got: {welcome:#?}"));
        let done = line.contains(last);
        welcome.push(line);
        if done {
            break;
        }
    }
    Some((demo, welcome))
}

/// Ctrl-C: everything stops, with status 0, and the ports are free again.
fn interrupt(mut demo: Demo) {
    let pid = demo.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            assert!(status.success(), "demo exited with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "demo still running 15 s after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        ports_free().is_ok(),
        "a port is still held after the demo stopped"
    );
}

#[tokio::test]
async fn backends_only_serves_the_ten_services_on_every_interface_and_no_bff() {
    let _ports = PORTS_HELD.lock().await;
    let Some((demo, _)) = start_demo_until(&["--backends-only"], "sample backends listening")
    else {
        return;
    };
    let http = reqwest::Client::new();
    // 127.0.0.2 is loopback too, but only a socket bound to every interface (0.0.0.0)
    // accepts there: one bound to 127.0.0.1 would refuse it.
    for port in 9100..=9109 {
        for host in ["127.0.0.1", "127.0.0.2"] {
            let status = http
                .get(format!("http://{host}:{port}/_stats"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{host}:{port}: {e}"))
                .status();
            assert_eq!(status, 200, "{host}:{port}/_stats");
        }
    }
    for port in [8081, 8082, 8083, 9081, 9082, 9083] {
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is held: a BFF started"
        );
    }
    interrupt(demo);
}

#[tokio::test]
async fn the_demo_starts_answers_the_printed_queries_and_stops_on_ctrl_c() {
    let _ports = PORTS_HELD.lock().await;
    let Some((demo, welcome)) = start_demo(&[]) else {
        return;
    };
    let token_after = |prefix: &str| {
        welcome
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in {welcome:#?}"))
            .to_owned()
    };
    let mobile_token = token_after("export TOKEN=");
    let web_token = token_after("export WEB_TOKEN=");
    let http = reqwest::Client::new();

    let home: Value = http
        .post("http://127.0.0.1:8081/graphql")
        .bearer_auth(&mobile_token)
        .json(&json!({ "query": "{ home { greeting me { id } recentOrders(first: 3) { eta } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(home["data"]["home"]["me"]["id"], "42", "{home}");

    let viewer: Value = http
        .post("http://127.0.0.1:8082/graphql")
        .bearer_auth(&web_token)
        .json(&json!({ "query": "{ viewer { profile { name } orders(first: 2) { edges { node { id status shipment { eta } } } } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(viewer.get("errors").is_none(), "{viewer}");
    assert_eq!(
        viewer["data"]["viewer"]["orders"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let proxied = http
        .get("http://127.0.0.1:8082/api/users/42")
        .bearer_auth(&web_token)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);

    let order = http
        .get("http://127.0.0.1:8083/v1/orders/o-42-1")
        .header("x-api-key", "demo-partner-key")
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), 200);
    let openapi: Value = http
        .get("http://127.0.0.1:8083/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openapi["openapi"], "3.1.0");

    interrupt(demo);
}

#[tokio::test]
async fn with_tls_the_bffs_serve_https_and_http2_with_the_printed_certificate() {
    let _ports = PORTS_HELD.lock().await;
    let Some((demo, welcome)) = start_demo(&["--tls"]) else {
        return;
    };
    let shown = welcome.join("\n");
    for port in [8081, 8082, 8083] {
        assert!(
            shown.contains(&format!("https://127.0.0.1:{port}")),
            "{shown}"
        );
    }
    assert!(
        shown.contains("curl -sk https://127.0.0.1:8081/graphql"),
        "{shown}"
    );
    let cert_file = welcome
        .iter()
        .find_map(|l| l.trim().strip_prefix("(curl -k, or curl --cacert "))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no certificate file in {shown}"))
        .to_owned();

    // Trusting only the printed certificate, each BFF completes a handshake for `localhost`
    // and picks HTTP/2 by ALPN; an HTTP/1.1-only client gets a working HTTP/1.1.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert_file).expect("the printed certificate"))
        .unwrap();
    let connector = |alpn: &[&[u8]]| {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    };
    let localhost = ServerName::try_from("localhost").unwrap();
    for port in [8081, 8082, 8083] {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let tls = connector(&[b"h2", b"http/1.1"])
            .connect(localhost.clone(), tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS handshake with port {port}: {e}"));
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    }
    let tcp = tokio::net::TcpStream::connect("127.0.0.1:8083")
        .await
        .unwrap();
    let mut tls = connector(&[b"http/1.1"])
        .connect(localhost, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /openapi.json HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"openapi\""), "{response}");

    interrupt(demo);
    assert!(
        !std::path::Path::new(&cert_file).exists(),
        "the certificate directory outlived the demo"
    );
}

/// `MANIFOLD_LOG__FORMAT=json`: the demo's whole log, its three BFFs' access lines included,
/// is JSON lines, with no colour codes.
#[tokio::test]
async fn the_demo_logs_json_when_asked() {
    let _ports = PORTS_HELD.lock().await;
    let path = std::env::temp_dir().join(format!("demo-json-{}.log", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let Some((demo, _)) = start_demo_logging(
        &[],
        "Ctrl-C stops everything",
        &[("MANIFOLD_LOG__FORMAT", "json")],
        Stdio::from(file),
    ) else {
        return;
    };
    let status = reqwest::get("http://127.0.0.1:8083/openapi.json")
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    interrupt(demo);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!text.contains('\u{1b}'), "colour codes: {text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["target"] == "manifold::access" && l["route"] == "/openapi.json"),
        "{text}"
    );
}
