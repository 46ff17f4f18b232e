//! Real processes for the cluster tests: bff-mobile instances (the built binary, its shipped
//! config with loopback addresses substituted) and HAProxy (deploy/haproxy.cfg with the bind
//! and server addresses substituted). Every process is stopped by its PID when dropped.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use demo_services::{Backends, Service};

const SHIPPED_CONFIG: &str = include_str!("../../../config/mobile.toml");
const SHIPPED_HAPROXY: &str = include_str!("../../../deploy/haproxy.cfg");

/// A private scratch directory for one test (configs, logs), removed when the test passes
/// and kept for a look when it fails.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("manifold-cluster-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A port free right now on loopback, below the kernel's ephemeral range (32768 and up on
/// Linux): a port the kernel handed out could be taken by a parallel test's outgoing
/// connection before the instance binds it, or between a restart's stop and start (a
/// restarted instance must come back on the same one). Walks 20000-31999 from a start of
/// this process's own, so parallel test processes rarely probe the same ports.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..12_000 {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        // 613 is prime to 12,000: the walk visits every port of the range once.
        let port = 20_000 + (start.wrapping_add(step.wrapping_mul(613)) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-31999");
}

/// The shipped mobile config pointed at `backends`, listening on `port`.
pub fn mobile_config(backends: &Backends, port: u16) -> String {
    let mut text = SHIPPED_CONFIG.replace(
        "listen = \"127.0.0.1:8081\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    assert_ne!(
        text, SHIPPED_CONFIG,
        "config/mobile.toml no longer listens on 8081"
    );
    for service in Service::ALL {
        let shipped = format!("http://127.0.0.1:{}", service.default_port());
        text = text.replace(&shipped, &backends.url(service));
    }
    text
}

/// Writes `text` to `path` the way an operator's tool would: a new file renamed over it.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, path).expect("rename config");
}

/// One bff-mobile process.
pub struct Instance {
    pub port: u16,
    /// The admin listener's port (`/admin/reload`, `/metrics`).
    pub admin_port: u16,
    pub config: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Instance {
    /// Writes the config and starts the process.
    pub fn start(dir: &Path, name: &str, config_text: &str, env: &[(&str, &str)]) -> Instance {
        let port = config_text
            .lines()
            .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
            .and_then(|rest| rest.trim_end_matches('"').parse().ok())
            .expect("listen line");
        let config = dir.join(format!("{name}.toml"));
        write_atomically(&config, config_text);
        let admin_port = free_port();
        let admin_listen = format!("127.0.0.1:{admin_port}");
        let mut instance = Instance {
            port,
            admin_port,
            config,
            log: dir.join(format!("{name}.log")),
            // Load tests run far above the per-user limit the shipped config sets, and on a
            // debug build short of CPU, which admission control would shed.
            // Several instances on one machine: each admin listener on a port of its own.
            env: [
                ("MANIFOLD_RATE_LIMIT__RULES__0__LIMIT", "10000000"),
                ("MANIFOLD_ADMISSION__INITIAL_LIMIT", "1024"),
                ("MANIFOLD_ADMISSION__MIN_LIMIT", "1024"),
                ("MANIFOLD_ADMIN__LISTEN", admin_listen.as_str()),
            ]
            .iter()
            .chain(env)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            child: None,
        };
        instance.spawn();
        instance
    }

    /// Starts the process again (after it stopped), same port and config.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_bff-mobile"))
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().cloned())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start bff-mobile");
        self.child = Some(child);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A URL on the instance's admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Polls `/readyz` until it answers 200.
    pub async fn wait_ready(&self, http: &reqwest::Client, limit: Duration) {
        let until = Instant::now() + limit;
        loop {
            let ready = http
                .get(self.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return;
            }
            assert!(
                Instant::now() < until,
                "instance on {} not ready within {limit:?}; log:\n{}",
                self.port,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` (`TERM`, `HUP`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// `kill -9` by PID.
    pub fn kill_9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        let _ = child.wait();
    }

    /// Polls for the process to exit, up to `limit`; `None` if it is still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + limit;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// HAProxy running deploy/haproxy.cfg on loopback.
pub struct Haproxy {
    pub port: u16,
    pub stats_port: u16,
    child: Child,
}

/// Whether HAProxy is installed; under CI (env `CI` set) its absence fails the test.
pub fn haproxy_available() -> bool {
    let found = Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is not installed (apt-get install -y haproxy)"
        );
        eprintln!("SKIPPED: haproxy is not installed (apt-get install -y haproxy)");
    }
    found
}

/// deploy/haproxy.cfg with every `bind` moved to a free loopback port and every `server`
/// pointed at `servers[name]` (servers not given point at a closed port and stay down).
/// Returns the config text, the mobile frontend's port and the stats port.
pub fn haproxy_config(servers: &BTreeMap<&str, u16>) -> (String, u16, u16) {
    let (mut mobile, mut stats) = (0, 0);
    let mut section = String::new();
    let mut out = String::new();
    for line in SHIPPED_HAPROXY.lines() {
        let trimmed = line.trim_start();
        if !line.starts_with(' ') && !trimmed.is_empty() {
            section = trimmed.to_owned();
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        match words.as_slice() {
            ["bind", _addr, rest @ ..] => {
                let port = free_port();
                match section.as_str() {
                    "frontend fe_mobile" => mobile = port,
                    "frontend stats" => stats = port,
                    _ => {}
                }
                out.push_str(&format!("    bind 127.0.0.1:{port} {}\n", rest.join(" ")));
            }
            ["server", name, _addr, rest @ ..] => {
                // Port 1 on loopback: nothing listens there.
                let port = servers.get(name).copied().unwrap_or(1);
                out.push_str(&format!(
                    "    server {name} 127.0.0.1:{port} {}\n",
                    rest.join(" ")
                ));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    assert!(
        mobile != 0 && stats != 0,
        "fe_mobile or stats frontend missing"
    );
    (out, mobile, stats)
}

impl Haproxy {
    pub fn start(dir: &Path, servers: &BTreeMap<&str, u16>) -> Haproxy {
        let (text, port, stats_port) = haproxy_config(servers);
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, text).expect("write haproxy.cfg");
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("haproxy log");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        Haproxy {
            port,
            stats_port,
            child,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Per server of `be_mobile`: the stats CSV columns by name.
    pub async fn servers(
        &self,
        http: &reqwest::Client,
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        let Ok(response) = http
            .get(format!("http://127.0.0.1:{}/stats;csv", self.stats_port))
            .send()
            .await
        else {
            return BTreeMap::new();
        };
        let text = response.text().await.unwrap_or_default();
        let mut lines = text.lines();
        let Some(header) = lines.next() else {
            return BTreeMap::new();
        };
        let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
        let mut out = BTreeMap::new();
        for line in lines {
            let row: BTreeMap<String, String> = columns
                .iter()
                .zip(line.split(','))
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect();
            if row.get("pxname").map(String::as_str) == Some("be_mobile")
                && let Some(name) = row.get("svname").cloned()
            {
                out.insert(name, row);
            }
        }
        out
    }

    /// Polls the stats until `server`'s status starts with `status` (`UP`, `DOWN`); returns
    /// how long that took.
    pub async fn wait_status(
        &self,
        http: &reqwest::Client,
        server: &str,
        status: &str,
        limit: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let servers = self.servers(http).await;
            let now = servers
                .get(server)
                .and_then(|row| row.get("status"))
                .cloned()
                .unwrap_or_default();
            if now == status {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{server} not {status} within {limit:?} (now {now:?})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
