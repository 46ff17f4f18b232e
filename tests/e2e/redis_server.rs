//! A throw-away `redis-server` per test, on a free loopback port, without persistence:
//! plain (`RedisServer`), speaking TLS only with a certificate from a test CA
//! (`RedisTlsServer`), or three of them made one Redis Cluster (`RedisCluster`). Without
//! `redis-server` (or `redis-cli`, which makes the cluster) on the machine a test skips
//! (prints why) — unless `CI` is set, where a missing Redis is a failure, not a reason to
//! pass. Every process is stopped by its PID when its guard is dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, or returns `None` (after saying why) when `redis-server` is missing
    /// outside CI.
    pub fn start() -> Option<RedisServer> {
        let started = on_free_ports(|| {
            let mut server = RedisServer {
                port: free_port(),
                child: None,
            };
            Ok(server.spawn()?.then_some(server))
        });
        or_skip(started, "redis-server")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (the port stays ours to restart on).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let up = self.spawn().expect("restart redis-server");
        assert!(up, "redis-server exited at once on restart");
    }

    /// `true` once it answers PING; `false` when it exited at once.
    fn spawn(&mut self) -> std::io::Result<bool> {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        match started(&mut child, "redis-server answering PING", || {
            pings(self.port)
        }) {
            Ok(up) => {
                self.child = up.then_some(child);
                Ok(up)
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What `started` gave, or `None` (after saying why) when `program` is missing outside CI.
/// Panics in CI, or on any other failure.
fn or_skip<T>(started: std::io::Result<T>, program: &str) -> Option<T> {
    match started {
        Ok(v) => Some(v),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var_os("CI").is_some() {
                panic!("{program} is not installed, and CI requires the Redis tests");
            }
            eprintln!("skipping: {program} is not installed ({e})");
            None
        }
        Err(e) => panic!("cannot start {program}: {e}"),
    }
}

/// A process stopped (by its PID) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory of its own under the system's temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("manifold-{what}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `redis-server` with `args` (no persistence, loopback only).
/// `redis-server` with `args`, writing what it says to `log` in `dir` (`server_log`).
fn redis_server(dir: &Path, args: &[String], log: &str) -> std::io::Result<Process> {
    let log = std::fs::File::create(dir.join(log))?;
    Command::new("redis-server")
        .args(args)
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map(Process)
}

/// What a `redis-server` wrote to `log` in `dir` so far.
fn server_log(dir: &Path, log: &str) -> String {
    std::fs::read_to_string(dir.join(log)).unwrap_or_default()
}

/// `redis-cli` against one plain node; its standard output.
fn redis_cli(args: &[String]) -> std::io::Result<String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1"])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Polls `ready` every 20 ms for up to `limit`.
fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) -> std::io::Result<()> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(std::io::Error::other(format!("{what} within {limit:?}")))
}

/// One `redis-server` that speaks only TLS, with a certificate for 127.0.0.1 from a CA of
/// its own (made with rcgen); clients need not present one.
pub struct RedisTlsServer {
    port: u16,
    ca_file: PathBuf,
    _process: Process,
    _dir: TempDir,
}

