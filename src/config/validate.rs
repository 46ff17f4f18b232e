//! The validation pass: everything serde cannot check (non-zero timeouts, URLs that parse,
//! routes that name a configured upstream, ...). Returns every problem, never just the first.

use std::time::Duration;

use super::{AuthPolicy, Config, ConfigError};

impl Config {
    /// All problems with this config. `required_upstreams` are the services the BFF's own
    /// code calls, which must therefore be configured.
    pub fn validate(&self, required_upstreams: &[&str]) -> Vec<ConfigError> {
        let mut p = Problems(Vec::new());

        let s = &self.server;
        p.check(
            positive(s.request_timeout),
            "server.request_timeout".into(),
            "must be greater than 0",
        );
        p.check(
            positive(s.shutdown_timeout),
            "server.shutdown_timeout".into(),
            "must be greater than 0",
        );
        p.check(
            s.drain_delay < s.shutdown_timeout,
            "server.drain_delay".into(),
            "must be shorter than server.shutdown_timeout (the hard deadline counts from the signal)",
        );
        p.check(
            s.max_request_body.bytes() > 0,
            "server.max_request_body".into(),
            "must be greater than 0",
        );

        for (i, jwt) in self.auth.jwt.iter().enumerate() {
            let key = |field: &str| format!("auth.jwt[{i}].{field}");
            p.check(
                is_http_url(&jwt.jwks_url),
                key("jwks_url"),
                "must be an http:// or https:// URL",
            );
            p.check(!jwt.issuer.is_empty(), key("issuer"), "must not be empty");
            p.check(
                self.auth.jwt[..i].iter().all(|o| o.issuer != jwt.issuer),
                key("issuer"),
                "is used by an earlier [[auth.jwt]] entry",
            );
            p.check(
                !jwt.audience.is_empty(),
                key("audience"),
                "must not be empty",
            );
            p.check(
                jwt.leeway <= Duration::from_secs(300),
                key("leeway"),
                "must be at most 5m",
            );
            p.check(
                positive(jwt.cache_ttl),
                key("cache_ttl"),
                "must be greater than 0",
            );
            p.check(
                positive(jwt.unknown_kid_cooldown),
                key("unknown_kid_cooldown"),
                "must be greater than 0",
            );
        }
        for (i, pattern) in self.auth.strip_headers.iter().enumerate() {
            let name = pattern.strip_suffix('*').unwrap_or(pattern);
            p.check(
                !name.is_empty()
                    && !name.contains('*')
                    && http::HeaderName::from_bytes(name.as_bytes())
                        .is_ok_and(|h| h.as_str() == name),
                format!("auth.strip_headers[{i}]"),
                "must be a lowercase header name, optionally ending in '*' (a prefix)",
            );
        }
        for (id, key) in &self.auth.api_keys {
            p.check(
                key.sha256.len() == 64 && key.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
                format!("auth.api_keys.{id}.sha256"),
                "must be the 64 hex digits of the key's SHA-256",
            );
        }

        p.check(
            self.graphql.max_depth > 0,
            "graphql.max_depth".into(),
            "must be greater than 0",
        );
        p.check(
            self.graphql.max_complexity > 0,
            "graphql.max_complexity".into(),
            "must be greater than 0",
        );

        for (operation, budget) in &self.graphql.operation_timeouts {
            p.check(
                positive(*budget),
                format!("graphql.operation_timeouts.{operation}"),
                "must be greater than 0",
            );
        }

        for (name, u) in &self.upstreams {
            let key = |field: &str| format!("upstreams.{name}.{field}");
            match (&u.url, u.instances.is_empty()) {
                (None, true) => p.0.push(ConfigError::new(
                    format!("upstreams.{name}"),
                    "needs `url` or `instances`",
                )),
                (Some(_), false) => p.0.push(ConfigError::new(
                    key("instances"),
                    "give `url` or `instances`, not both",
                )),
                _ => {}
            }
            let field = if u.url.is_some() { "url" } else { "instances" };
            for url in u.endpoints() {
                if !(url.starts_with("http://") && url.parse::<http::Uri>().is_ok()) {
                    p.0.push(ConfigError::new(
                        key(field),
                        format!(
                            "{url:?} must be an http:// URL (TLS to backends is not built in yet)"
                        ),
                    ));
                }
            }
            let mut check = |ok: bool, field: &str, message: &str| p.check(ok, key(field), message);
            check(positive(u.timeout), "timeout", "must be greater than 0");
            check(
                positive(u.connect_timeout),
                "connect_timeout",
                "must be greater than 0",
            );
            check(
                u.max_response_body.bytes() > 0,
                "max_response_body",
                "must be greater than 0",
            );

            let r = &u.retry;
            check(
                (1..=10).contains(&r.attempts),
                "retry.attempts",
                "must be 1 to 10",
            );
            check(
                positive(r.backoff_base),
                "retry.backoff_base",
                "must be greater than 0",
            );
            check(
                r.backoff_max >= r.backoff_base,
                "retry.backoff_max",
                "must be at least retry.backoff_base",
            );
            check(
                (0.0..=1.0).contains(&r.budget_ratio),
                "retry.budget_ratio",
                "must be between 0 and 1",
            );
            check(
                r.budget_window >= Duration::from_secs(1),
                "retry.budget_window",
                "must be at least 1s",
            );

            let b = &u.breaker;
            check(
                b.failure_ratio > 0.0 && b.failure_ratio <= 1.0,
                "breaker.failure_ratio",
                "must be above 0 and at most 1",
            );
            check(
                b.min_calls > 0,
                "breaker.min_calls",
                "must be greater than 0",
            );
            check(
                positive(b.window),
                "breaker.window",
                "must be greater than 0",
            );
            check(
                b.consecutive_failures > 0,
                "breaker.consecutive_failures",
                "must be greater than 0",
            );
            check(
                positive(b.cool_down),
                "breaker.cool_down",
                "must be greater than 0",
            );
            check(
                b.half_open_probes > 0,
                "breaker.half_open_probes",
                "must be greater than 0",
            );

            check(
                u.bulkhead.max_concurrent > 0,
                "bulkhead.max_concurrent",
                "must be greater than 0",
            );

            let h = &u.health;
            check(
                h.path.starts_with('/'),
                "health.path",
                "must start with '/'",
            );
            check(
                positive(h.interval),
                "health.interval",
                "must be greater than 0",
            );
            check(
                positive(h.timeout),
                "health.timeout",
                "must be greater than 0",
            );
            check(
                h.unhealthy_after > 0,
                "health.unhealthy_after",
                "must be greater than 0",
            );
            check(
                h.healthy_after > 0,
                "health.healthy_after",
                "must be greater than 0",
            );

            let o = &u.outlier;
            check(
                o.consecutive_failures > 0,
                "outlier.consecutive_failures",
                "must be greater than 0",
            );
            check(
                positive(o.ejection),
                "outlier.ejection",
                "must be greater than 0",
            );
            check(
                (0.0..=1.0).contains(&o.max_ejected_ratio),
                "outlier.max_ejected_ratio",
                "must be between 0 and 1",
            );
        }
        for name in required_upstreams {
            p.check(
                self.upstreams.contains_key(*name),
                format!("upstreams.{name}"),
                "missing: this BFF calls it",
            );
        }

        for (i, r) in self.routes.iter().enumerate() {
            let key = |field: &str| format!("routes[{i}].{field}");
            p.check(
                r.prefix.starts_with('/') && r.prefix.ends_with('/') && r.prefix.len() > 1,
                key("prefix"),
                "must start and end with '/', e.g. \"/api/users/\"",
            );
            p.check(
                !r.prefix.contains(['{', '}', '*']),
                key("prefix"),
                "must be a literal path",
            );
            p.check(
                self.routes[..i]
                    .iter()
                    .all(|other| other.prefix != r.prefix),
                key("prefix"),
                "is used by an earlier route",
            );
            p.check(
                self.upstreams.contains_key(&r.upstream),
                key("upstream"),
                "names no configured upstream",
            );
            if let Some(rewrite) = &r.rewrite {
                p.check(
                    rewrite.starts_with('/') && rewrite.ends_with('/'),
                    key("rewrite"),
                    "must start and end with '/'",
                );
            }
            p.check(
                positive(r.timeout),
                key("timeout"),
                "must be greater than 0",
            );
            p.check(
                r.scopes.is_empty() || r.auth != AuthPolicy::None,
                key("scopes"),
                "needs an authenticated route (auth = \"jwt\" or \"api_key\")",
            );
            p.check(
                r.auth != AuthPolicy::Jwt || !self.auth.jwt.is_empty(),
                key("auth"),
                "is \"jwt\" but [auth.jwt] is not configured",
            );
            p.check(
                r.auth != AuthPolicy::ApiKey || !self.auth.api_keys.is_empty(),
                key("auth"),
                "is \"api_key\" but no [auth.api_keys] are configured",
            );
        }
        self.limits.validate(&mut p.0);
        self.cors.validate(&mut p.0);
        if let Some(tls) = &self.tls {
            p.0.extend(tls.validate());
        }
        p.0.extend(super::ratelimit::validate(
            &self.client_ip,
            &self.rate_limit,
        ));
        p.0.extend(super::observe::validate(&self.admin, &self.tracing));
        p.0.extend(self.cache.validate(self.upstreams.keys()));
        p.0
    }
}

struct Problems(Vec<ConfigError>);

impl Problems {
    fn check(&mut self, ok: bool, key: String, message: &str) {
        if !ok {
            self.0.push(ConfigError::new(key, message));
        }
    }
}

fn positive(d: Duration) -> bool {
    !d.is_zero()
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && s.parse::<http::Uri>().is_ok()
}
