//! orders service: a user's orders (cursor-paged), one order, placing an order.

use http::Method;
use serde::{Deserialize, Serialize};

use super::{Items, LineQuantity, Money, entity_path};
use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::Text;
use manifold::upstream::{Idempotency, UpstreamError, path_query};

#[derive(Clone, Debug)]
pub struct Orders(pub(super) CachedUpstream);

/// The members of an [`Order`]: the orders service sends only these.
const ORDER_FIELDS: &str = "id,userId,status,total,items,placedAt";
/// The members of an [`OrderHead`]: of its lines, their quantities alone.
const HEAD_FIELDS: &str = "id,status,total,items.quantity";

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: Text,
    pub user_id: Text,
    pub status: Text,
    pub total: Money,
    pub items: Vec<OrderLine>,
    pub placed_at: Text,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub product_id: Text,
    pub title: Text,
    pub sku: Text,
    pub quantity: u32,
    pub unit_price: Money,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    pub items: Vec<Order>,
    pub next_cursor: Option<Text>,
}

/// An order as a list of orders shows it: its status, its total and how many items it has
/// (a quarter of an [`Order`]'s bytes).
#[derive(Clone, Debug, Deserialize)]
pub struct OrderHead {
    pub id: Text,
    pub status: Text,
    pub total: Money,
    pub items: Vec<LineQuantity>,
}

impl OrderHead {
    /// How many items the order has, over all its lines.
    pub fn item_count(&self) -> u32 {
        LineQuantity::count(&self.items)
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    pub items: Vec<NewOrderLine>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrderLine {
    pub product_id: String,
    pub quantity: u32,
}

impl Orders {
    /// The user's orders, newest first.
    pub async fn list(
        &self,
        ctx: &CallContext,
        user_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<OrderPage, UpstreamError> {
        self.0
            .get_json(ctx, &page_path(user_id, limit, cursor, ORDER_FIELDS))
            .await
    }

    /// The user's latest `limit` orders as a list shows them ([`OrderHead`]).
    pub async fn heads(
        &self,
        ctx: &CallContext,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<OrderHead>, UpstreamError> {
        let page: Items<OrderHead> = self
            .0
            .get_json(ctx, &page_path(user_id, limit, None, HEAD_FIELDS))
            .await?;
        Ok(page.items)
    }

    pub async fn get(&self, ctx: &CallContext, id: &str) -> Result<Order, UpstreamError> {
        self.0
            .get_json(ctx, &entity_path("orders", id, ORDER_FIELDS))
            .await
    }

    /// Places an order for the context's user; the same `idempotency_key` never places two.
    pub async fn create(
        &self,
        ctx: &CallContext,
        order: &NewOrder,
        idempotency_key: &str,
    ) -> Result<Order, UpstreamError> {
        self.0
            .send_json(
                ctx,
                Method::POST,
                "/orders",
                order,
                &[("idempotency-key", idempotency_key)],
                // Not retried, even with a key: a 5xx may have placed the order already, and
                // the client holds the key to try again knowingly.
                Idempotency::Once,
            )
            .await
    }
}

/// `/orders?userId=..&limit=..&fields=..[&cursor=..]`.
fn page_path(user_id: &str, limit: u32, cursor: Option<&str>, fields: &str) -> String {
    let limit = limit.to_string();
    let mut params = vec![
        ("userId", user_id),
        ("limit", limit.as_str()),
        ("fields", fields),
    ];
    if let Some(c) = cursor {
        params.push(("cursor", c));
    }
    path_query(&["/orders"], &params)
}
