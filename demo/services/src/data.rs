//! Deterministic building blocks shared by the services: a number stream seeded from an
//! entity's id, prose, money, timestamps, image sets, audit blocks and id/parameter parsing.
//!
//! Nothing here is random or stateful: the same id always yields the same bytes, which lets
//! tests and gateway caches compare bodies. Generation is cheap (a few table lookups and one
//! allocation per string) because the benchmarks call these on every request.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::ApiError;
use crate::words;

/// 2025-06-01T00:00:00Z, the "today" of seeded data: seeded timestamps lie before it.
pub(crate) const DEMO_NOW: i64 = 1_748_736_000;
const DAY: i64 = 86_400;

/// A splitmix64 stream seeded from a kind ("user", "order") and a numeric key.
pub(crate) struct Seeded(u64);

impl Seeded {
    pub(crate) fn new(kind: &str, key: u64) -> Self {
        // FNV-1a of the kind keeps streams of different kinds apart for the same key.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in kind.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Seeded(hash ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Seeded from two numbers, e.g. (user, order number).
    pub(crate) fn pair(kind: &str, a: u32, b: u32) -> Self {
        Seeded::new(kind, (u64::from(a) << 32) | u64::from(b))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// In `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with the given percentage.
    pub(crate) fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty static list.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A timestamp `0..max_days` days (plus some seconds) before `before`.
    pub(crate) fn time_before(&mut self, before: i64, max_days: u64) -> i64 {
        before - self.below(max_days * DAY as u64) as i64
    }
}

/// The README's list shape, `{"items": [...]}`.
#[derive(Serialize)]
pub(crate) struct Items<T> {
    pub(crate) items: Vec<T>,
}

/// A paged list, `{"items": [...], "nextCursor": "..." | null}`. Answers are assembled from
/// memoised fragments (`memo::page`); this is the shape tests check those bytes against.
#[cfg(test)]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next_cursor: Option<String>,
}

/// Sentences from `list` joined until at least `min_len` bytes.
pub(crate) fn prose(seed: &mut Seeded, list: &[&str], min_len: usize) -> String {
    let mut text = String::with_capacity(min_len + 120);
    while text.len() < min_len {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(seed.pick(list));
    }
    text
}

/// The README's money shape: a decimal string amount in EUR.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Money {
    amount: String,
    currency: &'static str,
}

impl Money {
    pub(crate) fn eur(cents: u64) -> Money {
        Money {
            amount: format!("{}.{:02}", cents / 100, cents % 100),
            currency: "EUR",
        }
    }
}

/// A price in cents ending in .99, within `min_euros..=max_euros`.
pub(crate) fn price_cents(seed: &mut Seeded, min_euros: u64, max_euros: u64) -> u64 {
    seed.between(min_euros, max_euros) * 100 + 99
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Image {
    url: String,
    width: u32,
    height: u32,
}

/// The six sizes every image comes in, by their keys in an `ImageSet`.
pub(crate) const IMAGE_SIZES: &[&str] =
    &["thumb", "small", "medium", "large", "xlarge", "original"];

/// The six sizes every image comes in.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ImageSet {
    thumb: Image,
    small: Image,
    medium: Image,
    large: Image,
    xlarge: Image,
    original: Image,
}

/// Image URLs for entity `kind/id`; `ratio` is height per 100 width. The long query strings
/// are deliberate: real CDN URLs carry signatures and transforms, and a BFF should trim them.
pub(crate) fn image_set(kind: &str, id: &str, version: u32, ratio: u32) -> ImageSet {
    let signature = Seeded::new(kind, u64::from(version)).next_u64()
        ^ Seeded::new(id, u64::from(ratio)).next_u64();
    let image = |size: &str, width: u32| Image {
        url: format!(
            "https://cdn.demo.manifold.dev/{kind}/{id}/{size}.webp?v={version}&w={width}\
             &fit=cover&q=82&sig={signature:016x}"
        ),
        width,
        height: width * ratio / 100,
    };
    ImageSet {
        thumb: image("thumb", 96),
        small: image("small", 240),
        medium: image("medium", 480),
        large: image("large", 960),
        xlarge: image("xlarge", 1600),
        original: image("original", 3200),
    }
}

