//! cart service: a user's cart and adding to it.

use http::Method;
use serde::{Deserialize, Serialize};

use super::{LineQuantity, Money, entity_path};
use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::Text;
use manifold::upstream::{Idempotency, UpstreamError, path_segment};

#[derive(Clone, Debug)]
pub struct Carts(pub(super) CachedUpstream);

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cart {
    pub user_id: Text,
    pub items: Vec<CartLine>,
    pub subtotal: Money,
}

impl Cart {
    /// Units in the cart, over all lines.
    pub fn item_count(&self) -> u32 {
        self.items.iter().map(|l| l.quantity).sum()
    }
}

/// The members of a [`CartCount`].
const COUNT_FIELDS: &str = "userId,items.quantity";

/// A cart as its badge shows it: how many of each line, nothing else (a tenth of a whole
/// cart's bytes).
#[derive(Clone, Debug, Deserialize)]
pub struct CartCount {
    pub items: Vec<LineQuantity>,
}

impl CartCount {
    /// Units in the cart, over all lines.
    pub fn item_count(&self) -> u32 {
        LineQuantity::count(&self.items)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartLine {
    pub product_id: Text,
    pub quantity: u32,
    pub unit_price: Money,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddItem<'a> {
    product_id: &'a str,
    quantity: u32,
}

impl Carts {
    pub async fn get(&self, ctx: &CallContext, user_id: &str) -> Result<Cart, UpstreamError> {
        self.0
            .get_json(ctx, &format!("/carts/{}", path_segment(user_id)))
            .await
    }

    /// The user's cart as its badge shows it ([`CartCount`]).
    pub async fn count(
        &self,
        ctx: &CallContext,
        user_id: &str,
    ) -> Result<CartCount, UpstreamError> {
        self.0
            .get_json(ctx, &entity_path("carts", user_id, COUNT_FIELDS))
            .await
    }

    pub async fn add_item(
        &self,
        ctx: &CallContext,
        user_id: &str,
        product_id: &str,
        quantity: u32,
    ) -> Result<Cart, UpstreamError> {
        self.0
            .send_json(
                ctx,
                Method::POST,
                &format!("/carts/{}/items", path_segment(user_id)),
                &AddItem {
                    product_id,
                    quantity,
                },
                &[],
                Idempotency::Once,
            )
            .await
    }
}
