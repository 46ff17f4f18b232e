//! catalog (9103): products `"p1"..="p50000"`, by id, in batches, and searched by category and
//! title words. Also the source of the product facts (title, SKU, price) that orders, carts
//! and recommendations quote, so every service agrees on them.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::data::{self, Audit, ImageSet, Money, Seeded};
use crate::error::ApiError;
use crate::fields::{FieldSet, Members, Projection};
use crate::memo::{self, JsonBytes, Memo};
use crate::{texts, words};

pub(crate) const PRODUCT_COUNT: u32 = 50_000;
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;
/// Memory for products' JSON: ~5,000 of them (~3.2 KB each), a benchmark's recommended
/// products (64 users x 10) many times over.
const MEMO_BUDGET: usize = 16 << 20;

/// The product number of a canonical product id (`"p7"` -> 7).
pub(crate) fn product_number(id: &str) -> Option<u32> {
    data::parse_id(id, "p", PRODUCT_COUNT)
}

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/products", get(list))
        .route("/products/{id}", get(one))
        .with_state(Arc::new(Products::default()))
}

/// A product's members, in the order it is written; `?fields=` names some of them.
const FIELDS: Members = Members {
    names: &[
        "id",
        "sku",
        "title",
        "brand",
        "category",
        "description",
        "price",
        "listPrice",
        "images",
        "attributes",
        "stock",
        "audit",
    ],
    narrowable: &[("images", data::IMAGE_SIZES)],
};

/// Serialised products, by product number: whole, and in the views `?fields=` asked for.
struct Products {
    whole: Memo<u32>,
    views: Memo<(u32, FieldSet)>,
}

impl Default for Products {
    fn default() -> Self {
        Products {
            whole: Memo::new(MEMO_BUDGET),
            views: Memo::new(MEMO_BUDGET / 4),
        }
    }
}

impl Products {
    fn json(&self, n: u32, fields: FieldSet) -> Bytes {
        if fields == FieldSet::ALL {
            return self.whole.json(n, || product(n));
        }
        self.views
            .json((n, fields), || fields.project(&FIELDS, &product(n)))
    }

    fn fragments(&self, numbers: impl Iterator<Item = u32>, fields: FieldSet) -> Vec<Bytes> {
        numbers.map(|n| self.json(n, fields)).collect()
    }

    /// `{"items": [...]}` of the known products among `ids`, in the order asked.
    fn batch(&self, ids: &str, fields: FieldSet) -> Bytes {
        let numbers = data::split_ids(ids).filter_map(product_number);
        memo::items(&self.fragments(numbers, fields))
    }

    /// `{"items": [...], "nextCursor": ...}` of a search.
    fn search(&self, query: &ProductQuery, fields: FieldSet) -> Result<Bytes, ApiError> {
        let found = search(query)?;
        let next_cursor = found.next.map(|n| format!("p{n}"));
        let fragments = self.fragments(found.numbers.into_iter(), fields);
        Ok(memo::page(&fragments, next_cursor.as_deref()))
    }
}

/// The facts other services quote about a product; cheap to build (no description).
pub(crate) struct ProductHead {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) sku: String,
    pub(crate) price_cents: u64,
    category: usize,
    material: &'static str,
}

