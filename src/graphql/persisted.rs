//! Persisted operations. Apollo's automatic persisted queries (APQ): a client sends
//! `extensions.persistedQuery.sha256Hash` alone; a hash the gateway knows runs its query, an
//! unknown one is answered `PERSISTED_QUERY_NOT_FOUND`, and the client sends the query with
//! the hash, which registers it (checked: the hash must be the query's). Registered queries
//! live in this instance's memory and, with a `redis_url`, in Redis, so a query registered
//! on one instance runs by hash on every other. With trusted documents, only the operations
//! of the app's manifest run, by id or by their exact text. Either way the text then goes
//! through the parsed-document cache, so a persisted operation is parsed (and, sent alone,
//! validated) once per process.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::params::Params;
use crate::config::{PersistedQueriesConfig, TrustedDocuments};
use crate::error::Code;
use crate::sharing::SharedRedis;

/// How long Redis is left alone after a failed call.
const REST_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The persisted operations of one endpoint.
pub(super) struct Persisted {
    apq: bool,
    local: moka::sync::Cache<String, Arc<str>>,
    shared: Option<Shared>,
    trusted: Option<TrustedDocuments>,
}

struct Shared {
    redis: SharedRedis,
    prefix: String,
    ttl_secs: u64,
}

/// Why a persisted operation cannot run: its code, and words for the client.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub code: Code,
    pub message: &'static str,
}

impl Refusal {
    fn new(code: Code, message: &'static str) -> Self {
        Self { code, message }
    }
}

impl Persisted {
    /// Does not connect to Redis (the first lookup does). A manifest that no longer loads (it
    /// was checked with the config) leaves the endpoint refusing every operation.
    pub fn new(config: &PersistedQueriesConfig) -> Self {
        let shared = config.redis().and_then(|endpoint| {
            let redis = SharedRedis::new(&endpoint, config.redis_timeout, REST_AFTER_FAILURE);
            match redis {
                Ok(redis) => Some(Shared {
                    redis,
                    prefix: config.redis_prefix.clone(),
                    ttl_secs: config.ttl.as_secs().max(1),
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "persisted queries: local store only");
                    None
                }
            }
        });
        let trusted = config.trusted_documents.as_ref().map(|path| {
            TrustedDocuments::load(path).unwrap_or_else(|why| {
                tracing::error!(%why, "trusted documents did not load: every operation is refused");
                TrustedDocuments::default()
            })
        });
        Self {
            apq: config.enabled,
            local: moka::sync::Cache::new(config.max_entries),
            shared,
            trusted,
        }
    }

    /// `params` with the query a persisted request stands for filled in (and a query sent
    /// with its hash registered), or why it cannot run. A request without a hash passes
    /// untouched, unless trusted documents do not list its text.
    pub async fn resolve(&self, mut params: Params) -> Result<Params, Refusal> {
        let hash = persisted_hash(&params)?;
        if let Some(trusted) = &self.trusted {
            let id = params.document_id.clone().or(hash);
            let known = match (&params.query, &id) {
                (Some(text), _) => trusted.lists(text),
                (None, Some(id)) => match trusted.get(id) {
                    Some(text) => {
                        params.query = Some(text.to_string());
                        true
                    }
                    None => false,
                },
                (None, None) => return Ok(params), // the usual "query is required"
            };
            return if known {
                Ok(params)
            } else {
                Err(Refusal::new(
                    Code::PersistedQueryNotInList,
                    "this operation is not in the app's list of trusted documents",
                ))
            };
        }
        if params.document_id.is_some() {
            return Err(Refusal::new(
                Code::BadRequest,
                "documentId names a trusted document, and this API has none: send the query",
            ));
        }
        let Some(hash) = hash else {
            return Ok(params);
        };
        if !self.apq {
            return Err(Refusal::new(
                Code::PersistedQueryNotSupported,
                "PersistedQueryNotSupported",
            ));
        }
        match &params.query {
            Some(text) => {
                if hex_sha256(text) != hash.to_ascii_lowercase() {
                    return Err(Refusal::new(
                        Code::PersistedQueryHashMismatch,
                        "provided sha does not match query",
                    ));
                }
                self.register(hash, text).await;
                Ok(params)
            }
            None => match self.lookup(&hash).await {
                Some(text) => {
                    params.query = Some(text.to_string());
                    Ok(params)
                }
                None => Err(Refusal::new(
                    Code::PersistedQueryNotFound,
                    "PersistedQueryNotFound",
                )),
            },
        }
    }

