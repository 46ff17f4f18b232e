//! The validation pass: everything serde cannot check (non-zero timeouts, URLs that parse,
//! routes that name a configured upstream, ...). Each section checks itself next to its type;
//! this module runs them in order and collects every problem, never just the first.

use std::time::Duration;

use super::{Config, ConfigError};

impl Config {
    /// All problems with this config. `required_upstreams` are the services the BFF's own
    /// code calls, which must therefore be configured.
    pub fn validate(&self, required_upstreams: &[&str]) -> Vec<ConfigError> {
        let mut p = Problems(Vec::new());
        self.server.validate(&mut p);
        self.auth.validate(&mut p);
        self.graphql.validate(&mut p);
        for (name, upstream) in &self.upstreams {
            upstream.validate(name, &mut p);
        }
        for name in required_upstreams {
            p.check(
                self.upstreams.contains_key(*name),
                format!("upstreams.{name}"),
                "missing: this BFF calls it",
            );
        }
        for (i, route) in self.routes.iter().enumerate() {
            route.validate(i, self, &mut p);
        }
        self.limits.validate(&mut p);
        self.admission.validate(&mut p);
        self.compression.validate(&mut p);
        self.cors.validate(&mut p);
        if let Some(tls) = &self.tls {
            tls.validate(&mut p);
        }
        // `[client_ip]` has nothing left to check: every address block was parsed already.
        self.rate_limit.validate(&mut p);
        self.admin.validate(&mut p);
        self.tracing.validate(&mut p);
        self.cache.validate(&self.upstreams, &mut p);
        p.0
    }
}

/// The problems found so far, in the order the checks ran.
#[derive(Debug, Default)]
pub(super) struct Problems(pub(super) Vec<ConfigError>);

impl Problems {
    /// Notes `message` about `key` unless `ok`.
    pub(super) fn check(&mut self, ok: bool, key: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.push(key, message);
        }
    }

    pub(super) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(key, message));
    }
}

pub(super) fn positive(d: Duration) -> bool {
    !d.is_zero()
}

pub(super) fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && s.parse::<http::Uri>().is_ok()
}
