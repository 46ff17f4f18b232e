//! Config of one backend service and of every resilience policy around calls to it. Each
//! policy is one struct here and is applied in one place (`upstream::Upstream::execute`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::{Problems, is_http_url, positive};
use super::{ByteSize, ClientTlsConfig, units};

/// One backend service: one base URL (`url`) or several instances (`instances`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpstreamConfig {
    /// Base URL of a single instance, e.g. `http://127.0.0.1:9201` or `https://users.internal`.
    pub url: Option<String>,
    /// Base URLs of several instances, balanced with power-of-two-choices.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Budget of ONE try (the request's remaining budget may cut it shorter).
    #[serde(default = "defaults::timeout", with = "units::duration")]
    pub timeout: Duration,
    #[serde(default = "defaults::connect_timeout", with = "units::duration")]
    pub connect_timeout: Duration,
    /// Largest response body accepted from this service.
    #[serde(default = "defaults::max_response_body")]
    pub max_response_body: ByteSize,
    /// Idle keep-alive connections kept per instance and worker thread (one idle for 60 s is
    /// closed).
    #[serde(default = "defaults::pool_max_idle")]
    pub pool_max_idle: usize,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub bulkhead: BulkheadConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// `[upstreams.X.tls]`: roots, client certificate and server name for `https://`
    /// instances; the public roots and no client certificate when absent.
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
}

impl UpstreamConfig {
    /// A single-instance upstream with every policy at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            instances: Vec::new(),
            timeout: defaults::timeout(),
            connect_timeout: defaults::connect_timeout(),
            max_response_body: defaults::max_response_body(),
            pool_max_idle: defaults::pool_max_idle(),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            bulkhead: BulkheadConfig::default(),
            health: HealthConfig::default(),
            outlier: OutlierConfig::default(),
            tls: None,
        }
    }

    /// Whether any instance is called over TLS.
    pub fn uses_tls(&self) -> bool {
        self.endpoints()
            .iter()
            .any(|url| url.starts_with("https://"))
    }

    /// The instances' base URLs, whichever way they were written.
    pub fn endpoints(&self) -> Vec<&str> {
        self.url
            .iter()
            .map(String::as_str)
            .chain(self.instances.iter().map(String::as_str))
            .collect()
    }
}

impl UpstreamConfig {
    /// Problems with `upstreams.{name}` and each of its policies.
    pub(super) fn validate(&self, name: &str, p: &mut Problems) {
        let at = format!("upstreams.{name}");
        let key = |field: &str| format!("{at}.{field}");
        match (&self.url, self.instances.is_empty()) {
            (None, true) => p.push(at.clone(), "needs `url` or `instances`"),
            (Some(_), false) => p.push(key("instances"), "give `url` or `instances`, not both"),
            _ => {}
        }
        let field = if self.url.is_some() {
            "url"
        } else {
            "instances"
        };
        for url in self.endpoints() {
            p.check(
                is_http_url(url),
                key(field),
                format!("{url:?} must be an http:// or https:// URL"),
            );
        }
        if let Some(tls) = &self.tls {
            p.check(
                self.uses_tls(),
                key("tls"),
                "is set, but no instance is an https:// URL",
            );
            tls.validate(&key("tls"), p);
        }
        p.check(
            positive(self.timeout),
            key("timeout"),
            "must be greater than 0",
        );
        p.check(
            positive(self.connect_timeout),
            key("connect_timeout"),
            "must be greater than 0",
        );
        p.check(
            self.max_response_body.bytes() > 0,
            key("max_response_body"),
            "must be greater than 0",
        );
        self.retry.validate(&key("retry"), p);
        self.breaker.validate(&key("breaker"), p);
        p.check(
            self.bulkhead.max_concurrent > 0,
            key("bulkhead.max_concurrent"),
            "must be greater than 0",
        );
        if self.bulkhead.adaptive && self.bulkhead.max_concurrent > 0 {
            p.check(
                (1..=self.bulkhead.max_concurrent).contains(&self.bulkhead.min_concurrent),
                key("bulkhead.min_concurrent"),
                "must be between 1 and max_concurrent",
            );
            p.check(
                self.bulkhead.tolerance >= 1.0,
                key("bulkhead.tolerance"),
                "must be at least 1",
            );
        }
        self.health.validate(&key("health"), p);
        self.outlier.validate(&key("outlier"), p);
    }
}

/// Retries of idempotent calls: exponential backoff with full jitter, never past the
/// request's deadline, paid from a budget so an outage never multiplies load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RetryConfig {
    /// Tries in all, the first included; 1 disables retries.
    pub attempts: u32,
    #[serde(with = "units::duration")]
    pub backoff_base: Duration,
    #[serde(with = "units::duration")]
    pub backoff_max: Duration,
    /// Retries may add at most this fraction to the calls clients caused...
    pub budget_ratio: f64,
    /// ...plus this many per second, so a quiet service can still retry.
    pub budget_min_per_second: u32,
    /// Period over which calls and retries are counted.
    #[serde(with = "units::duration")]
    pub budget_window: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(200),
            budget_ratio: 0.2,
            budget_min_per_second: 5,
            budget_window: Duration::from_secs(10),
        }
    }
}

