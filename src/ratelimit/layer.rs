//! The middleware that applies the limits to a route (inside authentication, around the
//! handler), the cost-based charge the GraphQL endpoint adds, and the refusals: 429 over a
//! rule (`RATE_LIMITED`) or a quota (`QUOTA_EXCEEDED`, naming it and when it resets), 503
//! when the shared store is down and the policy is to refuse.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use super::usage::Usage;
use super::{Cost, Decisions, QuotaDecision, QuotaState, RateLimiter, Targets, Verdict, headers};
use crate::auth::Identity;
use crate::config::CostKind;
use crate::error::{Code, Problem};
use crate::request::Stamp;
use crate::server::around::{Around, Next, Rest};

/// What the requests of a route do to the caller's quotas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaUse {
    /// Each request spends its cost, as it does from the rules.
    Spend,
    /// The quotas are read, not spent, while the rules still charge: for a route that tells
    /// callers their usage, which must not use it up. The handler finds what was read as a
    /// `Usage` request extension (see `ratelimit::usage`).
    Read,
}

/// Whether a route's handler charges each operation's estimated cost, beyond the one unit
/// every request pays on arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operations {
    /// The GraphQL endpoint: through `OperationCharge`, to the rules and quotas priced by
    /// operation.
    Charged,
    /// Any other route: a request costs one, also to rules and quotas priced by operation.
    NotCharged,
}

/// The state of `enforce`: the limiter, what the route does to quotas, and whether its
/// handler charges operations.
#[derive(Clone)]
pub struct Enforcement {
    pub limiter: Arc<RateLimiter>,
    pub quotas: QuotaUse,
    pub operations: Operations,
}

/// The layer (inside authentication): charges the request to every rule and quota that
/// applies and answers 429 without running the handler when one refuses.
impl Around for Enforcement {
    async fn around<S: Rest>(&self, request: Request, next: Next<S>) -> Response {
        enforce(self, request, next).await
    }
}

async fn enforce<S: Rest>(
    Enforcement {
        limiter,
        quotas,
        operations,
    }: &Enforcement,
    mut request: Request,
    next: Next<S>,
) -> Response {
    let quotas = *quotas;
    let identity = request.extensions().get::<Arc<Identity>>().cloned();
    let client = Stamp::of(request.extensions()).and_then(|s| s.client);
    let targets = limiter.targets(identity.as_deref(), client);
    if targets.is_empty() {
        return next.run(request).await;
    }
    let cost = Cost {
        rules: 1,
        quotas: u32::from(quotas == QuotaUse::Spend),
    };
    let decisions = match limiter.charge(&targets, cost).await {
        Verdict::Allowed(decisions) => decisions,
        Verdict::Refused(decisions) => return refusal(&decisions),
        Verdict::Unavailable => return unavailable(),
    };
    if quotas == QuotaUse::Read {
        request.extensions_mut().insert(Usage::from(&decisions));
    }
    // What the handler may still charge: nothing on a route that does not charge operations.
    let by_operation = if *operations == Operations::NotCharged {
        Targets::default()
    } else {
        Targets {
            rules: targets
                .rules
                .into_iter()
                .filter(|t| limiter.rules[t.rule].cost == CostKind::Operation)
                .collect(),
            quotas: targets
                .quotas
                .into_iter()
                .filter(|_| quotas == QuotaUse::Spend)
                .filter(|t| limiter.quotas[t.quota].cost == CostKind::Operation)
                .collect(),
        }
    };
    if by_operation.is_empty() {
        let mut response = next.run(request).await;
        headers::apply(response.headers_mut(), &decisions);
        return response;
    }
    let charge = Arc::new(OperationCharge {
        limiter: limiter.clone(),
        targets: by_operation,
        decisions: Mutex::new(decisions),
    });
    request.extensions_mut().insert(charge.clone());
    let mut response = next.run(request).await;
    headers::apply(response.headers_mut(), &charge.decisions());
    response
}