/// Who created and changed an entity, and when.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Audit {
    pub(crate) created_at: String,
    pub(crate) created_by: String,
    pub(crate) updated_at: String,
    pub(crate) updated_by: String,
    pub(crate) version: u32,
    pub(crate) source: &'static str,
}

/// A seeded audit block: created at `created`, updated some time between then and
/// [`DEMO_NOW`].
pub(crate) fn audit(seed: &mut Seeded, created: i64, source: &'static str) -> Audit {
    let updated = created + seed.below((DEMO_NOW - created).max(1) as u64) as i64;
    Audit {
        created_at: rfc3339(created),
        created_by: actor(seed),
        updated_at: rfc3339(updated),
        updated_by: actor(seed),
        version: seed.between(1, 40) as u32,
        source,
    }
}

fn actor(seed: &mut Seeded) -> String {
    format!("{}@demo.manifold.dev", seed.pick(words::ACTORS))
}

/// Seconds since the epoch, now.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// `2025-06-01T12:30:00Z`.
pub(crate) fn rfc3339(secs: i64) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(DAY));
    let second_of_day = secs.rem_euclid(DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// `2025-06-01`.
pub(crate) fn date(secs: i64) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(DAY));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses `"{prefix}{n}"` with `n` in `1..=max`, written canonically (no sign, no leading
/// zero), so every entity has exactly one id.
pub(crate) fn parse_id(id: &str, prefix: &str, max: u32) -> Option<u32> {
    let digits = id.strip_prefix(prefix)?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = digits.parse().ok()?;
    (n <= max).then_some(n)
}

/// The ids of a comma-separated list parameter, blanks dropped.
pub(crate) fn split_ids(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|id| !id.is_empty())
}

/// A required query parameter.
pub(crate) fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .ok_or_else(|| ApiError::bad(format!("missing query parameter {name}")))
}

/// A `limit` parameter: a positive integer, `default` when absent, capped at `max`.
pub(crate) fn limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.parse::<usize>() {
        Ok(0) | Err(_) => Err(ApiError::bad(format!(
            "limit: expected a positive integer, got {raw:?}"
        ))),
        Ok(n) => Ok(n.min(max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(DEMO_NOW), "2025-06-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3_723), "2000-02-29T01:02:03Z");
        assert_eq!(date(DEMO_NOW - 1), "2025-05-31");
    }

    #[test]
    fn ids_are_canonical() {
        assert_eq!(parse_id("42", "", 10_000), Some(42));
        assert_eq!(parse_id("p7", "p", 50_000), Some(7));
        assert_eq!(parse_id("042", "", 10_000), None);
        assert_eq!(parse_id("+4", "", 10_000), None);
        assert_eq!(parse_id("0", "", 10_000), None);
        assert_eq!(parse_id("10001", "", 10_000), None);
        assert_eq!(parse_id("99999999999", "", 10_000), None);
        assert_eq!(parse_id("7", "p", 50_000), None);
    }

    #[test]
    fn money_is_a_decimal_string() {
        let json = serde_json::to_string(&Money::eur(1999)).unwrap();
        assert_eq!(json, r#"{"amount":"19.99","currency":"EUR"}"#);
        assert_eq!(Money::eur(5).amount, "0.05");
    }

    #[test]
    fn limits_are_positive_and_capped() {
        assert_eq!(limit(None, 10, 50).unwrap(), 10);
        assert_eq!(limit(Some("70"), 10, 50).unwrap(), 50);
        assert!(limit(Some("0"), 10, 50).is_err());
        assert!(limit(Some("x"), 10, 50).is_err());
    }

    #[test]
    fn streams_are_deterministic() {
        let a: Vec<u64> = (0..4).map(|_| Seeded::new("user", 7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Seeded::new("user", 7).next_u64(),
            Seeded::new("order", 7).next_u64()
        );
    }
}
