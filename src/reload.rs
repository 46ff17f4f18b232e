//! Hot reload: the listener serves a thin `LiveApp` wrapper that, per request, takes the
//! current config generation (a `Gateway` and the router built from it) and runs the request
//! on it. A reload builds a whole new generation from the new config — validated first, keys
//! loaded — and swaps it in; requests already running keep the generation they started with
//! until they finish, so none is dropped. A config that fails any check leaves the old one
//! serving; the errors are logged and recorded in the `ReloadStatus` (admin API, metrics).
//!
//! Triggers: SIGHUP, and a change of the config file's contents (polled, see `watch`).
//! What a reload cannot change without a restart: the listen address and TLS (the bound
//! socket), and the connection-level head limits hyper was built with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use arc_swap::ArcSwap;
use axum::Router;
use http::Version;
use http::header::{CONNECTION, HeaderValue};

use crate::config::{Config, ConfigErrors};
use crate::edge::hygiene::BeforeRouting;
use crate::gateway::{BuildError, Gateway};
use crate::lifecycle::ReloadSnapshot;
use crate::server::{App, Gate, HangupSignal};

/// How often `watch` looks at the config file.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a new generation may take to load its signing keys before the reload is refused.
const KEYS_DEADLINE: Duration = Duration::from_secs(10);

/// The app behind the listener, swappable at run time.
pub struct LiveApp {
    /// Read by every request (twice: the listener's gate, then the app) on every worker: a
    /// lock or a reference count here was a cache line both cores wrote for each request.
    current: ArcSwap<Generation>,
    /// Serialises reloads (a SIGHUP and a file change at the same moment).
    reloading: tokio::sync::Mutex<()>,
    name: &'static str,
    upstreams: &'static [&'static str],
    routes: fn(&Gateway) -> Router<Gateway>,
}

/// One config generation: what a request runs on from start to finish.
struct Generation {
    gateway: Gateway,
    app: BeforeRouting,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
    #[error("{0}")]
    NeedsRestart(String),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("the new config's signing keys did not load within {0:?}")]
    KeysNotLoaded(Duration),
    #[error("shutting down; the config is not reloaded")]
    Draining,
}

