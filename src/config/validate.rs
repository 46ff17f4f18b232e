//! The validation pass: everything serde cannot check (non-zero timeouts, URLs that parse,
//! routes that name a configured upstream, ...). Returns every problem, never just the first.

use std::time::Duration;

use super::{AuthPolicy, Config, ConfigError};

impl Config {
    /// All problems with this config. `required_upstreams` are the services the BFF's own
    /// code calls, which must therefore be configured.
    pub fn validate(&self, required_upstreams: &[&str]) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: String, message: &str| {
            if !ok {
                errors.push(ConfigError::new(key, message));
            }
        };

        let s = &self.server;
        check(
            positive(s.request_timeout),
            "server.request_timeout".into(),
            "must be greater than 0",
        );
        check(
            positive(s.shutdown_timeout),
            "server.shutdown_timeout".into(),
            "must be greater than 0",
        );
        check(
            s.max_request_body.bytes() > 0,
            "server.max_request_body".into(),
            "must be greater than 0",
        );

        if let Some(jwt) = &self.auth.jwt {
            check(
                is_http_url(&jwt.jwks_url),
                "auth.jwt.jwks_url".into(),
                "must be an http:// or https:// URL",
            );
            check(
                !jwt.issuer.is_empty(),
                "auth.jwt.issuer".into(),
                "must not be empty",
            );
            check(
                !jwt.audience.is_empty(),
                "auth.jwt.audience".into(),
                "must not be empty",
            );
            check(
                jwt.leeway <= Duration::from_secs(300),
                "auth.jwt.leeway".into(),
                "must be at most 5m",
            );
            check(
                positive(jwt.refresh_interval),
                "auth.jwt.refresh_interval".into(),
                "must be greater than 0",
            );
        }
        for (id, key) in &self.auth.api_keys {
            check(
                key.sha256.len() == 64 && key.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
                format!("auth.api_keys.{id}.sha256"),
                "must be the 64 hex digits of the key's SHA-256",
            );
        }

        check(
            self.graphql.max_depth > 0,
            "graphql.max_depth".into(),
            "must be greater than 0",
        );
        check(
            self.graphql.max_complexity > 0,
            "graphql.max_complexity".into(),
            "must be greater than 0",
        );

        for (name, u) in &self.upstreams {
            let key = |field: &str| format!("upstreams.{name}.{field}");
            check(
                u.url.starts_with("http://") && u.url.parse::<http::Uri>().is_ok(),
                key("url"),
                "must be an http:// URL (TLS to backends is not built in yet)",
            );
            check(
                positive(u.timeout),
                key("timeout"),
                "must be greater than 0",
            );
            check(
                positive(u.connect_timeout),
                key("connect_timeout"),
                "must be greater than 0",
            );
            check(
                u.max_response_body.bytes() > 0,
                key("max_response_body"),
                "must be greater than 0",
            );
        }
        for name in required_upstreams {
            check(
                self.upstreams.contains_key(*name),
                format!("upstreams.{name}"),
                "missing: this BFF calls it",
            );
        }

        for (i, r) in self.routes.iter().enumerate() {
            let key = |field: &str| format!("routes[{i}].{field}");
            check(
                r.prefix.starts_with('/') && r.prefix.ends_with('/') && r.prefix.len() > 1,
                key("prefix"),
                "must start and end with '/', e.g. \"/api/users/\"",
            );
            check(
                !r.prefix.contains(['{', '}', '*']),
                key("prefix"),
                "must be a literal path",
            );
            check(
                self.routes[..i]
                    .iter()
                    .all(|other| other.prefix != r.prefix),
                key("prefix"),
                "is used by an earlier route",
            );
            check(
                self.upstreams.contains_key(&r.upstream),
                key("upstream"),
                "names no configured upstream",
            );
            if let Some(rewrite) = &r.rewrite {
                check(
                    rewrite.starts_with('/') && rewrite.ends_with('/'),
                    key("rewrite"),
                    "must start and end with '/'",
                );
            }
            check(
                positive(r.timeout),
                key("timeout"),
                "must be greater than 0",
            );
            check(
                r.auth != AuthPolicy::Jwt || self.auth.jwt.is_some(),
                key("auth"),
                "is \"jwt\" but [auth.jwt] is not configured",
            );
            check(
                r.auth != AuthPolicy::ApiKey || !self.auth.api_keys.is_empty(),
                key("auth"),
                "is \"api_key\" but no [auth.api_keys] are configured",
            );
        }
        errors.extend(super::ratelimit::validate(
            &self.client_ip,
            &self.rate_limit,
        ));
        errors
    }
}

fn positive(d: Duration) -> bool {
    !d.is_zero()
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && s.parse::<http::Uri>().is_ok()
}
