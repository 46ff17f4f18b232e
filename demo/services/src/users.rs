//! users (9101): profiles `"1"..="10000"`, one at a time or in batches. Also the source of a
//! user's name and address, which orders and carts reuse so the swarm stays consistent.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::data::{self, Audit, ImageSet, Seeded};
use crate::error::ApiError;
use crate::fields::{FieldSet, Members, Projection};
use crate::memo::{self, JsonBytes, Memo};
use crate::{texts, words};

pub(crate) const USER_COUNT: u32 = 10_000;
/// Memory for profiles' JSON: ~3,500 of them (~2.3 KB each), every user a benchmark rotates
/// through and then some.
const MEMO_BUDGET: usize = 8 << 20;

/// The user number of a canonical user id (`"42"` -> 42).
pub(crate) fn user_number(id: &str) -> Option<u32> {
    data::parse_id(id, "", USER_COUNT)
}

/// A known user named by a query parameter or header, or the README's 404.
pub(crate) fn known_user(id: &str) -> Result<u32, ApiError> {
    user_number(id).ok_or_else(|| ApiError::not_found("user", id))
}

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/users", get(batch))
        .route("/users/{id}", get(one))
        .with_state(Arc::new(Profiles::default()))
}

/// A profile's members, in the order it is written; `?fields=` names some of them.
const FIELDS: Members = Members {
    names: &[
        "id",
        "name",
        "email",
        "avatar",
        "bio",
        "locale",
        "timezone",
        "address",
        "preferences",
        "audit",
    ],
    narrowable: &[("avatar", data::IMAGE_SIZES)],
};

/// Serialised profiles, by user number: whole, and in the views `?fields=` asked for.
struct Profiles {
    whole: Memo<u32>,
    views: Memo<(u32, FieldSet)>,
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles {
            whole: Memo::new(MEMO_BUDGET),
            views: Memo::new(MEMO_BUDGET / 4),
        }
    }
}

impl Profiles {
    fn json(&self, n: u32, fields: FieldSet) -> Bytes {
        if fields == FieldSet::ALL {
            return self.whole.json(n, || user(n));
        }
        self.views
            .json((n, fields), || fields.project(&FIELDS, &user(n)))
    }