    async fn lookup(&self, hash: &str) -> Option<Arc<str>> {
        if let Some(text) = self.local.get(hash) {
            return Some(text);
        }
        let shared = self.shared.as_ref()?;
        let key = format!("{}{hash}", shared.prefix);
        let found: Option<String> = match shared
            .redis
            .call(|mut c| async move { c.get(key).await })
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "persisted queries: shared store unavailable");
                None
            }
        };
        // Only a text that still has the hash is trusted back from the shared store.
        let text: Arc<str> = found.filter(|text| hex_sha256(text) == hash)?.into();
        self.local.insert(hash.to_owned(), text.clone());
        Some(text)
    }

    async fn register(&self, hash: String, text: &str) {
        let text: Arc<str> = text.into();
        self.local.insert(hash.clone(), text.clone());
        if let Some(shared) = &self.shared {
            let key = format!("{}{hash}", shared.prefix);
            let ttl = shared.ttl_secs;
            let stored = shared
                .redis
                .call(|mut c| async move { c.set_ex::<_, _, ()>(key, &*text, ttl).await })
                .await;
            if let Err(e) = stored {
                tracing::debug!(error = %e, "persisted query kept locally only");
            }
        }
    }
}

/// `extensions.persistedQuery.sha256Hash`, when the request has one (version 1 only).
fn persisted_hash(params: &Params) -> Result<Option<String>, Refusal> {
    let Some(persisted) = params
        .extensions
        .as_ref()
        .and_then(|e| e.get("persistedQuery"))
    else {
        return Ok(None);
    };
    let version = persisted.get("version").and_then(Value::as_u64);
    let hash = persisted.get("sha256Hash").and_then(Value::as_str);
    match (version, hash) {
        (Some(1), Some(hash))
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(Some(hash.to_ascii_lowercase()))
        }
        _ => Err(Refusal::new(
            Code::BadRequest,
            "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": <64 hex digits>}",
        )),
    }
}

fn hex_sha256(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY: &str = "{ __typename }";

    fn params(query: Option<&str>, hash: Option<&str>) -> Params {
        let extensions = hash.map(|h| {
            let v = serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": h } });
            v.as_object().cloned().unwrap()
        });
        Params {
            query: query.map(str::to_owned),
            extensions,
            ..Params::default()
        }
    }

    #[tokio::test]
    async fn apq_registers_a_query_by_its_hash_and_runs_it_by_hash() {
        let store = Persisted::new(&PersistedQueriesConfig::default());
        let hash = hex_sha256(QUERY);
        let unknown = store.resolve(params(None, Some(&hash))).await.unwrap_err();
        assert_eq!(unknown.code, Code::PersistedQueryNotFound);
        let wrong = store
            .resolve(params(Some("{ a }"), Some(&hash)))
            .await
            .unwrap_err();
        assert_eq!(wrong.code, Code::PersistedQueryHashMismatch);
        store
            .resolve(params(Some(QUERY), Some(&hash)))
            .await
            .unwrap();
        let known = store.resolve(params(None, Some(&hash))).await.unwrap();
        assert_eq!(known.query.as_deref(), Some(QUERY));
        // A request without a hash passes untouched.
        assert!(store.resolve(params(Some("{ b }"), None)).await.is_ok());
        let bad = params(None, Some("not-a-hash"));
        assert_eq!(store.resolve(bad).await.unwrap_err().code, Code::BadRequest);
    }

    #[tokio::test]
    async fn apq_switched_off_says_so() {
        let config = PersistedQueriesConfig {
            enabled: false,
            ..PersistedQueriesConfig::default()
        };
        let store = Persisted::new(&config);
        let refused = store.resolve(params(None, Some(&hex_sha256(QUERY)))).await;
        assert_eq!(refused.unwrap_err().code, Code::PersistedQueryNotSupported);
    }

    #[tokio::test]
    async fn trusted_documents_run_only_what_the_manifest_lists() {
        let dir = std::env::temp_dir().join(format!("manifold-apq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ops.json");
        std::fs::write(&path, serde_json::json!({ "home": QUERY }).to_string()).unwrap();
        let config = PersistedQueriesConfig {
            trusted_documents: Some(path),
            ..PersistedQueriesConfig::default()
        };
        let store = Persisted::new(&config);
        let nothing = store.resolve(params(None, None)).await.unwrap();
        assert!(nothing.query.is_none());
        let mut by_id = params(None, None);
        by_id.document_id = Some("home".to_owned());
        assert_eq!(
            store.resolve(by_id).await.unwrap().query.as_deref(),
            Some(QUERY)
        );
        assert!(store.resolve(params(Some(QUERY), None)).await.is_ok());
        let other = store
            .resolve(params(Some("{ other }"), None))
            .await
            .unwrap_err();
        assert_eq!(other.code, Code::PersistedQueryNotInList);
        // By id: the manifest's ids need not be hashes, but APQ sends 64 hex digits.
        let id = hex_sha256("unlisted");
        let unlisted = store.resolve(params(None, Some(&id))).await.unwrap_err();
        assert_eq!(unlisted.code, Code::PersistedQueryNotInList);
    }
}
