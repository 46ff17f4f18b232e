//! `[[rate_limit.quotas]]`: how many units a caller may spend per calendar day or month. A
//! rule bounds a rate (600 a minute, refilled continuously); a quota bounds an allowance
//! (100000 a day, whole again at 00:00 UTC), the number a partner plans its integration
//! against. Both are scaled by the caller's tier and charged together (`ratelimit`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ratelimit::{CostKind, KeyKind, RuleConfig, is_token};
use super::validate::Problems;

/// `[[rate_limit.quotas]]`: at most `limit` units per `period` per caller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QuotaConfig {
    /// Shown in the RateLimit headers and the usage endpoint; a token like a rule's name,
    /// and not the name of a rule (the headers list both).
    pub name: String,
    /// `user` or `api_key`: a quota is an allowance of a caller, not of an address.
    pub key: KeyKind,
    pub limit: u32,
    pub period: Period,
    /// Unlike a rule, a quota counts requests unless told otherwise: an allowance is a
    /// number of calls. `operation` charges a GraphQL operation its estimated cost.
    #[serde(default = "request_cost")]
    pub cost: CostKind,
}

fn request_cost() -> CostKind {
    CostKind::Request
}

/// A calendar window in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// From 00:00:00Z to the next 00:00:00Z.
    Day,
    /// From the 1st at 00:00:00Z to the next month's 1st.
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }
}

impl QuotaConfig {
    /// `earlier` are the quotas listed before this one.
    pub(super) fn validate(
        &self,
        i: usize,
        earlier: &[QuotaConfig],
        rules: &[RuleConfig],
        p: &mut Problems,
    ) {
        let key = |field: &str| format!("rate_limit.quotas[{i}].{field}");
        p.check(
            is_token(&self.name),
            key("name"),
            "must be non-empty letters, digits, '-', '_' or '.'",
        );
        p.check(
            earlier.iter().all(|q| q.name != self.name),
            key("name"),
            "is used by an earlier quota",
        );
        p.check(
            rules.iter().all(|r| r.name != self.name),
            key("name"),
            "is the name of a rule: the RateLimit headers list both, so the names must differ",
        );
        p.check(
            self.key != KeyKind::Ip,
            key("key"),
            "must be \"user\" or \"api_key\": a quota is a caller's allowance, and addresses change hands",
        );
        p.check(self.limit > 0, key("limit"), "must be greater than 0");
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, CostKind, Period};

    fn problems(extra: &str) -> Vec<String> {
        crate::config::problems_with(extra)
    }

    #[test]
    fn a_quota_reads_with_a_request_cost_by_default() {
        let text = "[server]\nlisten = \"127.0.0.1:0\"\n\
                    [[rate_limit.quotas]]\nname = \"daily\"\nkey = \"api_key\"\n\
                    limit = 100000\nperiod = \"day\"\n\
                    [[rate_limit.quotas]]\nname = \"monthly\"\nkey = \"user\"\n\
                    limit = 5\nperiod = \"month\"\ncost = \"operation\"\n";
        let config = Config::parse(text, "test", Vec::new(), &[]).expect("valid");
        let quotas = &config.rate_limit.quotas;
        assert_eq!(quotas[0].period, Period::Day);
        assert_eq!(quotas[0].cost, CostKind::Request);
        assert_eq!(quotas[1].period, Period::Month);
        assert_eq!(quotas[1].cost, CostKind::Operation);
    }

    #[test]
    fn every_quota_problem_is_reported_by_its_key() {
        let found = problems(
            r#"
            [[rate_limit.rules]]
            name = "per-key"
            key = "api_key"
            limit = 10
            per = "1s"
            [[rate_limit.quotas]]
            name = "per-key"
            key = "ip"
            limit = 0
            period = "day"
            [[rate_limit.quotas]]
            name = "daily quota"
            key = "user"
            limit = 1
            period = "month"
            [[rate_limit.quotas]]
            name = "daily quota"
            key = "api_key"
            limit = 1
            period = "day"
            "#,
        );
        for expected in [
            "rate_limit.quotas[0].name: is the name of a rule",
            "rate_limit.quotas[0].key: must be \"user\" or \"api_key\"",
            "rate_limit.quotas[0].limit: must be greater than 0",
            "rate_limit.quotas[1].name: must be non-empty",
            "rate_limit.quotas[2].name: is used by an earlier quota",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "{expected} not in {found:#?}"
            );
        }
        assert_eq!(found.len(), 6, "{found:#?}");
    }

    #[test]
    fn an_unknown_period_or_field_names_its_key() {
        let found = problems(
            "[[rate_limit.quotas]]\nname = \"q\"\nkey = \"user\"\nlimit = 1\nperiod = \"week\"\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("rate_limit.quotas[0].period: unknown variant `week`"),
            "{found:?}"
        );
        let found = problems(
            "[[rate_limit.quotas]]\nname = \"q\"\nkey = \"user\"\nlimit = 1\nperiod = \"day\"\nper = \"1d\"\n",
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("rate_limit.quotas[0].per: unknown key")),
            "{found:?}"
        );
    }
}