    /// `{"items": [...]}` of the known users among `ids`, in the order asked.
    fn batch(&self, ids: &str, fields: FieldSet) -> Bytes {
        let fragments: Vec<_> = data::split_ids(ids)
            .filter_map(user_number)
            .map(|n| self.json(n, fields))
            .collect();
        memo::items(&fragments)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: String,
    name: String,
    email: String,
    avatar: ImageSet,
    bio: String,
    locale: &'static str,
    timezone: &'static str,
    address: Address,
    preferences: Preferences,
    audit: Audit,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Address {
    line1: String,
    line2: Option<String>,
    city: &'static str,
    postcode: String,
    country: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Preferences {
    theme: &'static str,
    currency: &'static str,
    units: &'static str,
    newsletter: bool,
    marketing_consent: bool,
    channels: Channels,
    favorite_categories: Vec<&'static str>,
    accessibility: Accessibility,
}

#[derive(Serialize)]
struct Channels {
    email: bool,
    push: bool,
    sms: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accessibility {
    reduced_motion: bool,
    high_contrast: bool,
    font_scale: f32,
}

/// `(first, last)` name of user `n`.
pub(crate) fn name(n: u32) -> (&'static str, &'static str) {
    let mut seed = Seeded::new("user-name", u64::from(n));
    (seed.pick(words::FIRST_NAMES), seed.pick(words::LAST_NAMES))
}

fn city(n: u32) -> &'static words::City {
    let mut seed = Seeded::new("user-city", u64::from(n));
    &words::CITIES[seed.below(words::CITIES.len() as u64) as usize]
}

/// The home address of user `n`; `variant` 1 gives a second address (billing, office).
pub(crate) fn address(n: u32, variant: u32) -> Address {
    let mut seed = Seeded::pair("user-address", n, variant);
    let city = if variant == 0 {
        city(n)
    } else {
        &words::CITIES[seed.below(words::CITIES.len() as u64) as usize]
    };
    Address {
        line1: format!("{} {}", seed.between(1, 220), seed.pick(words::STREETS)),
        line2: seed.percent(40).then(|| {
            format!(
                "Apartment {}, floor {}",
                seed.between(1, 80),
                seed.between(1, 9)
            )
        }),
        city: city.name,
        postcode: format!("{:05}", seed.between(1000, 99_999)),
        country: city.country,
    }
}

fn user(n: u32) -> User {
    let id = n.to_string();
    let (first, last) = name(n);
    let city = city(n);
    let mut seed = Seeded::new("user", u64::from(n));
    let created = seed.time_before(data::DEMO_NOW, 5 * 365);
    let favorite_categories = (0..seed.between(1, 3))
        .map(|_| seed.pick(&words::CATEGORIES))
        .collect();
    User {
        name: format!("{first} {last}"),
        email: format!(
            "{}.{}{n}@example.com",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase()
        ),
        avatar: data::image_set("avatars", &id, seed.between(1, 9) as u32, 100),
        bio: data::prose(&mut seed, texts::BIO, 600),
        locale: city.locale,
        timezone: city.timezone,
        address: address(n, 0),
        preferences: Preferences {
            theme: seed.pick(&["light", "dark", "system"]),
            currency: "EUR",
            units: "metric",
            newsletter: seed.percent(55),
            marketing_consent: seed.percent(35),
            channels: Channels {
                email: seed.percent(80),
                push: seed.percent(60),
                sms: seed.percent(15),
            },
            favorite_categories,
            accessibility: Accessibility {
                reduced_motion: seed.percent(10),
                high_contrast: seed.percent(5),
                font_scale: seed.pick(&[1.0, 1.0, 1.0, 1.25, 1.5]),
            },
        },
        audit: data::audit(&mut seed, created, "crm-sync"),
        id,
    }
}

async fn one(
    State(profiles): State<Arc<Profiles>>,
    Path(id): Path<String>,
    query: Result<Query<Projection>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(projection) = query?;
    let fields = FieldSet::parse(projection.fields.as_deref(), &FIELDS)?;
    Ok(JsonBytes(profiles.json(known_user(&id)?, fields)))
}

#[derive(Deserialize)]
struct BatchQuery {
    ids: Option<String>,
    fields: Option<String>,
}

async fn batch(
    State(profiles): State<Arc<Profiles>>,
    query: Result<Query<BatchQuery>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(query) = query?;
    let ids = data::required(&query.ids, "ids")?;
    let fields = FieldSet::parse(query.fields.as_deref(), &FIELDS)?;
    Ok(JsonBytes(profiles.batch(ids, fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_wire_fat_and_stable() {
        let first = serde_json::to_vec(&user(42)).unwrap();
        let again = serde_json::to_vec(&user(42)).unwrap();
        assert_eq!(first, again);
        assert!(
            (2000..=3500).contains(&first.len()),
            "user is {} bytes",
            first.len()
        );
    }

    /// The memoised answers are the bytes serde writes for freshly generated users, cold
    /// and warm, singly and in batches (unknown ids skipped, order and repeats kept).
    #[test]
    fn memoised_answers_are_serdes_bytes() {
        let profiles = Profiles::default();
        for round in 0..2 {
            for n in (1..=USER_COUNT).step_by(97).chain([1, 2, 10_000]) {
                let expected = serde_json::to_vec(&user(n)).unwrap();
                assert_eq!(
                    profiles.json(n, FieldSet::ALL),
                    expected,
                    "user {n}, round {round}"
                );
            }
        }
        let ids = "3, 1,x,10001,,042,3,9999";
        let expected = data::Items {
            items: [3, 1, 3, 9999].map(user).into(),
        };
        let all = FieldSet::ALL;
        assert_eq!(
            profiles.batch(ids, all),
            serde_json::to_vec(&expected).unwrap()
        );
        assert_eq!(profiles.batch("", all), br#"{"items":[]}"#.as_slice());
    }

    /// A view holds the members asked for and `id`, as serde writes them, memoised apart
    /// from the whole profile.
    #[test]
    fn a_view_is_the_members_asked_for() {
        let profiles = Profiles::default();
        let fields = FieldSet::parse(Some("name,avatar"), &FIELDS).unwrap();
        let whole: serde_json::Value = serde_json::to_value(user(42)).unwrap();
        for _ in 0..2 {
            let view: serde_json::Value =
                serde_json::from_slice(&profiles.json(42, fields)).unwrap();
            let expected = serde_json::json!({
                "id": whole["id"], "name": whole["name"], "avatar": whole["avatar"],
            });
            assert_eq!(view, expected);
        }
        assert!(profiles.json(42, fields).len() < profiles.json(42, FieldSet::ALL).len() / 2);
    }
}
