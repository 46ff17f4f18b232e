//! Products: full catalog details, the rating summary (batched over every product a response
//! shows) and the reviews themselves.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use backends::Scope;
use manifold::graphql::UpstreamResultExt;
use manifold::upstream::UpstreamError;

use super::{Images, Money, input};

type LoadedSummary = Result<Option<Arc<backends::ReviewSummary>>, UpstreamError>;

/// A catalog product, from a batch-loaded, shared copy of the catalog's answer.
pub struct Product {
    product: Arc<backends::Product>,
    /// The rating summary, when it was loaded together with the product (see `load`).
    summary: Option<LoadedSummary>,
}

impl Product {
    /// Product `id` through the request's batch loader, `None` when the catalog does not know
    /// it. When the query asks for its `reviewSummary` too, that is loaded at the same time
    /// instead of once the product has arrived: one wave instead of two, and the summaries of
    /// every product in the wave are enqueued together, so they reliably make one batch.
    pub async fn load(ctx: &Context<'_>, id: &str) -> Result<Option<Product>> {
        let loaders = &Scope::of(ctx)?.loaders;
        if !ctx.look_ahead().field("reviewSummary").exists() {
            return Ok(loaders.product(id).await.gql()?.map(Product::from));
        }
        let (product, summary) = tokio::join!(loaders.product(id), loaders.review_summary(id));
        Ok(product.gql()?.map(|product| Product {
            product,
            summary: Some(summary),
        }))
    }
}

impl From<Arc<backends::Product>> for Product {
    fn from(product: Arc<backends::Product>) -> Self {
        Product {
            product,
            summary: None,
        }
    }
}

impl From<backends::Product> for Product {
    fn from(product: backends::Product) -> Self {
        Product::from(Arc::new(product))
    }
}

#[Object]
impl Product {
    async fn id(&self) -> ID {
        ID(self.product.id.to_string())
    }

    async fn sku(&self) -> &str {
        &self.product.sku
    }

    async fn title(&self) -> &str {
        &self.product.title
    }

    async fn brand(&self) -> &str {
        &self.product.brand
    }

    async fn category(&self) -> &str {
        &self.product.category
    }

    async fn description(&self) -> &str {
        &self.product.description
    }

    async fn price(&self) -> Money<'_> {
        Money(&self.product.price)
    }

    async fn images(&self) -> Images<'_> {
        Images(&self.product.images)
    }

    /// Average rating and number of reviews, from reviews; one call for all products shown.
    async fn review_summary(&self, ctx: &Context<'_>) -> Result<Option<ReviewSummary>> {
        let summary = match &self.summary {
            Some(loaded) => loaded.clone().gql()?,
            None => {
                let scope = Scope::of(ctx)?;
                scope.loaders.review_summary(&self.product.id).await.gql()?
            }
        };
        // The service says 0 for "no reviews yet"; a page must not draw that as zero stars.
        Ok(summary.map(|s| ReviewSummary {
            average: (s.count > 0).then_some(s.average),
            count: s.count as i32,
        }))
    }

    /// The newest reviews, from reviews. One call per product: ask for it on a product page,
    /// not on every product of a list.
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10, desc = "1 to 10.")] first: i32,
    ) -> Result<Option<Vec<Review>>> {
        let first = input::review_count(first)?;
        let scope = Scope::of(ctx)?;
        let list = scope
            .backends
            .reviews
            .for_product(&scope.call, &self.product.id)
            .await
            .gql()?;
        Ok(Some(
            list.items
                .into_iter()
                .take(first as usize)
                .map(Review)
                .collect(),
        ))
    }
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub struct ReviewSummary {
    /// Mean rating, 1 to 5; null while the product has no reviews.
    average: Option<f64>,
    count: i32,
}

pub struct Review(backends::Review);

#[Object(serial)]
impl Review {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn author(&self) -> &str {
        &self.0.author
    }

    /// 1 to 5.
    async fn rating(&self) -> i32 {
        i32::from(self.0.rating)
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    /// RFC 3339.
    async fn created_at(&self) -> &str {
        &self.0.created_at
    }
}
