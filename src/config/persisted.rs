//! `[graphql.persisted_queries]`: Apollo's automatic persisted queries (a client sends a
//! query's SHA-256 instead of its text once the gateway knows it), their store shared through
//! Redis by every instance, and trusted documents: a manifest of the app's operations, after
//! which only those run. The manifest is read and checked with the config, so `--check`
//! refuses one that does not load.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::redis_endpoint::{self, RedisEndpoint};
use super::secret::SecretUrl;
use super::units;
use super::validate::{Problems, positive};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PersistedQueriesConfig {
    /// Automatic persisted queries: on by default; off, a hash-only request is answered
    /// `PERSISTED_QUERY_NOT_SUPPORTED`.
    pub enabled: bool,
    /// Queries kept in this instance's memory, by hash.
    pub max_entries: u64,
    /// The store every instance shares (`redis://host:port/db`); this instance's memory
    /// alone when absent or while Redis is away.
    pub redis_url: Option<SecretUrl>,
    /// PEM CA bundle a `rediss://` server is verified against (else the platform's roots).
    pub redis_ca_file: Option<PathBuf>,
    /// `redis_url` is a node of a Redis Cluster.
    pub redis_cluster: bool,
    /// Prefix of every Redis key, so several BFFs can share one Redis.
    pub redis_prefix: String,
    /// Budget of one Redis round trip.
    #[serde(with = "units::duration")]
    pub redis_timeout: Duration,
    /// How long a registered query is kept in Redis after it was last registered.
    #[serde(with = "units::duration")]
    pub ttl: Duration,
    /// Trusted documents: a JSON manifest of the app's operations (Apollo's
    /// `persisted-query-manifest.json`, or a map of id to document). When set, only the
    /// operations it lists run, sent by id (`extensions.persistedQuery.sha256Hash`) or in
    /// full; anything else is refused `PERSISTED_QUERY_NOT_IN_LIST`.
    pub trusted_documents: Option<PathBuf>,
}

impl Default for PersistedQueriesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 10_000,
            redis_url: None,
            redis_ca_file: None,
            redis_cluster: false,
            redis_prefix: "manifold:apq:".to_owned(),
            redis_timeout: Duration::from_millis(50),
            ttl: Duration::from_secs(24 * 3600),
            trusted_documents: None,
        }
    }
}

impl PersistedQueriesConfig {
    /// The Redis every instance's registered queries are shared in.
    pub fn redis(&self) -> Option<RedisEndpoint> {
        let ca_file = self.redis_ca_file.as_deref();
        RedisEndpoint::of(self.redis_url.as_ref(), ca_file, self.redis_cluster)
    }

    pub(super) fn validate(&self, p: &mut Problems) {
        const KEY: &str = "graphql.persisted_queries";
        p.check(
            self.max_entries > 0,
            format!("{KEY}.max_entries"),
            "must be greater than 0",
        );
        redis_endpoint::validate(
            KEY,
            self.redis_url.as_ref(),
            self.redis_ca_file.as_deref(),
            self.redis_cluster,
            p,
        );
        p.check(
            positive(self.redis_timeout),
            format!("{KEY}.redis_timeout"),
            "must be greater than 0",
        );
        p.check(
            positive(self.ttl),
            format!("{KEY}.ttl"),
            "must be greater than 0",
        );
        if let Some(path) = &self.trusted_documents
            && let Err(why) = TrustedDocuments::load(path)
        {
            p.check(false, format!("{KEY}.trusted_documents"), &why);
        }
    }
}

/// The operations a trusted-documents manifest lists: by id, and by text.
#[derive(Debug, Default)]
pub struct TrustedDocuments {
    by_id: HashMap<String, Arc<str>>,
    texts: HashSet<Arc<str>>,
}

/// Apollo's manifest (`generate-persisted-query-manifest`).
#[derive(Deserialize)]
struct ApolloManifest {
    format: String,
    operations: Vec<ManifestOperation>,
}

#[derive(Deserialize)]
struct ManifestOperation {
    id: String,
    body: String,
}

impl TrustedDocuments {
    /// Reads a manifest: Apollo's format, or a JSON object of id to document.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        let pairs: Vec<(String, String)> = if value.get("format").is_some() {
            let manifest: ApolloManifest = serde_json::from_value(value)
                .map_err(|e| format!("{}: not a persisted-query manifest: {e}", path.display()))?;
            if manifest.format != "apollo-persisted-query-manifest" {
                return Err(format!(
                    "{}: unknown manifest format {:?}",
                    path.display(),
                    manifest.format
                ));
            }
            manifest
                .operations
                .into_iter()
                .map(|op| (op.id, op.body))
                .collect()
        } else {
            serde_json::from_value::<HashMap<String, String>>(value)
                .map_err(|e| {
                    format!(
                        "{}: expected Apollo's manifest or an object of id to document: {e}",
                        path.display()
                    )
                })?
                .into_iter()
                .collect()
        };
        if pairs.is_empty() {
            return Err(format!("{} lists no operation", path.display()));
        }
        let mut documents = Self::default();
        for (id, body) in pairs {
            let body: Arc<str> = body.into();
            documents.texts.insert(body.clone());
            documents.by_id.insert(id, body);
        }
        Ok(documents)
    }

    /// The document listed under `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<str>> {
        self.by_id.get(id)
    }

    /// Whether `text` is one of the listed documents, exactly.
    pub fn lists(&self, text: &str) -> bool {
        self.texts.contains(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("manifold-trusted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn both_manifest_shapes_load_and_bad_ones_say_why() {
        let apollo = file(
            "apollo.json",
            r#"{"format":"apollo-persisted-query-manifest","version":1,
                "operations":[{"id":"abc","name":"Home","type":"query","body":"query Home { a }"}]}"#,
        );
        let docs = TrustedDocuments::load(&apollo).unwrap();
        assert_eq!(docs.get("abc").map(|d| &**d), Some("query Home { a }"));
        assert!(docs.lists("query Home { a }"));
        assert!(!docs.lists("query Home { b }"));
        let map = file("map.json", r#"{"1": "{ a }", "2": "{ b }"}"#);
        assert!(TrustedDocuments::load(&map).unwrap().lists("{ b }"));
        for (name, text, why) in [
            ("empty.json", "{}", "lists no operation"),
            ("bad.json", "[1", "is not JSON"),
            (
                "other.json",
                r#"{"format":"x","operations":[]}"#,
                "unknown manifest format",
            ),
        ] {
            let err = TrustedDocuments::load(&file(name, text)).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        let missing = TrustedDocuments::load(Path::new("/nonexistent/ops.json")).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
