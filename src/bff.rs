//! What every BFF binary shares: command line (`--config PATH`, `--check`, `--version`,
//! `--print-config-schema`), config loading with exit status 64 on any problem, logging, and the lifecycle (start, serve, reload the
//! config file on SIGHUP or change, drain on SIGTERM/SIGINT: fail `/readyz`, keep serving
//! for `server.drain_delay`, then finish in-flight requests until `server.shutdown_timeout`
//! after the signal). A BFF describes itself with a `BffSpec`; its `main` is one call.
//! `start` runs the same BFF in-process on any address (the demo launcher and tests use it).

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::{Config, LoadSource, LogFormat, Runtime};
use crate::gateway::{BuildError, Gateway};
use crate::reload::{self, LiveApp, ReloadError};
use crate::server::workers::Workers;
use crate::server::{self, RunningServer};

/// sysexits' EX_USAGE: the command line or the config is wrong.
pub const EXIT_CONFIG: u8 = 64;

/// The commit the core was built from (`build.rs`): `--version` prints it.
pub const COMMIT: &str = env!("MANIFOLD_COMMIT");

/// A BFF as the core sees it: a name, a default config, the backends its code calls, and its
/// own routes.
pub struct BffSpec {
    /// Binary name, e.g. `bff-mobile`.
    pub name: &'static str,
    /// The binary's own version (its `CARGO_PKG_VERSION`), for `--version`.
    pub version: &'static str,
    /// Config file used when `--config` is not given, relative to the working directory.
    pub default_config_path: &'static str,
    /// Built-in copy of the default config, used when that file is not there.
    pub embedded_config: &'static str,
    /// Upstreams the BFF's own code calls; config validation requires them.
    pub upstreams: &'static [&'static str],
    /// The BFF's routes. The core adds health, proxy routes and the edge layers.
    pub routes: fn(&Gateway) -> Router<Gateway>,
}