impl RedisTlsServer {
    pub fn start() -> Option<RedisTlsServer> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = TempDir::new("redis-tls");
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Manifold Redis test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let file = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let ca_file = file("ca.pem", ca_cert.pem());
        let args = vec![
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            free_port().to_string(),
            "--tls-cert-file".to_owned(),
            file("redis.pem", cert.pem()),
            "--tls-key-file".to_owned(),
            file("redis-key.pem", key.serialize_pem()),
            "--tls-ca-cert-file".to_owned(),
            ca_file.clone(),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        let port: u16 = args[3].parse().unwrap();
        let mut process = or_skip(redis_server(dir.path(), &args, "redis.log"), "redis-server")?;
        // Readiness without a TLS client: the port accepts once the server is up (it binds
        // after loading, and there is nothing to load). One built without TLS exits.
        let up = started(&mut process.0, "redis-server (TLS) listening", || {
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        })
        .expect("redis-server with TLS");
        if !up {
            // A build without TLS refuses the TLS options as unknown; any other early exit
            // (a certificate it cannot load, a port taken) is this test's failure.
            let said = server_log(dir.path(), "redis.log");
            assert!(
                said.contains("Bad directive"),
                "redis-server (TLS) exited at start:\n{said}"
            );
            let why = std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "redis-server is built without TLS (it refused the TLS options)",
            );
            return or_skip(Err(why), "redis-server with TLS");
        }
        Some(RedisTlsServer {
            port,
            ca_file: ca_file.into(),
            _process: process,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }

    /// The PEM file of the CA that issued the server's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }
}

/// Three `redis-server`s made one Redis Cluster (three primaries, no replicas) by
/// `redis-cli --cluster create`, ready once every node says `cluster_state:ok`.
pub struct RedisCluster {
    ports: Vec<u16>,
    _processes: Vec<Process>,
    _dir: TempDir,
}

impl RedisCluster {
    pub fn start() -> Option<RedisCluster> {
        let dir = TempDir::new("redis-cluster");
        let mut ports = Vec::new();
        let mut processes = Vec::new();
        for _ in 0..3 {
            let (port, process) = or_skip(cluster_node(dir.path()), "redis-server")?;
            ports.push(port);
            processes.push(process);
        }
        let cluster = RedisCluster {
            ports,
            _processes: processes,
            _dir: dir,
        };
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"].map(str::to_owned));
        or_skip(redis_cli(&create), "redis-cli")?;
        wait_until(
            Duration::from_secs(30),
            "cluster_state:ok on every node",
            || {
                cluster.ports.iter().all(|port| {
                    let info = redis_cli(&[
                        "-p".to_owned(),
                        port.to_string(),
                        "CLUSTER".to_owned(),
                        "INFO".to_owned(),
                    ]);
                    info.is_ok_and(|i| {
                        i.contains("cluster_state:ok") && i.contains("cluster_slots_ok:16384")
                    })
                })
            },
        )
        .expect("a three-node cluster");
        Some(cluster)
    }

    /// One node's URL: the cluster is discovered from it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.ports[0])
    }

    /// The keys held by all nodes together.
    pub fn keys(&self) -> u64 {
        self.ports
            .iter()
            .map(|port| {
                redis_cli(&["-p".to_owned(), port.to_string(), "DBSIZE".to_owned()])
                    .ok()
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// How many nodes hold at least one key.
    pub fn nodes_with_keys(&self) -> usize {
        self.ports
            .iter()
            .filter(|port| {
                redis_cli(&["-p".to_owned(), port.to_string(), "DBSIZE".to_owned()])
                    .ok()
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
            .count()
    }
}

/// One cluster node on free ports, answering PING.
fn cluster_node(dir: &Path) -> std::io::Result<(u16, Process)> {
    on_free_ports(|| {
        let port = free_port();
        let args = [
            "--port".to_owned(),
            port.to_string(),
            "--cluster-enabled".to_owned(),
            "yes".to_owned(),
            // The bus port is a free one too (port + 10000 may not be).
            "--cluster-port".to_owned(),
            free_port().to_string(),
            "--cluster-config-file".to_owned(),
            dir.join(format!("nodes-{port}.conf")).display().to_string(),
        ];
        let mut process = redis_server(dir, &args, &format!("redis-{port}.log"))?;
        let up = started(&mut process.0, "redis-server answering PING", || {
            pings(port)
        })?;
        Ok(up.then_some((port, process)))
    })
}

/// What `start` gives once it gives something, trying again while the server it starts exits
/// at once: a port can be taken between `free_port` and the server's bind (another test's
/// connection is given it), and then the next try takes other free ports. At most five.
fn on_free_ports<T>(mut start: impl FnMut() -> std::io::Result<Option<T>>) -> std::io::Result<T> {
    for _ in 0..5 {
        if let Some(started) = start()? {
            return Ok(started);
        }
    }
    Err(std::io::Error::other(
        "redis-server exited at once on five sets of free ports",
    ))
}

/// Polls `ready` for up to 10 s: `true` once it holds, `false` if `child` exits first.
fn started(
    child: &mut Child,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> std::io::Result<bool> {
    let mut exited = false;
    wait_until(Duration::from_secs(10), what, || {
        exited = matches!(child.try_wait(), Ok(Some(_)));
        exited || ready()
    })?;
    Ok(!exited)
}

fn pings(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
