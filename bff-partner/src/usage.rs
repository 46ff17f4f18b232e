//! `GET /v1/usage`: the calling key's quotas and rate limits. The handler and the reading are
//! the core's (`manifold::ratelimit::usage`, mounted so that reading spends no quota); this
//! file holds the answer's schemas for the OpenAPI document.

use serde_json::{Value, json};

pub use manifold::ratelimit::{QuotaUsage, RuleUsage, Usage};

use crate::model::{SELECTED, Schema, schema_ref};

/// The top-level fields of `Usage`, for `?fields=`.
pub const USAGE_FIELDS: &[&str] = &["quotas", "rules"];

impl Schema for Usage {
    const NAME: &'static str = "Usage";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": format!(
                "What the calling key has used of its quotas and rate limits. Each quota and \
                 limit also appears in the `RateLimit-Policy` and `RateLimit` headers of every \
                 answer. {SELECTED}"
            ),
            "properties": {
                "quotas": { "type": "array", "items": schema_ref::<QuotaUsage>() },
                "rules": { "type": "array", "items": schema_ref::<RuleUsage>() }
            }
        })
    }
}

impl Schema for QuotaUsage {
    const NAME: &'static str = "QuotaUsage";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": "An allowance per calendar day or month (UTC). Used up, requests \
                            are refused with 429 `QUOTA_EXCEEDED` until `resetsAt`.",
            "required": ["name", "period", "limit", "used", "remaining", "resetsAt"],
            "properties": {
                "name": { "type": "string", "examples": ["daily"] },
                "period": {
                    "type": "string", "enum": ["day", "month"],
                    "description": "`day`: from 00:00Z to the next 00:00Z; `month`: from the \
                                    1st at 00:00Z to the next month's 1st."
                },
                "limit": { "type": "integer", "minimum": 1, "description": "Requests per period, the key's tier applied." },
                "used": { "type": "integer", "minimum": 0, "description": "Requests counted in the current period." },
                "remaining": { "type": "integer", "minimum": 0 },
                "resetsAt": {
                    "type": "string", "format": "date-time",
                    "description": "When the current period ends and the quota is whole again.",
                    "examples": ["2026-11-30T00:00:00Z"]
                }
            }
        })
    }
}

impl Schema for RuleUsage {
    const NAME: &'static str = "RuleUsage";

    fn schema() -> Value {
        json!({
            "type": "object",
            "description": "A rate limit: at most `limit` requests per `window` seconds, in \
                           bursts of up to `limit`, refilled continuously.",
            "required": ["name", "limit", "window", "remaining"],
            "properties": {
                "name": { "type": "string", "examples": ["per-key"] },
                "limit": { "type": "integer", "minimum": 1 },
                "window": { "type": "integer", "minimum": 1, "description": "Seconds." },
                "remaining": {
                    "type": "integer", "minimum": 0,
                    "description": "Requests left now, after this one."
                }
            }
        })
    }
}
