//! Rate limits and quotas: the configured rules, each keyed by user, API key or client IP
//! and scaled by the caller's tier, decided with GCRA; and the quotas, a caller's allowance
//! per calendar day or month (`quota`, `window`). Both are charged together, all or
//! nothing, after authentication and before the handler runs (so before any GraphQL parsing
//! or backend call). Counters live in this instance (`local`, `quota`) or in Redis
//! (`shared`, one round trip, all instances together); while Redis is unreachable decisions
//! fall back to local counters or are refused, by config. Every response of a limited route
//! carries `RateLimit-Policy` / `RateLimit` (`headers`) for each rule and quota; a refusal
//! is a 429 problem with `Retry-After`. `OperationCharge` lets the GraphQL endpoint charge
//! an operation's cost on top of the one unit the request paid at the door, and `usage`
//! tells a caller what it has left.
//!
//! Not owned here: resolving the client address (`edge::client_ip`) and the Prometheus
//! export of the counters in `RateLimitMetrics` (a later layer reads `snapshot()`).

mod charge;
mod headers;
mod layer;
mod local;
mod metrics;
mod quota;
mod shared;
mod usage;
mod window;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use headers::{RATELIMIT, RATELIMIT_POLICY};
pub use layer::{Enforcement, OperationCharge, Operations, QuotaUse};
pub use local::LocalStore;
pub use metrics::{LimitFamilies, MetricsSnapshot, RateLimitMetrics};
pub use quota::{QuotaDecision, QuotaOutcome, QuotaState};
pub use shared::{QuotaCheck, RedisStore, RedisStoreError, SharedCheck};
pub use usage::{QuotaUsage, RuleUsage, Usage, usage};
pub use window::Window;

use crate::auth::{Identity, Principal};
use crate::config::{CostKind, KeyKind, OnRedisError, RateLimitConfig};
use crate::edge::client_ip::ClientIp;
use quota::{LocalQuotas, Quota, QuotaTarget};

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

/// Every verdict on one request: the rules', then the quotas', in config order.
#[derive(Clone, Debug, Default)]
pub struct Decisions {
    pub rules: Vec<Decision>,
    pub quotas: Vec<QuotaDecision>,
}

impl Decisions {
    fn all_allowed(&self) -> bool {
        self.rules.iter().all(|d| d.outcome.allowed)
            && self
                .quotas
                .iter()
                .all(|d| d.outcome.state == QuotaState::Allowed)
    }
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

/// Everything one request is charged to.
#[derive(Clone, Default)]
struct Targets {
    rules: Vec<Target>,
    quotas: Vec<QuotaTarget>,
}

impl Targets {
    fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.quotas.is_empty()
    }
}

/// How many units one charge takes from the rules and from the quotas; 0 only reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cost {
    rules: u32,
    quotas: u32,
}

impl Cost {
    const READ: Cost = Cost {
        rules: 0,
        quotas: 0,
    };
}

enum Verdict {
    Allowed(Decisions),
    Refused(Decisions),
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
    quotas: Vec<Quota>,
    /// Tier names; a caller in `tiers[i]` uses slot `i + 1` of each identity rule and quota.
    tiers: Vec<String>,
    /// The limit of every rule slot: `rule * (tiers + 1) + tier`.
    limits: Vec<Limit>,
    /// The limit of every quota slot: `quota * (tiers + 1) + tier`.
    quota_limits: Vec<u32>,
    local: LocalStore,
    /// Shared with the limiter of the next config.
    local_quotas: Arc<LocalQuotas>,
    shared: Option<Shared>,
    key_prefix: String,
    metrics: Arc<RateLimitMetrics>,
}

