//! Typed configuration of one BFF: what it listens on, who it trusts, which backends it
//! calls and which path prefixes it proxies.
//!
//! This module owns the shape of the config and the loading pipeline (TOML file, then
//! `MANIFOLD_*` environment overrides, then a validation pass that reports *every* problem
//! with its key path). It does not own what the values mean at run time: the modules that
//! consume each section do.

mod auth;
mod cache;
mod cors;
mod limits;
mod load;
mod observe;
mod ratelimit;
mod tls;
mod units;
mod upstream;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

pub use auth::{ApiKeyConfig, AuthConfig, JwtConfig};
pub use cache::{CacheConfig, CachePolicyConfig};
pub use cors::CorsConfig;
pub use limits::LimitsConfig;
pub use load::{ConfigError, ConfigErrors, LoadSource};
pub use observe::{AdminConfig, LogConfig, LogFormat, TracingConfig};
pub use ratelimit::{
    Cidr, ClientIpConfig, CostKind, ForwardedHeader, KeyKind, OnRedisError, RateLimitConfig,
    RuleConfig, StoreKind, TierConfig,
};
pub use tls::TlsConfig;
pub use units::ByteSize;
pub use upstream::{
    BreakerConfig, BulkheadConfig, HealthConfig, OutlierConfig, RetryConfig, UpstreamConfig,
};

/// The whole config of one BFF instance.
#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Request hygiene: URI, header and slow-client limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Cross-origin access for browser clients; off unless origins are listed.
    #[serde(default)]
    pub cors: CorsConfig,
    #[serde(default)]
    pub graphql: GraphqlConfig,
    /// Backend services by name (`users`, `orders`, ...).
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Path prefixes proxied straight to an upstream.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// TLS termination on the public listener; plain HTTP without it.
    pub tls: Option<TlsConfig>,
    /// `[client_ip]` and `[rate_limit]`: who may name the client, and how often it may call.
    #[serde(default)]
    pub client_ip: ClientIpConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// `[admin]`, `[log]`, `[tracing]`: the operator's view (metrics, dashboard, logs, spans).
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub tracing: TracingConfig,
    /// `[cache]`: entity and response cache in front of backend GETs.
    #[serde(default)]
    pub cache: CacheConfig,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ServerConfig {
    /// Address of the public listener.
    pub listen: SocketAddr,
    /// Total budget of one client request, shared by every backend call it makes.
    #[serde(default = "defaults::request_timeout", with = "units::duration")]
    pub request_timeout: Duration,
    /// The hard deadline after SIGTERM/SIGINT, counted from the signal: whatever is still
    /// running then is cut off and the process exits.
    #[serde(default = "defaults::shutdown_timeout", with = "units::duration")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM, how long the listener keeps serving new requests while `/readyz`
    /// already fails: the load balancer's deregistration lag (checks interval x fall).
    #[serde(default, with = "units::duration")]
    pub drain_delay: Duration,
    /// Largest request body the BFF reads whole (GraphQL, REST). Proxy routes stream instead.
    #[serde(default = "defaults::max_request_body")]
    pub max_request_body: ByteSize,
}

#[derive(Clone, Debug, Deserialize)]
pub struct GraphqlConfig {
    #[serde(default = "defaults::max_depth")]
    pub max_depth: usize,
    #[serde(default = "defaults::max_complexity")]
    pub max_complexity: usize,
    #[serde(default = "defaults::enabled")]
    pub introspection: bool,
    /// Request budgets by operation name, replacing `server.request_timeout` for them:
    /// `operation_timeouts = { Home = "800ms" }`.
    #[serde(default, with = "units::duration_map")]
    pub operation_timeouts: BTreeMap<String, Duration>,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: defaults::max_depth(),
            max_complexity: defaults::max_complexity(),
            introspection: true,
            operation_timeouts: BTreeMap::new(),
        }
    }
}

/// Who may use a proxy route (or any route the core guards).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthPolicy {
    /// Anyone; no identity is forwarded.
    None,
    /// A valid bearer JWT for this BFF's audience.
    #[default]
    Jwt,
    /// A partner API key.
    ApiKey,
}

/// A path prefix proxied to an upstream, streaming both ways.
#[derive(Clone, Debug, Deserialize)]
pub struct RouteConfig {
    /// Client-facing prefix, e.g. `/api/users/`.
    pub prefix: String,
    pub upstream: String,
    /// Replaces `prefix` on the way to the upstream, e.g. `/users/`.
    pub rewrite: Option<String>,
    #[serde(default)]
    pub auth: AuthPolicy,
    /// Scopes the caller must hold (all of them); 403 otherwise.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whole-exchange timeout; proxied bodies may be large, so it has its own default.
    #[serde(default = "defaults::route_timeout", with = "units::duration")]
    pub timeout: Duration,
}

mod defaults {
    use super::ByteSize;
    use std::time::Duration;

    pub fn request_timeout() -> Duration {
        Duration::from_secs(3)
    }
    pub fn shutdown_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_request_body() -> ByteSize {
        ByteSize(1 << 20)
    }
    pub fn enabled() -> bool {
        true
    }
    pub fn max_depth() -> usize {
        12
    }
    pub fn max_complexity() -> usize {
        1000
    }
    pub fn route_timeout() -> Duration {
        Duration::from_secs(30)
    }
}
