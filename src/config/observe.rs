//! The operator-facing sections: `[admin]` (the admin listener serving `/metrics`, the JSON
//! admin API and the dashboard), `[log]` (access-log format) and `[tracing]` (OTLP export).
//! What they do at run time is owned by `observe`; this module owns the keys, their defaults
//! and their validation.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, units};

/// `[admin]`: a second listener for operators, loopback unless `allow_public` says otherwise.
#[derive(Clone, Debug, Deserialize)]
pub struct AdminConfig {
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Where `/metrics`, `/admin/api/*` and the dashboard are served.
    #[serde(default = "admin_listen")]
    pub listen: SocketAddr,
    /// The admin listener shows the loaded config and live internals: off loopback only when
    /// this is set deliberately (behind a firewall or a private network).
    #[serde(default)]
    pub allow_public: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: admin_listen(),
            allow_public: false,
        }
    }
}

/// `[log]`: how the access log (one line per request) and every other line are written.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// Whether one access-log line is written per request.
    #[serde(default = "enabled")]
    pub access_log: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[tracing]`: W3C trace context is always propagated; spans are exported over OTLP
/// (http/protobuf) only when an endpoint is set.
#[derive(Clone, Debug, Deserialize)]
pub struct TracingConfig {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`; spans are POSTed to
    /// `{endpoint}/v1/traces`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans; the BFF's name when absent.
    pub service_name: Option<String>,
    /// How often finished spans are sent.
    #[serde(default = "export_interval", with = "units::duration")]
    pub export_interval: Duration,
    /// Spans kept waiting for export at most; more are dropped (and counted), never queued
    /// without bound.
    #[serde(default = "max_queue")]
    pub max_queue: usize,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: None,
            export_interval: export_interval(),
            max_queue: max_queue(),
        }
    }
}

fn enabled() -> bool {
    true
}

fn admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9081))
}

fn export_interval() -> Duration {
    Duration::from_secs(1)
}

fn max_queue() -> usize {
    4096
}

/// Problems with the three sections.
pub(super) fn validate(admin: &AdminConfig, tracing: &TracingConfig) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if admin.enabled && !admin.listen.ip().is_loopback() && !admin.allow_public {
        errors.push(ConfigError::new(
            "admin.listen",
            "is not a loopback address; set admin.allow_public = true to expose the admin listener",
        ));
    }
    if let Some(endpoint) = &tracing.otlp_endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        errors.push(ConfigError::new(
            "tracing.otlp_endpoint",
            "must be an http:// or https:// URL",
        ));
    }
    if tracing.export_interval.is_zero() {
        errors.push(ConfigError::new(
            "tracing.export_interval",
            "must be greater than 0",
        ));
    }
    if tracing.max_queue == 0 {
        errors.push(ConfigError::new(
            "tracing.max_queue",
            "must be greater than 0",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_admin_listener_must_be_asked_for() {
        let mut admin = AdminConfig {
            listen: "0.0.0.0:9081".parse().unwrap(),
            ..AdminConfig::default()
        };
        let tracing = TracingConfig {
            otlp_endpoint: Some("collector:4318".into()),
            ..TracingConfig::default()
        };
        let keys: Vec<String> = validate(&admin, &tracing)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(keys[0].starts_with("admin.listen"), "{keys:?}");
        assert!(keys[1].starts_with("tracing.otlp_endpoint"), "{keys:?}");
        admin.allow_public = true;
        assert_eq!(validate(&admin, &TracingConfig::default()).len(), 0);
    }
}