impl RateLimiter {
    /// `None` when no rule and no quota is configured: nothing is limited. Must run inside
    /// a tokio runtime (it starts the idle-key eviction). Does not connect to Redis yet.
    /// `previous`, the limiter of the config this one replaces, hands over its local quota
    /// counts: a reload is no new day. (Its GCRA keys are not kept: they refill in seconds.)
    pub fn new(
        config: &RateLimitConfig,
        previous: Option<&RateLimiter>,
    ) -> Result<Option<Arc<Self>>, ::redis::RedisError> {
        if config.rules.is_empty() && config.quotas.is_empty() {
            return Ok(None);
        }
        let mut limits = Vec::new();
        for rule in &config.rules {
            limits.push(Limit {
                limit: rule.limit,
                per: rule.per,
            });
            for tier in config.tiers.values() {
                limits.push(Limit {
                    limit: tier.apply(rule.limit),
                    per: rule.per,
                });
            }
        }
        let mut quota_limits = Vec::new();
        for quota in &config.quotas {
            quota_limits.push(quota.limit);
            quota_limits.extend(config.tiers.values().map(|t| t.scale_quota(quota.limit)));
        }
        let shared = match config.redis() {
            Some(endpoint) => Some(Shared {
                store: RedisStore::new(&endpoint, config.redis_timeout, config.redis_retry)?,
                on_error: config.on_redis_error,
            }),
            None => None,
        };
        let quotas: Vec<Quota> = config
            .quotas
            .iter()
            .map(|q| Quota {
                name: q.name.as_str().into(),
                key: q.key,
                period: q.period,
                cost: q.cost,
                redis_name: format!("quota:{}", q.name),
            })
            .collect();
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
            metrics: Arc::new(RateLimitMetrics::new(quotas.iter().map(|q| q.name.clone()))),
            quotas,
            tiers: config.tiers.keys().cloned().collect(),
            local: LocalStore::new(&limits),
            local_quotas: previous.map_or_else(Arc::default, |p| p.local_quotas.clone()),
            limits,
            quota_limits,
            shared,
            key_prefix: config.key_prefix.clone(),
        });
        limiter.spawn_eviction(config.evict_interval);
        Ok(Some(limiter))
    }

    pub fn metrics(&self) -> &Arc<RateLimitMetrics> {
        &self.metrics
    }

    /// Evicts idle keys and ended quota windows from local memory every `every`, until the
    /// limiter is dropped.
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
                let counters = limiter.local_quotas.evict_ended(window::unix_now());
                tracing::trace!(
                    live_keys = live,
                    quota_counters = counters,
                    "rate limits: idle keys evicted"
                );
            }
        });
    }

    /// The rules and quotas that count this request, with their keys.
    fn targets(&self, identity: Option<&Identity>, client: Option<ClientIp>) -> Targets {
        let tier = identity
            .and_then(Identity::tier)
            .and_then(|t| self.tiers.iter().position(|name| name == t))
            .map_or(0, |i| i + 1);
        let slots = self.tiers.len() + 1;
        let caller = identity.map(|identity| match identity.principal() {
            Principal::User(id) => (KeyKind::User, RateLimitKey::User(id.as_str().into())),
            Principal::ApiClient(id) => (KeyKind::ApiKey, RateLimitKey::ApiKey(id.as_str().into())),
        });
        let cluster = self.shared.as_ref().map(|s| s.store.is_cluster());
        let mut targets = Targets::default();
        for (i, rule) in self.rules.iter().enumerate() {
            let (key, tier) = match (&caller, rule.key, client) {
                (Some((kind, key)), wanted, _) if *kind == wanted => (key.clone(), tier),
                (_, KeyKind::Ip, Some(ip)) => (RateLimitKey::Ip(ip.limit_key()), 0),
                _ => continue,
            };
            targets.rules.push(Target {
                rule: i,
                slot: i * slots + tier,
                redis_key: cluster.map(|c| redis_key(&self.key_prefix, &rule.name, &key, c)),
                key,
            });
        }
        if let Some((kind, key)) = &caller {
            for (i, quota) in self.quotas.iter().enumerate() {
                if quota.key != *kind {
                    continue;
                }
                targets.quotas.push(QuotaTarget {
                    quota: i,
                    slot: i * slots + tier,
                    redis_key: cluster
                        .map(|c| redis_key(&self.key_prefix, &quota.redis_name, key, c)),
                    key: key.clone(),
                });
            }
        }
        targets
    }
}

/// The Redis key of one rule's counter for `key`: `{prefix}{rule}:u:{id}` on a single node,
/// and of a quota's `{prefix}quota:{name}:u:{id}` (`rule` is then `quota:{name}`; a rule's
/// name holds no `:`, so the two never meet). On a Cluster the key's identity is its hash
/// tag, `{prefix}{rule}:{u:id}`: every rule and quota counting one caller then lands in one
/// slot, and one script charges them together.
fn redis_key(prefix: &str, rule: &str, key: &RateLimitKey, cluster: bool) -> String {
    let (open, close) = if cluster { ("{", "}") } else { ("", "") };
    match key {
        RateLimitKey::User(id) => format!("{prefix}{rule}:{open}u:{id}{close}"),
        RateLimitKey::ApiKey(id) => format!("{prefix}{rule}:{open}k:{id}{close}"),
        RateLimitKey::Ip(ip) => format!("{prefix}{rule}:{open}ip:{ip}{close}"),
    }
}
