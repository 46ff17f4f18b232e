//! orders (9102): every user's seeded order history (`o-{userId}-{n}`, n = 1 newest), paged
//! lists, and `POST /orders` with `Idempotency-Key` support. Orders created by POST live in
//! this router's memory only, ahead of the seeded ones in the user's list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::catalog::{self, ProductHead};
use crate::data::{self, Audit, Money, Seeded};
use crate::error::ApiError;
use crate::fields::{FieldSet, Members, Projection};
use crate::memo::{self, JsonBytes, Memo};
use crate::shell::lock;
use crate::users::{self, Address};
use crate::{texts, words};

const DEFAULT_PAGE: usize = 10;
const MAX_PAGE: usize = 50;
const MAX_LINES: usize = 50;
const MAX_QUANTITY: u32 = 99;
/// Memory for seeded orders' JSON: ~6,000 of them (~1.3 KB each), the first pages of a
/// benchmark's users many times over.
const MEMO_BUDGET: usize = 8 << 20;

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/orders", get(list).post(create))
        .route("/orders/{id}", get(one))
        .with_state(Arc::new(OrderBook::default()))
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    id: String,
    user_id: String,
    status: &'static str,
    total: Money,
    items: Vec<OrderItem>,
    placed_at: String,
    shipping_address: Address,
    billing_address: Address,
    payment_method: PaymentMethod,
    notes: String,
    audit: Audit,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderItem {
    product_id: String,
    title: String,
    sku: String,
    quantity: u32,
    unit_price: Money,
    /// Kept alongside the decimal string so totals are summed in integers.
    #[serde(skip)]
    unit_cents: u64,
}

impl OrderItem {
    fn new(head: ProductHead, quantity: u32) -> Self {
        OrderItem {
            unit_price: Money::eur(head.price_cents),
            unit_cents: head.price_cents,
            product_id: head.id,
            title: head.title,
            sku: head.sku,
            quantity,
        }
    }
}

#[derive(Clone, Serialize)]
struct PaymentMethod {
    brand: &'static str,
    last4: String,
}

/// How many orders user `user` has before anything is POSTed: 3 to 12.
pub(crate) fn seeded_count(user: u32) -> u32 {
    Seeded::new("order-count", u64::from(user)).between(3, 12) as u32
}

/// Status of seeded order `n` of `user`: recent orders are still moving, old ones delivered.
pub(crate) fn seeded_status(user: u32, n: u32) -> &'static str {
    let mut seed = Seeded::pair("order-status", user, n);
    match n {
        1 => seed.pick(&["PLACED", "PROCESSING"]),
        2 => seed.pick(&["PROCESSING", "SHIPPED"]),
        3 => seed.pick(&["SHIPPED", "DELIVERED"]),
        _ if seed.percent(15) => "CANCELLED",
        _ => "DELIVERED",
    }
}

/// Parses `o-{user}-{n}` into a known user and `n >= 1`.
pub(crate) fn parse_order_id(id: &str) -> Option<(u32, u32)> {
    let (user, n) = id.strip_prefix("o-")?.split_once('-')?;
    Some((users::user_number(user)?, data::parse_id(n, "", u32::MAX)?))
}

fn payment_method(seed: &mut Seeded) -> PaymentMethod {
    PaymentMethod {
        brand: seed.pick(words::PAYMENT_BRANDS),
        last4: format!("{:04}", seed.below(10_000)),
    }
}

fn seeded_order(user: u32, n: u32) -> Order {
    let mut seed = Seeded::pair("order", user, n);
    // n = 1 is the newest: roughly one order a fortnight going back from DEMO_NOW.
    let placed = data::DEMO_NOW - i64::from(n) * 14 * 86_400 + seed.below(10 * 86_400) as i64;
    let items: Vec<OrderItem> = (0..seed.between(1, 5))
        .map(|_| {
            let product = seed.between(1, u64::from(catalog::PRODUCT_COUNT)) as u32;
            OrderItem::new(catalog::head(product), seed.between(1, 3) as u32)
        })
        .collect();
    Order {
        id: format!("o-{user}-{n}"),
        user_id: user.to_string(),
        status: seeded_status(user, n),
        total: Money::eur(total_cents(&items)),
        placed_at: data::rfc3339(placed),
        shipping_address: users::address(user, 0),
        billing_address: users::address(user, u32::from(seed.percent(20))),
        payment_method: payment_method(&mut seed),
        notes: data::prose(&mut seed, texts::ORDER_NOTES, 300),
        audit: data::audit(&mut seed, placed, "order-service"),
        items,
    }
}

