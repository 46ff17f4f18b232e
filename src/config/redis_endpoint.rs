//! How a shared store reaches its Redis. Each section with a `redis_url` (`[rate_limit]`,
//! `[cache]`, `[graphql.persisted_queries]`) has two keys beside it: `redis_ca_file`, a PEM
//! bundle that a `rediss://` server's certificate must chain to (the platform's roots
//! without it), and `redis_cluster = true` when the URL is one node of a Redis Cluster (the
//! others are discovered from it). The three sections are checked here, by one function, so
//! `--check` says the same about each, and it builds the client the gateway would build: a
//! URL passes only when this binary can connect to it.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::secret::SecretUrl;
use super::validate::Problems;

/// One shared store's Redis: a node, or a seed node of a Cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisEndpoint {
    /// `redis://` or `rediss://` (TLS), credentials included.
    pub url: SecretUrl,
    /// PEM certificates a `rediss://` server is verified against instead of the platform's.
    pub ca_file: Option<PathBuf>,
    /// The URL names one node of a Redis Cluster.
    pub cluster: bool,
}

impl RedisEndpoint {
    /// The endpoint of a section, when it has a URL.
    pub fn of(url: Option<&SecretUrl>, ca_file: Option<&Path>, cluster: bool) -> Option<Self> {
        Some(Self {
            url: url?.clone(),
            ca_file: ca_file.map(Path::to_path_buf),
            cluster,
        })
    }

    pub fn is_tls(&self) -> bool {
        self.url.expose().starts_with("rediss://")
    }

    /// The CA bundle's bytes (PEM), checked to hold at least one certificate.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut certificates = 0;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            certificate.map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
            certificates += 1;
        }
        if certificates == 0 {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        Ok(Some(pem))
    }
}

/// Problems with one section's Redis keys; `section` is its key path (`rate_limit`).
pub(super) fn validate(
    section: &str,
    url: Option<&SecretUrl>,
    ca_file: Option<&Path>,
    cluster: bool,
    p: &mut Problems,
) {
    let key = |name: &str| format!("{section}.{name}");
    let Some(endpoint) = RedisEndpoint::of(url, ca_file, cluster) else {
        p.check(
            ca_file.is_none(),
            key("redis_ca_file"),
            "needs a rediss:// redis_url",
        );
        p.check(
            !cluster,
            key("redis_cluster"),
            "needs a redis_url (a node of the cluster)",
        );
        return;
    };
    let text = endpoint.url.expose();
    if !(text.starts_with("redis://") || text.starts_with("rediss://")) {
        p.push(key("redis_url"), "must be a redis:// or rediss:// URL");
        return;
    }
    if ca_file.is_some() && !endpoint.is_tls() {
        p.push(
            key("redis_ca_file"),
            "applies only to a rediss:// redis_url",
        );
        return;
    }
    if let Err(why) = endpoint.ca_pem() {
        p.push(key("redis_ca_file"), why);
        return;
    }
    // The client the gateway will build, not connected: a URL this build cannot use (TLS or
    // Cluster support missing, a bad host or port) is refused now, not at the first request.
    if let Err(e) = crate::sharing::RedisClient::new(&endpoint) {
        p.push(key("redis_url"), format!("cannot be used: {e}"));
    }
}

#[cfg(test)]
mod tests {
    fn problems(extra: &str) -> Vec<String> {
        crate::config::problems_with(extra)
    }

    #[test]
    fn tls_and_cluster_urls_pass_because_this_build_can_use_them() {
        for section in [
            "[cache]",
            "[graphql.persisted_queries]",
            "[rate_limit]\nstore = \"redis\"",
        ] {
            for keys in [
                "redis_url = \"rediss://:pw@redis.internal:6380/0\"",
                "redis_url = \"redis://10.0.0.5:7000\"\nredis_cluster = true",
                "redis_url = \"rediss://10.0.0.5:7000\"\nredis_cluster = true",
            ] {
                let found = problems(&format!("{section}\n{keys}\n"));
                assert!(found.is_empty(), "{section} {keys}: {found:?}");
            }
        }
    }

    #[test]
    fn a_ca_file_that_does_not_load_is_refused_by_its_key() {
        let dir = std::env::temp_dir().join(format!("manifold-redis-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let cases = [
            (
                "redis_ca_file = \"/nonexistent/ca.pem\"",
                "redis_ca_file: cannot read /nonexistent/ca.pem",
            ),
            (
                &*format!("redis_ca_file = \"{}\"", empty.display()),
                "redis_ca_file: ",
            ),
        ];
        for (keys, expected) in cases {
            let found = problems(&format!(
                "[rate_limit]\nstore = \"redis\"\nredis_url = \"rediss://127.0.0.1:6380\"\n{keys}\n"
            ));
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(
                found[0].starts_with(&format!("rate_limit.{expected}")),
                "{found:?}"
            );
        }
        let found = problems(&format!(
            "[cache]\nredis_url = \"rediss://127.0.0.1:6380\"\nredis_ca_file = \"{}\"\n",
            empty.display()
        ));
        assert!(found[0].contains("holds no PEM certificate"), "{found:?}");
        let found = problems(
            "[cache]\nredis_url = \"redis://127.0.0.1:6379\"\nredis_ca_file = \"/x.pem\"\n",
        );
        assert!(found[0].starts_with("cache.redis_ca_file: applies only to a rediss://"));
        let found = problems("[graphql.persisted_queries]\nredis_cluster = true\n");
        assert!(found[0].starts_with("graphql.persisted_queries.redis_cluster: needs a redis_url"));
        std::fs::remove_dir_all(&dir).unwrap();
        let found = problems("[cache]\nredis_url = \"redis://[nope\"\n");
        assert!(
            found[0].starts_with("cache.redis_url: cannot be used"),
            "{found:?}"
        );
    }
}
