//! A whole stack for one test: the ten demo services on free ports and one BFF configured
//! from its shipped default config, pointed at them.

use std::net::SocketAddr;
use std::time::Duration;

use demo_services::{Backends, Service};
use manifold::config::Config;
use manifold::{BffSpec, RunningBff};
use serde_json::{Value, json};

pub struct Stack {
    pub backends: Backends,
    pub bff: RunningBff,
    pub http: reqwest::Client,
}

impl Stack {
    /// Starts backends and `spec` with its default config.
    pub async fn start(spec: &BffSpec) -> Stack {
        Self::start_with(spec, |_| {}).await
    }

    /// Same, letting the test adjust the config first.
    pub async fn start_with(spec: &BffSpec, adjust: impl FnOnce(&mut Config)) -> Stack {
        Self::start_on(spec, &[], adjust).await
    }

    /// Same, the public listener served on each of `workers` (`thread-per-core`), or on the
    /// test's runtime when there are none.
    pub async fn start_on(
        spec: &BffSpec,
        workers: &[tokio::runtime::Handle],
        adjust: impl FnOnce(&mut Config),
    ) -> Stack {
        let backends = Backends::start("127.0.0.1".parse().unwrap(), None)
            .await
            .expect("start backends");
        let bff = start_bff_on(spec, &backends, workers, adjust).await;
        Stack {
            backends,
            bff,
            http: reqwest::Client::new(),
        }
    }

    /// Another instance of `spec` on the same backends (several instances behind one load
    /// balancer), with its config adjusted like the first one's.
    pub async fn start_instance(
        &self,
        spec: &BffSpec,
        adjust: impl FnOnce(&mut Config),
    ) -> RunningBff {
        start_bff(spec, &self.backends, adjust).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.bff.url())
    }

    /// `GET path` on the BFF with `token` as the bearer.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("BFF reachable")
    }

    /// The BFF's `/metrics` text, from its admin listener.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("the admin listener answers")
            .text()
            .await
            .expect("the metrics text")
    }

    /// A path on the BFF's admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        let base = self.bff.admin_url().expect("admin listener enabled");
        format!("{base}{path}")
    }

    pub fn service_url(&self, service: Service) -> String {
        self.backends.url(service)
    }

    /// `GET path` on a sample backend directly (what the gateway would have been told), as
    /// JSON.
    pub async fn backend_json(&self, service: Service, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.service_url(service)))
            .send()
            .await
            .expect("backend reachable")
            .json()
            .await
            .expect("backend JSON")
    }

    /// A fresh RS256 token from the demo IdP.
    pub async fn token(&self, sub: &str, aud: &str, scopes: &[&str]) -> String {
        self.token_with(json!({ "sub": sub, "aud": aud, "scopes": scopes, "ttl_s": 900 }))
            .await
    }

    pub async fn token_with(&self, body: Value) -> String {
        let response: Value = self
            .http
            .post(format!("{}/token", self.service_url(Service::Auth)))
            .json(&body)
            .send()
            .await
            .expect("IdP reachable")
            .json()
            .await
            .expect("token JSON");
        response["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A backend's `/_stats`.
    pub async fn stats(&self, service: Service) -> Value {
        self.http
            .get(format!("{}/_stats", self.service_url(service)))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON")
    }

    /// Total requests a backend has served since the last reset.
    pub async fn requests(&self, service: Service) -> u64 {
        self.stats(service).await["requests"].as_u64().unwrap_or(0)
    }

    pub async fn reset_stats(&self) {
        for service in Service::ALL {
            self.http
                .delete(format!("{}/_stats", self.service_url(service)))
                .send()
                .await
                .expect("reset stats");
        }
    }

    pub async fn chaos(&self, service: Service, faults: Value) {
        let status = self
            .http
            .post(format!("{}/_chaos", self.service_url(service)))
            .json(&faults)
            .send()
            .await
            .expect("chaos")
            .status();
        assert!(status.is_success(), "chaos rejected: {status}");
    }

    pub async fn reset_chaos(&self, service: Service) {
        let status = self
            .http
            .delete(format!("{}/_chaos", self.service_url(service)))
            .send()
            .await
            .expect("chaos")
            .status();
        assert!(status.is_success(), "chaos reset rejected: {status}");
    }

    /// POSTs a GraphQL operation with a bearer token; returns status and body.
    pub async fn graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.expect("BFF reachable");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

/// `spec` with its shipped config pointed at `backends` and adjusted, ready for traffic.
async fn start_bff(
    spec: &BffSpec,
    backends: &Backends,
    adjust: impl FnOnce(&mut Config),
) -> RunningBff {
    start_bff_on(spec, backends, &[], adjust).await
}

async fn start_bff_on(
    spec: &BffSpec,
    backends: &Backends,
    workers: &[tokio::runtime::Handle],
    adjust: impl FnOnce(&mut Config),
) -> RunningBff {
    let mut config = spec.default_config().expect("the shipped config is valid");
    point_at(&mut config, backends);
    // Tests run side by side on a debug build, so the workers are always short of CPU:
    // admission control would shed what the tests send. It keeps its place in the stack but
    // never sheds, except where a test configures it.
    config.admission.initial_limit = 1024;
    config.admission.min_limit = 1024;
    adjust(&mut config);
    let bff = manifold::bff::start_on(spec, config, workers)
        .await
        .expect("start BFF");
    assert!(
        bff.ready(Duration::from_secs(10)).await,
        "{} not ready within 10 s",
        spec.name
    );
    bff
}

/// Points every upstream and the JWKS of `config` at the running backends.
pub fn point_at(config: &mut Config, backends: &Backends) {
    config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    for (name, upstream) in config.upstreams.iter_mut() {
        let service = Service::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("no demo service named {name}"));
        upstream.url = Some(backends.url(service));
        upstream.instances.clear();
    }
    for jwt in config.auth.jwt.iter_mut() {
        let idp = backends.url(Service::Auth);
        jwt.jwks_url = format!("{idp}/.well-known/jwks.json").into();
        jwt.issuer = idp;
    }
}

/// The value of `response`'s header `name`, when it is there and visible ASCII.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// What `program args` made of `stdin` (if any); `None` (after saying why) where the program
/// is not installed, outside CI, where a missing tool fails the test.
pub fn run_tool(program: &str, args: &[&str], stdin: Option<&str>) -> Option<std::process::Output> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{program} is not installed, and CI requires it"
            );
            eprintln!("skipping: {program} is not installed ({e})");
            return None;
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    };
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("write to {program}: {e}"));
    }
    Some(
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{program} ran: {e}")),
    )
}
