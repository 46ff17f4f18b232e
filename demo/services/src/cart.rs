//! cart (9106): each user's cart, seeded with 0 to 6 lines (`fields=` narrows it, as the
//! other services' reads), and `POST /carts/{userId}/items` to add or increment a line.
//! Changed carts live in this router's memory only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::data::{self, Audit, Money, Seeded};
use crate::error::ApiError;
use crate::fields::{FieldSet, Members, Projection};
use crate::memo::{JsonBytes, Memo};
use crate::shell::lock;
use crate::users;

const MAX_QUANTITY: u32 = 99;
/// Memory for seeded carts' JSON: ~3,000 of them (~0.6 KB each).
const MEMO_BUDGET: usize = 2 << 20;

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/carts/{user_id}", get(show))
        .route("/carts/{user_id}/items", post(add))
        .with_state(Arc::new(Carts::default()))
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Cart {
    user_id: String,
    currency: &'static str,
    items: Vec<CartLine>,
    subtotal: Money,
    updated_at: String,
    audit: Audit,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct CartLine {
    product_id: String,
    title: String,
    quantity: u32,
    unit_price: Money,
    added_at: String,
    /// Integer twin of `unit_price`, for the subtotal.
    #[serde(skip)]
    unit_cents: u64,
}

impl CartLine {
    fn new(product: u32, quantity: u32, added: i64) -> Self {
        let head = catalog::head(product);
        CartLine {
            product_id: head.id,
            title: head.title,
            quantity,
            unit_price: Money::eur(head.price_cents),
            added_at: data::rfc3339(added),
            unit_cents: head.price_cents,
        }
    }
}

impl Cart {
    fn seeded(user: u32) -> Cart {
        let mut seed = Seeded::new("cart", u64::from(user));
        let mut added = seed.time_before(data::DEMO_NOW, 20);
        let mut items: Vec<CartLine> = Vec::new();
        for _ in 0..seed.between(0, 6) {
            let product = seed.between(1, u64::from(catalog::PRODUCT_COUNT)) as u32;
            added += seed.below(6 * 3600) as i64;
            items.push(CartLine::new(product, seed.between(1, 3) as u32, added));
        }
        let mut cart = Cart {
            user_id: user.to_string(),
            currency: "EUR",
            items,
            subtotal: Money::eur(0),
            updated_at: data::rfc3339(added),
            audit: data::audit(&mut seed, added - 3600, "cart-service"),
        };
        cart.audit.updated_at = cart.updated_at.clone();
        cart.recompute_subtotal();
        cart
    }

    fn recompute_subtotal(&mut self) {
        let cents = self
            .items
            .iter()
            .map(|line| line.unit_cents * u64::from(line.quantity))
            .sum();
        self.subtotal = Money::eur(cents);
    }

    /// Adds `quantity` of `product`, incrementing an existing line (capped at the maximum).
    fn add(&mut self, user: u32, product: u32, quantity: u32) {
        let now = data::now_secs();
        let product_id = format!("p{product}");
        match self
            .items
            .iter_mut()
            .find(|line| line.product_id == product_id)
        {
            Some(line) => line.quantity = (line.quantity + quantity).min(MAX_QUANTITY),
            None => self.items.push(CartLine::new(product, quantity, now)),
        }
        self.recompute_subtotal();
        self.updated_at = data::rfc3339(now);
        self.audit.updated_at = self.updated_at.clone();
        self.audit.updated_by = format!("user:{user}");
        self.audit.version += 1;
    }
}

/// A cart's members, in the order it is written; `?fields=` names some of them.
const FIELDS: Members = Members {
    names: &[
        "userId",
        "currency",
        "items",
        "subtotal",
        "updatedAt",
        "audit",
    ],
    // The lines by their members (`items.quantity`: how many, not what).
    narrowable: &[(
        "items",
        &["productId", "title", "quantity", "unitPrice", "addedAt"],
    )],
};

/// Carts changed since start; untouched users get their seeded cart, whose JSON (whole or
/// in the views `?fields=` asked for) is memoised: a changed cart never goes back to being
/// seeded, so that JSON cannot go stale.
struct Carts {
    changed: Mutex<HashMap<u32, Cart>>,
    seeded: Memo<(u32, FieldSet)>,
}

impl Default for Carts {
    fn default() -> Self {
        Carts {
            changed: Mutex::default(),
            seeded: Memo::new(MEMO_BUDGET),
        }
    }
}

impl Carts {
    /// The JSON of the user's cart as it is now, narrowed to `fields`.
    fn json(&self, user: u32, fields: FieldSet) -> Bytes {
        // Serialised under the lock: no half-applied addition can be seen.
        let changed = lock(&self.changed)
            .get(&user)
            .map(|cart| fields.json(&FIELDS, cart));
        changed.unwrap_or_else(|| {
            self.seeded
                .bytes((user, fields), || fields.json(&FIELDS, &Cart::seeded(user)))
        })
    }
}

async fn show(
    State(carts): State<Arc<Carts>>,
    Path(user_id): Path<String>,
    projection: Result<Query<Projection>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(projection) = projection?;
    let user = users::known_user(&user_id)?;
    let fields = FieldSet::parse(projection.fields.as_deref(), &FIELDS)?;
    Ok(JsonBytes(carts.json(user, fields)))
}

#[derive(Deserialize)]
struct NewLine {
    #[serde(rename = "productId")]
    product_id: String,
    #[serde(default = "one")]
    quantity: u32,
}

fn one() -> u32 {
    1
}

/// 201 with the whole cart after the addition.
async fn add(
    State(carts): State<Arc<Carts>>,
    Path(user_id): Path<String>,
    body: Result<Json<NewLine>, JsonRejection>,
) -> Result<(StatusCode, Json<Cart>), ApiError> {
    let user = users::known_user(&user_id)?;
    let Json(line) = body?;
    let product = catalog::product_number(&line.product_id).ok_or_else(|| {
        ApiError::bad(format!("productId: unknown product {:?}", line.product_id))
    })?;
    if !(1..=MAX_QUANTITY).contains(&line.quantity) {
        return Err(ApiError::bad(format!(
            "quantity: must be 1 to {MAX_QUANTITY}"
        )));
    }
    let mut changed = lock(&carts.changed);
    let cart = changed.entry(user).or_insert_with(|| Cart::seeded(user));
    cart.add(user, product, line.quantity);
    let cart = cart.clone();
    drop(changed);
    Ok((StatusCode::CREATED, Json(cart)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_increments_an_existing_line() {
        let mut cart = Cart::seeded(7);
        cart.add(7, 123, 2);
        cart.add(7, 123, 1);
        let lines: Vec<&CartLine> = cart
            .items
            .iter()
            .filter(|l| l.product_id == "p123")
            .collect();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].quantity >= 3);
        assert_eq!(cart.audit.updated_by, "user:7");
    }

    /// Seeded carts are served as the bytes serde writes for them; a changed cart is served
    /// as changed, never from the memo.
    #[test]
    fn memoised_carts_are_serdes_bytes_and_never_stale() {
        let carts = Carts::default();
        for round in 0..2 {
            for user in (1..=users::USER_COUNT).step_by(157).chain([1, 10_000]) {
                let old = serde_json::to_vec(&Cart::seeded(user)).unwrap();
                assert_eq!(
                    carts.json(user, FieldSet::ALL),
                    old,
                    "user {user}, round {round}"
                );
            }
        }
        let before = carts.json(7, FieldSet::ALL);
        let mut cart = Cart::seeded(7);
        cart.add(7, 123, 2);
        lock(&carts.changed).insert(7, cart.clone());
        let after = carts.json(7, FieldSet::ALL);
        assert_ne!(after, before);
        assert_eq!(after, serde_json::to_vec(&cart).unwrap());
    }

    /// `fields=userId,items.quantity`: each line's quantity alone, seeded or changed.
    #[test]
    fn a_cart_narrowed_to_its_quantities_holds_nothing_else() {
        let carts = Carts::default();
        let fields = FieldSet::parse(Some("items.quantity"), &FIELDS).unwrap();
        let parsed = |json: Bytes| -> serde_json::Value { serde_json::from_slice(&json).unwrap() };
        for user in [7, 8] {
            let seeded = Cart::seeded(user);
            let quantities: Vec<_> = seeded
                .items
                .iter()
                .map(|l| serde_json::json!({"quantity": l.quantity}))
                .collect();
            assert_eq!(
                parsed(carts.json(user, fields)),
                serde_json::json!({"userId": user.to_string(), "items": quantities})
            );
        }
        let mut cart = Cart::seeded(7);
        cart.add(7, 123, 2);
        lock(&carts.changed).insert(7, cart.clone());
        let lines = parsed(carts.json(7, fields))["items"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(lines, cart.items.len(), "the changed cart, narrowed");
    }
}
