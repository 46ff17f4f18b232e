//! Running it like production, with real processes on loopback: two bff-mobile binaries
//! behind Debian's HAProxy running deploy/haproxy.cfg, the demo backends in this process.
//! Failover on `kill -9`, a rolling restart, the drain and its hard deadline, hot reload.
//! The numbers (failures, timings) are printed; run with `--nocapture` to see them.

mod load;
mod procs;

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

use demo_services::{Backends, Service};
use load::Load;
use procs::{Haproxy, Instance, Scratch, free_port, haproxy_available, mobile_config};
use serde_json::{Value, json};

const WORKERS: usize = 8;

struct Cluster {
    backends: Backends,
    http: reqwest::Client,
    token: String,
}

impl Cluster {
    async fn start() -> Cluster {
        let backends = Backends::start("127.0.0.1".parse().unwrap(), None)
            .await
            .expect("backends");
        let http = reqwest::Client::new();
        let token: Value = http
            .post(format!("{}/token", backends.url(Service::Auth)))
            .json(&json!({ "sub": "42", "aud": "mobile", "scopes": [], "ttl_s": 900 }))
            .send()
            .await
            .expect("IdP")
            .json()
            .await
            .expect("token");
        let token = token["access_token"].as_str().expect("token").to_owned();
        Cluster {
            backends,
            http,
            token,
        }
    }

