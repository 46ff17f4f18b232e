//! Rate limits: the configured rules, each keyed by user, API key or client IP and scaled by
//! the caller's tier, decided with GCRA after authentication and before the handler runs (so
//! before any GraphQL parsing or backend call). Counters live in this instance (`local`,
//! governor) or in Redis (`shared`, one round trip, all instances together); while Redis is
//! unreachable decisions fall back to local counters or are refused, by config. Every
//! response of a limited route carries `RateLimit-Policy` / `RateLimit` (`headers`); a
//! refusal is a 429 problem with `Retry-After`. `OperationCharge` lets the GraphQL endpoint
//! charge an operation's cost on top of the one unit the request paid at the door.
//!
//! Not owned here: resolving the client address (`edge::client_ip`) and the Prometheus
//! export of the counters in `RateLimitMetrics` (a later layer reads `snapshot()`).

mod headers;
mod layer;
mod local;
mod metrics;
mod shared;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use headers::{RATELIMIT, RATELIMIT_POLICY};
pub use layer::{OperationCharge, enforce};
pub use local::LocalStore;
pub use metrics::{LimitFamilies, MetricsSnapshot, RateLimitMetrics};
pub use shared::{RedisStore, RedisStoreError, SharedCheck};

use crate::auth::{Identity, Principal};
use crate::config::{CostKind, KeyKind, OnRedisError, RateLimitConfig};
use crate::edge::client_ip::ClientIp;

/// At most `limit` units per `per`, in bursts of up to `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub limit: u32,
    pub per: Duration,
}

impl Limit {
    /// GCRA's emission interval: one unit comes back every `per / limit`.
    pub fn interval(&self) -> Duration {
        self.per / self.limit.max(1)
    }
}

/// What a store answered for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// Units left after this request.
    pub remaining: u32,
    /// Until the key's budget is whole again.
    pub reset: Duration,
    /// Until a refused request could succeed (zero when allowed).
    pub retry_after: Duration,
}

impl Outcome {
    fn unlimited() -> Self {
        Self {
            allowed: true,
            remaining: u32::MAX,
            reset: Duration::ZERO,
            retry_after: Duration::ZERO,
        }
    }
}

/// What a rule counts one request against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RateLimitKey {
    User(Arc<str>),
    ApiKey(Arc<str>),
    /// IPv4, or the /64 of an IPv6 client.
    Ip(IpAddr),
}

/// One rule's verdict on one request.
#[derive(Clone, Debug)]
pub struct Decision {
    pub rule: Arc<str>,
    pub limit: Limit,
    pub outcome: Outcome,
}

/// A compiled `[[rate_limit.rules]]` entry.
struct Rule {
    name: Arc<str>,
    key: KeyKind,
    cost: CostKind,
}

/// A rule that applies to a request: which counter, and under which key.
#[derive(Clone)]
struct Target {
    rule: usize,
    slot: usize,
    key: RateLimitKey,
    /// Built only when the store is Redis.
    redis_key: Option<String>,
}

enum Verdict {
    Allowed(Vec<Decision>),
    Refused(Vec<Decision>),
    /// The shared store is down and the policy is to refuse.
    Unavailable,
}

struct Shared {
    store: RedisStore,
    on_error: OnRedisError,
}

/// The rate limiter of one BFF instance.
pub struct RateLimiter {
    rules: Vec<Rule>,
    /// Tier names; a caller in `tiers[i]` uses slot `i + 1` of each identity rule.
    tiers: Vec<String>,
    /// The limit of every slot: `rule * (tiers + 1) + tier`.
    limits: Vec<Limit>,
    local: LocalStore,
    shared: Option<Shared>,
    key_prefix: String,
    metrics: Arc<RateLimitMetrics>,
}

impl RateLimiter {
    /// `None` when no rule is configured: nothing is limited. Must run inside a tokio
    /// runtime (it starts the idle-key eviction). Does not connect to Redis yet.
    pub fn new(config: &RateLimitConfig) -> Result<Option<Arc<Self>>, ::redis::RedisError> {
        if config.rules.is_empty() {
            return Ok(None);
        }
        let tiers: Vec<String> = config.tiers.keys().cloned().collect();
        let mut limits = Vec::new();
        for rule in &config.rules {
            let base = Limit {
                limit: rule.limit,
                per: rule.per,
            };
            limits.push(base);
            for tier in config.tiers.values() {
                limits.push(Limit {
                    limit: tier.apply(rule.limit),
                    per: rule.per,
                });
            }
        }
        let shared = match config.redis() {
            Some(endpoint) => Some(Shared {
                store: RedisStore::new(&endpoint, config.redis_timeout, config.redis_retry)?,
                on_error: config.on_redis_error,
            }),
            None => None,
        };
        let limiter = Arc::new(Self {
            rules: config
                .rules
                .iter()
                .map(|r| Rule {
                    name: r.name.as_str().into(),
                    key: r.key,
                    cost: r.cost,
                })
                .collect(),
            tiers,
            local: LocalStore::new(&limits),
            limits,
            shared,
            key_prefix: config.key_prefix.clone(),
            metrics: Arc::default(),
        });
        limiter.spawn_eviction(config.evict_interval);
        Ok(Some(limiter))
    }