fn total_cents(items: &[OrderItem]) -> u64 {
    items
        .iter()
        .map(|item| item.unit_cents * u64::from(item.quantity))
        .sum()
}

/// An order's members, in the order it is written; `?fields=` names some of them.
const FIELDS: Members = Members {
    names: &[
        "id",
        "userId",
        "status",
        "total",
        "items",
        "placedAt",
        "shippingAddress",
        "billingAddress",
        "paymentMethod",
        "notes",
        "audit",
    ],
    // An order's lines by their members (`items.quantity`: how many, not what).
    narrowable: &[(
        "items",
        &["productId", "title", "sku", "quantity", "unitPrice"],
    )],
};

/// Orders created by `POST /orders` and the idempotency keys that created them, and the
/// seeded orders' JSON, whole and in the views `?fields=` asked for (which never changes:
/// created orders are separate entries).
struct OrderBook {
    state: Mutex<Created>,
    seeded: Memo<(u32, u32, FieldSet)>,
}

impl Default for OrderBook {
    fn default() -> Self {
        OrderBook {
            state: Mutex::default(),
            seeded: Memo::new(MEMO_BUDGET),
        }
    }
}

impl OrderBook {
    fn seeded_json(&self, user: u32, n: u32, fields: FieldSet) -> Bytes {
        self.seeded.bytes((user, n, fields), || {
            fields.json(&FIELDS, &seeded_order(user, n))
        })
    }

    /// One page of the user's orders, newest first, as `{"items": [...], "nextCursor": ...}`.
    fn page(
        &self,
        user: u32,
        limit: usize,
        cursor: Option<&str>,
        fields: FieldSet,
    ) -> Result<Bytes, ApiError> {
        let created = lock(&self.state).of_user(user);
        let mut entries: Vec<Entry> = created
            .into_iter()
            .map(|order| Entry::Created(Box::new(order)))
            .collect();
        entries.extend((1..=seeded_count(user)).map(|n| Entry::Seeded(user, n)));

        let start = match cursor {
            None => 0,
            Some(cursor) => entries
                .iter()
                .position(|entry| entry.id() == cursor)
                .ok_or_else(|| ApiError::bad(format!("cursor: unknown cursor {cursor:?}")))?,
        };
        let mut rest = entries.into_iter().skip(start);
        let fragments: Vec<Bytes> = rest
            .by_ref()
            .take(limit)
            .map(|entry| self.json(entry, fields))
            .collect();
        let next_cursor = rest.next().map(|entry| entry.id());
        Ok(memo::page(&fragments, next_cursor.as_deref()))
    }

    fn json(&self, entry: Entry, fields: FieldSet) -> Bytes {
        match entry {
            Entry::Created(order) => fields.json(&FIELDS, &order),
            Entry::Seeded(user, n) => self.seeded_json(user, n, fields),
        }
    }
}

#[derive(Default)]
struct Created {
    by_id: HashMap<String, Order>,
    /// Per user, oldest first.
    by_user: HashMap<u32, Vec<String>>,
    /// `(user, Idempotency-Key)` -> the order that key created.
    by_key: HashMap<(u32, String), String>,
}

impl Created {
    /// The user's created orders, newest first.
    fn of_user(&self, user: u32) -> Vec<Order> {
        self.by_user
            .get(&user)
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|id| self.by_id.get(id).cloned())
            .collect()
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "userId")]
    user_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// `status,total`: only these members of each order (and `id`); see [`FIELDS`].
    fields: Option<String>,
}

/// One entry of a user's list: created orders are held in full, seeded ones by number.
enum Entry {
    Created(Box<Order>),
    Seeded(u32, u32),
}

impl Entry {
    fn id(&self) -> String {
        match self {
            Entry::Created(order) => order.id.clone(),
            Entry::Seeded(user, n) => format!("o-{user}-{n}"),
        }
    }
}