impl RetryConfig {
    /// Problems with the policy at key path `at` (`upstreams.accounts.retry`).
    fn validate(&self, at: &str, p: &mut Problems) {
        let key = |field: &str| format!("{at}.{field}");
        p.check(
            (1..=10).contains(&self.attempts),
            key("attempts"),
            "must be 1 to 10",
        );
        p.check(
            positive(self.backoff_base),
            key("backoff_base"),
            "must be greater than 0",
        );
        p.check(
            self.backoff_max >= self.backoff_base,
            key("backoff_max"),
            "must be at least retry.backoff_base",
        );
        p.check(
            (0.0..=1.0).contains(&self.budget_ratio),
            key("budget_ratio"),
            "must be between 0 and 1",
        );
        p.check(
            self.budget_window >= Duration::from_secs(1),
            key("budget_window"),
            "must be at least 1s",
        );
    }
}

/// Circuit breaker, one per instance. Only server faults and timeouts count as failures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct BreakerConfig {
    pub enabled: bool,
    /// Opens when this fraction of the calls in the window failed...
    pub failure_ratio: f64,
    /// ...once the window holds at least this many calls...
    pub min_calls: u32,
    #[serde(with = "units::duration")]
    pub window: Duration,
    /// ...or after this many failures in a row.
    pub consecutive_failures: u32,
    /// How long it stays open before letting probes through. Each failed probe doubles it
    /// (with jitter, so instances do not probe in step), up to `max_cool_down`; closing
    /// resets it.
    #[serde(with = "units::duration")]
    pub cool_down: Duration,
    #[serde(with = "units::duration")]
    pub max_cool_down: Duration,
    /// Probes allowed at once when half-open; that many successes close it.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_ratio: 0.5,
            min_calls: 20,
            window: Duration::from_secs(10),
            consecutive_failures: 5,
            cool_down: Duration::from_secs(5),
            max_cool_down: Duration::from_secs(60),
            half_open_probes: 1,
        }
    }
}

impl BreakerConfig {
    /// Problems with the policy at key path `at` (`upstreams.accounts.breaker`).
    fn validate(&self, at: &str, p: &mut Problems) {
        let key = |field: &str| format!("{at}.{field}");
        p.check(
            self.failure_ratio > 0.0 && self.failure_ratio <= 1.0,
            key("failure_ratio"),
            "must be above 0 and at most 1",
        );
        p.check(
            self.min_calls > 0,
            key("min_calls"),
            "must be greater than 0",
        );
        p.check(
            positive(self.window),
            key("window"),
            "must be greater than 0",
        );
        p.check(
            self.consecutive_failures > 0,
            key("consecutive_failures"),
            "must be greater than 0",
        );
        p.check(
            positive(self.cool_down),
            key("cool_down"),
            "must be greater than 0",
        );
        p.check(
            self.max_cool_down >= self.cool_down,
            key("max_cool_down"),
            "must be at least cool_down",
        );
        p.check(
            self.half_open_probes > 0,
            key("half_open_probes"),
            "must be greater than 0",
        );
    }
}

/// Concurrency cap per upstream: calls over it fail fast (503 with `Retry-After` on a proxy
/// route) instead of queueing. With `adaptive`, the cap starts at `max_concurrent` and
/// follows the backend (`upstream::limit`): it shrinks, down to `min_concurrent`, while the
/// backend answers slower than `tolerance` times its best recent latency or says it is
/// overloaded, and grows back while it is fast again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct BulkheadConfig {
    pub max_concurrent: usize,
    pub adaptive: bool,
    pub min_concurrent: usize,
    pub tolerance: f64,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 512,
            adaptive: true,
            min_concurrent: 64,
            tolerance: 1.5,
        }
    }
}

/// Active health checks: `GET path` on every instance at an interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct HealthConfig {
    pub enabled: bool,
    pub path: String,
    #[serde(with = "units::duration")]
    pub interval: Duration,
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Failed checks in a row that take an instance out.
    pub unhealthy_after: u32,
    /// Passed checks in a row that bring it back.
    pub healthy_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/healthz".into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            unhealthy_after: 2,
            healthy_after: 1,
        }
    }
}

impl HealthConfig {
    /// Problems with the policy at key path `at` (`upstreams.accounts.health`).
    fn validate(&self, at: &str, p: &mut Problems) {
        let key = |field: &str| format!("{at}.{field}");
        p.check(
            self.path.starts_with('/'),
            key("path"),
            "must start with '/'",
        );
        p.check(
            positive(self.interval),
            key("interval"),
            "must be greater than 0",
        );
        p.check(
            positive(self.timeout),
            key("timeout"),
            "must be greater than 0",
        );
        p.check(
            self.unhealthy_after > 0,
            key("unhealthy_after"),
            "must be greater than 0",
        );
        p.check(
            self.healthy_after > 0,
            key("healthy_after"),
            "must be greater than 0",
        );
    }
}

/// Passive outlier ejection: an instance failing calls in a row is left out for a while.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct OutlierConfig {
    pub consecutive_failures: u32,
    #[serde(with = "units::duration")]
    pub ejection: Duration,
    /// Never eject more than this share of the instances.
    pub max_ejected_ratio: f64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 3,
            ejection: Duration::from_secs(10),
            max_ejected_ratio: 0.5,
        }
    }
}

impl OutlierConfig {
    /// Problems with the policy at key path `at` (`upstreams.accounts.outlier`).
    fn validate(&self, at: &str, p: &mut Problems) {
        let key = |field: &str| format!("{at}.{field}");
        p.check(
            self.consecutive_failures > 0,
            key("consecutive_failures"),
            "must be greater than 0",
        );
        p.check(
            positive(self.ejection),
            key("ejection"),
            "must be greater than 0",
        );
        p.check(
            (0.0..=1.0).contains(&self.max_ejected_ratio),
            key("max_ejected_ratio"),
            "must be between 0 and 1",
        );
    }
}

mod defaults {
    use super::ByteSize;
    use std::time::Duration;

    pub fn timeout() -> Duration {
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
}
