//! The shared tier: entries in Redis behind the local tier, so instances share what any of
//! them fetched. It is an optimisation, never a dependency: every call has a short budget,
//! and after a failure Redis is left alone for a while, so an outage costs requests nothing
//! and each instance goes on with its local tier alone.
//!
//! An entry is stored as one string: a JSON head line (times as Unix milliseconds, windows,
//! tags, `Vary` names) and the body after a newline, expiring with the entry's last window.
//! A tag's keys are kept in a set (`{prefix}tag:{tag}`) so a purge by tag can find them.
//! Every command touches one key, so the layout is the same on a Redis Cluster: only the
//! writes of one entry are sent as one pipeline per key there (a pipeline keeps to a slot),
//! and a purge by prefix scans every primary.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::policy::{Lifetime, Sharing};
use super::store::Entry;
use crate::config::RedisEndpoint;
use crate::sharing::{SharedCallError, SharedRedis};

/// How long Redis is left alone after a failed call.
const REST_AFTER_FAILURE: Duration = Duration::from_secs(1);

pub struct SharedTier {
    redis: SharedRedis,
    prefix: String,
}

#[derive(Serialize, Deserialize)]
struct Head {
    stored_ms: u64,
    age_ms: u64,
    fresh_ms: u64,
    swr_ms: u64,
    sie_ms: u64,
    shared: bool,
    tags: Vec<String>,
    vary: Vec<String>,
    content_type: Option<String>,
}

/// Why the shared tier gave nothing (the local tier answers alone).
pub type SharedTierError = SharedCallError;

impl SharedTier {
    /// Does not connect: the first call does, and the manager reconnects after failures.
    pub fn new(
        endpoint: &RedisEndpoint,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        Ok(Self {
            redis: SharedRedis::new(endpoint, timeout, REST_AFTER_FAILURE)?,
            prefix: prefix.to_owned(),
        })
    }

    /// The connection, for the purge broadcast on the same Redis.
    pub(super) fn redis(&self) -> &SharedRedis {
        &self.redis
    }

