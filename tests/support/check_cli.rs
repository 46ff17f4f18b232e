//! The command-line tests every BFF binary shares (`--check`, `--version`,
//! `--print-config-schema`), included by path from each BFF's own tests (Cargo gives a
//! binary's path, `CARGO_BIN_EXE_*`, only to its own package's tests).

use std::process::Command;

/// `bin --check` on a config file holding `text` (named after `name`, removed after): the
/// exit status, what it wrote to stderr, and the file's path (problems are placed by it).
fn check(bin: &str, name: &str, text: &str) -> (Option<i32>, String, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("manifold-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin)
        .args(["--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr, path)
}

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
        .replace("[server]\n", "[server]\nthreads = 4\n")
        .replace("request_timeout = \"3s\"", "request_timeout = \"0s\"");
    let (code, stderr, _) = check(bin, &format!("{name}-broken"), &bad);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("server.threads: unknown key"), "{stderr}");
    assert!(
        stderr.contains("server.request_timeout: must be greater than 0"),
        "{stderr}"
    );
}

/// Seven mistakes of both kinds in three sections — an unknown key, a duration and a size
/// that do not parse, values of the wrong type in `[limits]` and `[upstreams.*]`, a URL that
/// is not http(s) and a retry count out of range — and `bin --check` lists all seven in one
/// run, in the order of the file, each at its exact line and column, then exits 64.
/// `upstreams` are the BFF's required upstreams, added after the mistakes so that they do
/// not count among them.
pub fn check_lists_every_mistake_with_its_place(bin: &str, name: &str, upstreams: &[&str]) {
    let mut text = String::from(
        "[server]\n\
         listen = \"127.0.0.1:0\"\n\
         colour = \"red\"\n\
         request_timeout = 5\n\
         max_request_body = \"64 parsecs\"\n\
         \n\
         [limits]\n\
         max_headers = \"many\"\n\
         \n\
         [upstreams.bogus]\n\
         url = \"ftp://bogus.internal\"\n\
         pool_max_idle = true\n\
         retry = { attempts = 0 }\n",
    );
    for upstream in upstreams {
        text.push_str(&format!(
            "[upstreams.{upstream}]\nurl = \"http://127.0.0.1:1\"\n"
        ));
    }
    let (code, stderr, path) = check(bin, &format!("{name}-mistakes"), &text);
    assert_eq!(code, Some(64), "{stderr}");
    let file = path.display();
    let expected = [
        format!("{file}:3:1: server.colour: unknown key"),
        format!(
            "{file}:4:19: server.request_timeout: expected a duration like \"800ms\", \"5s\" or \"1m 30s\", got integer `5`"
        ),
        format!(
            "{file}:5:20: server.max_request_body: unknown size unit \"parsecs\" in \"64 parsecs\""
        ),
        format!("{file}:8:15: limits.max_headers: expected usize, got string \"many\""),
        format!(
            "{file}:11:7: upstreams.bogus.url: \"ftp://bogus.internal\" must be an http:// or https:// URL"
        ),
        format!("{file}:12:17: upstreams.bogus.pool_max_idle: expected usize, got boolean `true`"),
        format!("{file}:13:22: upstreams.bogus.retry.attempts: must be 1 to 10"),
        format!("{file}: invalid configuration, 7 problems"),
    ];
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected, "{stderr}");
}

/// `bin --version` prints the binary's name, version (`version`, its package's) and the
/// commit it was built from (this checkout's, as `git` says), and exits 0, whatever else the
/// command line says.
pub fn version_names_the_binary(bin: &str, name: &str, version: &str) {
    for args in [
        vec!["--version"],
        vec!["--config", "/nonexistent.toml", "-V"],
    ] {
        let out = Command::new(bin).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        let commit = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or_else(
                || "unknown".to_owned(),
                |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{name} {version} (commit {commit})\n"),
            "{args:?}"
        );
    }
}

/// `bin --print-config-schema` prints the config's JSON Schema, the one checked in as
/// `schemas/config.schema.json`, and exits 0 without reading any config.
pub fn prints_the_checked_in_config_schema(bin: &str, checked_in: &str) {
    let out = Command::new(bin)
        .args(["--print-config-schema", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(checked_in).unwrap()).unwrap();
    assert_eq!(printed, file);
    assert_eq!(
        printed["$schema"], "http://json-schema.org/draft-07/schema#",
        "{printed}"
    );
}