/// The head of product `n` (which must be in `1..=PRODUCT_COUNT`).
pub(crate) fn head(n: u32) -> ProductHead {
    let mut seed = Seeded::new("product", u64::from(n));
    let category = seed.below(words::CATEGORIES.len() as u64) as usize;
    let adjective = seed.pick(words::ADJECTIVES);
    let material = seed.pick(words::MATERIALS);
    let noun = seed.pick(words::NOUNS[category]);
    let price_cents = data::price_cents(&mut seed, 4, 499);
    ProductHead {
        id: format!("p{n}"),
        title: format!("{adjective} {material} {noun} {n}"),
        sku: format!(
            "{}-{n:05}-{:02X}",
            words::CATEGORY_CODES[category],
            seed.below(256)
        ),
        price_cents,
        category,
        material,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Product {
    id: String,
    sku: String,
    title: String,
    brand: &'static str,
    category: &'static str,
    description: String,
    price: Money,
    list_price: Money,
    images: ImageSet,
    attributes: Attributes,
    stock: Stock,
    audit: Audit,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    color: &'static str,
    material: &'static str,
    weight_grams: u64,
    dimensions_mm: Dimensions,
    warranty_months: u64,
    country_of_origin: &'static str,
    tags: Vec<&'static str>,
}

#[derive(Serialize)]
struct Dimensions {
    width: u64,
    height: u64,
    depth: u64,
}

#[derive(Serialize)]
struct Stock {
    available: u64,
    warehouse: &'static str,
}

fn product(n: u32) -> Product {
    let head = head(n);
    let mut seed = Seeded::new("product-detail", u64::from(n));
    let created = seed.time_before(data::DEMO_NOW, 3 * 365);
    let markup = if seed.percent(40) {
        seed.between(10, 40)
    } else {
        0
    };
    let list_cents = (head.price_cents * (100 + markup) / 100) / 100 * 100 + 99;
    Product {
        brand: seed.pick(words::BRANDS),
        category: words::CATEGORIES[head.category],
        description: data::prose(&mut seed, texts::PRODUCT, 1000),
        price: Money::eur(head.price_cents),
        list_price: Money::eur(list_cents.max(head.price_cents)),
        images: data::image_set("products", &head.id, seed.between(1, 9) as u32, 75),
        attributes: Attributes {
            color: seed.pick(words::COLORS),
            material: head.material,
            weight_grams: seed.between(80, 12_000),
            dimensions_mm: Dimensions {
                width: seed.between(40, 900),
                height: seed.between(20, 900),
                depth: seed.between(10, 600),
            },
            warranty_months: seed.pick(&[12, 24, 24, 36, 60]),
            country_of_origin: seed.pick(&["DE", "PT", "PL", "IT", "CN", "VN", "SE", "ES"]),
            tags: (0..seed.between(2, 5))
                .map(|_| seed.pick(&["bestseller", "new", "eco", "gift-idea", "limited", "sale"]))
                .collect(),
        },
        stock: Stock {
            available: if seed.percent(8) {
                0
            } else {
                seed.between(1, 500)
            },
            warehouse: seed.pick(words::WAREHOUSES),
        },
        audit: data::audit(&mut seed, created, "pim-export"),
        id: head.id,
        sku: head.sku,
        title: head.title,
    }
}

async fn one(
    State(products): State<Arc<Products>>,
    Path(id): Path<String>,
    query: Result<Query<Projection>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(projection) = query?;
    let fields = FieldSet::parse(projection.fields.as_deref(), &FIELDS)?;
    let n = product_number(&id).ok_or_else(|| ApiError::not_found("product", &id))?;
    Ok(JsonBytes(products.json(n, fields)))
}

#[derive(Deserialize)]
struct ProductQuery {
    /// `id,title,price`: only these members of each product (and `id`); see [`FIELDS`].
    fields: Option<String>,
    ids: Option<String>,
    category: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `?ids=` is a batch lookup; anything else is a search (all products when unfiltered).
/// `?fields=` narrows either to some members of each product.
async fn list(
    State(products): State<Arc<Products>>,
    query: Result<Query<ProductQuery>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(query) = query?;
    let fields = FieldSet::parse(query.fields.as_deref(), &FIELDS)?;
    match &query.ids {
        Some(ids) => Ok(JsonBytes(products.batch(ids, fields))),
        None => products.search(&query, fields).map(JsonBytes),
    }
}

/// What search scans: lowercase titles and categories of every product, built once per
/// process because building 50 000 heads per request would dominate the benchmarks.
struct SearchEntry {
    category: usize,
    title: String,
}

static SEARCH_INDEX: LazyLock<Vec<SearchEntry>> = LazyLock::new(|| {
    (1..=PRODUCT_COUNT)
        .map(|n| {
            let head = head(n);
            SearchEntry {
                category: head.category,
                title: head.title.to_lowercase(),
            }
        })
        .collect()
});

/// One page of a search: product numbers, and the first one of the next page.
struct Found {
    numbers: Vec<u32>,
    next: Option<u32>,
}

/// Products in id order whose category matches and whose title contains every word of `q`
/// (case-insensitive). The cursor is the id of the first product of the next page.
fn search(query: &ProductQuery) -> Result<Found, ApiError> {
    let category = match &query.category {
        None => None,
        Some(name) => Some(
            words::CATEGORIES
                .iter()
                .position(|known| known.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "category: expected one of {}",
                        words::CATEGORIES.join(", ")
                    ))
                })?,
        ),
    };
    let terms: Vec<String> = query
        .q
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let limit = data::limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let start = match &query.cursor {
        None => 1,
        Some(cursor) => product_number(cursor)
            .ok_or_else(|| ApiError::bad(format!("cursor: unknown cursor {cursor:?}")))?,
    };

    let mut matches = SEARCH_INDEX
        .iter()
        .zip(1..=PRODUCT_COUNT)
        .skip(start as usize - 1)
        .filter(|(entry, _)| {
            category.is_none_or(|wanted| entry.category == wanted)
                && terms.iter().all(|term| entry.title.contains(term.as_str()))
        })
        .map(|(_, n)| n);
    let numbers = matches.by_ref().take(limit).collect();
    Ok(Found {
        numbers,
        next: matches.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_is_wire_fat_and_agrees_with_its_head() {
        let body = serde_json::to_vec(&product(123)).unwrap();
        assert!(
            (2500..=4000).contains(&body.len()),
            "product is {} bytes",
            body.len()
        );
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["title"], head(123).title);
        assert!(value["title"].as_str().unwrap().ends_with(" 123"));
    }

    #[test]
    fn search_pages_by_cursor() {
        let query = |cursor: Option<&str>| ProductQuery {
            fields: None,
            ids: None,
            category: Some("books".into()),
            q: None,
            limit: Some("3".into()),
            cursor: cursor.map(str::to_owned),
        };
        let first = search(&query(None)).unwrap();
        assert_eq!(first.numbers.len(), 3);
        let cursor = format!("p{}", first.next.unwrap());
        let second = search(&query(Some(&cursor))).unwrap();
        assert_eq!(format!("p{}", second.numbers[0]), cursor);
        assert!(
            second
                .numbers
                .iter()
                .all(|&n| product(n).category == "books")
        );
    }

    /// The memoised answers are the bytes serde writes for freshly generated products, cold
    /// and warm, singly, in batches and in search pages.
    #[test]
    fn memoised_answers_are_serdes_bytes() {
        let products = Products::default();
        for round in 0..2 {
            for n in (1..=PRODUCT_COUNT)
                .step_by(499)
                .chain([1, 2, PRODUCT_COUNT])
            {
                let expected = serde_json::to_vec(&product(n)).unwrap();
                assert_eq!(
                    products.json(n, FieldSet::ALL),
                    expected,
                    "product {n}, round {round}"
                );
            }
        }
        let expected = data::Items {
            items: [3, 1, 3, 50_000].map(product).into(),
        };
        let batch = products.batch("p3,p1,nope,p0,p50001,p3, p50000", FieldSet::ALL);
        assert_eq!(batch, serde_json::to_vec(&expected).unwrap());

        for (category, q, limit, cursor) in [
            (Some("Books"), None, Some("3"), None),
            (None, Some("steel"), Some("100"), Some("p40000")),
            (None, None, None, Some("p49990")),
            (None, Some("no-such-word"), None, None),
        ] {
            let query = ProductQuery {
                fields: None,
                ids: None,
                category: category.map(str::to_owned),
                q: q.map(str::to_owned),
                limit: limit.map(str::to_owned),
                cursor: cursor.map(str::to_owned),
            };
            let found = search(&query).unwrap();
            let expected = data::Page {
                items: found.numbers.iter().map(|&n| product(n)).collect(),
                next_cursor: found.next.map(|n| format!("p{n}")),
            };
            let body = products.search(&query, FieldSet::ALL).unwrap();
            assert_eq!(body, serde_json::to_vec(&expected).unwrap());
        }
    }
}
