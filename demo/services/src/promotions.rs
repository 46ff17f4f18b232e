//! promotions (9109): 3 to 5 banners per user and placement, highest priority first.
//! `userId` is optional (anonymous visitors see the placement's default banners) and
//! `placement` defaults to `home`.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::data::{self, ImageSet, Items, Seeded};
use crate::error::ApiError;
use crate::fields::{FieldSet, Members};
use crate::memo::{JsonBytes, Memo};
use crate::texts;
use crate::users;

const DAY: i64 = 86_400;
/// Memory for answers' JSON, by (user, placement): ~1,100 of them (~3.6 KB each).
const MEMO_BUDGET: usize = 4 << 20;

/// Serialised answers by (user number, 0 for anonymous; placement; the members asked for).
type Answers = Memo<(u32, String, FieldSet)>;

/// A promotion's members, in the order it is written; `?fields=` names some of them.
const FIELDS: Members = Members {
    names: &[
        "id",
        "title",
        "subtitle",
        "placement",
        "priority",
        "images",
        "link",
        "startsAt",
        "endsAt",
        "terms",
    ],
    narrowable: &[("images", data::IMAGE_SIZES)],
};

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/promotions", get(list))
        .with_state(Arc::new(Answers::new(MEMO_BUDGET)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Promotion {
    id: String,
    title: &'static str,
    subtitle: &'static str,
    placement: String,
    priority: u64,
    images: ImageSet,
    link: String,
    starts_at: String,
    ends_at: String,
    terms: String,
}

#[derive(Deserialize)]
struct PromotionQuery {
    #[serde(rename = "userId")]
    user_id: Option<String>,
    placement: Option<String>,
    /// `title,images`: only these members of each promotion (and `id`); see [`FIELDS`].
    fields: Option<String>,
}

/// A placement name is a short slug; it ends up in ids and URLs.
fn valid_placement(placement: &str) -> bool {
    (1..=32).contains(&placement.len())
        && placement
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Campaign `campaign` as shown in `placement`: the same campaign looks the same to everyone.
fn promotion(campaign: u64, placement: &str) -> Promotion {
    let mut seed = Seeded::new(placement, campaign);
    let id = format!("promo-{placement}-{campaign}");
    let starts = seed.time_before(data::DEMO_NOW, 20);
    Promotion {
        title: texts::PROMO_TITLES[campaign as usize % texts::PROMO_TITLES.len()],
        subtitle: seed.pick(texts::PROMO_SUBTITLES),
        placement: placement.to_owned(),
        priority: seed.between(1, 100),
        images: data::image_set("promotions", &id, seed.between(1, 5) as u32, 40),
        link: format!("https://shop.demo.manifold.dev/campaigns/{campaign}?placement={placement}"),
        starts_at: data::rfc3339(starts),
        ends_at: data::rfc3339(starts + seed.between(14, 60) as i64 * DAY),
        terms: data::prose(&mut seed, texts::TERMS, 500),
        id,
    }
}

async fn list(
    State(answers): State<Arc<Answers>>,
    query: Result<Query<PromotionQuery>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(query) = query?;
    let user = match query.user_id.as_deref() {
        None => 0,
        Some(id) => users::known_user(id)?,
    };
    let placement = query.placement.as_deref().unwrap_or("home");
    if !valid_placement(placement) {
        return Err(ApiError::bad(
            "placement: expected a short lowercase slug like home",
        ));
    }
    let fields = FieldSet::parse(query.fields.as_deref(), &FIELDS)?;
    Ok(JsonBytes(answer(&answers, user, placement, fields)))
}

/// The serialised selection, whole or narrowed to `fields`.
fn answer(answers: &Answers, user: u32, placement: &str, fields: FieldSet) -> Bytes {
    let key = (user, placement.to_owned(), fields);
    if fields == FieldSet::ALL {
        return answers.json(key, || selection(user, placement));
    }
    answers.json(key, || {
        let items = selection(user, placement).items;
        Items {
            items: items.iter().map(|p| fields.project(&FIELDS, p)).collect(),
        }
    })
}

/// The banners `user` (0: anonymous) sees in `placement`, highest priority first.
fn selection(user: u32, placement: &str) -> Items<Promotion> {
    // Which campaigns a user sees depends on user and placement; how a campaign looks does not.
    let mut seed = Seeded::new(placement, u64::from(user) + 1_000_000);
    let wanted = seed.between(3, 5) as usize;
    let mut campaigns: Vec<u64> = Vec::with_capacity(wanted);
    while campaigns.len() < wanted {
        let campaign = seed.between(1, 40);
        if !campaigns.contains(&campaign) {
            campaigns.push(campaign);
        }
    }
    let mut items: Vec<Promotion> = campaigns
        .into_iter()
        .map(|c| promotion(c, placement))
        .collect();
    items.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.id.cmp(&b.id)));
    Items { items }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memoised answers are the bytes serde writes for freshly built ones, cold and warm.
    #[test]
    fn memoised_answers_are_serdes_bytes() {
        let answers = Answers::new(1 << 20);
        for round in 0..2 {
            for user in (0..=users::USER_COUNT).step_by(401).chain([1, 10_000]) {
                for placement in ["home", "cart", "checkout_top-2"] {
                    let old = serde_json::to_vec(&selection(user, placement)).unwrap();
                    let json = answer(&answers, user, placement, FieldSet::ALL);
                    assert_eq!(json, old, "{user} {placement} {round}");
                }
            }
        }
    }

    /// `?fields=` keeps the members asked for (and `id`) of every banner, in order.
    #[test]
    fn a_narrowed_answer_holds_the_members_asked_for() {
        let answers = Answers::new(1 << 20);
        let fields = FieldSet::parse(Some("title,images,link"), &FIELDS).unwrap();
        let whole: serde_json::Value = serde_json::to_value(selection(42, "home")).unwrap();
        let narrow: serde_json::Value =
            serde_json::from_slice(&answer(&answers, 42, "home", fields)).unwrap();
        let expected: Vec<serde_json::Value> = whole["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p["id"], "title": p["title"], "images": p["images"], "link": p["link"],
                })
            })
            .collect();
        assert_eq!(narrow, serde_json::json!({ "items": expected }));
    }
}
