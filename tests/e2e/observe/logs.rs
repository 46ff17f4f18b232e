//! The access log (one JSON line per request with the fields an operator needs), and the
//! promise it shares with span export (`otlp`): no token, API key or cookie ever appears.
//! Logs are captured by a process-wide JSON subscriber (a thread-scoped one misses events:
//! tracing caches callsite interest across threads), so that test runs in a child process of
//! its own — this test binary run again for just that test — and no other test pays for it.

use std::sync::{Arc, Mutex, OnceLock};

use demo_services::Service;
use serde_json::{Value, json};

use super::{CLIENT_SPAN, CLIENT_TRACE};
use crate::harness::Stack;
use crate::mobile::HOME;

#[derive(Clone)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const COOKIE_SECRET: &str = "cookie-secret-5f1e";
const API_KEY_SECRET: &str = "apikey-secret-9c2d";

/// A home request carrying every kind of secret a client might send.
pub(super) async fn request_with_secrets(stack: &Stack, token: &str) -> reqwest::Response {
    stack
        .http
        .post(stack.url("/graphql"))
        .bearer_auth(token)
        .header("cookie", format!("session={COOKIE_SECRET}"))
        .header("x-api-key", API_KEY_SECRET)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .header("user-agent", USER_AGENT)
        .json(&json!({ "query": HOME }))
        .send()
        .await
        .unwrap()
}

pub(super) fn assert_no_secrets(text: &str, token: &str) {
    assert!(!text.contains(token), "the bearer token was written out");
    // A JWT's parts are secrets too (the signature especially).
    for part in token.split('.') {
        assert!(!text.contains(part), "part of the token was written out");
    }
    assert!(!text.contains(COOKIE_SECRET), "the cookie was written out");
    assert!(
        !text.contains(API_KEY_SECRET),
        "the API key was written out"
    );
}

const USER_AGENT: &str = "ShopApp/5.2 (iOS 18.1)";

const CHILD_ENV: &str = "MANIFOLD_E2E_LOG_CAPTURE_CHILD";

#[test]
fn one_json_access_line_per_request_and_no_secret_in_any_log_line() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "observe::logs::access_log_in_a_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run:\n{stdout}"
    );
}

/// Everything `manifold` logs in this process from the first call on, as JSON lines.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static CAPTURE: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = Buffer(buffer.clone());
            let subscriber = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_env_filter("manifold=debug")
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("the only global subscriber of this child process");
            buffer
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by one_json_access_line_per_request_and_no_secret_in_any_log_line"]
async fn access_log_in_a_child_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let buffer = captured_logs();

    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    stack
        .chaos(Service::Users, json!({ "latency_ms": 150 }))
        .await;
    stack
        .chaos(Service::Recommendations, json!({ "error_rate": 1.0 }))
        .await;
    let response = request_with_secrets(&stack, &token).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let answer = response.bytes().await.unwrap();
    // Probes are not logged by default; with `[log] probes` they are.
    let probe = stack.http.get(stack.url("/readyz")).send().await.unwrap();
    assert_eq!(probe.status(), 200);
    let probing = Stack::start_with(&bff_mobile::SPEC, |config| config.log.probes = true).await;
    let probe = probing
        .http
        .get(probing.url("/readyz"))
        .send()
        .await
        .unwrap();
    let probe_id = probe.headers()["x-request-id"].to_str().unwrap().to_owned();

    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "manifold::access" && l["request_id"] == request_id.as_str())
        .collect();
    let all_access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "manifold::access")
        .collect();
    assert_eq!(
        access.len(),
        1,
        "one access line per request: {all_access:?}"
    );
    let line = access[0];
    println!("access line: {line}");
    assert_eq!(line["route"], "/graphql");
    assert_eq!(line["operation"], "Home");
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "POST");
    assert!(line["latency_ms"].as_f64().unwrap() >= 150.0);
    assert!(line["backend_calls"].as_u64().unwrap() >= 7, "{line}");
    assert_eq!(line["slowest_backend"], "users", "{line}");
    assert!(line["slowest_backend_ms"].as_f64().unwrap() >= 150.0);
    assert!(
        line["partial"]
            .as_str()
            .unwrap()
            .contains("recommendations:UPSTREAM_UNAVAILABLE"),
        "{line}"
    );
    assert_eq!(line["limit"], "allowed");
    assert_eq!(line["admission"], "admitted");
    // A fresh stack: the catalog and promotions lookups of this first query missed.
    assert_eq!(line["cache"], "miss");
    assert_eq!(line["trace_id"], CLIENT_TRACE);
    // Who and how much: the client's address, the user (never the token), what it sent.
    assert_eq!(line["client_ip"], "127.0.0.1", "{line}");
    assert_eq!(line["caller"], "user:42", "{line}");
    assert_eq!(line["user_agent"], USER_AGENT, "{line}");
    let sent = json!({ "query": HOME }).to_string().len();
    assert_eq!(line["bytes_in"], sent, "{line}");
    assert_eq!(line["bytes_out"], answer.len(), "{line}");
    let probes: Vec<&&Value> = all_access
        .iter()
        .filter(|l| l["route"] == "/readyz")
        .collect();
    assert_eq!(
        probes.len(),
        1,
        "only the asked-for probe is logged: {probes:?}"
    );
    assert_eq!(probes[0]["request_id"], probe_id.as_str());
    assert_no_secrets(&text, &token);
}
