//! shipping service: shipments of orders, always batched.

use serde::Deserialize;

use super::{Items, batch_path, join_ids};
use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::Text;
use manifold::upstream::UpstreamError;

#[derive(Clone, Debug)]
pub struct Shipping(pub(super) CachedUpstream);

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    pub order_id: Text,
    pub carrier: Text,
    pub status: Text,
    pub tracking_number: Text,
    pub tracking_url: Text,
    pub eta: Text,
}

/// When an order arrives, and nothing else of its shipment (what a list of orders shows).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentEta {
    pub order_id: Text,
    pub eta: Text,
}

/// The members of a shipment a `ShipmentEta` asks shipping for.
const ETA_FIELDS: &str = "orderId,eta";

impl Shipping {
    pub async fn for_orders<S: AsRef<str>>(
        &self,
        ctx: &CallContext,
        order_ids: &[S],
    ) -> Result<Vec<Shipment>, UpstreamError> {
        self.batch_as(ctx, order_ids, None).await
    }

    /// The expected delivery dates of `order_ids`' shipments, the rest of each left out.
    pub async fn etas<S: AsRef<str>>(
        &self,
        ctx: &CallContext,
        order_ids: &[S],
    ) -> Result<Vec<ShipmentEta>, UpstreamError> {
        self.batch_as(ctx, order_ids, Some(ETA_FIELDS)).await
    }

    /// The shipments of `order_ids`, only the `fields` of each when that is `Some`.
    async fn batch_as<S: AsRef<str>, T: serde::de::DeserializeOwned>(
        &self,
        ctx: &CallContext,
        order_ids: &[S],
        fields: Option<&str>,
    ) -> Result<Vec<T>, UpstreamError> {
        let path = batch_path("shipments", "orderIds", &join_ids(order_ids), fields);
        let page: Items<T> = self.0.get_json(ctx, &path).await?;
        Ok(page.items)
    }
}
