//! The middleware that applies the limits to a route (inside authentication, around the
//! handler), the cost-based charge the GraphQL endpoint adds, and the two refusals: 429 over
//! a limit, 503 when the shared store is down and the policy is to refuse.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Decision, RateLimiter, Target, Verdict, headers};
use crate::auth::Identity;
use crate::config::CostKind;
use crate::edge::client_ip::ClientIp;
use crate::error::{Code, Problem};

/// Middleware (inside authentication): charges the request to every rule that applies and
/// answers 429 without running the handler when one refuses.
pub async fn enforce(
    State(limiter): State<Arc<RateLimiter>>,
    mut request: Request,
    next: Next,
) -> Response {
    let identity = request.extensions().get::<Arc<Identity>>().cloned();
    let client = request.extensions().get::<ClientIp>().copied();
    let targets = limiter.targets(identity.as_deref(), client);
    if targets.is_empty() {
        return next.run(request).await;
    }
    let decisions = match limiter.charge(&targets, 1).await {
        Verdict::Allowed(decisions) => decisions,
        Verdict::Refused(decisions) => return refusal(&decisions),
        Verdict::Unavailable => return unavailable(),
    };
    let by_operation: Vec<Target> = targets
        .into_iter()
        .filter(|t| limiter.rules[t.rule].cost == CostKind::Operation)
        .collect();
    if by_operation.is_empty() {
        let mut response = next.run(request).await;
        headers::apply(response.headers_mut(), &decisions);
        return response;
    }
    let charge = Arc::new(OperationCharge {
        limiter,
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
/// when a rule with `cost = "operation"` applies.
pub struct OperationCharge {
    limiter: Arc<RateLimiter>,
    targets: Vec<Target>,
    decisions: Mutex<Vec<Decision>>,
}

impl OperationCharge {
    /// Charges an operation of `cost` units, of which the request already paid one. On
    /// refusal returns the 429 to answer with (nothing executes).
    pub async fn charge(&self, cost: u32) -> Result<(), Response> {
        let extra = cost.saturating_sub(1);
        if extra == 0 {
            return Ok(());
        }
        let verdict = self.limiter.charge(&self.targets, extra).await;
        let (fresh, refused) = match verdict {
            Verdict::Allowed(d) => (d, false),
            Verdict::Refused(d) => (d, true),
            Verdict::Unavailable => return Err(unavailable()),
        };
        let merged = {
            let mut decisions = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
            for d in fresh {
                if let Some(old) = decisions.iter_mut().find(|old| old.rule == d.rule) {
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

    fn decisions(&self) -> Vec<Decision> {
        self.decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// 429 with the headers and the longest wait among the refusing rules.
fn refusal(decisions: &[Decision]) -> Response {
    let refused: Vec<&Decision> = decisions.iter().filter(|d| !d.outcome.allowed).collect();
    let wait = refused
        .iter()
        .map(|d| d.outcome.retry_after)
        .max()
        .unwrap_or_default();
    let names: Vec<&str> = refused
        .iter()
        .filter(|d| !d.outcome.retry_after.is_zero())
        .map(|d| &*d.rule)
        .collect();
    let detail = format!(
        "rate limit exceeded ({}); retry in {} s",
        names.join(", "),
        headers::seconds(wait).max(1)
    );
    let mut response = Problem::new(Code::RateLimited, detail).into_response();
    headers::apply(response.headers_mut(), decisions);
    headers::retry_after(response.headers_mut(), wait);
    response
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
