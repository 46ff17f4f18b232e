//! Typed configuration of one BFF: what it listens on, who it trusts, which backends it
//! calls and which path prefixes it proxies.
//!
//! This module owns the shape of the config and the loading pipeline (TOML file, then
//! `MANIFOLD_*` environment overrides, then a validation pass that reports *every* problem
//! with its key path). It does not own what the values mean at run time: the modules that
//! consume each section do.

mod admission;
mod auth;
mod cache;
mod client_ca;
mod client_tls;
mod compression;
mod cors;
mod deprecation;
mod endpoint;
mod env;
mod graphql;
mod keypath;
mod limits;
mod load;
mod observe;
mod persisted;
mod places;
mod quota;
mod ratelimit;
mod recover;
mod redis_endpoint;
mod route;
mod schema;
mod secret;
mod server;
mod tls;
mod units;
mod upstream;
mod validate;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use admission::AdmissionConfig;
pub use auth::{ApiKeyConfig, AuthConfig, ClientCertConfig, JwtConfig};
pub use cache::{CacheConfig, CachePolicyConfig};
pub use client_tls::{
    ClientTlsConfig, ClientTlsError, ca_client_config, ca_roots, load_ca_bundle, parse_ca_bundle,
};
pub use compression::{CompressionConfig, CompressionLevel};
pub use cors::CorsConfig;
pub use deprecation::{DeprecationConfig, epoch_seconds, http_date};
pub use endpoint::{
    CallConfig, DEGRADED, EndpointConfig, FIELDS, JoinConfig, Part, Reference, Step,
    parse_template, path_params,
};
pub use graphql::{GraphqlConfig, GraphqlMode};
pub use limits::{LimitsConfig, PathSemicolons};
pub use load::{ConfigError, ConfigErrors, LoadSource, Located, Origin};
pub use observe::{AdminConfig, LogConfig, LogFormat, OtlpCompression, TracingConfig};
pub use persisted::{PersistedQueriesConfig, TrustedDocuments};
pub use quota::{Period, QuotaConfig};
pub use ratelimit::{
    Cidr, ClientIpConfig, CostKind, ForwardedHeader, KeyKind, OnRedisError, RateLimitConfig,
    RuleConfig, StoreKind, TierConfig,
};
pub use redis_endpoint::RedisEndpoint;
pub use route::{AuthPolicy, RouteConfig};
pub use schema::json_schema;
pub use secret::{REDACTED, Secret, SecretUrl};
pub use server::{Runtime, ServerConfig};
pub use tls::{
    ClientAuth, ClientCaFiles, PemError, PemFile, PemPair, TlsConfig, crypto_provider,
    load_certified_key,
};
pub use units::ByteSize;
pub use upstream::{
    BreakerConfig, BulkheadConfig, HealthConfig, OutlierConfig, RetryConfig, UpstreamConfig,
};

/// The whole config of one BFF instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Request hygiene: URI, header and slow-client limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[admission]`: the adaptive limit on requests worked on at once.
    #[serde(default)]
    pub admission: AdmissionConfig,
    /// `[compression]`: answers compressed as `Accept-Encoding` allows.
    #[serde(default)]
    pub compression: CompressionConfig,
    /// Cross-origin access for browser clients; off unless origins are listed.
    #[serde(default)]
    pub cors: CorsConfig,
    #[serde(default)]
    pub graphql: GraphqlConfig,
    /// Backend services by name (`accounts`, `invoices`, ...).
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Path prefixes proxied straight to an upstream.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Aggregate endpoints declared in config (`compose`).
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    /// Routes that announce their end (`Deprecation`, `Sunset`).
    #[serde(default)]
    pub deprecations: Vec<DeprecationConfig>,
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

/// Test support: the problems `--check` would report for a config of `[server]` plus `extra`
/// (empty when it is valid), each as `key: message`.
#[cfg(test)]
pub(crate) fn problems_with(extra: &str) -> Vec<String> {
    let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n{extra}");
    match Config::parse(&text, "test", Vec::new(), &[]) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}
