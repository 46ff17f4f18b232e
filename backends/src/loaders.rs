//! Per-request batching of the backend calls that take a batch of ids (catalog products,
//! shipments and their dates, review summaries): every `load` made while one wave of GraphQL fields resolves
//! becomes ONE backend call (`manifold::graphql::batch`). One `Loaders` per client request, never shared, so nothing one
//! caller loaded can be served to another.

use std::sync::{Arc, OnceLock};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use manifold::graphql::batch::{Batcher, ByKey};
use manifold::request::CallContext;
use manifold::upstream::{Text, UpstreamError};

use super::{Backends, Product, ProductSummary, ReviewSummary, Shipment, ShipmentEta};

/// The most ids in one backend call.
const MAX_BATCH: usize = 100;

/// The batch loaders of one client request: one per kind of id, each made when first used
/// (a request uses few of them). Keyed by `Text`: the ids a request loads mostly come from
/// other answers, and an answer's items are keyed by their own ids, neither copied.
pub struct Loaders {
    calls: Arc<Calls>,
    products: OnceLock<Loader<Product>>,
    summaries: OnceLock<Loader<ProductSummary>>,
    shipments: OnceLock<Loader<Shipment>>,
    etas: OnceLock<Loader<ShipmentEta>>,
    reviews: OnceLock<Loader<ReviewSummary>>,
}

type Loader<T> = Batcher<Text, Arc<T>, UpstreamError>;

/// What every batch of one request calls with: shared by its loaders, so a batch clones
/// one `Arc` rather than every client and the call context.
struct Calls {
    backends: Backends,
    ctx: CallContext,
}

/// The loader in `cell`, made on first use: a batcher that calls `call` with the request's
/// backends and context, keying each item it returns by `key`.
fn loader<'l, T, F>(
    cell: &'l OnceLock<Loader<T>>,
    calls: &Arc<Calls>,
    call: F,
    key: fn(&T) -> &Text,
) -> &'l Loader<T>
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
    cell.get_or_init(|| {
        let calls = calls.clone();
        Batcher::new(MAX_BATCH, move |ids: Vec<Text>| {
            let calls = calls.clone();
            async move {
                let ids: Vec<&str> = ids.iter().map(Text::as_str).collect();
                let items = call(&calls.backends, &calls.ctx, &ids).await?;
                Ok(items
                    .into_iter()
                    .map(|item| (key(&item).clone(), Arc::new(item)))
                    .collect())
            }
            .boxed()
        })
    })
}

impl Loaders {
    pub fn new(backends: Backends, ctx: CallContext) -> Self {
        Loaders {
            calls: Arc::new(Calls { backends, ctx }),
            products: OnceLock::new(),
            summaries: OnceLock::new(),
            shipments: OnceLock::new(),
            etas: OnceLock::new(),
            reviews: OnceLock::new(),
        }
    }

    /// The product, or `None` when the catalog does not know it.
    pub async fn product(&self, id: &str) -> Result<Option<Arc<Product>>, UpstreamError> {
        loader(
            &self.products,
            &self.calls,
            |b, ctx, ids| b.catalog.batch(ctx, ids).boxed(),
            |p: &Product| &p.id,
        )
        .load_one(id.into())
        .await
    }

    /// The products the catalog knows among `ids`, by id, in one batch, as summaries (id,
    /// title, price, thumbnail: what a list shows). A separate batch from `product` (a
    /// request asking for both gets two calls, unless the catalog is cached).
    pub async fn product_summaries(
        &self,
        ids: &[Text],
    ) -> Result<ByKey<Text, Arc<ProductSummary>>, UpstreamError> {
        loader(
            &self.summaries,
            &self.calls,
            |b, ctx, ids| b.catalog.batch_summaries(ctx, ids).boxed(),
            |p: &ProductSummary| &p.id,
        )
        .load_many(ids.iter().cloned())
        .await
    }

    /// Product `id` as a summary (`product_summaries`' batch), `None` when the catalog does
    /// not know it.
    pub async fn product_summary(
        &self,
        id: &str,
    ) -> Result<Option<Arc<ProductSummary>>, UpstreamError> {
        let id = Text::from(id);
        let mut found = self.product_summaries(std::slice::from_ref(&id)).await?;
        Ok(found.remove(&id))
    }

    pub async fn shipment(&self, order_id: &str) -> Result<Option<Arc<Shipment>>, UpstreamError> {
        loader(
            &self.shipments,
            &self.calls,
            |b, ctx, ids| b.shipping.for_orders(ctx, ids).boxed(),
            |s: &Shipment| &s.order_id,
        )
        .load_one(order_id.into())
        .await
    }

    /// When the orders arrive, from their shipments, by order id (an order without a
    /// shipment is absent): a batch of its own, apart from `shipment`'s (a list of orders
    /// needs no more of each shipment).
    pub async fn shipment_etas(
        &self,
        order_ids: &[Text],
    ) -> Result<ByKey<Text, Arc<ShipmentEta>>, UpstreamError> {
        loader(
            &self.etas,
            &self.calls,
            |b, ctx, ids| b.shipping.etas(ctx, ids).boxed(),
            |s: &ShipmentEta| &s.order_id,
        )
        .load_many(order_ids.iter().cloned())
        .await
    }

    pub async fn review_summary(
        &self,
        product_id: &str,
    ) -> Result<Option<Arc<ReviewSummary>>, UpstreamError> {
        loader(
            &self.reviews,
            &self.calls,
            |b, ctx, ids| b.reviews.summaries(ctx, ids).boxed(),
            |s: &ReviewSummary| &s.product_id,
        )
        .load_one(product_id.into())
        .await
    }
}
