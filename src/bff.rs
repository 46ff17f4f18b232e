//! What every BFF binary shares: command line (`--config PATH`, `--check`), config loading
//! with exit status 64 on any problem, logging, and the lifecycle (start, serve, drain on
//! SIGTERM/SIGINT). A BFF describes itself with a `BffSpec`; its `main` is one call.
//! `start` runs the same BFF in-process on any address (the demo launcher and tests use it).

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;

use crate::config::{Config, LogFormat};
use crate::gateway::{BuildError, Gateway};
use crate::server::{self, RunningServer};

/// sysexits' EX_USAGE: the command line or the config is wrong.
pub const EXIT_CONFIG: u8 = 64;

/// A BFF as the core sees it: a name, a default config, the backends its code calls, and its
/// own routes.
pub struct BffSpec {
    /// Binary name, e.g. `bff-mobile`.
    pub name: &'static str,
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
    gateway: Gateway,
    server: RunningServer,
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

    /// Address of the admin listener, when it is enabled.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.as_ref().map(RunningServer::addr)
    }

    /// `http://addr` of the admin listener, when it is enabled.
    pub fn admin_url(&self) -> Option<String> {
        self.admin_addr().map(|addr| format!("http://{addr}"))
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Waits until the BFF is ready for traffic (JWKS loaded), polling up to `limit`.
    pub async fn ready(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.gateway.is_ready() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.gateway.is_ready()
    }

    /// Fails readiness, then drains in-flight requests and stops.
    pub async fn shutdown(self) -> io::Result<()> {
        self.gateway.start_draining();
        let served = self.server.shutdown().await;
        // The admin listener stays up while the public one drains (operators watch it).
        if let Some(admin) = self.admin {
            admin.shutdown().await?;
        }
        served
    }
}

/// Builds the gateway for `config` and serves it on `config.server.listen` (over TLS when
/// `[tls]` is configured).
pub async fn start(spec: &BffSpec, config: Config) -> Result<RunningBff, StartError> {
    let addr = config.server.listen;
    let tls = match &config.tls {
        Some(tls) => {
            Some(server::tls::Tls::load(tls).map_err(|source| StartError::Tls { source })?)
        }
        None => None,
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
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
    let grace = config.server.shutdown_timeout;
    let limits = config.limits.clone();
    let gateway = Gateway::new(config)?;
    gateway.observer().set_name(spec.name);
    let app = gateway.clone().into_router((spec.routes)(&gateway));
    let server = RunningServer::spawn(listener, app, tls, grace, &limits)
        .map_err(|source| StartError::Bind { addr, source })?;
    let admin = match admin_listener {
        Some(listener) => {
            let admin_addr = listener.local_addr().unwrap_or(addr);
            let app = crate::observe::admin::router(gateway.clone());
            Some(
                RunningServer::spawn(listener, app, None, grace, &limits).map_err(|source| {
                    StartError::Bind {
                        addr: admin_addr,
                        source,
                    }
                })?,
            )
        }
        None => None,
    };
    Ok(RunningBff {
        gateway,
        server,
        admin,
    })
}

/// The whole `main` of a BFF binary.
pub fn main(spec: &BffSpec) -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{}", usage(spec));
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let bff = match start(spec, config).await {
            Ok(bff) => bff,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(bff = spec.name, config = %source, addr = %bff.addr(), admin = ?bff.admin_addr(), "listening");
        server::termination_signal().await;
        tracing::info!(
            bff = spec.name,
            "shutting down: draining in-flight requests"
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

struct Args {
    config: Option<PathBuf>,
    check: bool,
}

impl Args {
    /// `Ok(None)` means `--help` was asked for.
    fn parse(args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
        let mut out = Args {
            config: None,
            check: false,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
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
        Ok(Some(out))
    }
}

fn usage(spec: &BffSpec) -> String {
    format!(
        "usage: {name} [--config PATH] [--check]\n\n  \
         --config PATH  config file (default: {path}, else the built-in default)\n  \
         --check        validate the config, print the problems or \"ok\", exit 64 or 0\n\n\
         Any config key can be overridden from the environment: MANIFOLD_SERVER__LISTEN=0.0.0.0:8080\n\
         sets server.listen. RUST_LOG sets the log filter.",
        name = spec.name,
        path = spec.default_config_path
    )
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        Args::parse(args.iter().map(|s| s.to_string()))
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
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
