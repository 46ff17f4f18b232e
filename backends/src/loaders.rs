//! Per-request batching of the backend calls that take a batch of ids (catalog products,
//! shipments, review summaries): every `load` made while one wave of GraphQL fields resolves
//! becomes ONE backend call. One `Loaders` per client request, never shared, so nothing one
//! caller loaded can be served to another.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};

use super::{Backends, Product, ProductSummary, ReviewSummary, Shipment};
use manifold::request::CallContext;
use manifold::upstream::UpstreamError;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ProductId(String);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SummaryId(String);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ShipmentOfOrder(String);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SummaryOfProduct(String);

/// How long a batch waits for more ids after its first. Sibling fields ask within
/// microseconds of each other (one poll of the request); tokio's timer rounds up to its
/// millisecond tick, so a batch leaves 0.2 to 1.2 ms after its first id (the default 1 ms
/// left at 1 to 2 ms: on the home query's critical path, between its two waves).
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_micros(200);

/// The batch loaders of one client request.
pub struct Loaders(DataLoader<BatchCalls>);

struct BatchCalls {
    backends: Backends,
    ctx: CallContext,
}

impl Loaders {
    pub fn new(backends: Backends, ctx: CallContext) -> Self {
        let loader = DataLoader::new(BatchCalls { backends, ctx }, tokio::spawn)
            .max_batch_size(100)
            .delay(BATCH_WINDOW);
        Loaders(loader)
    }

    /// The product, or `None` when the catalog does not know it.
    pub async fn product(&self, id: &str) -> Result<Option<Arc<Product>>, UpstreamError> {
        self.0.load_one(ProductId(id.to_owned())).await
    }

    /// The products the catalog knows among `ids`, by id, in one batch, as summaries (id,
    /// title, price, thumbnail: what a list shows). A separate batch from `product` (a
    /// request asking for both gets two calls, unless the catalog is cached).
    pub async fn product_summaries(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Arc<ProductSummary>>, UpstreamError> {
        let found = self
            .0
            .load_many(ids.iter().map(|id| SummaryId((*id).to_owned())))
            .await?;
        Ok(found.into_iter().map(|(k, v)| (k.0, v)).collect())
    }

    pub async fn shipment(&self, order_id: &str) -> Result<Option<Arc<Shipment>>, UpstreamError> {
        self.0.load_one(ShipmentOfOrder(order_id.to_owned())).await
    }

    pub async fn review_summary(
        &self,
        product_id: &str,
    ) -> Result<Option<Arc<ReviewSummary>>, UpstreamError> {
        self.0
            .load_one(SummaryOfProduct(product_id.to_owned()))
            .await
    }
}

impl Loader<ProductId> for BatchCalls {
    type Value = Arc<Product>;
    type Error = UpstreamError;

    async fn load(
        &self,
        keys: &[ProductId],
    ) -> Result<HashMap<ProductId, Arc<Product>>, UpstreamError> {
        let ids: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let products = self.backends.catalog.batch(&self.ctx, &ids).await?;
        Ok(products
            .into_iter()
            .map(|p| (ProductId(p.id.clone()), Arc::new(p)))
            .collect())
    }
}

impl Loader<SummaryId> for BatchCalls {
    type Value = Arc<ProductSummary>;
    type Error = UpstreamError;

    async fn load(
        &self,
        keys: &[SummaryId],
    ) -> Result<HashMap<SummaryId, Arc<ProductSummary>>, UpstreamError> {
        let ids: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let products = self
            .backends
            .catalog
            .batch_summaries(&self.ctx, &ids)
            .await?;
        Ok(products
            .into_iter()
            .map(|p| (SummaryId(p.id.clone()), Arc::new(p)))
            .collect())
    }
}

impl Loader<ShipmentOfOrder> for BatchCalls {
    type Value = Arc<Shipment>;
    type Error = UpstreamError;

    async fn load(
        &self,
        keys: &[ShipmentOfOrder],
    ) -> Result<HashMap<ShipmentOfOrder, Arc<Shipment>>, UpstreamError> {
        let ids: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let shipments = self.backends.shipping.for_orders(&self.ctx, &ids).await?;
        Ok(shipments
            .into_iter()
            .map(|s| (ShipmentOfOrder(s.order_id.clone()), Arc::new(s)))
            .collect())
    }
}

impl Loader<SummaryOfProduct> for BatchCalls {
    type Value = Arc<ReviewSummary>;
    type Error = UpstreamError;

    async fn load(
        &self,
        keys: &[SummaryOfProduct],
    ) -> Result<HashMap<SummaryOfProduct, Arc<ReviewSummary>>, UpstreamError> {
        let ids: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let summaries = self.backends.reviews.summaries(&self.ctx, &ids).await?;
        Ok(summaries
            .into_iter()
            .map(|s| (SummaryOfProduct(s.product_id.clone()), Arc::new(s)))
            .collect())
    }
}