impl BffSpec {
    /// Parses and validates config text for this BFF (tests and the demo launcher).
    pub fn parse_config(
        &self,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, crate::config::ConfigErrors> {
        Config::parse(text, self.name, env, self.upstreams)
    }

    /// The built-in default config, validated.
    pub fn default_config(&self) -> Result<Config, crate::config::ConfigErrors> {
        self.parse_config(self.embedded_config, std::iter::empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    #[error("tls.{}: {source}", source.config_key())]
    Tls { source: server::tls::TlsError },
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// A BFF running in this process.
pub struct RunningBff {
    live: Arc<LiveApp>,
    server: RunningServer,
    /// Reloads the config file on SIGHUP or change (`watch_config`).
    watcher: Option<tokio::task::JoinHandle<()>>,
    /// The admin listener (`/metrics`, admin API, dashboard), unless `[admin]` disables it.
    admin: Option<RunningServer>,
}

impl RunningBff {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.server.scheme(), self.addr())
    }

    /// The gateway of the config generation serving now.
    pub fn gateway(&self) -> Gateway {
        self.live.gateway()
    }

    /// The swappable app (reloads, reload status).
    pub fn live(&self) -> &Arc<LiveApp> {
        &self.live
    }

    /// Swaps in `config` without dropping requests, or keeps the old one and says why.
    pub async fn reload(&self, config: Config) -> Result<u64, ReloadError> {
        self.live.apply(config, "api").await
    }

    /// Reloads the config file at `path` on SIGHUP and whenever its contents change.
    pub fn watch_config(&mut self, path: PathBuf) {
        if let Some(old) = self.watcher.replace(reload::watch(self.live.clone(), path)) {
            old.abort();
        }
    }

    /// Address of the admin listener, when it is enabled.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.as_ref().map(RunningServer::addr)
    }

    /// `http://addr` of the admin listener, when it is enabled.
    pub fn admin_url(&self) -> Option<String> {
        self.admin_addr().map(|addr| format!("http://{addr}"))
    }

    /// Waits until the BFF is ready for traffic (JWKS loaded), polling up to `limit`.
    pub async fn ready(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.gateway().is_ready() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.gateway().is_ready()
    }

    /// The drain: fails readiness at once, keeps serving for `server.drain_delay` (the load
    /// balancer's deregistration lag), then stops accepting and lets in-flight requests
    /// finish, cutting off whatever is left `server.shutdown_timeout` after the call. The
    /// admin listener stays up until the public one is done (operators watch the drain).
    pub async fn shutdown(mut self) -> io::Result<()> {
        let signalled = Instant::now();
        let gateway = self.gateway();
        gateway.start_draining();
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
        let server = &gateway.config().server;
        let (drain_delay, deadline) = (server.drain_delay, server.shutdown_timeout);
        drop(gateway);
        tokio::time::sleep(drain_delay).await;
        tracing::info!(
            ?drain_delay,
            "drain delay over: closing the listener and idle connections"
        );
        let grace = deadline.saturating_sub(signalled.elapsed());
        let result = self.server.shutdown(grace).await;
        if let Some(admin) = self.admin.take() {
            admin
                .shutdown(deadline.saturating_sub(signalled.elapsed()))
                .await?;
        }
        tracing::info!(elapsed = ?signalled.elapsed(), "stopped");
        result
    }
}

/// Builds the gateway for `config` and serves it on `config.server.listen` (over TLS when
/// `[tls]` is configured).
pub async fn start(spec: &BffSpec, config: Config) -> Result<RunningBff, StartError> {
    start_on(spec, config, &[]).await
}

/// `start`, the public listener served on each of `workers` (one listener each, see
/// `RunningServer::spawn_per_worker`) when there are any, else on the current runtime.
pub async fn start_on(
    spec: &BffSpec,
    config: Config,
    workers: &[tokio::runtime::Handle],
) -> Result<RunningBff, StartError> {
    let addr = config.server.listen;
    let tls = match &config.tls {
        Some(tls) => {
            Some(server::tls::Tls::load(tls).map_err(|source| StartError::Tls { source })?)
        }
        None => None,
    };
    let listener = if workers.is_empty() {
        Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?,
        )
    } else {
        None
    };
    let admin_listener = if config.admin.enabled {
        let admin_addr = config.admin.listen;
        Some(
            TcpListener::bind(admin_addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: admin_addr,
                    source,
                })?,
        )
    } else {
        None
    };
    let limits = config.limits.clone();
    let gateway = Gateway::new(config)?;
    gateway.observer().set_name(spec.name);
    let connections = gateway.connection_stats().clone();
    let live = LiveApp::new(gateway, spec.name, spec.upstreams, spec.routes);
    let gate = Some(live.gate());
    let serving = server::Serving {
        app: live.app(),
        tls,
        limits: limits.clone(),
        stats: connections,
        gate,
    };
    let server = match listener {
        Some(listener) => RunningServer::start(listener, serving),
        None => RunningServer::spawn_per_worker(addr, serving, workers),
    }
    .map_err(|source| StartError::Bind { addr, source })?;
    let admin = match admin_listener {
        Some(listener) => {
            let admin_addr = listener.local_addr().unwrap_or(addr);
            // The admin pages follow the config generation serving now.
            let current = live.clone();
            let app = crate::admin::router(Arc::new(move || current.gateway()));
            // Its own caps and counters: a flood on the public port does not lock operators
            // out, and `/metrics` counts the public listener only.
            let stats = Arc::default();
            Some(
                RunningServer::spawn(listener, app.into(), None, &limits, stats, None).map_err(
                    |source| StartError::Bind {
                        addr: admin_addr,
                        source,
                    },
                )?,
            )
        }
        None => None,
    };
    Ok(RunningBff {
        live,
        server,
        watcher: None,
        admin,
    })
}