/// The cost-based part of a request's charge, for the handler that can estimate it (the
/// GraphQL endpoint, after parsing and before executing). Present as a request extension
/// when a rule or quota with `cost = "operation"` applies.
pub struct OperationCharge {
    limiter: Arc<RateLimiter>,
    targets: Targets,
    decisions: Mutex<Decisions>,
}

impl OperationCharge {
    /// Charges an operation of `cost` units, of which the request already paid one. On
    /// refusal returns the 429 to answer with (nothing executes).
    pub async fn charge(&self, cost: u32) -> Result<(), Response> {
        let extra = cost.saturating_sub(1);
        if extra == 0 {
            return Ok(());
        }
        let cost = Cost {
            rules: extra,
            quotas: extra,
        };
        let (fresh, refused) = match self.limiter.charge(&self.targets, cost).await {
            Verdict::Allowed(d) => (d, false),
            Verdict::Refused(d) => (d, true),
            Verdict::Unavailable => return Err(unavailable()),
        };
        let merged = {
            let mut decisions = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
            for d in fresh.rules {
                if let Some(old) = decisions.rules.iter_mut().find(|old| old.rule == d.rule) {
                    *old = d;
                }
            }
            for d in fresh.quotas {
                if let Some(old) = decisions.quotas.iter_mut().find(|old| old.quota == d.quota) {
                    *old = d;
                }
            }
            decisions.clone()
        };
        if refused {
            Err(refusal(&merged))
        } else {
            Ok(())
        }
    }

    fn decisions(&self) -> Decisions {
        self.decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// 429 with the headers. A used-up quota outweighs a rule (waiting for the rule would not
/// help): its problem names the quota that resets last, and `Retry-After` is the longest
/// wait among everything that refused.
fn refusal(decisions: &Decisions) -> Response {
    let refused: Vec<_> = decisions
        .rules
        .iter()
        .filter(|d| !d.outcome.allowed)
        .collect();
    let rule_wait = refused
        .iter()
        .map(|d| d.outcome.retry_after)
        .max()
        .unwrap_or_default();
    let exhausted = decisions
        .quotas
        .iter()
        .filter(|d| d.outcome.state == QuotaState::Exhausted)
        .max_by_key(|d| d.resets_in());
    let (problem, wait) = match exhausted {
        Some(quota) => (
            quota_problem(quota),
            rule_wait.max(Duration::from_secs(quota.resets_in())),
        ),
        None => {
            let names: Vec<&str> = refused
                .iter()
                .filter(|d| !d.outcome.retry_after.is_zero())
                .map(|d| &*d.rule)
                .collect();
            let detail = format!(
                "rate limit exceeded ({}); retry in {} s",
                names.join(", "),
                headers::seconds(rule_wait).max(1)
            );
            (Problem::new(Code::RateLimited, detail), rule_wait)
        }
    };
    let mut response = problem.into_response();
    headers::apply(response.headers_mut(), decisions);
    headers::retry_after(response.headers_mut(), wait);
    response
}

/// `QUOTA_EXCEEDED`: which quota, how large, and the instant (RFC 3339) it is whole again,
/// in the detail for people and as members `quota` and `resetsAt` for programs.
fn quota_problem(quota: &QuotaDecision) -> Problem {
    let resets_at = quota.outcome.window.resets_at();
    let unit = match quota.cost {
        CostKind::Request => "requests",
        CostKind::Operation => "cost units",
    };
    let detail = format!(
        "the {} quota of {} {unit} is used up; it resets at {resets_at}",
        quota.quota, quota.limit
    );
    Problem::new(Code::QuotaExceeded, detail)
        .with_extension("quota", &*quota.quota)
        .with_extension("resetsAt", resets_at)
}

fn unavailable() -> Response {
    let mut response = Problem::new(
        Code::RateLimitUnavailable,
        "rate limits cannot be checked right now",
    )
    .into_response();
    headers::retry_after(response.headers_mut(), Duration::from_secs(1));
    response
}
