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
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            endpoint.validate(i, self, &mut p);
        }
        for (i, deprecation) in self.deprecations.iter().enumerate() {
            deprecation.validate(i, &mut p);
        }
        self.limits.validate(&mut p);
        self.admission.validate(&mut p);
        self.compression.validate(&mut p);
        self.cors.validate(&mut p);
        if let Some(tls) = &self.tls {
            tls.validate(&mut p);
        }
        p.check(
            self.auth.client_certs.is_empty()
                || self.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            "auth.client_certs",
            "needs tls.client_ca: without it no client certificate is asked for",
        );
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
             redis_ca_file = \"/nonexistent/redis-ca.pem\"\n\
             [cache]\nredis_url = \"redis://redis:6380\"\nredis_ca_file = \"/nonexistent/redis-ca.pem\"\n\
             [graphql.persisted_queries]\nredis_url = \"memcached://x\"\n\
             [upstreams.users]\nurl = \"https://users.internal\"\n\
             [upstreams.users.tls]\ncert = \"/nonexistent/client.pem\"\n\
             [upstreams.plain]\nurl = \"ftp://plain\"\n[upstreams.plain.tls]\n",
        );
        for expected in [
            "auth.jwt[0].jwks_url: must be an http:// or https:// URL",
            "auth.jwt[0].jwks_ca_file: cannot read /nonexistent/jwks-ca.pem",
            "tracing.otlp_ca_file: cannot read /nonexistent/otlp-ca.pem",
            "rate_limit.redis_ca_file: cannot read /nonexistent/redis-ca.pem",
            "cache.redis_ca_file:",
            "graphql.persisted_queries.redis_url: must be a redis:// or rediss:// URL",
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

    #[test]
    fn client_certificate_settings_name_their_key() {
        let dir = std::env::temp_dir().join(format!("manifold-client-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
        let tls = |extra: &str| {
            format!(
                "[tls]\ncert = {:?}\nkey = {:?}\n{extra}",
                cert_path.display().to_string(),
                key_path.display().to_string()
            )
        };

        let shown = problems(&tls(&format!(
            "client_ca = {:?}\n",
            garbage.display().to_string()
        )));
        assert!(shown.contains("tls.client_ca:"), "{shown}");
        let shown = problems(&tls(&format!(
            "client_ca = {:?}\nclient_crl = \"/nonexistent/crl.pem\"\n",
            cert_path.display().to_string()
        )));
        assert!(shown.contains("tls.client_crl: cannot read"), "{shown}");
        let shown = problems(&tls(&format!(
            "client_ca = {:?}\nclient_crl = {:?}\n",
            cert_path.display().to_string(),
            garbage.display().to_string()
        )));
        assert!(shown.contains("tls.client_crl:"), "{shown}");
        let shown = problems(&format!(
            "{}[auth.client_certs.acme]\ncommon_name = \"acme\"\ndns_name = \"acme.test\"\n\
             [auth.client_certs.twin]\ndns_name = \"acme.test\"\n",
            tls("client_auth = \"optional\"\nclient_crl = \"x.pem\"\n")
        ));
        for expected in [
            "tls.client_auth: needs tls.client_ca",
            "tls.client_crl: needs tls.client_ca",
            "auth.client_certs.acme: give exactly one of common_name, dns_name, uri",
            "auth.client_certs.twin: names the same certificate as auth.client_certs.acme",
            "auth.client_certs: needs tls.client_ca",
        ] {
            assert!(shown.contains(expected), "{expected} missing in:\n{shown}");
        }
        let good = problems(&format!(
            "{}[auth.client_certs.acme]\ncommon_name = \"acme\"\n",
            tls(&format!(
                "client_ca = {:?}\nclient_auth = \"optional\"\n",
                cert_path.display().to_string()
            ))
        ));
        assert_eq!(good, "");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
