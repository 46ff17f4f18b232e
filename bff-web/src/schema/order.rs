//! Orders: their lines with the products behind them, and their shipments. Products and
//! shipments are batch-loaded, so a page of orders costs one catalog call and one shipping
//! call however many orders and lines it holds.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use backends::Scope;
use manifold::graphql::{Plain, UpstreamResultExt};
use manifold::plain_object;
use manifold::upstream::Text;

use super::Money;
use super::product::Product;

pub struct Order(backends::Order);

impl From<backends::Order> for Order {
    fn from(order: backends::Order) -> Self {
        Order(order)
    }
}

#[Object]
impl Order {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// PLACED, PROCESSING, SHIPPED, DELIVERED or CANCELLED.
    async fn status(&self) -> &str {
        &self.0.status
    }

    /// RFC 3339.
    async fn placed_at(&self) -> &str {
        &self.0.placed_at
    }

    async fn total(&self) -> Plain<Money> {
        Money::of(&self.0.total)
    }

    /// Units over all lines.
    async fn item_count(&self) -> i32 {
        self.0.items.iter().map(|l| l.quantity as i32).sum()
    }

    async fn items(&self) -> Vec<OrderItem<'_>> {
        self.0.items.iter().map(OrderItem).collect()
    }

    /// Delivery tracking, from shipping; null when shipping has no record of the order.
    async fn shipment(&self, ctx: &Context<'_>) -> Result<Option<Plain<Shipment>>> {
        let scope = Scope::of(ctx)?;
        let shipment = scope.loaders.shipment(&self.0.id).await.gql()?;
        Ok(shipment.map(|s| {
            Plain(Shipment {
                carrier: s.carrier.clone(),
                status: s.status.clone(),
                tracking_number: s.tracking_number.clone(),
                tracking_url: s.tracking_url.clone(),
                eta: s.eta.clone(),
            })
        }))
    }
}

/// One line of an order: what it cost then, and the product as the catalog shows it now.
pub struct OrderItem<'a>(&'a backends::OrderLine);

#[Object]
impl OrderItem<'_> {
    async fn product_id(&self) -> ID {
        ID(self.0.product_id.to_string())
    }

    /// The title when ordered (the catalog's may have changed since).
    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn quantity(&self) -> i32 {
        self.0.quantity as i32
    }

    async fn unit_price(&self) -> Plain<Money> {
        Money::of(&self.0.unit_price)
    }

    /// From the catalog; null when it no longer lists the product.
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        Product::load_in_list(ctx, &self.0.product_id).await
    }
}

// Answered as a plain object (`Plain`): one pass for its selection.
#[derive(SimpleObject)]
pub struct Shipment {
    carrier: Text,
    status: Text,
    tracking_number: Text,
    tracking_url: Text,
    /// Expected delivery date (RFC 3339).
    eta: Text,
}

plain_object!(Shipment {
    "carrier" => carrier,
    "status" => status,
    "trackingNumber" => tracking_number,
    "trackingUrl" => tracking_url,
    "eta" => eta,
});
