//! Config of edge security: which peers may tell us the client's address (`[client_ip]`) and
//! the rate-limit rules, tiers and store (`[rate_limit]`). The defaults limit nothing and
//! trust no proxy, so a config without these sections behaves as before.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::quota::QuotaConfig;
use super::redis_endpoint::{self, RedisEndpoint};
use super::validate::Problems;
use super::{SecretUrl, units};

/// `[client_ip]`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientIpConfig {
    /// Peers whose `Forwarded` / `X-Forwarded-For` is believed, e.g. `["10.0.0.0/8"]`.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// The one header the proxies write. Only that one is read: a client could send the
    /// other, and a proxy that does not write it would pass the forgery through.
    #[serde(default)]
    pub header: ForwardedHeader,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ForwardedHeader {
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=...`.
    #[serde(rename = "forwarded")]
    Forwarded,
}

/// An address block, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid address block {text:?}; write it like \"10.0.0.0/8\"");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// `[rate_limit]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RateLimitConfig {
    /// Where counters live: this instance only, or Redis (shared by every instance).
    #[serde(default)]
    pub store: StoreKind,
    /// `redis://host:port/db` or `rediss://` (TLS); required when `store = "redis"`.
    pub redis_url: Option<SecretUrl>,
    /// PEM CA bundle a `rediss://` server is verified against (else the platform's roots).
    pub redis_ca_file: Option<PathBuf>,
    /// `redis_url` is a node of a Redis Cluster.
    #[serde(default)]
    pub redis_cluster: bool,
    /// What to do while Redis is unreachable.
    #[serde(default)]
    pub on_redis_error: OnRedisError,
    /// Budget of one Redis round trip; past it the decision falls back.
    #[serde(default = "defaults::redis_timeout", with = "units::duration")]
    pub redis_timeout: Duration,
    /// After a Redis failure, how long decisions go straight to the fallback before Redis is
    /// tried again (so an outage does not cost every request a timeout).
    #[serde(default = "defaults::redis_retry", with = "units::duration")]
    pub redis_retry: Duration,
    /// Prefix of every Redis key, so BFFs sharing one Redis keep apart.
    #[serde(default = "defaults::key_prefix")]
    pub key_prefix: String,
    /// How often idle keys are evicted from local memory.
    #[serde(default = "defaults::evict_interval", with = "units::duration")]
    pub evict_interval: Duration,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Allowances per calendar day or month, charged with the rules.
    #[serde(default)]
    pub quotas: Vec<QuotaConfig>,
    /// Tiers by name (from a token's `tier` claim or an API key's `tier`).
    #[serde(default)]
    pub tiers: BTreeMap<String, TierConfig>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::default(),
            redis_url: None,
            redis_ca_file: None,
            redis_cluster: false,
            on_redis_error: OnRedisError::default(),
            redis_timeout: defaults::redis_timeout(),
            redis_retry: defaults::redis_retry(),
            key_prefix: defaults::key_prefix(),
            evict_interval: defaults::evict_interval(),
            rules: Vec::new(),
            quotas: Vec::new(),
            tiers: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    #[default]
    Local,
    Redis,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisError {
    /// Decide with this instance's own counters (each instance then allows up to the limit).
    #[default]
    Local,
    /// Answer 503 while the shared store is unreachable.
    Refuse,
}

/// What a rule counts requests by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The JWT subject; requests without a user are not counted by this rule.
    User,
    /// The API key id; requests without a key are not counted by this rule.
    ApiKey,
    /// The client address (an IPv6 client by its /64).
    Ip,
}

/// What one request costs under a rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CostKind {
    /// One per request, whatever it asks for.
    Request,
    /// The default: a GraphQL operation costs its estimated cost (`graphql::cost`: fields
    /// times the items of the lists around them, at least one), so a limit bounds what a
    /// caller makes the backends do; any other request costs one.
    #[default]
    Operation,
}

/// `[[rate_limit.rules]]`: at most `limit` per `per`, in bursts of up to `limit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RuleConfig {
    /// Shown in the RateLimit headers; letters, digits, `-`, `_`, `.`.
    pub name: String,
    pub key: KeyKind,
    pub limit: u32,
    #[serde(with = "units::duration")]
    pub per: Duration,
    #[serde(default)]
    pub cost: CostKind,
}

/// `[rate_limit.tiers.NAME]`: scales (or replaces) the limit of user and API-key rules; a
/// multiplier scales every quota too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TierConfig {
    pub multiplier: Option<f64>,
    pub limit: Option<u32>,
}

impl TierConfig {
    /// The limit of a rule whose base limit is `base`, for a caller in this tier.
    pub fn apply(&self, base: u32) -> u32 {
        match (self.limit, self.multiplier) {
            (Some(limit), _) => limit,
            (None, Some(m)) => ((f64::from(base) * m).round() as u32).max(1),
            (None, None) => base,
        }
    }

    /// The limit of a quota whose base limit is `base`, for a caller in this tier: scaled by
    /// the multiplier. A tier's fixed `limit` is a rate and leaves quotas as they are.
    pub fn scale_quota(&self, base: u32) -> u32 {
        match self.multiplier {
            Some(m) => ((f64::from(base) * m).round().min(f64::from(u32::MAX)) as u32).max(1),
            None => base,
        }
    }
}

impl RateLimitConfig {
    /// The Redis the counters are shared in, when `store = "redis"`.
    pub fn redis(&self) -> Option<RedisEndpoint> {
        let url = self
            .redis_url
            .as_ref()
            .filter(|_| self.store == StoreKind::Redis);
        RedisEndpoint::of(url, self.redis_ca_file.as_deref(), self.redis_cluster)
    }