/// The whole `main` of a BFF binary.
pub fn main(spec: &BffSpec) -> ExitCode {
    let args = match Command::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{}", usage(spec));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("{} {} (commit {})", spec.name, spec.version, COMMIT);
            return ExitCode::SUCCESS;
        }
        Ok(Command::PrintConfigSchema) => {
            let schema = crate::config::json_schema();
            match serde_json::to_string_pretty(&schema) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("cannot write the schema: {e}");
                    return ExitCode::FAILURE;
                }
            }
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}\n\n{}", usage(spec));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let loaded = Config::load(
        args.config.as_deref(),
        std::path::Path::new(spec.default_config_path),
        spec.embedded_config,
        spec.upstreams,
    );
    let (config, source) = match loaded {
        Ok(ok) => ok,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check {
        println!("ok ({source})");
        return ExitCode::SUCCESS;
    }
    init_logging_as(config.log.format);
    let workers = match config.server.runtime {
        Runtime::ThreadPerCore => match Workers::start(config.server.worker_count()) {
            Ok(workers) => {
                workers.register();
                Some(workers)
            }
            Err(e) => {
                eprintln!("cannot start the worker threads: {e}");
                return ExitCode::FAILURE;
            }
        },
        Runtime::WorkStealing => None,
    };
    // Under thread-per-core the main thread runs everything but the public listener.
    let built = match workers {
        Some(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.server.worker_count())
            .enable_all()
            .build(),
    };
    let runtime = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let terminated = server::TerminationSignal::new();
        let handles = workers.as_ref().map_or(&[][..], Workers::handles);
        let mut bff = match start_on(spec, config, handles).await {
            Ok(bff) => bff,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(bff = spec.name, config = %source, addr = %bff.addr(), admin = ?bff.admin_addr(), "listening");
        match &source {
            LoadSource::File(path) => bff.watch_config(path.clone()),
            // Without a handler SIGHUP would kill the process.
            LoadSource::Embedded => drop(tokio::spawn(async {
                let mut hangup = server::HangupSignal::new();
                loop {
                    hangup.recv().await;
                    tracing::warn!("SIGHUP: running on the embedded config; nothing to reload");
                }
            })),
        }
        terminated.wait().await;
        tracing::info!(
            bff = spec.name,
            "shutting down: /readyz fails, draining in-flight requests"
        );
        match bff.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("shutdown failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Logs text to stderr; `RUST_LOG` sets the filter (default `info`).
pub fn init_logging() {
    init_logging_as(LogFormat::Text);
}

/// Logs to stderr in `format` (`[log] format`); `RUST_LOG` sets the filter (default `info`).
pub fn init_logging_as(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: files, pipes and collectors get plain text,
    // and `NO_COLOR` (no-color.org) turns it off everywhere.
    let colour = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// What the command line asks for.
enum Command {
    Run(Args),
    Help,
    Version,
    PrintConfigSchema,
}

struct Args {
    config: Option<PathBuf>,
    check: bool,
}

impl Command {
    fn parse(args: impl Iterator<Item = String>) -> Result<Command, String> {
        let mut out = Args {
            config: None,
            check: false,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "-V" | "--version" => return Ok(Command::Version),
                "--print-config-schema" => return Ok(Command::PrintConfigSchema),
                "--check" => out.check = true,
                "-c" | "--config" => {
                    let path = args.next().ok_or("--config needs a path")?;
                    out.config = Some(path.into());
                }
                other => match other.strip_prefix("--config=") {
                    Some(path) => out.config = Some(path.into()),
                    None => return Err(format!("unknown argument {other:?}")),
                },
            }
        }
        Ok(Command::Run(out))
    }
}

fn usage(spec: &BffSpec) -> String {
    format!(
        "usage: {name} [--config PATH] [--check]\n       {name} --version | --print-config-schema\n\n  \
         --config PATH            config file (default: {path}, else the built-in default)\n  \
         --check                  validate the config, print every problem (file:line:column: key:\n                           \
         message) or \"ok\", exit 64 or 0\n  \
         --version                print the name, version and commit\n  \
         --print-config-schema    print the JSON Schema of the config file (for editors)\n\n\
         Any config key can be overridden from the environment: MANIFOLD_SERVER__LISTEN=0.0.0.0:8080\n\
         sets server.listen. RUST_LOG sets the log filter.",
        name = spec.name,
        path = spec.default_config_path
    )
}

#[cfg(test)]
mod tests {
    use super::{Args, Command};

    /// `Ok(None)`: not a run (help, version, schema).
    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        Command::parse(args.iter().map(|s| s.to_string())).map(|c| match c {
            Command::Run(args) => Some(args),
            _ => None,
        })
    }

    #[test]
    fn command_line() {
        let a = parse(&["--config", "x.toml", "--check"]).unwrap().unwrap();
        assert_eq!(a.config.unwrap().to_str(), Some("x.toml"));
        assert!(a.check);
        assert!(
            parse(&["--config=y.toml"])
                .unwrap()
                .unwrap()
                .config
                .is_some()
        );
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(matches!(
            Command::parse(["--check", "--version"].map(String::from).into_iter()),
            Ok(Command::Version)
        ));
        assert!(matches!(
            Command::parse(["--print-config-schema"].map(String::from).into_iter()),
            Ok(Command::PrintConfigSchema)
        ));
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