    /// Two instances (drain delay 2 s: above HAProxy's inter 500ms x fall 2) and HAProxy.
    async fn pair(&self, dir: &std::path::Path) -> (Instance, Instance, Haproxy) {
        let env = [("MANIFOLD_SERVER__DRAIN_DELAY", "2s")];
        let a = Instance::start(
            dir,
            "mobile1",
            &mobile_config(&self.backends, free_port()),
            &env,
        );
        let b = Instance::start(
            dir,
            "mobile2",
            &mobile_config(&self.backends, free_port()),
            &env,
        );
        a.wait_ready(&self.http, Duration::from_secs(20)).await;
        b.wait_ready(&self.http, Duration::from_secs(20)).await;
        let servers = BTreeMap::from([("mobile1", a.port), ("mobile2", b.port)]);
        let haproxy = Haproxy::start(dir, &servers);
        for name in ["mobile1", "mobile2"] {
            haproxy
                .wait_status(&self.http, name, "UP", Duration::from_secs(10))
                .await;
        }
        (a, b, haproxy)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_instance_fails_at_most_its_in_flight_requests() {
    if !haproxy_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let dir = Scratch::new("kill9");
    let (mut a, _b, haproxy) = cluster.pair(&dir).await;
    let load = Load::start(haproxy.url("/graphql"), cluster.token.clone(), WORKERS);
    load.wait_sent(300, Duration::from_secs(20)).await;

    let in_flight: u64 = haproxy.servers(&cluster.http).await["mobile1"]["scur"]
        .parse()
        .unwrap_or(0);
    let killed = Instant::now();
    a.kill_9();
    let down_after = haproxy
        .wait_status(&cluster.http, "mobile1", "DOWN", Duration::from_secs(5))
        .await;
    let sent_at_down = load.sent();
    load.wait_sent(sent_at_down + 300, Duration::from_secs(20))
        .await;
    let outcomes = load.stop().await;

    let (failures, gap) = load::summary(&outcomes, killed);
    let after_kill = outcomes.iter().filter(|o| o.done > killed).count();
    let stats = &haproxy.servers(&cluster.http).await;
    println!(
        "kill -9: {} requests, {after_kill} after the kill, {failures} failed; in flight on the \
         killed instance (HAProxy scur just before): {in_flight}; marked DOWN after {down_after:?}; \
         longest gap without a success after the kill: {gap:?}; HAProxy retries {} redispatches {}",
        outcomes.len(),
        stats["mobile1"]["wretr"],
        stats["mobile1"]["wredis"],
    );
    for o in outcomes.iter().filter(|o| !o.ok).take(5) {
        println!("  failure: {}", o.detail);
    }
    // Each worker has one request in flight at a time, so at most WORKERS were on the
    // killed instance at once.
    assert!(
        failures <= WORKERS,
        "{failures} failures > {WORKERS} in flight"
    );
    assert!(
        after_kill >= 300,
        "traffic did not continue on the other instance"
    );
    // Inter 500ms x fall 2, plus a check timeout and polling slack.
    assert!(gap < Duration::from_millis(1500), "no success for {gap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_fails_no_request() {
    if !haproxy_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let dir = Scratch::new("rolling");
    let (mut a, mut b, haproxy) = cluster.pair(&dir).await;
    let load = Load::start(haproxy.url("/graphql"), cluster.token.clone(), WORKERS);
    load.wait_sent(200, Duration::from_secs(20)).await;

    let mut timings = Vec::new();
    for (name, instance) in [("mobile1", &mut a), ("mobile2", &mut b)] {
        let signalled = Instant::now();
        instance.signal("TERM");
        let down = haproxy
            .wait_status(&cluster.http, name, "DOWN", Duration::from_secs(5))
            .await;
        // Taken out because /readyz failed (L7STS), while the listener still answered:
        // not because connections were refused (L4CON) after it closed.
        let check = haproxy.servers(&cluster.http).await[name]["check_status"].clone();
        let status = instance
            .wait_exit(Duration::from_secs(15))
            .await
            .expect("exits within shutdown_timeout");
        let exited = signalled.elapsed();
        assert!(status.success(), "{name} exited with {status}");
        assert_eq!(
            check, "L7STS",
            "{name} was not deregistered by its readiness check"
        );
        instance.spawn();
        instance
            .wait_ready(&cluster.http, Duration::from_secs(20))
            .await;
        let up = haproxy
            .wait_status(&cluster.http, name, "UP", Duration::from_secs(10))
            .await;
        timings.push(format!(
            "{name}: DOWN in HAProxy ({check}) {down:?} after SIGTERM, exited (0) after {exited:?}, UP again {up:?} after ready"
        ));
        let sent = load.sent();
        load.wait_sent(sent + 100, Duration::from_secs(20)).await;
    }
    let outcomes = load.stop().await;
    let (failures, _) = load::summary(&outcomes, Instant::now());
    println!(
        "rolling restart: {} requests, {failures} failed; {}",
        outcomes.len(),
        timings.join("; ")
    );
    for o in outcomes.iter().filter(|o| !o.ok).take(5) {
        println!("  failure: {}", o.detail);
    }
    assert_eq!(
        failures, 0,
        "client requests failed during the rolling restart"
    );
}

/// The shipped config plus a proxy route to the users service with a long timeout.
fn with_slow_route(config: &str) -> String {
    format!(
        "{config}\n[[routes]]\nprefix = \"/slow/\"\nupstream = \"users\"\nrewrite = \"/users/\"\nauth = \"none\"\ntimeout = \"60s\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_by_the_hard_deadline() {
    let cluster = Cluster::start().await;
    let dir = Scratch::new("drain");
    let env = [
        ("MANIFOLD_SERVER__DRAIN_DELAY", "500ms"),
        ("MANIFOLD_SERVER__SHUTDOWN_TIMEOUT", "3s"),
    ];
    let config = with_slow_route(&mobile_config(&cluster.backends, free_port()));
    let http = &cluster.http;
    let users = cluster.backends.url(Service::Users);

    // 1. A request slower than the drain delay but within the deadline finishes.
    let mut instance = Instance::start(&dir, "drain", &config, &env);
    instance.wait_ready(http, Duration::from_secs(20)).await;
    chaos(http, &users, json!({ "latency_ms": 1500 })).await;
    let slow = tokio::spawn(get(http.clone(), instance.url("/slow/1")));
    wait_backend_saw(http, &users).await;
    let signalled = Instant::now();
    instance.signal("TERM");
    let readyz_failed =
        poll_until(|| async { get_status(http, &instance.url("/readyz")).await == Some(503) })
            .await;
    // The listener still serves during the drain delay, asking clients to close.
    let during = http
        .get(instance.url("/healthz"))
        .send()
        .await
        .expect("served during the drain delay");
    assert_eq!(during.status(), 200);
    assert_eq!(
        during.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let served_during = signalled.elapsed();
    let (status, _) = slow
        .await
        .expect("task")
        .expect("the in-flight request finished");
    let finished = signalled.elapsed();
    let exit = instance
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exits");
    let exited = signalled.elapsed();
    println!(
        "drain: /readyz 503 after {readyz_failed:?}; new request served {served_during:?} into the \
         500ms drain delay with Connection: close; in-flight request (1.5 s) finished {status} at \
         {finished:?}; exited ({exit}) at {exited:?}"
    );
    assert_eq!(status, 200);
    assert!(exit.success());
    assert!(readyz_failed < Duration::from_millis(200));
    assert!(
        exited >= Duration::from_millis(1400) && exited < Duration::from_millis(3000),
        "{exited:?}"
    );

    // 2. A request that outlives the hard deadline does not hold the process.
    instance.spawn();
    instance.wait_ready(http, Duration::from_secs(20)).await;
    clear_stats(http, &users).await;
    chaos(http, &users, json!({ "latency_ms": 60000 })).await;
    let stuck = tokio::spawn(get(http.clone(), instance.url("/slow/2")));
    wait_backend_saw(http, &users).await;
    let signalled = Instant::now();
    instance.signal("TERM");
    let exit = instance
        .wait_exit(Duration::from_secs(6))
        .await
        .expect("exits by the hard deadline");
    let exited = signalled.elapsed();
    let client = stuck.await.expect("task");
    println!(
        "hard deadline: SIGTERM with a 60 s request in flight, shutdown_timeout 3s: exited ({exit}) after {exited:?}; the client got {:?}",
        client.as_ref().map(|(s, _)| *s).map_err(|e| e.to_string())
    );
    assert!(exit.success());
    assert!(
        exited >= Duration::from_millis(2900) && exited < Duration::from_millis(4000),
        "{exited:?}"
    );
    assert!(client.is_err() || client.is_ok_and(|(s, _)| s != 200));
    chaos_off(http, &users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_apply_without_restart_and_invalid_ones_are_refused() {
    let cluster = Cluster::start().await;
    let dir = Scratch::new("reload");
    let http = &cluster.http;
    let original = mobile_config(&cluster.backends, free_port());
    let instance = Instance::start(&dir, "reload", &original, &[]);
    instance.wait_ready(http, Duration::from_secs(20)).await;
    let pid = instance.pid();
    let load = Load::start(instance.url("/graphql"), cluster.token.clone(), 4);
    load.wait_sent(100, Duration::from_secs(20)).await;
    assert_eq!(get_status(http, &instance.url("/slow/1")).await, Some(404));

    // A valid change: a new route, picked up from the file without a signal.
    procs::write_atomically(&instance.config, &with_slow_route(&original));
    let applied =
        poll_until(|| async { get_status(http, &instance.url("/slow/1")).await == Some(200) })
            .await;
    let status = reload_status(http, &instance).await;
    assert_eq!(status["generation"], 2, "{status}");
    assert_eq!(status["last"]["ok"], true, "{status}");
    assert_eq!(status["last"]["trigger"], "file-change", "{status}");

    // An invalid change: refused with every error, the previous config keeps serving.
    let broken = with_slow_route(&original)
        .replace("request_timeout = \"800ms\"", "request_timeout = \"0s\"")
        + "\n[[routes]]\nprefix = \"/nowhere/\"\nupstream = \"nope\"\n";
    procs::write_atomically(&instance.config, &broken);
    poll_until(|| async { reload_status(http, &instance).await["failed_total"] == 1 }).await;
    let status = reload_status(http, &instance).await;
    let errors = status["last"]["errors"].to_string();
    assert!(errors.contains("server.request_timeout"), "{status}");
    assert!(errors.contains("routes[1].upstream"), "{status}");
    assert_eq!(status["generation"], 2, "{status}");
    assert_eq!(get_status(http, &instance.url("/slow/1")).await, Some(200));

    // SIGHUP rereads the file: refused again, and the process is still there.
    instance.signal("HUP");
    poll_until(|| async { reload_status(http, &instance).await["failed_total"] == 2 }).await;
    let status = reload_status(http, &instance).await;
    assert_eq!(status["last"]["trigger"], "sighup", "{status}");
    assert_eq!(instance.pid(), pid);

    let outcomes = load.stop().await;
    let (failures, _) = load::summary(&outcomes, Instant::now());
    println!(
        "reload: new route served {applied:?} after the file was written (polled every 1 s); {} \
         requests under load, {failures} failed; refused: {errors}",
        outcomes.len()
    );
    assert!(instance.log_text().contains("config reload refused"));
    assert_eq!(failures, 0);
}

async fn reload_status(http: &reqwest::Client, instance: &Instance) -> Value {
    http.get(instance.admin_url("/admin/reload"))
        .send()
        .await
        .expect("admin/reload")
        .json()
        .await
        .expect("JSON")
}

async fn get(http: reqwest::Client, url: String) -> reqwest::Result<(u16, String)> {
    let response = http.get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

async fn get_status(http: &reqwest::Client, url: &str) -> Option<u16> {
    http.get(url).send().await.ok().map(|r| r.status().as_u16())
}

/// Polls `condition` every 10 ms for up to 10 s; returns how long it took.
async fn poll_until<F, Fut>(mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "condition not met in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

async fn chaos(http: &reqwest::Client, service: &str, faults: Value) {
    let r = http
        .post(format!("{service}/_chaos"))
        .json(&faults)
        .send()
        .await
        .expect("chaos");
    assert!(r.status().is_success());
}

async fn chaos_off(http: &reqwest::Client, service: &str) {
    let _ = http.delete(format!("{service}/_chaos")).send().await;
}

async fn clear_stats(http: &reqwest::Client, service: &str) {
    let _ = http.delete(format!("{service}/_stats")).send().await;
}

/// Polls the backend's stats until a `/users/...` request reached it.
async fn wait_backend_saw(http: &reqwest::Client, service: &str) {
    poll_until(|| async {
        let stats: Value = match http.get(format!("{service}/_stats")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        stats["by_path"]
            .as_object()
            .is_some_and(|paths| paths.keys().any(|p| p.starts_with("/users/")))
    })
    .await;
}
