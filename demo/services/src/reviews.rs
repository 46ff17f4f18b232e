//! reviews (9107): the latest (up to 10) reviews of a product and rating summaries for many.
//! A product with fewer than 10 reviews shows them all, so its summary counts exactly those;
//! products with 10 shown have older ones that only the summary counts.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::data::{self, Seeded};
use crate::error::ApiError;
use crate::memo::{self, JsonBytes, Memo};
use crate::{texts, words};

const SHOWN: u32 = 10;

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/reviews", get(list))
        .route("/reviews/summary", get(summary))
        .with_state(Arc::new(Reviews::default()))
}

/// Serialised review lists and summaries, by product number.
struct Reviews {
    /// ~4 KB each.
    lists: Memo<u32>,
    /// ~0.13 KB each.
    summaries: Memo<u32>,
}

impl Default for Reviews {
    fn default() -> Self {
        Reviews {
            // ~1,000 lists and ~10,000 summaries.
            lists: Memo::new(4 << 20),
            summaries: Memo::new(2 << 20),
        }
    }
}

impl Reviews {
    fn list(&self, n: u32) -> Bytes {
        self.lists.json(n, || reviews_of(n))
    }

    /// `{"items": [...]}` of the summaries of the known products among `ids`, in order.
    fn summaries(&self, ids: &str) -> Bytes {
        let fragments: Vec<Bytes> = data::split_ids(ids)
            .filter_map(catalog::product_number)
            .map(|n| self.summaries.json(n, || summary_of(n)))
            .collect();
        memo::items(&fragments)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProductReviews {
    product_id: String,
    items: Vec<Review>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    id: String,
    author: String,
    rating: u8,
    title: &'static str,
    body: String,
    created_at: String,
    helpful_votes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    product_id: String,
    /// Mean rating rounded to two decimals; 0 without reviews (clients read it as a number).
    average: f64,
    count: u64,
    histogram: Histogram,
}

#[derive(Default, Serialize)]
struct Histogram {
    #[serde(rename = "1")]
    one: u64,
    #[serde(rename = "2")]
    two: u64,
    #[serde(rename = "3")]
    three: u64,
    #[serde(rename = "4")]
    four: u64,
    #[serde(rename = "5")]
    five: u64,
}

impl Histogram {
    fn add(&mut self, rating: u8, count: u64) {
        match rating {
            1 => self.one += count,
            2 => self.two += count,
            3 => self.three += count,
            4 => self.four += count,
            _ => self.five += count,
        }
    }

    fn total(&self) -> u64 {
        self.one + self.two + self.three + self.four + self.five
    }

    fn average(&self) -> f64 {
        let total = self.total();
        let points = self.one + 2 * self.two + 3 * self.three + 4 * self.four + 5 * self.five;
        if total == 0 {
            return 0.0;
        }
        (points as f64 / total as f64 * 100.0).round() / 100.0
    }
}

/// How many reviews product `n` shows (0 to 10).
fn shown_count(n: u32) -> u32 {
    Seeded::new("review-count", u64::from(n)).between(0, u64::from(SHOWN)) as u32
}

/// Rating of review `i` of product `n`: mostly happy customers, as in real shops.
fn rating(n: u32, i: u32) -> u8 {
    let mut seed = Seeded::pair("review-rating", n, i);
    seed.pick(&[1, 2, 3, 4, 4, 4, 5, 5, 5, 5])
}

fn review(n: u32, i: u32) -> Review {
    let mut seed = Seeded::pair("review", n, i);
    let (first, last) = (seed.pick(words::FIRST_NAMES), seed.pick(words::LAST_NAMES));
    Review {
        id: format!("r-p{n}-{i}"),
        author: format!("{first} {}.", last.chars().next().unwrap_or('X')),
        rating: rating(n, i),
        title: seed.pick(texts::REVIEW_TITLES),
        body: data::prose(&mut seed, texts::REVIEW, 400),
        // i = 1 is the newest.
        created_at: data::rfc3339(
            data::DEMO_NOW - i64::from(i) * 9 * 86_400 + seed.below(86_400) as i64,
        ),
        helpful_votes: seed.below(60),
    }
}

fn summary_of(n: u32) -> Summary {
    let shown = shown_count(n);
    let mut histogram = Histogram::default();
    for i in 1..=shown {
        histogram.add(rating(n, i), 1);
    }
    if shown == SHOWN {
        // Older reviews beyond the ten shown, spread over the ratings.
        let mut seed = Seeded::new("review-older", u64::from(n));
        for (rating, weight) in [(1, 1), (2, 1), (3, 2), (4, 4), (5, 5)] {
            histogram.add(rating, seed.below(30) * weight);
        }
    }
    Summary {
        product_id: format!("p{n}"),
        average: histogram.average(),
        count: histogram.total(),
        histogram,
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "productId")]
    product_id: Option<String>,
}

/// The reviews product `n` shows; a known product's id is canonical, so `n` names its bytes.
fn reviews_of(n: u32) -> ProductReviews {
    ProductReviews {
        product_id: format!("p{n}"),
        items: (1..=shown_count(n)).map(|i| review(n, i)).collect(),
    }
}

async fn list(
    State(reviews): State<Arc<Reviews>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(query) = query?;
    let id = data::required(&query.product_id, "productId")?;
    let n = catalog::product_number(id).ok_or_else(|| ApiError::not_found("product", id))?;
    Ok(JsonBytes(reviews.list(n)))
}

#[derive(Deserialize)]
struct SummaryQuery {
    #[serde(rename = "productIds")]
    product_ids: Option<String>,
}

async fn summary(
    State(reviews): State<Arc<Reviews>>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(query) = query?;
    let ids = data::required(&query.product_ids, "productIds")?;
    Ok(JsonBytes(reviews.summaries(ids)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_agree_with_short_review_lists() {
        let n = (1..)
            .find(|&n| shown_count(n) > 0 && shown_count(n) < SHOWN)
            .unwrap();
        let summary = summary_of(n);
        assert_eq!(summary.count, u64::from(shown_count(n)));
        assert!((1.0..=5.0).contains(&summary.average));
        let silent = (1..).find(|&n| shown_count(n) == 0).unwrap();
        assert_eq!(summary_of(silent).average, 0.0);
    }

    /// Memoised lists and summaries are the bytes serde writes for fresh ones, cold and warm.
    #[test]
    fn memoised_answers_are_serdes_bytes() {
        let reviews = Reviews::default();
        for round in 0..2 {
            for n in (1..=catalog::PRODUCT_COUNT).step_by(997).chain([1, 50_000]) {
                let old = ProductReviews {
                    product_id: format!("p{n}"),
                    items: (1..=shown_count(n)).map(|i| review(n, i)).collect(),
                };
                assert_eq!(reviews.list(n), serde_json::to_vec(&old).unwrap());
                let ids = format!("p{n},x,p{},p0,p{n}", n % 1000 + 1);
                let old = data::Items {
                    items: vec![summary_of(n), summary_of(n % 1000 + 1), summary_of(n)],
                };
                let json = reviews.summaries(&ids);
                assert_eq!(
                    json,
                    serde_json::to_vec(&old).unwrap(),
                    "p{n}, round {round}"
                );
            }
        }
    }
}