    pub(super) fn validate(&self, p: &mut Problems) {
        redis_endpoint::validate(
            "rate_limit",
            self.redis_url.as_ref(),
            self.redis_ca_file.as_deref(),
            self.redis_cluster,
            p,
        );
        let mut check = |ok: bool, key: String, message: &str| p.check(ok, key, message);
        check(
            self.redis_url.is_some() || self.store != StoreKind::Redis,
            "rate_limit.redis_url".into(),
            "is required when store = \"redis\"",
        );
        check(
            !self.redis_timeout.is_zero(),
            "rate_limit.redis_timeout".into(),
            "must be greater than 0",
        );
        check(
            !self.evict_interval.is_zero(),
            "rate_limit.evict_interval".into(),
            "must be greater than 0",
        );
        for (i, rule) in self.rules.iter().enumerate() {
            let key = |field: &str| format!("rate_limit.rules[{i}].{field}");
            check(
                is_token(&rule.name),
                key("name"),
                "must be non-empty letters, digits, '-', '_' or '.'",
            );
            check(
                self.rules[..i].iter().all(|r| r.name != rule.name),
                key("name"),
                "is used by an earlier rule",
            );
            check(rule.limit > 0, key("limit"), "must be greater than 0");
            check(
                rule.per >= Duration::from_millis(1),
                key("per"),
                "must be at least 1ms",
            );
        }
        for (name, tier) in &self.tiers {
            let key = |field: &str| format!("rate_limit.tiers.{name}.{field}");
            match (tier.multiplier, tier.limit) {
                (Some(_), Some(_)) | (None, None) => check(
                    false,
                    key("limit"),
                    "set exactly one of limit or multiplier",
                ),
                (Some(m), None) => check(
                    m.is_finite() && m > 0.0,
                    key("multiplier"),
                    "must be greater than 0",
                ),
                (None, Some(l)) => check(l > 0, key("limit"), "must be greater than 0"),
            }
        }
        for (i, quota) in self.quotas.iter().enumerate() {
            quota.validate(i, &self.quotas[..i], &self.rules, p);
        }
    }
}

pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

mod defaults {
    use std::time::Duration;

    pub fn redis_timeout() -> Duration {
        Duration::from_millis(50)
    }
    pub fn redis_retry() -> Duration {
        Duration::from_secs(1)
    }
    pub fn key_prefix() -> String {
        "manifold:rl:".into()
    }
    pub fn evict_interval() -> Duration {
        Duration::from_secs(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_contain_their_addresses() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("ten/8".parse::<Cidr>().is_err());
    }

    fn problems(extra: &str) -> Vec<String> {
        crate::config::problems_with(extra)
    }

    #[test]
    fn no_section_means_no_limits_and_no_trusted_proxy() {
        assert!(problems("").is_empty());
        let config = crate::config::Config::parse(
            "[server]\nlisten = \"127.0.0.1:0\"",
            "t",
            Vec::new(),
            &[],
        )
        .unwrap();
        assert!(config.rate_limit.rules.is_empty());
        assert!(config.client_ip.trusted_proxies.is_empty());
    }

    #[test]
    fn every_problem_is_reported_by_its_key() {
        let found = problems(
            r#"
            [rate_limit]
            store = "redis"
            [[rate_limit.rules]]
            name = "per user"
            key = "user"
            limit = 0
            per = "0s"
            [[rate_limit.rules]]
            name = "per user"
            key = "ip"
            limit = 5
            per = "1s"
            [rate_limit.tiers.gold]
            multiplier = 2.0
            limit = 7
            [rate_limit.tiers.lead]
            multiplier = -1.0
            "#,
        );
        for expected in [
            "rate_limit.redis_url: is required",
            "rate_limit.rules[0].name: must be non-empty",
            "rate_limit.rules[0].limit: must be greater than 0",
            "rate_limit.rules[0].per: must be at least 1ms",
            "rate_limit.rules[1].name: is used by an earlier rule",
            "rate_limit.tiers.gold.limit: set exactly one",
            "rate_limit.tiers.lead.multiplier: must be greater than 0",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "{expected} not in {found:#?}"
            );
        }
        let found = problems("[client_ip]\ntrusted_proxies = [\"10.0.0.0/8\", \"nope\"]");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("client_ip.trusted_proxies[1]: invalid address block"));
        let found = problems("[rate_limit]\nstore = \"redis\"\nredis_url = \"http://x\"");
        assert!(found[0].starts_with("rate_limit.redis_url: must be a redis:// or rediss:// URL"));
        let found = problems(
            "[[rate_limit.rules]]\nname = \"a\"\nkey = \"cookie\"\nlimit = 1\nper = \"1s\"",
        );
        assert!(found[0].starts_with("rate_limit.rules[0].key"), "{found:?}");
    }

    #[test]
    fn tiers_scale_or_replace_limits() {
        let gold = TierConfig {
            multiplier: Some(2.5),
            limit: None,
        };
        assert_eq!(gold.apply(10), 25);
        let fixed = TierConfig {
            multiplier: None,
            limit: Some(7),
        };
        assert_eq!(fixed.apply(10), 7);
        assert_eq!(gold.scale_quota(100_000), 250_000);
        assert_eq!(
            fixed.scale_quota(100_000),
            100_000,
            "a fixed rate leaves quotas alone"
        );
    }
}
