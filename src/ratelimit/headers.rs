//! The headers that tell a client about its limits (IETF draft-ietf-httpapi-ratelimit-headers):
//! `RateLimit-Policy: "per-user";q=600;w=60` lists each rule that applied (quota and window),
//! `RateLimit: "per-user";r=599;t=1` what is left of it and in how many seconds it is whole
//! again; a refusal adds `Retry-After`. Both lists have one item per rule, in rule order,
//! then one per quota (`"daily";q=100000;w=86400`, `"daily";r=99999;t=3600`: `w` is the
//! length of the calendar window, `t` the seconds until it ends).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, header};

use super::Decisions;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Adds `RateLimit-Policy` and `RateLimit` for `decisions` (rule and quota names were
/// validated as tokens, so the values are always valid header text).
pub fn apply(headers: &mut HeaderMap, decisions: &Decisions) {
    // Written by hand: `write!` with its formatter was 4% of a production proxied request.
    let mut policy = String::with_capacity(64);
    let mut state = String::with_capacity(64);
    let mut item = |name: &str, q: u64, w: u64, r: u64, t: u64| {
        if !policy.is_empty() {
            policy.push_str(", ");
            state.push_str(", ");
        }
        for (out, (a, x), (b, y)) in [
            (&mut policy, ("q", q), ("w", w)),
            (&mut state, ("r", r), ("t", t)),
        ] {
            out.push('"');
            out.push_str(name);
            out.push_str("\";");
            out.push_str(a);
            out.push('=');
            push_number(out, x);
            out.push(';');
            out.push_str(b);
            out.push('=');
            push_number(out, y);
        }
    };
    for d in &decisions.rules {
        item(
            &d.rule,
            d.limit.limit.into(),
            seconds(d.limit.per),
            d.outcome.remaining.into(),
            seconds(d.outcome.reset),
        );
    }
    for d in &decisions.quotas {
        item(
            &d.quota,
            d.limit.into(),
            d.outcome.window.seconds(),
            d.remaining(),
            d.resets_in(),
        );
    }
    if policy.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert(RATELIMIT_POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&state) {
        headers.insert(RATELIMIT, v);
    }
}

/// Appends `n` in decimal.
fn push_number(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `Retry-After` for a refusal: the longest wait among the refusing rules, in whole seconds,
/// at least 1 (a client told 0 would retry at once).
pub fn retry_after(headers: &mut HeaderMap, wait: Duration) {
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds(wait).max(1)));
}

/// Whole seconds, rounded up: a client that waits that long is never early.
pub fn seconds(d: Duration) -> u64 {
    d.as_nanos()
        .div_ceil(1_000_000_000)
        .try_into()
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Period;
    use crate::ratelimit::{
        Decision, Limit, Outcome, QuotaDecision, QuotaOutcome, QuotaState, Window,
    };

    #[test]
    fn headers_list_every_rule_then_every_quota() {
        let rules = vec![
            Decision {
                rule: "per-user".into(),
                limit: Limit {
                    limit: 100,
                    per: Duration::from_secs(60),
                },
                outcome: Outcome {
                    allowed: true,
                    remaining: 99,
                    reset: Duration::from_millis(600),
                    retry_after: Duration::ZERO,
                },
            },
            Decision {
                rule: "per-ip".into(),
                limit: Limit {
                    limit: 5,
                    per: Duration::from_millis(1500),
                },
                outcome: Outcome {
                    allowed: false,
                    remaining: 0,
                    reset: Duration::from_secs(2),
                    retry_after: Duration::from_millis(300),
                },
            },
        ];
        // 2026-11-29T23:00:00Z: an hour of the day left.
        let now = 1_795_993_200;
        let quotas = vec![QuotaDecision {
            quota: "daily".into(),
            period: Period::Day,
            limit: 100_000,
            cost: crate::config::CostKind::Request,
            outcome: QuotaOutcome {
                state: QuotaState::Allowed,
                used: 12,
                window: Window::containing(Period::Day, now),
                now,
            },
        }];
        let mut h = HeaderMap::new();
        apply(&mut h, &Decisions { rules, quotas });
        retry_after(&mut h, Duration::from_millis(300));
        assert_eq!(
            h[RATELIMIT_POLICY],
            "\"per-user\";q=100;w=60, \"per-ip\";q=5;w=2, \"daily\";q=100000;w=86400"
        );
        assert_eq!(
            h[RATELIMIT],
            "\"per-user\";r=99;t=1, \"per-ip\";r=0;t=2, \"daily\";r=99988;t=3600"
        );
        assert_eq!(h[header::RETRY_AFTER], "1");
        let mut none = HeaderMap::new();
        apply(&mut none, &Decisions::default());
        assert!(none.is_empty(), "no limit applied, no header");
    }
}