    /// Of every key, and of the purge channel.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub async fn get(&self, key: &str) -> Result<Option<Entry>, SharedTierError> {
        let redis_key = format!("{}{key}", self.prefix);
        let raw: Option<Vec<u8>> = self
            .redis
            .call(|mut c| async move { c.get(redis_key).await })
            .await?;
        Ok(raw.and_then(|raw| decode(&raw)))
    }

    pub async fn put(&self, key: &str, entry: &Entry) -> Result<(), SharedTierError> {
        let keep = entry.lifetime.keep();
        let Some(raw) = encode(entry) else {
            return Ok(());
        };
        let redis_key = format!("{}{key}", self.prefix);
        let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX).max(1);
        let tag_sets: Vec<String> = entry
            .tags
            .iter()
            .map(|t| format!("{}tag:{t}", self.prefix))
            .collect();
        // One pipeline; on a Cluster one per key, each in its own slot.
        let per_key = self.redis.is_cluster();
        self.redis
            .call(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.pset_ex(&redis_key, raw, keep_ms).ignore();
                for set in &tag_sets {
                    if per_key {
                        pipe.query_async::<()>(&mut c).await?;
                        pipe.clear();
                    }
                    pipe.sadd(set, &redis_key).ignore();
                    pipe.pexpire(set, keep_ms as i64).ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
            .await
    }

    /// Drops the keys starting with `prefix` (a SCAN) and those tagged `tag`.
    pub async fn purge(
        &self,
        prefix: Option<&str>,
        tag: Option<&str>,
    ) -> Result<(), SharedTierError> {
        let pattern = prefix.map(|p| format!("{}{}*", glob_escape(&self.prefix), glob_escape(p)));
        let tag_set = tag.map(|t| format!("{}tag:{t}", self.prefix));
        // A SCAN may take many round trips: it gets a larger budget than a lookup.
        let budget = self.redis.timeout() * 20;
        let purge = async move {
            let mut c = self.redis.connection();
            let mut doomed: Vec<String> = Vec::new();
            if let Some(set) = &tag_set {
                let members: Vec<String> = c.smembers(set).await?;
                doomed.extend(members);
                doomed.push(set.clone());
            }
            if let Some(pattern) = &pattern {
                doomed.extend(c.scan_match(pattern).await?);
            }
            // On a Cluster the client splits a DEL by slot.
            for chunk in doomed.chunks(500) {
                let _: () = c.del(chunk).await?;
            }
            Ok::<(), redis::RedisError>(())
        };
        tokio::time::timeout(budget, purge)
            .await
            .map_err(|_| SharedTierError::Timeout(budget))??;
        Ok(())
    }
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn encode(entry: &Entry) -> Option<Vec<u8>> {
    let now = tokio::time::Instant::now();
    let since_stored = now.saturating_duration_since(entry.stored_at);
    let head = Head {
        stored_ms: unix_ms_now().saturating_sub(ms(since_stored)),
        age_ms: ms(entry.initial_age),
        fresh_ms: ms(entry.lifetime.fresh),
        swr_ms: ms(entry.lifetime.stale_while_revalidate),
        sie_ms: ms(entry.lifetime.stale_if_error),
        shared: entry.lifetime.sharing == Sharing::Shared,
        tags: entry.tags.to_vec(),
        vary: entry.vary.iter().map(|h| h.as_str().to_owned()).collect(),
        content_type: entry
            .content_type
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let mut raw = serde_json::to_vec(&head).ok()?;
    raw.push(b'\n');
    raw.extend_from_slice(&entry.body);
    Some(raw)
}

/// The entry, its `stored_at` placed on this process' clock by its age in Unix time.
fn decode(raw: &[u8]) -> Option<Entry> {
    let split = raw.iter().position(|b| *b == b'\n')?;
    let head: Head = serde_json::from_slice(&raw[..split]).ok()?;
    let elapsed = Duration::from_millis(unix_ms_now().saturating_sub(head.stored_ms));
    let now = tokio::time::Instant::now();
    let stored_at = now.checked_sub(elapsed).unwrap_or(now);
    let vary = head
        .vary
        .iter()
        .filter_map(|v| http::HeaderName::from_bytes(v.as_bytes()).ok())
        .collect();
    Some(Entry {
        body: Bytes::copy_from_slice(&raw[split + 1..]),
        content_type: head
            .content_type
            .and_then(|v| http::HeaderValue::from_str(&v).ok()),
        stored_at,
        initial_age: Duration::from_millis(head.age_ms),
        lifetime: Lifetime {
            sharing: if head.shared {
                Sharing::Shared
            } else {
                Sharing::PerIdentity
            },
            fresh: Duration::from_millis(head.fresh_ms),
            stale_while_revalidate: Duration::from_millis(head.swr_ms),
            stale_if_error: Duration::from_millis(head.sie_ms),
        },
        tags: head.tags.into(),
        vary,
    })
}

/// Escapes Redis glob characters so a prefix matches literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_survive_the_round_trip() {
        let entry = Entry {
            body: Bytes::from_static(b"{\"id\":\"p1\"}\n"),
            content_type: Some(http::HeaderValue::from_static("application/json")),
            stored_at: tokio::time::Instant::now(),
            initial_age: Duration::from_secs(2),
            lifetime: Lifetime {
                sharing: Sharing::Shared,
                fresh: Duration::from_secs(60),
                stale_while_revalidate: Duration::from_secs(10),
                stale_if_error: Duration::from_secs(300),
            },
            tags: vec!["item:i1".to_owned()].into(),
            vary: Box::new([http::HeaderName::from_static("x-user-id")]),
        };
        let back = decode(&encode(&entry).unwrap()).unwrap();
        assert_eq!(back.body, entry.body);
        assert_eq!(back.lifetime, entry.lifetime);
        assert_eq!(back.tags, entry.tags);
        assert_eq!(back.vary, entry.vary);
        assert_eq!(back.content_type, entry.content_type);
        assert!(back.age(tokio::time::Instant::now()) >= Duration::from_secs(2));
        assert_eq!(glob_escape("a*b"), "a\\*b");
    }
}
