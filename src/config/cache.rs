//! `[cache]`: the entity and response cache in front of backend GETs. The backend's own
//! `Cache-Control` decides what may be stored and for how long; this config decides which
//! upstreams are cached at all, how much memory the cache may hold, the stale windows a
//! backend did not state, and who may purge.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::redis_endpoint::{self, RedisEndpoint};
use super::validate::Problems;
use super::{ByteSize, Secret, SecretUrl, UpstreamConfig, units};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CacheConfig {
    /// Master switch; off, every GET goes to its backend.
    pub enabled: bool,
    /// Memory the local tier may hold, counted in bytes of keys and bodies (not entries).
    pub max_bytes: ByteSize,
    /// Bodies larger than this are never stored (nor proxied bodies buffered to store them).
    pub max_entry_bytes: ByteSize,
    /// Upstreams whose GETs are cached, by name; an upstream not listed is never cached.
    pub upstreams: BTreeMap<String, CachePolicyConfig>,
    /// `X-Admin-Token` required by the cache's endpoints on the admin listener
    /// (`/admin/cache/...`); without it they answer 404.
    pub admin_token: Option<Secret>,
    /// The shared second tier: `redis://host:port` or `rediss://` (TLS); local-only when
    /// absent or unreachable. Purges are also broadcast to every instance through it.
    pub redis_url: Option<SecretUrl>,
    /// PEM CA bundle a `rediss://` server is verified against (else the platform's roots).
    pub redis_ca_file: Option<PathBuf>,
    /// `redis_url` is a node of a Redis Cluster.
    pub redis_cluster: bool,
    /// Prefix of every Redis key, so several BFFs can share one Redis.
    pub redis_prefix: String,
    /// Budget of one Redis round trip; past it the local tier answers alone.
    #[serde(with = "units::duration")]
    pub redis_timeout: Duration,
}

/// How one upstream's responses are cached, where its `Cache-Control` leaves a choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CachePolicyConfig {
    /// An entry past its freshness is served at once for this long while ONE background
    /// refresh runs (unless the backend sent its own `stale-while-revalidate`).
    #[serde(with = "units::duration")]
    pub stale_while_revalidate: Duration,
    /// When the backend fails (or its circuit is open), an entry past its freshness is served
    /// instead of the error for this long, marked degraded (unless the backend sent its own
    /// `stale-if-error`).
    #[serde(with = "units::duration")]
    pub stale_if_error: Duration,
    /// Freshness is never longer than this, whatever the backend says.
    #[serde(with = "units::duration")]
    pub max_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: ByteSize(64 << 20),
            max_entry_bytes: ByteSize(256 << 10),
            upstreams: BTreeMap::new(),
            admin_token: None,
            redis_url: None,
            redis_ca_file: None,
            redis_cluster: false,
            redis_prefix: "manifold:cache:".into(),
            redis_timeout: Duration::from_millis(50),
        }
    }
}

impl Default for CachePolicyConfig {
    fn default() -> Self {
        Self {
            stale_while_revalidate: Duration::from_secs(10),
            stale_if_error: Duration::from_secs(300),
            max_ttl: Duration::from_secs(3600),
        }
    }
}

impl CacheConfig {
    /// The Redis of the shared tier and of the purge broadcast.
    pub fn redis(&self) -> Option<RedisEndpoint> {
        let ca_file = self.redis_ca_file.as_deref();
        RedisEndpoint::of(self.redis_url.as_ref(), ca_file, self.redis_cluster)
    }

    /// Problems with this section; `upstreams` are the configured upstreams.
    pub(super) fn validate(&self, upstreams: &BTreeMap<String, UpstreamConfig>, p: &mut Problems) {
        redis_endpoint::validate(
            "cache",
            self.redis_url.as_ref(),
            self.redis_ca_file.as_deref(),
            self.redis_cluster,
            p,
        );
        let mut check = |ok: bool, key: String, message: &str| p.check(ok, key, message);
        check(
            self.max_bytes.bytes() > 0,
            "cache.max_bytes".into(),
            "must be greater than 0",
        );
        check(
            self.max_entry_bytes.bytes() > 0,
            "cache.max_entry_bytes".into(),
            "must be greater than 0",
        );
        check(
            self.max_entry_bytes.bytes() <= self.max_bytes.bytes(),
            "cache.max_entry_bytes".into(),
            "must not exceed cache.max_bytes",
        );
        check(
            self.admin_token
                .as_ref()
                .is_none_or(|t| t.expose().len() >= 16),
            "cache.admin_token".into(),
            "must be at least 16 characters",
        );
        check(
            !self.redis_timeout.is_zero(),
            "cache.redis_timeout".into(),
            "must be greater than 0",
        );
        for (name, policy) in &self.upstreams {
            check(
                upstreams.contains_key(name),
                format!("cache.upstreams.{name}"),
                "names no configured [upstreams] entry",
            );
            check(
                !policy.max_ttl.is_zero(),
                format!("cache.upstreams.{name}.max_ttl"),
                "must be greater than 0",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    #[test]
    fn every_cache_problem_is_reported_with_its_key() {
        let text = r#"
            [server]
            listen = "127.0.0.1:0"
            [upstreams.inventory]
            url = "http://127.0.0.1:9203"
            [cache]
            max_bytes = "1KiB"
            max_entry_bytes = "2KiB"
            admin_token = "short"
            redis_url = "http://nope"
            [cache.upstreams.inventory]
            max_ttl = "0s"
            [cache.upstreams.nowhere]
            stale_if_error = "1m"
        "#;
        let errors = Config::parse(text, "test", Vec::new(), &[]).unwrap_err();
        let keys: Vec<&str> = errors.errors.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "cache.max_entry_bytes",
            "cache.admin_token",
            "cache.redis_url",
            "cache.upstreams.inventory.max_ttl",
            "cache.upstreams.nowhere",
        ] {
            assert!(keys.contains(&key), "{key} not reported: {keys:?}");
        }
        let debug = format!("{:?}", Config::parse(
            "[server]\nlisten = \"127.0.0.1:0\"\n[cache]\nadmin_token = \"a-secret-token-of-some-length\"\n",
            "test",
            Vec::new(),
            &[],
        )
        .unwrap()
        .cache);
        assert!(!debug.contains("a-secret-token"), "{debug}");
    }
}
