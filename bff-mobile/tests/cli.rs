//! The bff-mobile binary as an operator runs it: `--check` (every mistake in one run, each at
//! its line and column), exit status 64 on a bad config, `--version`,
//! `--print-config-schema`, and a clean exit on SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tokio::time::Instant;

// Its `check_accepts_shipped_and_names_every_problem` fits the other BFFs' configs; this
// binary's `--check` tests are below.
#[allow(dead_code)]
#[path = "../../tests/support/check_cli.rs"]
mod check_cli;

const BIN: &str = env!("CARGO_BIN_EXE_bff-mobile");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/mobile.toml");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run bff-mobile")
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("manifold-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write temp config");
    path
}

fn bad_config() -> String {
    std::fs::read_to_string(SHIPPED)
        .unwrap()
        .replace("[server]\n", "[server]\nlisten_backlog = 5\n")
        .replace("timeout = \"400ms\"", "timeout = \"0s\"")
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = run(&["--check", "--config", SHIPPED]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
}

#[test]
fn a_bad_config_names_every_key_and_exits_64() {
    let path = temp_config("bad", &bad_config());
    for args in [vec!["--check", "--config"], vec!["--config"]] {
        let mut args = args;
        args.push(path.to_str().unwrap());
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains("server.listen_backlog: unknown key"),
            "{stderr}"
        );
        assert!(
            stderr.contains("upstreams.users.timeout: must be greater than 0"),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn check_lists_every_mistake_of_a_file_with_its_line_and_column() {
    check_cli::check_lists_every_mistake_with_its_place(BIN, "mobile", bff_mobile::SPEC.upstreams);
}

#[test]
fn version_and_config_schema() {
    check_cli::version_names_the_binary(BIN, "bff-mobile", env!("CARGO_PKG_VERSION"));
    check_cli::prints_the_checked_in_config_schema(
        BIN,
        concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/config.schema.json"),
    );
}

#[test]
fn a_missing_file_or_an_unknown_flag_exits_64() {
    assert_eq!(
        run(&["--config", "/nonexistent/mobile.toml"]).status.code(),
        Some(64)
    );
    assert_eq!(run(&["--frobnicate"]).status.code(), Some(64));
}

#[test]
fn tls_files_that_cannot_be_read_exit_64_naming_the_key() {
    for args in [vec!["--check"], vec![]] {
        let out = Command::new(BIN)
            .args(&args)
            .args(["--config", SHIPPED])
            .env("MANIFOLD_TLS__CERT", "/nonexistent/cert.pem")
            .env("MANIFOLD_TLS__KEY", "/nonexistent/key.pem")
            .env_remove("RUST_LOG")
            .output()
            .expect("run bff-mobile");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains("tls.cert: cannot read /nonexistent/cert.pem"),
            "{stderr}"
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn healthz(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Starts the binary with `env`, waits for `/healthz` (a probe), stops it with SIGTERM and
/// returns what it logged to stderr (a file: not a terminal).
fn run_until_sigterm(env: &[(&str, &str)]) -> String {
    run_until_sigterm_after(env, |_, _| {})
}

/// Same, calling `traffic` with the port and the process id once the server is up.
fn run_until_sigterm_after(env: &[(&str, &str)], traffic: impl FnOnce(u16, u32)) -> String {
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("bff-mobile-{port}.log"));
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Command::new(BIN)
        .args(["--config", SHIPPED])
        .env("MANIFOLD_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("MANIFOLD_ADMIN__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start bff-mobile");

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut up = false;
    while Instant::now() < deadline {
        if healthz(port).is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            up = true;
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("bff-mobile exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !up {
        let _ = child.kill();
        panic!("bff-mobile did not answer /healthz within 20 s");
    }
    traffic(port, child.id());

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bff-mobile still running 15 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&log_path).expect("the log");
    let _ = std::fs::remove_file(&log_path);
    text
}

/// Text to a file has no colour codes, and the health probe is not logged.
#[test]
fn sigterm_stops_the_server_cleanly() {
    let text = run_until_sigterm(&[]);
    assert!(text.contains("shutting down"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text}");
    assert!(!text.contains("/healthz"), "a probe was logged: {text}");
}

/// The names of a process's threads (`/proc/PID/task/*/comm`, at most 15 bytes each).
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// `server.runtime`: thread-per-core serves on `server.workers` threads of its own, each
/// with a listener on the port (every connection here is answered); work stealing (the
/// default) on tokio's multi-thread runtime instead.
#[test]
fn the_runtime_and_its_workers_come_from_the_config() {
    let count =
        |names: &[String], prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
    let per_core = [
        ("MANIFOLD_SERVER__RUNTIME", "thread-per-core"),
        ("MANIFOLD_SERVER__WORKERS", "3"),
    ];
    run_until_sigterm_after(&per_core, |port, pid| {
        let names = thread_names(pid);
        assert_eq!(count(&names, "manifold-worker"), 3, "{names:?}");
        for _ in 0..12 {
            let answer = healthz(port).unwrap_or_default();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
    });
    run_until_sigterm_after(&[("MANIFOLD_SERVER__WORKERS", "2")], |_, pid| {
        let names = thread_names(pid);
        assert_eq!(count(&names, "manifold-worker"), 0, "{names:?}");
        // Tokio names its blocking threads (name resolution) alike: at least the workers.
        assert!(count(&names, "tokio-rt-worker") >= 2, "{names:?}");
    });
}

/// `[log] format = "json"` (here from the environment): every line is a JSON object.
#[test]
fn json_logs_are_json_lines() {
    let text = run_until_sigterm(&[("MANIFOLD_LOG__FORMAT", "json")]);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("shutting down"))),
        "{text}"
    );
}

/// The standard `OTEL_*` variables alone turn on export: the endpoint (the SDK adds
/// `/v1/traces`) and the headers reach a collector, here a bare socket reading the request.
#[test]
fn otel_environment_variables_configure_span_export() {
    let collector = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let (got, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = collector.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = got.send(String::from_utf8_lossy(&head).into_owned());
    });
    run_until_sigterm_after(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=shop-42"),
        ],
        |port, _| {
            // Not a probe: a request that is traced.
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .write_all(b"GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            let head = heard
                .recv_timeout(Duration::from_secs(10))
                .expect("an export reached the collector");
            assert!(head.starts_with("POST /v1/traces HTTP/1.1"), "{head}");
            let lower = head.to_ascii_lowercase();
            assert!(lower.contains("x-tenant: shop-42"), "{head}");
            assert!(
                lower.contains("content-type: application/x-protobuf"),
                "{head}"
            );
        },
    );
}
