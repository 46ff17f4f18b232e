//! The headers that tell a client about its limits (IETF draft-ietf-httpapi-ratelimit-headers):
//! `RateLimit-Policy: "per-user";q=600;w=60` lists each rule that applied (quota and window),
//! `RateLimit: "per-user";r=599;t=1` what is left of it and in how many seconds it is whole
//! again; a refusal adds `Retry-After`. Both lists have one item per rule, in rule order.

use std::fmt::Write;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, header};

use super::Decision;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Adds `RateLimit-Policy` and `RateLimit` for `decisions` (rule names were validated as
/// tokens, so the values are always valid header text).
pub fn apply(headers: &mut HeaderMap, decisions: &[Decision]) {
    if decisions.is_empty() {
        return;
    }
    let mut policy = String::new();
    let mut state = String::new();
    for (i, d) in decisions.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(
            policy,
            "{sep}\"{}\";q={};w={}",
            d.rule,
            d.limit.limit,
            seconds(d.limit.per)
        );
        let _ = write!(
            state,
            "{sep}\"{}\";r={};t={}",
            d.rule,
            d.outcome.remaining,
            seconds(d.outcome.reset)
        );
    }
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert(RATELIMIT_POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&state) {
        headers.insert(RATELIMIT, v);
    }
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
    use crate::ratelimit::{Limit, Outcome};

    #[test]
    fn headers_list_every_rule() {
        let decisions = [
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
        let mut h = HeaderMap::new();
        apply(&mut h, &decisions);
        retry_after(&mut h, Duration::from_millis(300));
        assert_eq!(
            h[RATELIMIT_POLICY],
            "\"per-user\";q=100;w=60, \"per-ip\";q=5;w=2"
        );
        assert_eq!(h[RATELIMIT], "\"per-user\";r=99;t=1, \"per-ip\";r=0;t=2");
        assert_eq!(h[header::RETRY_AFTER], "1");
    }
}
