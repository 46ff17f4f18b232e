//! shipping service: shipments of orders, always batched.

use serde::Deserialize;

use super::{Items, join_ids};
use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::{UpstreamError, query};

#[derive(Clone, Debug)]
pub struct Shipping(pub(super) CachedUpstream);

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    pub order_id: String,
    pub carrier: String,
    pub status: String,
    pub tracking_number: String,
    pub tracking_url: String,
    pub eta: String,
}

impl Shipping {
    pub async fn for_orders<S: AsRef<str>>(
        &self,
        ctx: &CallContext,
        order_ids: &[S],
    ) -> Result<Vec<Shipment>, UpstreamError> {
        let page: Items<Shipment> = self
            .0
            .get_json(
                ctx,
                &format!("/shipments{}", query(&[("orderIds", &join_ids(order_ids))])),
            )
            .await?;
        Ok(page.items)
    }
}
