//! The bff-partner binary takes `--config PATH` and `--check`, and refuses a bad config with
//! every problem named and exit status 64. (Serving and SIGTERM are the shared core `main`,
//! exercised through bff-mobile's binary.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_bff-partner");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/partner.toml");

#[test]
fn check_accepts_the_shipped_config_and_names_every_problem_of_a_bad_one() {
    let ok = Command::new(BIN)
        .args(["--check", "--config", SHIPPED])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok"));

    let bad = std::fs::read_to_string(SHIPPED)
        .unwrap()
        .replace("[server]\n", "[server]\nworkers = 4\n")
        .replace("request_timeout = \"3s\"", "request_timeout = \"0s\"");
    let path = std::env::temp_dir().join(format!("manifold-partner-{}.toml", std::process::id()));
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(BIN)
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
