//! recommendations (9104): up to 50 ranked product suggestions per user, from a pretend model
//! (`fields=` narrows the answer, as the other services' do: `items.productId` is the ids
//! alone, for a client that shows the products and not why they were picked).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::data::{self, Seeded};
use crate::error::ApiError;
use crate::fields::{FieldSet, Members};
use crate::memo::{JsonBytes, Memo};
use crate::texts;
use crate::users;

const DEFAULT_LIMIT: usize = 10;
const MAX_ITEMS: usize = 50;
/// Memory for answers' JSON, by (user, limit, fields): ~2,000 of the usual limit of 10
/// (~1 KB).
const MEMO_BUDGET: usize = 2 << 20;

/// An answer's members, in the order it is written (`userId` always comes); `?fields=`
/// names some of them, and `items.{key}` some keys of each item.
const FIELDS: Members = Members {
    names: &["userId", "modelVersion", "items"],
    narrowable: &[("items", &["productId", "score", "reason"])],
};

type Answers = Memo<(u32, usize, FieldSet)>;

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/recommendations", get(recommend))
        .with_state(Arc::new(Answers::new(MEMO_BUDGET)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Recommendations {
    user_id: String,
    model_version: &'static str,
    items: Vec<Recommendation>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Recommendation {
    product_id: String,
    score: f64,
    reason: &'static str,
}

#[derive(Deserialize)]
struct RecommendQuery {
    #[serde(rename = "userId")]
    user_id: Option<String>,
    limit: Option<String>,
    /// `items.productId`: only these members (and `userId`); see [`FIELDS`].
    fields: Option<String>,
}

/// The user's first `limit` suggestions, best first; the same user always gets the same list.
fn recommendations(user: u32, limit: usize) -> Vec<Recommendation> {
    let mut seed = Seeded::new("recommendations", u64::from(user));
    // Scores fall from just under 1 in small deterministic steps, so the order is stable.
    let mut score_thousandths = seed.between(950, 999);
    (0..limit.min(MAX_ITEMS))
        .map(|_| {
            let product = seed.between(1, u64::from(catalog::PRODUCT_COUNT));
            let item = Recommendation {
                product_id: format!("p{product}"),
                score: score_thousandths as f64 / 1000.0,
                reason: seed.pick(texts::RECO_REASONS),
            };
            score_thousandths = score_thousandths.saturating_sub(seed.between(1, 15));
            item
        })
        .collect()
}

/// The whole answer for `user`; a known user's id is canonical, so `user` names its bytes.
fn answer(user: u32, limit: usize) -> Recommendations {
    Recommendations {
        user_id: user.to_string(),
        model_version: "reco-2025.06-demo",
        items: recommendations(user, limit),
    }
}

async fn recommend(
    State(answers): State<Arc<Answers>>,
    query: Result<Query<RecommendQuery>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(query) = query?;
    let user_id = data::required(&query.user_id, "userId")?;
    let user = users::known_user(user_id)?;
    let limit = data::limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_ITEMS)?;
    let fields = FieldSet::parse(query.fields.as_deref(), &FIELDS)?;
    Ok(JsonBytes(answers.bytes((user, limit, fields), || {
        fields.json(&FIELDS, &answer(user, limit))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_lists_are_prefixes_of_longer_ones() {
        let short = recommendations(5, 10);
        let long = recommendations(5, 100);
        assert_eq!(long.len(), MAX_ITEMS);
        assert!(
            short
                .iter()
                .zip(&long)
                .all(|(a, b)| a.product_id == b.product_id)
        );
        assert!(long.windows(2).all(|w| w[0].score >= w[1].score));
    }

    /// Memoised answers are the bytes serde writes for freshly built ones, cold and warm.
    #[test]
    fn memoised_answers_are_serdes_bytes() {
        let answers = Answers::new(1 << 20);
        for round in 0..2 {
            for user in (1..=users::USER_COUNT).step_by(331).chain([1, 10_000]) {
                for limit in [1, 3, 10, 50] {
                    let old = Recommendations {
                        user_id: user.to_string(),
                        model_version: "reco-2025.06-demo",
                        items: recommendations(user, limit),
                    };
                    let json = answers.bytes((user, limit, FieldSet::ALL), || {
                        FieldSet::ALL.json(&FIELDS, &answer(user, limit))
                    });
                    assert_eq!(json, serde_json::to_vec(&old).unwrap(), "{user} {round}");
                }
            }
        }
    }

    /// `items.productId` is each item's id alone, in the whole answer's order.
    #[test]
    fn fields_narrow_the_items_to_the_keys_named() {
        let whole = serde_json::to_value(answer(7, 10)).unwrap();
        let fields = FieldSet::parse(Some("items.productId"), &FIELDS).unwrap();
        let narrow: serde_json::Value =
            serde_json::from_slice(&fields.json(&FIELDS, &answer(7, 10))).unwrap();
        let ids: Vec<_> = whole["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| serde_json::json!({"productId": item["productId"]}))
            .collect();
        assert_eq!(ids.len(), 10);
        assert_eq!(narrow, serde_json::json!({"userId": "7", "items": ids}));
        assert!(FieldSet::parse(Some("items.colour"), &FIELDS).is_err());
    }
}
