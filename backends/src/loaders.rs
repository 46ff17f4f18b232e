//! Per-request batching of the backend calls that take a batch of ids (catalog products,
//! shipments and their dates, review summaries): every `load` made while one wave of GraphQL fields resolves
//! becomes ONE backend call (`manifold::graphql::batch`). One `Loaders` per client request, never shared, so nothing one
//! caller loaded can be served to another.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use manifold::graphql::batch::{Batcher, ByKey};
use manifold::request::CallContext;
use manifold::upstream::UpstreamError;

use super::{Backends, Product, ProductSummary, ReviewSummary, Shipment, ShipmentEta};

/// The most ids in one backend call.
const MAX_BATCH: usize = 100;

/// The batch loaders of one client request: one per kind of id.
pub struct Loaders {
    products: Batcher<String, Arc<Product>, UpstreamError>,
    summaries: Batcher<String, Arc<ProductSummary>, UpstreamError>,
    shipments: Batcher<String, Arc<Shipment>, UpstreamError>,
    etas: Batcher<String, Arc<ShipmentEta>, UpstreamError>,
    reviews: Batcher<String, Arc<ReviewSummary>, UpstreamError>,
}

/// What every batch of one request calls with: shared by its loaders, so a batch clones
/// one `Arc` rather than every client and the call context.
struct Calls {
    backends: Backends,
    ctx: CallContext,
}

/// A batcher that calls `call` with the request's backends and context, keying each item
/// it returns by `key`.
fn batcher<T, F>(
    calls: &Arc<Calls>,
    call: F,
    key: fn(&T) -> &str,
) -> Batcher<String, Arc<T>, UpstreamError>
where
    T: Send + Sync + 'static,
    F: for<'a> Fn(
            &'a Backends,
            &'a CallContext,
            &'a [&'a str],
        ) -> BoxFuture<'a, Result<Vec<T>, UpstreamError>>
        + Send
        + Sync
        + Copy
        + 'static,
{
    let calls = calls.clone();
    Batcher::new(MAX_BATCH, move |ids: Vec<String>| {
        let calls = calls.clone();
        async move {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let items = call(&calls.backends, &calls.ctx, &ids).await?;
            Ok(items
                .into_iter()
                .map(|item| (key(&item).to_owned(), Arc::new(item)))
                .collect())
        }
        .boxed()
    })
}

impl Loaders {
    pub fn new(backends: Backends, ctx: CallContext) -> Self {
        let calls = Arc::new(Calls { backends, ctx });
        Loaders {
            products: batcher(
                &calls,
                |b, ctx, ids| b.catalog.batch(ctx, ids).boxed(),
                |p: &Product| &p.id,
            ),
            summaries: batcher(
                &calls,
                |b, ctx, ids| b.catalog.batch_summaries(ctx, ids).boxed(),
                |p: &ProductSummary| &p.id,
            ),
            shipments: batcher(
                &calls,
                |b, ctx, ids| b.shipping.for_orders(ctx, ids).boxed(),
                |s: &Shipment| &s.order_id,
            ),
            etas: batcher(
                &calls,
                |b, ctx, ids| b.shipping.etas(ctx, ids).boxed(),
                |s: &ShipmentEta| &s.order_id,
            ),
            reviews: batcher(
                &calls,
                |b, ctx, ids| b.reviews.summaries(ctx, ids).boxed(),
                |s: &ReviewSummary| &s.product_id,
            ),
        }
    }

    /// The product, or `None` when the catalog does not know it.
    pub async fn product(&self, id: &str) -> Result<Option<Arc<Product>>, UpstreamError> {
        self.products.load_one(id.to_owned()).await
    }

    /// The products the catalog knows among `ids`, by id, in one batch, as summaries (id,
    /// title, price, thumbnail: what a list shows). A separate batch from `product` (a
    /// request asking for both gets two calls, unless the catalog is cached).
    pub async fn product_summaries(
        &self,
        ids: &[&str],
    ) -> Result<ByKey<String, Arc<ProductSummary>>, UpstreamError> {
        self.summaries
            .load_many(ids.iter().map(|id| (*id).to_owned()))
            .await
    }

    pub async fn shipment(&self, order_id: &str) -> Result<Option<Arc<Shipment>>, UpstreamError> {
        self.shipments.load_one(order_id.to_owned()).await
    }

    /// When the orders arrive, from their shipments, by order id (an order without a
    /// shipment is absent): a batch of its own, apart from `shipment`'s (a list of orders
    /// needs no more of each shipment).
    pub async fn shipment_etas(
        &self,
        order_ids: &[&str],
    ) -> Result<ByKey<String, Arc<ShipmentEta>>, UpstreamError> {
        self.etas
            .load_many(order_ids.iter().map(|id| (*id).to_owned()))
            .await
    }

    pub async fn review_summary(
        &self,
        product_id: &str,
    ) -> Result<Option<Arc<ReviewSummary>>, UpstreamError> {
        self.reviews.load_one(product_id.to_owned()).await
    }
}
