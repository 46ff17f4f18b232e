//! Charging one request: to every rule and quota that applies, all or nothing, in Redis
//! when it is configured and reachable, else (by policy) in this instance's counters.

use tokio::time::Instant;

use super::quota::{QuotaOutcome, QuotaState};
use super::shared::{QuotaCheck, RedisStoreError, SharedCheck};
use super::window::{self, Window};
use super::{
    Cost, Decision, Decisions, Outcome, QuotaDecision, RateLimiter, Shared, Targets, Verdict,
};
use crate::config::OnRedisError;

impl RateLimiter {
    /// Charges `cost` to every target. A read (`Cost::READ`) charges nothing and is not
    /// counted as a decision.
    pub(super) async fn charge(&self, targets: &Targets, cost: Cost) -> Verdict {
        let (rules, quotas) = match &self.shared {
            None => self.charge_locally(targets, cost),
            Some(shared) => match self.charge_shared(shared, targets, cost).await {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    self.metrics.shared_failed(&e, shared.on_error);
                    match shared.on_error {
                        OnRedisError::Local => self.charge_locally(targets, cost),
                        OnRedisError::Refuse => return Verdict::Unavailable,
                    }
                }
            },
        };
        let decisions = self.decisions(targets, rules, quotas);
        let allowed = decisions.all_allowed();
        if cost != Cost::READ {
            self.metrics.count(&decisions, allowed);
        }
        if allowed {
            Verdict::Allowed(decisions)
        } else {
            Verdict::Refused(decisions)
        }
    }

    /// In this instance's counters. All or nothing: when one limit refuses, what the others
    /// charged is given back.
    fn charge_locally(&self, targets: &Targets, cost: Cost) -> (Vec<Outcome>, Vec<QuotaOutcome>) {
        let now = window::unix_now();
        let mut rules: Vec<Outcome> = targets
            .rules
            .iter()
            .map(|t| self.local.check(t.slot, &t.key, cost.rules))
            .collect();
        let mut quotas: Vec<QuotaOutcome> = targets
            .quotas
            .iter()
            .map(|t| {
                let quota = &self.quotas[t.quota];
                let limit = self.quota_limits[t.slot];
                self.local_quotas
                    .charge(&quota.name, &t.key, limit, quota.period, cost.quotas, now)
            })
            .collect();
        let refused = rules.iter().any(|o| !o.allowed)
            || quotas.iter().any(|o| o.state != QuotaState::Allowed);
        if refused {
            for (t, outcome) in targets.rules.iter().zip(&mut rules) {
                if outcome.allowed {
                    *outcome = self.local.refund(t.slot, &t.key, cost.rules);
                }
            }
            for (t, outcome) in targets.quotas.iter().zip(&mut quotas) {
                if outcome.state == QuotaState::Allowed {
                    let charged = cost.quotas.min(self.quota_limits[t.slot]);
                    let name = &self.quotas[t.quota].name;
                    *outcome = self
                        .local_quotas
                        .refund(name, &t.key, *outcome, u64::from(charged));
                }
            }
        }
        (rules, quotas)
    }

    /// In Redis: one script (one round trip) for everything.
    async fn charge_shared(
        &self,
        shared: &Shared,
        targets: &Targets,
        cost: Cost,
    ) -> Result<(Vec<Outcome>, Vec<QuotaOutcome>), RedisStoreError> {
        let rules: Vec<SharedCheck<'_>> = targets
            .rules
            .iter()
            .map(|t| SharedCheck {
                key: t.redis_key.as_deref().unwrap_or_default(),
                limit: self.limits[t.slot],
                cost: cost.rules,
            })
            .collect();
        let now = window::unix_now();
        let quotas: Vec<QuotaCheck<'_>> = targets
            .quotas
            .iter()
            .map(|t| QuotaCheck {
                key: t.redis_key.as_deref().unwrap_or_default(),
                limit: self.quota_limits[t.slot],
                cost: cost.quotas,
                windows: Window::around(self.quotas[t.quota].period, now),
            })
            .collect();
        let started = Instant::now();
        let outcomes = shared.store.charge(&rules, &quotas).await?;
        self.metrics.shared_ok(started.elapsed());
        Ok(outcomes)
    }

    fn decisions(
        &self,
        targets: &Targets,
        rules: Vec<Outcome>,
        quotas: Vec<QuotaOutcome>,
    ) -> Decisions {
        Decisions {
            rules: targets
                .rules
                .iter()
                .zip(rules)
                .map(|(t, outcome)| Decision {
                    rule: self.rules[t.rule].name.clone(),
                    limit: self.limits[t.slot],
                    outcome,
                })
                .collect(),
            quotas: targets
                .quotas
                .iter()
                .zip(quotas)
                .map(|(t, outcome)| {
                    let quota = &self.quotas[t.quota];
                    QuotaDecision {
                        quota: quota.name.clone(),
                        period: quota.period,
                        limit: self.quota_limits[t.slot],
                        cost: quota.cost,
                        outcome,
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::{Identity, Principal};
    use crate::config::Config;

    fn limiter(limits: &str) -> Arc<RateLimiter> {
        let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n{limits}");
        let config = Config::parse(&text, "test", Vec::new(), &[]).expect("valid config");
        RateLimiter::new(&config.rate_limit, None)
            .expect("local store")
            .expect("limits configured")
    }

    fn key(id: &str, tier: Option<&str>) -> Identity {
        Identity::new(
            Principal::ApiClient(id.into()),
            Vec::new(),
            tier.map(str::to_owned),
        )
        .expect("identity")
    }

    const ONE: Cost = Cost {
        rules: 1,
        quotas: 1,
    };

    /// Charges one unit; (allowed, what the rule has left, what the quota has used).
    async fn charge(limiter: &RateLimiter, caller: &Identity) -> (bool, u32, u64) {
        let targets = limiter.targets(Some(caller), None);
        let (allowed, d) = match limiter.charge(&targets, ONE).await {
            Verdict::Allowed(d) => (true, d),
            Verdict::Refused(d) => (false, d),
            Verdict::Unavailable => panic!("no shared store"),
        };
        (
            allowed,
            d.rules[0].outcome.remaining,
            d.quotas[0].outcome.used,
        )
    }

    const RULE_AND_QUOTA: &str = "[[rate_limit.rules]]\nname = \"per-key\"\nkey = \"api_key\"\n\
         limit = {rule}\nper = \"1h\"\ncost = \"request\"\n\
         [[rate_limit.quotas]]\nname = \"daily\"\nkey = \"api_key\"\nlimit = {quota}\nperiod = \"day\"\n\
         [rate_limit.tiers.gold]\nmultiplier = 3.0\n";

    fn config(rule: u32, quota: u32) -> String {
        RULE_AND_QUOTA
            .replace("{rule}", &rule.to_string())
            .replace("{quota}", &quota.to_string())
    }

    #[tokio::test]
    async fn a_request_a_rule_refuses_spends_no_quota() {
        let limiter = limiter(&config(2, 10));
        let acme = key("acme", None);
        assert_eq!(charge(&limiter, &acme).await, (true, 1, 1));
        assert_eq!(charge(&limiter, &acme).await, (true, 0, 2));
        // The rule refuses: the quota reports what it had and is not charged.
        assert_eq!(charge(&limiter, &acme).await, (false, 0, 2));
        assert_eq!(charge(&limiter, &acme).await, (false, 0, 2));
        let usage = limiter.usage(Some(&acme), None).await.expect("local");
        assert_eq!(usage.quotas[0].used, 2);
        assert_eq!(usage.quotas[0].remaining, 8);
        let m = limiter.metrics();
        assert_eq!((m.snapshot().allowed, m.snapshot().refused), (2, 2));
        assert_eq!(
            m.quota_exhausted()[0].1,
            0,
            "refused by the rule, not the quota"
        );
    }

    #[tokio::test]
    async fn a_request_a_quota_refuses_spends_nothing_from_the_rules() {
        let limiter = limiter(&config(10, 2));
        let acme = key("acme", None);
        assert_eq!(charge(&limiter, &acme).await, (true, 9, 1));
        assert_eq!(charge(&limiter, &acme).await, (true, 8, 2));
        // The quota refuses: the rule's unit is given back.
        assert_eq!(charge(&limiter, &acme).await, (false, 8, 2));
        let usage = limiter.usage(Some(&acme), None).await.expect("local");
        assert_eq!(usage.rules[0].remaining, 8);
        assert_eq!(usage.rules[0].window, 3_600);
        let targets = limiter.targets(Some(&acme), None);
        let Verdict::Refused(d) = limiter.charge(&targets, ONE).await else {
            panic!("the quota is used up");
        };
        assert_eq!(d.quotas[0].outcome.state, QuotaState::Exhausted);
        assert!(
            d.rules[0].outcome.retry_after.is_zero(),
            "the rule allowed it"
        );
        assert_eq!(limiter.metrics().quota_exhausted()[0].1, 2);
    }

    #[tokio::test]
    async fn a_tier_scales_quotas_and_reading_usage_charges_nothing() {
        let limiter = limiter(&config(100, 2));
        let gold = key("gold-co", Some("gold"));
        for _ in 0..10 {
            let usage = limiter.usage(Some(&gold), None).await.expect("local");
            assert_eq!(usage.quotas[0].used, 0);
            assert_eq!(usage.quotas[0].limit, 6);
            assert_eq!(usage.rules[0].remaining, 300);
        }
        for used in 1..=6 {
            assert_eq!(
                charge(&limiter, &gold).await,
                (true, 300 - used, u64::from(used))
            );
        }
        assert!(!charge(&limiter, &gold).await.0);
        // Another key has a quota of its own; reads are not decisions.
        assert_eq!(charge(&limiter, &key("other", None)).await, (true, 99, 1));
        assert_eq!(limiter.metrics().snapshot().allowed, 7);
        let usage = limiter.usage(Some(&gold), None).await.expect("local");
        assert_eq!(usage.quotas[0].period, crate::config::Period::Day);
        assert!(usage.quotas[0].resets_at.ends_with("T00:00:00Z"));
    }

    #[tokio::test]
    async fn quota_counts_outlive_a_reload_and_a_change_of_tier() {
        let first = limiter(&config(100, 5));
        let acme = key("acme", None);
        charge(&first, &acme).await;
        charge(&first, &acme).await;
        // The daily limit is raised: the next limiter goes on from what was used today.
        let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n{}", config(100, 10));
        let raised = Config::parse(&text, "test", Vec::new(), &[]).expect("valid");
        let second = RateLimiter::new(&raised.rate_limit, Some(&first))
            .expect("local store")
            .expect("limits");
        assert_eq!(charge(&second, &acme).await, (true, 99, 3));
        // The same key in another tier is the same caller.
        let promoted = key("acme", Some("gold"));
        assert_eq!(charge(&second, &promoted).await, (true, 299, 4));
        assert_eq!(
            second
                .usage(Some(&promoted), None)
                .await
                .map(|u| u.quotas[0].limit),
            Some(30)
        );
    }
}