/// Newest first; the cursor is the id of the first order of the next page, so a page stays
/// put when new orders are created in between.
async fn list(
    State(book): State<Arc<OrderBook>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(query) = query?;
    let user = users::known_user(data::required(&query.user_id, "userId")?)?;
    let limit = data::limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let fields = FieldSet::parse(query.fields.as_deref(), &FIELDS)?;
    book.page(user, limit, query.cursor.as_deref(), fields)
        .map(JsonBytes)
}

async fn one(
    State(book): State<Arc<OrderBook>>,
    Path(id): Path<String>,
    query: Result<Query<Projection>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(projection) = query?;
    let fields = FieldSet::parse(projection.fields.as_deref(), &FIELDS)?;
    if let Some((user, n)) = parse_order_id(&id)
        && n <= seeded_count(user)
    {
        return Ok(JsonBytes(book.seeded_json(user, n, fields)));
    }
    let created = lock(&book.state)
        .by_id
        .get(&id)
        .map(|order| fields.json(&FIELDS, order));
    created
        .map(JsonBytes)
        .ok_or_else(|| ApiError::not_found("order", &id))
}

#[derive(Deserialize)]
struct NewOrder {
    items: Vec<NewLine>,
}

#[derive(Deserialize)]
struct NewLine {
    #[serde(rename = "productId")]
    product_id: String,
    quantity: u32,
}

/// The user the gateway vouches for, from `x-user-id`.
pub(crate) fn identity(headers: &HeaderMap) -> Result<u32, ApiError> {
    let value = headers
        .get("x-user-id")
        .ok_or(ApiError::MissingIdentity)?
        .to_str()
        .map_err(|_| ApiError::bad("x-user-id: not valid text"))?;
    users::known_user(value.trim())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str().map(str::trim) {
        Ok(key) if !key.is_empty() && key.len() <= 255 => Ok(Some(key.to_owned())),
        _ => Err(ApiError::bad(
            "idempotency-key: expected 1 to 255 characters of text",
        )),
    }
}

fn validated_items(new: NewOrder) -> Result<Vec<OrderItem>, ApiError> {
    if new.items.is_empty() || new.items.len() > MAX_LINES {
        return Err(ApiError::bad(format!(
            "items: expected 1 to {MAX_LINES} lines"
        )));
    }
    new.items
        .into_iter()
        .map(|line| {
            let n = catalog::product_number(&line.product_id).ok_or_else(|| {
                ApiError::bad(format!("items: unknown product {:?}", line.product_id))
            })?;
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                return Err(ApiError::bad(format!(
                    "items: quantity must be 1 to {MAX_QUANTITY}"
                )));
            }
            Ok(OrderItem::new(catalog::head(n), line.quantity))
        })
        .collect()
}

/// 201 with the new order, or 200 with the order an earlier request with the same user and
/// `Idempotency-Key` created (whatever this request's body says).
async fn create(
    State(book): State<Arc<OrderBook>>,
    headers: HeaderMap,
    body: Result<Json<NewOrder>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user = identity(&headers)?;
    let key = idempotency_key(&headers)?;
    if let Some(replayed) = replay(&book, user, key.as_deref()) {
        return Ok(answer(StatusCode::OK, replayed, true));
    }
    let Json(new) = body?;
    let items = validated_items(new)?;

    let now = data::now_secs();
    let mut seed = Seeded::pair("created-order", user, now as u32);
    let mut state = lock(&book.state);
    // A concurrent request with the same key may have won while we validated.
    if let Some(key) = &key
        && let Some(order) = state
            .by_key
            .get(&(user, key.clone()))
            .and_then(|id| state.by_id.get(id))
    {
        return Ok(answer(StatusCode::OK, order.clone(), true));
    }
    let created_before = state.by_user.get(&user).map_or(0, Vec::len) as u32;
    // Created orders continue the user's numbering, so the id keeps the `o-{user}-{n}` form
    // shipping understands.
    let n = seeded_count(user) + created_before + 1;
    let order = Order {
        id: format!("o-{user}-{n}"),
        user_id: user.to_string(),
        status: "PLACED",
        total: Money::eur(total_cents(&items)),
        items,
        placed_at: data::rfc3339(now),
        shipping_address: users::address(user, 0),
        billing_address: users::address(user, 0),
        payment_method: payment_method(&mut seed),
        notes: String::new(),
        audit: Audit {
            created_at: data::rfc3339(now),
            created_by: format!("user:{user}"),
            updated_at: data::rfc3339(now),
            updated_by: format!("user:{user}"),
            version: 1,
            source: "order-service",
        },
    };
    state.by_id.insert(order.id.clone(), order.clone());
    state
        .by_user
        .entry(user)
        .or_default()
        .push(order.id.clone());
    if let Some(key) = key {
        state.by_key.insert((user, key), order.id.clone());
    }
    drop(state);
    Ok(answer(StatusCode::CREATED, order, false))
}

