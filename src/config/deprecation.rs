//! `[[deprecations]]`: routes that announce their end. Each answer of a matching route
//! carries `Deprecation` (RFC 9745: `@<unix seconds>`), and when set `Sunset` (RFC 8594, an
//! HTTP-date) and `Link: <...>; rel="deprecation"`. `rest::deprecation_headers` adds them.

use std::time::UNIX_EPOCH;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::Problems;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeprecationConfig {
    /// The route as mounted: a coded or declared route's template (`/v1/orders/{id}`), or a
    /// proxy route's prefix (`/api/users/`).
    pub path: String,
    /// When the route was (or will be) deprecated, RFC 3339 (`2026-06-30T00:00:00Z`).
    pub deprecation: String,
    /// When it stops answering, RFC 3339.
    #[serde(default)]
    pub sunset: Option<String>,
    /// Where clients read about it.
    #[serde(default)]
    pub link: Option<String>,
}

/// Seconds since the epoch of an RFC 3339 date-time.
pub fn epoch_seconds(text: &str) -> Result<u64, String> {
    let at = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?} is not an RFC 3339 date-time ({e})"))?;
    Ok(at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// The HTTP-date of an RFC 3339 date-time.
pub fn http_date(text: &str) -> Result<String, String> {
    let seconds = epoch_seconds(text)?;
    Ok(httpdate::fmt_http_date(
        UNIX_EPOCH + std::time::Duration::from_secs(seconds),
    ))
}

impl DeprecationConfig {
    pub(super) fn validate(&self, i: usize, p: &mut Problems) {
        let key = |field: &str| format!("deprecations[{i}].{field}");
        p.check(
            self.path.starts_with('/'),
            key("path"),
            "must start with '/'",
        );
        let deprecation = epoch_seconds(&self.deprecation);
        if let Err(e) = &deprecation {
            p.push(key("deprecation"), e.clone());
        }
        if let Some(sunset) = &self.sunset {
            match (epoch_seconds(sunset), &deprecation) {
                (Err(e), _) => p.push(key("sunset"), e),
                (Ok(end), Ok(start)) if end < *start => {
                    p.push(key("sunset"), "is before the deprecation");
                }
                _ => {}
            }
        }
        if let Some(link) = &self.link {
            p.check(
                link.parse::<http::Uri>().is_ok() && !link.contains(['<', '>', '"']),
                key("link"),
                "must be a URI",
            );
        }
    }
}
