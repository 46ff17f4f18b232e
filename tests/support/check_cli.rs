//! The `--check` test every BFF binary shares, included by path from each BFF's own tests
//! (Cargo gives a binary's path, `CARGO_BIN_EXE_*`, only to its own package's tests).

use std::process::Command;

/// `bin --check` accepts the shipped config `shipped` and refuses a broken copy of it with
/// every problem named and exit status 64.
pub fn check_accepts_shipped_and_names_every_problem(bin: &str, shipped: &str, name: &str) {
    let ok = Command::new(bin)
        .args(["--check", "--config", shipped])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok"));

    let bad = std::fs::read_to_string(shipped)
        .unwrap()
        .replace("[server]\n", "[server]\nworkers = 4\n")
        .replace("request_timeout = \"3s\"", "request_timeout = \"0s\"");
    let path = std::env::temp_dir().join(format!("manifold-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(bin)
        .args(["--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("server.workers: unknown key"), "{stderr}");
    assert!(
        stderr.contains("server.request_timeout: must be greater than 0"),
        "{stderr}"
    );
}
