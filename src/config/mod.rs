//! Typed configuration of one BFF: what it listens on, who it trusts, which backends it
//! calls and which path prefixes it proxies.
//!
//! This module owns the shape of the config and the loading pipeline (TOML file, then
//! `MANIFOLD_*` environment overrides, then a validation pass that reports *every* problem
//! with its key path). It does not own what the values mean at run time: the modules that
//! consume each section do.

mod load;
mod ratelimit;
mod units;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

pub use load::{ConfigError, ConfigErrors, LoadSource};
pub use ratelimit::{
    Cidr, ClientIpConfig, CostKind, ForwardedHeader, KeyKind, OnRedisError, RateLimitConfig,
    RuleConfig, StoreKind, TierConfig,
};
pub use units::ByteSize;

/// The whole config of one BFF instance.
#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub graphql: GraphqlConfig,
    /// Backend services by name (`users`, `orders`, ...).
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Path prefixes proxied straight to an upstream.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// `[client_ip]` and `[rate_limit]`: who may name the client, and how often it may call.
    #[serde(default)]
    pub client_ip: ClientIpConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ServerConfig {
    /// Address of the public listener.
    pub listen: SocketAddr,
    /// Total budget of one client request, shared by every backend call it makes.
    #[serde(default = "defaults::request_timeout", with = "units::duration")]
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[serde(default = "defaults::shutdown_timeout", with = "units::duration")]
    pub shutdown_timeout: Duration,
    /// Largest request body the BFF reads whole (GraphQL, REST). Proxy routes stream instead.
    #[serde(default = "defaults::max_request_body")]
    pub max_request_body: ByteSize,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuthConfig {
    /// Bearer JWTs, checked against the issuer's JWKS.
    pub jwt: Option<JwtConfig>,
    /// Partner API keys by key id. Only hashes are stored.
    #[serde(default)]
    pub api_keys: BTreeMap<String, ApiKeyConfig>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct JwtConfig {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` / `nbf`.
    #[serde(default = "defaults::leeway", with = "units::duration")]
    pub leeway: Duration,
    /// How often the JWKS is fetched again in the background.
    #[serde(default = "defaults::jwks_refresh", with = "units::duration")]
    pub refresh_interval: Duration,
    /// Least time between two fetches caused by tokens with an unknown `kid`.
    #[serde(default = "defaults::jwks_cooldown", with = "units::duration")]
    pub unknown_kid_cooldown: Duration,
}

/// One partner API key. `sha256` is the hex SHA-256 of the key's plain text.
#[derive(Clone, Deserialize)]
pub struct ApiKeyConfig {
    pub sha256: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// Rate-limit tier of this partner (`[rate_limit.tiers.NAME]`).
    #[serde(default)]
    pub tier: Option<String>,
}

impl fmt::Debug for ApiKeyConfig {
    // A hash of a partner key is still a credential to brute-force offline: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("sha256", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("enabled", &self.enabled)
            .field("tier", &self.tier)
            .finish()
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct GraphqlConfig {
    #[serde(default = "defaults::max_depth")]
    pub max_depth: usize,
    #[serde(default = "defaults::max_complexity")]
    pub max_complexity: usize,
    #[serde(default = "defaults::enabled")]
    pub introspection: bool,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: defaults::max_depth(),
            max_complexity: defaults::max_complexity(),
            introspection: true,
        }
    }
}

/// One backend service.
#[derive(Clone, Debug, Deserialize)]
pub struct UpstreamConfig {
    /// Base URL, e.g. `http://127.0.0.1:9101`.
    pub url: String,
    /// Per-call timeout (the request's remaining budget may cut it shorter).
    #[serde(default = "defaults::upstream_timeout", with = "units::duration")]
    pub timeout: Duration,
    #[serde(default = "defaults::connect_timeout", with = "units::duration")]
    pub connect_timeout: Duration,
    /// Largest response body accepted from this service.
    #[serde(default = "defaults::max_response_body")]
    pub max_response_body: ByteSize,
    /// Idle keep-alive connections kept per host.
    #[serde(default = "defaults::pool_max_idle")]
    pub pool_max_idle: usize,
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
    pub fn leeway() -> Duration {
        Duration::from_secs(30)
    }
    pub fn jwks_refresh() -> Duration {
        Duration::from_secs(300)
    }
    pub fn jwks_cooldown() -> Duration {
        Duration::from_secs(30)
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
    pub fn upstream_timeout() -> Duration {
        Duration::from_secs(1)
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_millis(250)
    }
    pub fn max_response_body() -> ByteSize {
        ByteSize(4 << 20)
    }
    pub fn pool_max_idle() -> usize {
        256
    }
    pub fn route_timeout() -> Duration {
        Duration::from_secs(30)
    }
}
