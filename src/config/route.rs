//! `[[routes]]`: path prefixes proxied straight to an upstream, and who may use them.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::{Problems, positive};
use super::{ByteSize, Config, units};

/// Who may use a proxy route (or any route the core guards).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RouteConfig {
    /// Client-facing prefix, e.g. `/api/accounts/`.
    pub prefix: String,
    pub upstream: String,
    /// Replaces `prefix` on the way to the upstream, e.g. `/accounts/`.
    pub rewrite: Option<String>,
    #[serde(default)]
    pub auth: AuthPolicy,
    /// Scopes the caller must hold (all of them); 403 otherwise.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whole-exchange timeout; proxied bodies may be large, so it has its own default.
    #[serde(default = "route_timeout", with = "units::duration")]
    pub timeout: Duration,
    /// Largest request body the route accepts (declared or streamed); larger is 413. Unset:
    /// `[limits] max_proxy_body`.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// Compress the backend's answers here as `[compression]` says. Off by default: a
    /// proxied body goes out as the backend encoded it (the client's `Accept-Encoding`
    /// reaches the backend, which may compress it itself).
    #[serde(default)]
    pub compress: bool,
}

fn route_timeout() -> Duration {
    Duration::from_secs(30)
}

impl RouteConfig {
    /// Problems with `routes[i]`; `config` holds the upstreams and credentials it refers to.
    pub(super) fn validate(&self, i: usize, config: &Config, p: &mut Problems) {
        let key = |field: &str| format!("routes[{i}].{field}");
        let prefix = &self.prefix;
        p.check(
            prefix.starts_with('/') && prefix.ends_with('/') && prefix.len() > 1,
            key("prefix"),
            "must start and end with '/', e.g. \"/api/accounts/\"",
        );
        p.check(
            !prefix.contains(['{', '}', '*']),
            key("prefix"),
            "must be a literal path",
        );
        p.check(
            config.routes[..i]
                .iter()
                .all(|other| other.prefix != *prefix),
            key("prefix"),
            "is used by an earlier route",
        );
        p.check(
            config.upstreams.contains_key(&self.upstream),
            key("upstream"),
            "names no configured upstream",
        );
        if let Some(rewrite) = &self.rewrite {
            p.check(
                rewrite.starts_with('/') && rewrite.ends_with('/'),
                key("rewrite"),
                "must start and end with '/'",
            );
        }
        p.check(
            positive(self.timeout),
            key("timeout"),
            "must be greater than 0",
        );
        p.check(
            self.max_body.is_none_or(|b| b.bytes() > 0),
            key("max_body"),
            "must be greater than 0",
        );
        p.check(
            self.scopes.is_empty() || self.auth != AuthPolicy::None,
            key("scopes"),
            "needs an authenticated route (auth = \"jwt\" or \"api_key\")",
        );
        p.check(
            self.auth != AuthPolicy::Jwt || !config.auth.jwt.is_empty(),
            key("auth"),
            "is \"jwt\" but [auth.jwt] is not configured",
        );
        p.check(
            self.auth != AuthPolicy::ApiKey || !config.auth.api_keys.is_empty(),
            key("auth"),
            "is \"api_key\" but no [auth.api_keys] are configured",
        );
    }
}