    pub fn metrics(&self) -> &Arc<RateLimitMetrics> {
        &self.metrics
    }

    /// Evicts idle keys from local memory every `every`, until the limiter is dropped.
    fn spawn_eviction(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else {
                    return;
                };
                let live = limiter.local.evict_idle();
                tracing::trace!(live_keys = live, "rate limits: idle keys evicted");
            }
        });
    }

    /// The rules that count this request, with their keys.
    fn targets(&self, identity: Option<&Identity>, client: Option<ClientIp>) -> Vec<Target> {
        let tier = identity
            .and_then(Identity::tier)
            .and_then(|t| self.tiers.iter().position(|name| name == t))
            .map_or(0, |i| i + 1);
        let mut targets = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            let (key, tiered) = match (rule.key, identity.map(Identity::principal), client) {
                (KeyKind::User, Some(Principal::User(id)), _) => {
                    (RateLimitKey::User(id.as_str().into()), true)
                }
                (KeyKind::ApiKey, Some(Principal::ApiClient(id)), _) => {
                    (RateLimitKey::ApiKey(id.as_str().into()), true)
                }
                (KeyKind::Ip, _, Some(ip)) => (RateLimitKey::Ip(ip.limit_key()), false),
                _ => continue,
            };
            let redis_key = self.shared.as_ref().map(|shared| {
                redis_key(
                    &self.key_prefix,
                    &rule.name,
                    &key,
                    shared.store.is_cluster(),
                )
            });
            let tier = if tiered { tier } else { 0 };
            targets.push(Target {
                rule: i,
                slot: i * (self.tiers.len() + 1) + tier,
                key,
                redis_key,
            });
        }
        targets
    }

    /// Charges `cost` units to every target: in Redis when configured and reachable, else
    /// (by policy) locally.
    async fn charge(&self, targets: &[Target], cost: u32) -> Verdict {
        let outcomes = match &self.shared {
            None => self.charge_locally(targets, cost),
            Some(shared) => {
                let checks: Vec<SharedCheck<'_>> = targets
                    .iter()
                    .map(|t| SharedCheck {
                        key: t.redis_key.as_deref().unwrap_or_default(),
                        limit: self.limits[t.slot],
                        cost,
                    })
                    .collect();
                let started = tokio::time::Instant::now();
                match shared.store.check(&checks).await {
                    Ok(outcomes) => {
                        self.metrics.shared_ok(started.elapsed());
                        outcomes
                    }
                    Err(e) => {
                        self.metrics.shared_failed(&e, shared.on_error);
                        match shared.on_error {
                            OnRedisError::Local => self.charge_locally(targets, cost),
                            OnRedisError::Refuse => return Verdict::Unavailable,
                        }
                    }
                }
            }
        };
        let decisions: Vec<Decision> = targets
            .iter()
            .zip(outcomes)
            .map(|(t, outcome)| Decision {
                rule: self.rules[t.rule].name.clone(),
                limit: self.limits[t.slot],
                outcome,
            })
            .collect();
        if decisions.iter().all(|d| d.outcome.allowed) {
            self.metrics.count_allowed();
            Verdict::Allowed(decisions)
        } else {
            self.metrics.count_refused();
            Verdict::Refused(decisions)
        }
    }

    fn charge_locally(&self, targets: &[Target], cost: u32) -> Vec<Outcome> {
        targets
            .iter()
            .map(|t| self.local.check(t.slot, &t.key, cost))
            .collect()
    }
}

/// The Redis key of one rule's counter for `key`: `{prefix}{rule}:u:{id}` on a single node.
/// On a Cluster the key's identity is its hash tag, `{prefix}{rule}:{u:id}`: every rule
/// counting one caller then lands in one slot, and one script charges them together.
fn redis_key(prefix: &str, rule: &str, key: &RateLimitKey, cluster: bool) -> String {
    let (open, close) = if cluster { ("{", "}") } else { ("", "") };
    match key {
        RateLimitKey::User(id) => format!("{prefix}{rule}:{open}u:{id}{close}"),
        RateLimitKey::ApiKey(id) => format!("{prefix}{rule}:{open}k:{id}{close}"),
        RateLimitKey::Ip(ip) => format!("{prefix}{rule}:{open}ip:{ip}{close}"),
    }
}
