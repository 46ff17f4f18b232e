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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// The keys of every problem `text` (after a `[server]` section) has.
    fn problems(text: &str) -> String {
        let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n{text}");
        match Config::parse(&text, "test", Vec::new(), &[]) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn what_cannot_start_never_passes_the_check() {
        let shown = problems(
            "[auth.jwt]\njwks_url = \"ftp://idp/jwks\"\nissuer = \"a\"\naudience = \"b\"\n\
             jwks_ca_file = \"/nonexistent/jwks-ca.pem\"\n\
             [tracing]\notlp_endpoint = \"https://collector:4318\"\notlp_ca_file = \"/nonexistent/otlp-ca.pem\"\n\
             [rate_limit]\nstore = \"redis\"\nredis_url = \"rediss://redis:6380\"\n\
             [cache]\nredis_url = \"rediss://redis:6380\"\n\
             [graphql.persisted_queries]\nredis_url = \"memcached://x\"\n\
             [upstreams.users]\nurl = \"https://users.internal\"\n\
             [upstreams.users.tls]\ncert = \"/nonexistent/client.pem\"\n\
             [upstreams.plain]\nurl = \"ftp://plain\"\n[upstreams.plain.tls]\n",
        );
        for expected in [
            "auth.jwt[0].jwks_url: must be an http:// or https:// URL",
            "auth.jwt[0].jwks_ca_file: cannot read /nonexistent/jwks-ca.pem",
            "tracing.otlp_ca_file: cannot read /nonexistent/otlp-ca.pem",
            "rate_limit.redis_url: rediss:// (Redis over TLS) is not supported by this build",
            "cache.redis_url: rediss:// (Redis over TLS) is not supported by this build",
            "graphql.persisted_queries.redis_url: must be a redis:// URL",
            "upstreams.users.tls.key: is required with `cert`",
            "upstreams.plain.url: \"ftp://plain\" must be an http:// or https:// URL",
            "upstreams.plain.tls: is set, but no instance is an https:// URL",
        ] {
            assert!(shown.contains(expected), "{expected} missing in:\n{shown}");
        }
    }

    #[test]
    fn https_backends_jwks_and_collectors_pass_with_the_public_roots() {
        let shown = problems(
            "[auth.jwt]\njwks_url = \"https://idp.example/jwks\"\nissuer = \"a\"\naudience = \"b\"\n\
             [tracing]\notlp_endpoint = \"https://collector:4318\"\n\
             [upstreams.users]\ninstances = [\"https://10.0.0.1\", \"http://10.0.0.2\"]\n\
             [upstreams.users.tls]\nserver_name = \"users.internal\"\n",
        );
        assert_eq!(shown, "");
    }
}
