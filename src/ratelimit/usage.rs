//! What a caller has used of its limits, for an endpoint where it reads them (the partner
//! BFF's `GET /v1/usage`): each quota with what is used and when it resets, each rule with
//! what is left. `usage` is the handler; mount it behind `QuotaUse::Read`, so that reading
//! the quotas does not spend them (the rules still charge: reading is a request like any
//! other), and the one round trip that charges the rules reads the quotas too.

use axum::{Extension, Json};
use serde::Serialize;

use super::{Cost, Decisions, RateLimiter, Verdict, headers};
use crate::auth::Identity;
use crate::config::Period;
use crate::edge::client_ip::ClientIp;

/// A caller's usage of every quota and rule that applies to it, in config order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub quotas: Vec<QuotaUsage>,
    pub rules: Vec<RuleUsage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaUsage {
    pub name: String,
    pub period: Period,
    /// The caller's limit, its tier applied.
    pub limit: u32,
    /// Units used in the current window.
    pub used: u64,
    pub remaining: u64,
    /// When the window ends and the quota is whole again, RFC 3339 in UTC.
    pub resets_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleUsage {
    pub name: String,
    /// The caller's limit, its tier applied, per `window`.
    pub limit: u32,
    /// The rule's window in whole seconds (rounded up).
    pub window: u64,
    /// Units left now (after the request that asked).
    pub remaining: u32,
}

impl From<&Decisions> for Usage {
    fn from(decisions: &Decisions) -> Self {
        Usage {
            quotas: decisions
                .quotas
                .iter()
                .map(|d| QuotaUsage {
                    name: d.quota.to_string(),
                    period: d.period,
                    limit: d.limit,
                    used: d.outcome.used,
                    remaining: d.remaining(),
                    resets_at: d.outcome.window.resets_at(),
                })
                .collect(),
            rules: decisions
                .rules
                .iter()
                .map(|d| RuleUsage {
                    name: d.rule.to_string(),
                    limit: d.limit.limit,
                    window: headers::seconds(d.limit.per),
                    remaining: d.outcome.remaining,
                })
                .collect(),
        }
    }
}

/// Handler: the caller's usage as the limits read it for this request. Empty lists when no
/// limit applies to the route or the caller.
pub async fn usage(read: Option<Extension<Usage>>) -> Json<Usage> {
    Json(read.map(|Extension(usage)| usage).unwrap_or_default())
}

impl RateLimiter {
    /// What `identity` (from `client`) has used of every rule and quota that applies to it,
    /// read without charging anything. `None` while the shared store is down and the policy
    /// is to refuse.
    pub async fn usage(
        &self,
        identity: Option<&Identity>,
        client: Option<ClientIp>,
    ) -> Option<Usage> {
        let targets = self.targets(identity, client);
        match self.charge(&targets, Cost::READ).await {
            Verdict::Allowed(decisions) | Verdict::Refused(decisions) => {
                Some(Usage::from(&decisions))
            }
            Verdict::Unavailable => None,
        }
    }
}