impl ReloadError {
    /// One line per problem, as the admin API lists them.
    fn lines(&self) -> Vec<String> {
        match self {
            ReloadError::Invalid(errors) => errors
                .errors
                .iter()
                .map(|e| e.located().to_string())
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

impl LiveApp {
    pub fn new(
        gateway: Gateway,
        name: &'static str,
        upstreams: &'static [&'static str],
        routes: fn(&Gateway) -> Router<Gateway>,
    ) -> Arc<Self> {
        let app = gateway.clone().into_app(routes(&gateway));
        Arc::new(LiveApp {
            current: ArcSwap::from_pointee(Generation { gateway, app }),
            reloading: tokio::sync::Mutex::new(()),
            name,
            upstreams,
            routes,
        })
    }

    fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// The gateway of the generation serving now.
    pub fn gateway(&self) -> Gateway {
        self.current().gateway.clone()
    }

    /// What the listener serves: each request runs on the generation current when it
    /// arrives. While draining, HTTP/1 responses carry `Connection: close`, so keep-alive
    /// connections end after their current response.
    pub fn app(self: &Arc<Self>) -> App {
        let live = self.clone();
        App::new(move |request| {
            // The generation is only borrowed while the request is routed: what the request
            // goes on to need (its route, the gateway) it holds itself.
            let generation = live.current.load();
            let http1 = request.version() < Version::HTTP_2;
            let answer = generation.app.serve(request);
            let draining = http1.then(|| generation.gateway.clone());
            Box::pin(async move {
                let Ok(mut response) = answer.await;
                if let Some(gateway) = draining
                    && gateway.is_draining()
                {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                response
            })
        })
    }

    /// What the listener asks before the app: the serving generation's admission control
    /// refuses a request it would shed anyway (`edge::admission`).
    pub fn gate(self: &Arc<Self>) -> Gate {
        let live = self.clone();
        Arc::new(move |request| live.current.load().gateway.refuse_at_once(request))
    }

    /// Validates `config`, builds its generation, waits for its keys and swaps it in. The
    /// outcome is recorded in the reload status and logged.
    pub async fn apply(&self, config: Config, trigger: &str) -> Result<u64, ReloadError> {
        let result = self.try_apply(config).await;
        self.record(trigger, result)
    }

    /// Reads and validates the file at `path` (with the process's `MANIFOLD_*` overrides,
    /// like at start), then applies it.
    pub async fn reload_file(&self, path: &Path, trigger: &str) -> Result<u64, ReloadError> {
        let result = match self.parse_file(path).await {
            Ok(config) => self.try_apply(config).await,
            Err(e) => Err(e),
        };
        self.record(trigger, result)
    }

    async fn parse_file(&self, path: &Path) -> Result<Config, ReloadError> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|source| ReloadError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Config::parse(
            &text,
            &path.display().to_string(),
            std::env::vars(),
            self.upstreams,
        )?)
    }

    async fn try_apply(&self, config: Config) -> Result<u64, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let old = self.current();
        if old.gateway.is_draining() {
            return Err(ReloadError::Draining);
        }
        // Re-check: a config built in code (tests, the demo) has not been through `parse`.
        let problems = config.validate(self.upstreams);
        if !problems.is_empty() {
            return Err(ConfigErrors {
                source: "reloaded config".into(),
                errors: problems,
            }
            .into());
        }
        needs_restart(old.gateway.config(), &config)?;
        let gateway = old.gateway.next_generation(config)?;
        // Requests must not meet a gateway that cannot verify tokens yet; if the old one
        // could not either (its JWKS was unreachable), waiting would only delay the swap.
        if old.gateway.authenticator().is_ready() {
            let until = Instant::now() + KEYS_DEADLINE;
            while !gateway.authenticator().is_ready() {
                if Instant::now() >= until {
                    return Err(ReloadError::KeysNotLoaded(KEYS_DEADLINE));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let app = gateway.clone().into_app((self.routes)(&gateway));
        self.current.store(Arc::new(Generation { gateway, app }));
        Ok(old.gateway.lifecycle().reloads().generation() + 1)
    }

    fn record(&self, trigger: &str, result: Result<u64, ReloadError>) -> Result<u64, ReloadError> {
        let reloads = self.gateway().lifecycle().clone();
        let reloads = reloads.reloads();
        match &result {
            Ok(generation) => {
                reloads.record_success(trigger);
                tracing::info!(bff = self.name, trigger, generation, "config reloaded");
            }
            Err(e) => {
                let errors = e.lines();
                tracing::error!(
                    bff = self.name,
                    trigger,
                    errors = %errors.join("; "),
                    "config reload refused; the previous config keeps serving"
                );
                reloads.record_failure(trigger, errors);
            }
        }
        result
    }

    /// The last reload results, for the admin API.
    pub fn status(&self) -> ReloadSnapshot {
        self.gateway().lifecycle().reloads().snapshot()
    }
}

/// Settings bound to the listening socket cannot move at run time.
fn needs_restart(old: &Config, new: &Config) -> Result<(), ReloadError> {
    let mut changed = Vec::new();
    if old.server.listen != new.server.listen {
        changed.push(format!(
            "server.listen: changing the listen address ({} -> {}) needs a restart",
            old.server.listen, new.server.listen
        ));
    }
    if (old.server.runtime, old.server.workers) != (new.server.runtime, new.server.workers) {
        changed.push(
            "server.runtime, server.workers: the threads serving requests change only at a restart"
                .into(),
        );
    }
    if format!("{:?}", old.tls) != format!("{:?}", new.tls) {
        changed.push("tls: changing TLS settings needs a restart (certificate files are reloaded by themselves)".into());
    }
    if changed.is_empty() {
        Ok(())
    } else {
        Err(ReloadError::NeedsRestart(changed.join("; ")))
    }
}

/// Reloads `path` on SIGHUP and whenever its contents change (checked every
/// `POLL_INTERVAL`), until the returned task is aborted.
pub fn watch(live: Arc<LiveApp>, path: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangup = HangupSignal::new();
        let mut seen = tokio::fs::read(&path).await.ok();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let trigger = tokio::select! {
                () = hangup.recv() => "sighup",
                _ = tick.tick() => {
                    let now = tokio::fs::read(&path).await.ok();
                    // A file being replaced can be missing for a moment: wait for it.
                    if now.is_none() || now == seen {
                        continue;
                    }
                    "file-change"
                }
            };
            seen = tokio::fs::read(&path).await.ok();
            let _ = live.reload_file(&path, trigger).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, "test", std::iter::empty(), &[]).expect("valid test config")
    }

    fn live(text: &str) -> Arc<LiveApp> {
        let gateway = Gateway::new(config(text)).expect("gateway");
        LiveApp::new(gateway, "test", &[], |_| Router::new())
    }

    const BASE: &str = "[server]\nlisten = \"127.0.0.1:18080\"\nrequest_timeout = \"1s\"\n";

    #[tokio::test]
    async fn a_valid_config_becomes_the_next_generation() {
        let live = live(BASE);
        let next = config(&BASE.replace("\"1s\"", "\"2s\""));
        assert_eq!(live.apply(next, "api").await.expect("applied"), 2);
        let gateway = live.gateway();
        assert_eq!(
            gateway.config().server.request_timeout,
            Duration::from_secs(2)
        );
        let status = live.status();
        assert_eq!((status.generation, status.succeeded_total), (2, 1));
    }

    #[tokio::test]
    async fn a_new_listen_address_is_refused_and_the_old_config_stays() {
        let live = live(BASE);
        let moved = config(&BASE.replace("18080", "18081").replace("\"1s\"", "\"2s\""));
        let err = live.apply(moved, "sighup").await.expect_err("refused");
        assert!(err.to_string().contains("server.listen"), "{err}");
        assert_eq!(
            live.gateway().config().server.request_timeout,
            Duration::from_secs(1)
        );
        let status = live.status();
        assert_eq!((status.generation, status.failed_total), (1, 1));
        let last = status.last.expect("recorded");
        assert_eq!(last.trigger, "sighup");
        assert!(last.errors[0].contains("needs a restart"));
    }

    #[tokio::test]
    async fn other_worker_threads_need_a_restart() {
        let live = live(BASE);
        for change in ["workers = 3", "runtime = \"thread-per-core\""] {
            let next = config(&BASE.replace("[server]\n", &format!("[server]\n{change}\n")));
            let err = live.apply(next, "api").await.expect_err("refused");
            assert!(
                err.to_string().contains("server.runtime, server.workers"),
                "{err}"
            );
        }
        assert_eq!(live.status().generation, 1);
    }

    #[tokio::test]
    async fn no_reload_while_draining() {
        let live = live(BASE);
        live.gateway().start_draining();
        let err = live.apply(config(BASE), "api").await.expect_err("refused");
        assert!(matches!(err, ReloadError::Draining));
        // The flag is the process's, not the generation's.
        assert!(live.gateway().is_draining());
    }
}
