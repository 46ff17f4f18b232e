//! The operator-facing sections: `[admin]` (the admin listener serving `/metrics`, the JSON
//! admin API and the dashboard), `[log]` (access-log format) and `[tracing]` (OTLP export).
//! What they do at run time is owned by `observe`; this module owns the keys, their defaults
//! and their validation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::{Problems, is_http_url};
use super::{Secret, ca_client_config, units};

/// `[admin]`: a second listener for operators. It shows the loaded config and live
/// internals and reloads the config, so off loopback it needs a bearer token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdminConfig {
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Where `/metrics`, `/admin/api/*`, `/admin/reload` and the dashboard are served.
    #[serde(default = "admin_listen")]
    pub listen: SocketAddr,
    /// When set, every admin request (`/metrics` included) must carry
    /// `Authorization: Bearer <token>`; required when `listen` is not a loopback address.
    #[serde(default)]
    pub token: Option<Secret>,
    /// A file holding the token instead (a mounted Kubernetes Secret): read on each request,
    /// so a rotated token applies without a restart. Surrounding whitespace is ignored.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: admin_listen(),
            token: None,
            token_file: None,
        }
    }
}

/// `admin.allow_public` is gone: exposure now takes a token, not a switch.
pub(super) const REMOVED_ALLOW_PUBLIC: (&str, &str) = (
    "admin.allow_public",
    "removed: set admin.token (or admin.token_file) instead; an admin listener off loopback \
     requires it, and every request must send Authorization: Bearer <token>",
);

/// The shortest admin token accepted: a guessable one would guard nothing.
const MIN_TOKEN_LEN: usize = 16;

/// `[log]`: how the access log (one line per request) and every other line are written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// Whether one access-log line is written per request.
    #[serde(default = "enabled")]
    pub access_log: bool,
    /// Whether health and readiness probes get access-log lines too.
    #[serde(default)]
    pub probes: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[tracing]`: W3C trace context is always propagated; spans are exported over OTLP
/// (http/protobuf) when an endpoint is set, here or in `OTEL_EXPORTER_OTLP_ENDPOINT` /
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TracingConfig {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`; spans are POSTed to
    /// `{endpoint}/v1/traces`.
    pub otlp_endpoint: Option<String>,
    /// PEM bundle of the CAs trusted for an `https://` collector, instead of the public roots.
    #[serde(default)]
    pub otlp_ca_file: Option<PathBuf>,
    /// `service.name` of the exported spans; `OTEL_SERVICE_NAME`, else the BFF's name, when
    /// absent.
    pub service_name: Option<String>,
    /// `deployment.environment` of the exported spans (`production`, `staging`).
    #[serde(default)]
    pub environment: Option<String>,
    /// The share of new traces exported (0 to 1); a client's `traceparent` decides for its
    /// own trace (`ParentBased(TraceIdRatioBased)`).
    #[serde(default = "sample_ratio")]
    pub sample_ratio: f64,
    /// Headers sent with every export, e.g. a SaaS backend's API key (redacted wherever the
    /// config is shown).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: OtlpCompression,
    /// One export attempt's budget; failed exports are retried with backoff within it.
    #[serde(default = "export_timeout", with = "units::duration")]
    pub timeout: Duration,
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
            otlp_ca_file: None,
            service_name: None,
            environment: None,
            sample_ratio: sample_ratio(),
            headers: BTreeMap::new(),
            compression: OtlpCompression::default(),
            timeout: export_timeout(),
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

/// How export bodies are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OtlpCompression {
    #[default]
    Gzip,
    None,
}

fn sample_ratio() -> f64 {
    1.0
}

fn export_timeout() -> Duration {
    Duration::from_secs(10)
}

fn export_interval() -> Duration {
    Duration::from_secs(1)
}

fn max_queue() -> usize {
    4096
}

impl AdminConfig {
    /// The token requests must send, if any: `token`, else the contents of `token_file`.
    pub fn token(&self) -> std::io::Result<Option<Secret>> {
        if let Some(token) = &self.token {
            return Ok(Some(token.clone()));
        }
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)?;
        Ok(Some(Secret::from(text.trim())))
    }

    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.token.is_none() || self.token_file.is_none(),
            "admin.token_file",
            "give admin.token or admin.token_file, not both",
        );
        let token = match self.token() {
            Ok(token) => token,
            Err(e) => {
                let file = self
                    .token_file
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""));
                p.push(
                    "admin.token_file",
                    format!("cannot read {}: {e}", file.display()),
                );
                return;
            }
        };
        if let Some(token) = &token {
            let key = if self.token.is_some() {
                "admin.token"
            } else {
                "admin.token_file"
            };
            p.check(
                token.expose().len() >= MIN_TOKEN_LEN,
                key,
                format!("must be at least {MIN_TOKEN_LEN} characters"),
            );
        }
        p.check(
            !self.enabled || self.listen.ip().is_loopback() || token.is_some(),
            "admin.token",
            format!(
                "is required: admin.listen ({}) is not a loopback address, and the admin \
                 listener shows the config and reloads it (set admin.token or admin.token_file)",
                self.listen
            ),
        );
    }
}

impl TracingConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.otlp_endpoint
                .as_ref()
                .is_none_or(|endpoint| is_http_url(endpoint)),
            "tracing.otlp_endpoint",
            "must be an http:// or https:// URL",
        );
        if let Err(e) = ca_client_config(self.otlp_ca_file.as_deref(), "otlp_ca_file") {
            p.push(format!("tracing.{}", e.key()), e.to_string());
        }
        p.check(
            !self.export_interval.is_zero(),
            "tracing.export_interval",
            "must be greater than 0",
        );
        p.check(
            self.max_queue != 0,
            "tracing.max_queue",
            "must be greater than 0",
        );
        p.check(
            (0.0..=1.0).contains(&self.sample_ratio),
            "tracing.sample_ratio",
            "must be between 0 and 1",
        );
        p.check(
            !self.timeout.is_zero(),
            "tracing.timeout",
            "must be greater than 0",
        );
        for (name, value) in &self.headers {
            p.check(
                http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                    && http::HeaderValue::from_str(value.expose()).is_ok(),
                format!("tracing.headers.{name}"),
                "is not a valid header",
            );
        }
    }
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
        let validate = |admin: &AdminConfig, tracing: &TracingConfig| {
            let mut p = Problems::default();
            admin.validate(&mut p);
            tracing.validate(&mut p);
            p.0.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        let keys = validate(&admin, &tracing);
        assert!(keys[0].starts_with("admin.token: is required"), "{keys:?}");
        assert!(keys[1].starts_with("tracing.otlp_endpoint"), "{keys:?}");
        admin.token = Some("short".into());
        let keys = validate(&admin, &TracingConfig::default());
        assert!(
            keys[0].starts_with("admin.token: must be at least"),
            "{keys:?}"
        );
        admin.token = Some("a-token-of-some-length".into());
        assert_eq!(validate(&admin, &TracingConfig::default()).len(), 0);
        admin.token = None;
        admin.token_file = Some("/nonexistent/admin-token".into());
        let keys = validate(&admin, &TracingConfig::default());
        assert!(
            keys[0].starts_with("admin.token_file: cannot read"),
            "{keys:?}"
        );
    }
}