fn replay(book: &OrderBook, user: u32, key: Option<&str>) -> Option<Order> {
    let state = lock(&book.state);
    let id = state.by_key.get(&(user, key?.to_owned()))?;
    state.by_id.get(id).cloned()
}

fn answer(status: StatusCode, order: Order, replayed: bool) -> Response {
    let location = HeaderValue::try_from(format!("/orders/{}", order.id)).ok();
    let mut response = (status, Json(order)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_orders_are_stable_and_fat() {
        let body = serde_json::to_vec(&seeded_order(42, 1)).unwrap();
        assert_eq!(body, serde_json::to_vec(&seeded_order(42, 1)).unwrap());
        assert!(body.len() > 1200, "order is {} bytes", body.len());
        assert!((3..=12).contains(&seeded_count(42)));
    }

    /// Pages are the bytes serde writes for the freshly generated orders, with and without
    /// created orders ahead of the seeded ones, cold and warm.
    #[test]
    fn memoised_pages_are_serdes_bytes() {
        let book = OrderBook::default();
        let expected = |orders: Vec<Order>, next: Option<&str>| {
            serde_json::to_vec(&data::Page {
                items: orders,
                next_cursor: next.map(str::to_owned),
            })
            .unwrap()
        };
        for round in 0..2 {
            for user in (1..=users::USER_COUNT).step_by(211).chain([1, 42, 10_000]) {
                let count = seeded_count(user);
                let all: Vec<Order> = (1..=count).map(|n| seeded_order(user, n)).collect();
                let first = book.page(user, 3, None, FieldSet::ALL).unwrap();
                let next = format!("o-{user}-4");
                let next = (count > 3).then_some(next.as_str());
                assert_eq!(
                    first,
                    expected(all[..3].to_vec(), next),
                    "user {user} {round}"
                );
                let second = book
                    .page(user, 50, Some(&format!("o-{user}-2")), FieldSet::ALL)
                    .unwrap();
                assert_eq!(second, expected(all[1..].to_vec(), None));
                let one = book.seeded_json(user, count, FieldSet::ALL);
                assert_eq!(one, serde_json::to_vec(&all[count as usize - 1]).unwrap());
            }
        }

        let mut created = seeded_order(42, 1);
        created.id = format!("o-42-{}", seeded_count(42) + 1);
        created.notes = "created \"now\"".to_owned();
        {
            let mut state = lock(&book.state);
            state.by_id.insert(created.id.clone(), created.clone());
            state
                .by_user
                .entry(42)
                .or_default()
                .push(created.id.clone());
        }
        let page = book.page(42, 2, None, FieldSet::ALL).unwrap();
        let next = "o-42-2";
        assert_eq!(
            page,
            expected(vec![created, seeded_order(42, 1)], Some(next))
        );
        assert!(book.page(42, 2, Some("o-42-0"), FieldSet::ALL).is_err());

        // Narrowed, created and seeded orders alike hold the members asked for and `id`.
        let fields = FieldSet::parse(Some("status,total"), &FIELDS).unwrap();
        let narrow: serde_json::Value =
            serde_json::from_slice(&book.page(42, 2, None, fields).unwrap()).unwrap();
        let whole: serde_json::Value = serde_json::from_slice(&page).unwrap();
        for (narrow, whole) in narrow["items"]
            .as_array()
            .unwrap()
            .iter()
            .zip(whole["items"].as_array().unwrap())
        {
            let expected = serde_json::json!({
                "id": whole["id"], "status": whole["status"], "total": whole["total"],
            });
            assert_eq!(*narrow, expected);
        }
        assert_eq!(narrow["nextCursor"], next);
    }

    #[test]
    fn order_ids_parse() {
        assert_eq!(parse_order_id("o-42-3"), Some((42, 3)));
        assert_eq!(parse_order_id("o-42-0"), None);
        assert_eq!(parse_order_id("o-0-1"), None);
        assert_eq!(parse_order_id("x-42-1"), None);
    }
}
