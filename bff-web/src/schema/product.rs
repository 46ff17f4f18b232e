//! Products: full catalog details, the rating summary (batched over every product a response
//! shows) and the reviews themselves.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use backends::Scope;
use manifold::graphql::{Plain, UpstreamResultExt};
use manifold::plain_object;
use manifold::upstream::{Text, UpstreamError};

use super::{Images, Money, input};

type LoadedSummary = Result<Option<Arc<backends::ReviewSummary>>, UpstreamError>;

/// A catalog product, from a batch-loaded, shared copy of the catalog's answer.
pub struct Product {
    product: Source,
    /// The rating summary, when it was loaded together with the product (see `load`).
    summary: Option<LoadedSummary>,
}

/// What the catalog was asked for.
enum Source {
    Full(Arc<backends::Product>),
    /// Id, title, price and thumbnail: what a list of products shows.
    Summary(Arc<backends::ProductSummary>),
}

impl Product {
    /// Product `id` through the request's batch loader, `None` when the catalog does not know
    /// it. When the query asks for its `reviewSummary` too, that is loaded at the same time
    /// instead of once the product has arrived: one wave instead of two, and the summaries of
    /// every product in the wave are enqueued together, so they reliably make one batch.
    pub async fn load(ctx: &Context<'_>, id: &str) -> Result<Option<Product>> {
        Self::load_as(ctx, id, false).await
    }

    /// `load` for a product shown in a list (an order's or the cart's lines): as a summary
    /// when the query asks nothing else of it (`summary_suffices`). A list's products share
    /// their shape, so they still make one batch; a product page's are loaded whole, so that
    /// one asking only an id beside them does not make a batch of its own.
    pub async fn load_in_list(ctx: &Context<'_>, id: &str) -> Result<Option<Product>> {
        Self::load_as(ctx, id, summary_suffices(ctx)).await
    }

    async fn load_as(ctx: &Context<'_>, id: &str, as_summary: bool) -> Result<Option<Product>> {
        let loaders = &Scope::of(ctx)?.loaders;
        let product = async {
            if as_summary {
                Ok(loaders.product_summary(id).await?.map(Source::Summary))
            } else {
                Ok(loaders.product(id).await?.map(Source::Full))
            }
        };
        if !ctx.look_ahead().field("reviewSummary").exists() {
            let product: Result<_, UpstreamError> = product.await;
            return Ok(product.gql()?.map(|product| Product {
                product,
                summary: None,
            }));
        }
        let (product, summary) = tokio::join!(product, loaders.review_summary(id));
        Ok(product.gql()?.map(|product| Product {
            product,
            summary: Some(summary),
        }))
    }

    /// What a whole product and a summary both hold: id, title and price.
    fn shared(&self) -> (&Text, &Text, &backends::Money) {
        match &self.product {
            Source::Full(p) => (&p.id, &p.title, &p.price),
            Source::Summary(p) => (&p.id, &p.title, &p.price),
        }
    }

    fn id_text(&self) -> &Text {
        self.shared().0
    }

    /// The whole product: only a summary's fields are asked of one loaded as a summary.
    fn full(&self) -> Result<&backends::Product> {
        match &self.product {
            Source::Full(p) => Ok(p),
            Source::Summary(_) => Err("the product was loaded as a summary".into()),
        }
    }
}

/// Whether the fields the query asks of this product are all in its summary: a list of
/// products (an order's lines) asks for little more than a title, a price and a thumbnail,
/// and a whole product is most of its bytes in a description the list never shows (the web
/// orders page spent a quarter of its instructions decoding whole products).
fn summary_suffices(ctx: &Context<'_>) -> bool {
    ctx.field().selection_set().all(|field| match field.name() {
        "id" | "title" | "price" | "reviewSummary" | "reviews" | "__typename" => true,
        "images" => field
            .selection_set()
            .all(|size| matches!(size.name(), "thumb" | "__typename")),
        _ => false,
    })
}

impl From<Arc<backends::Product>> for Product {
    fn from(product: Arc<backends::Product>) -> Self {
        Product {
            product: Source::Full(product),
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
        ID(self.id_text().to_string())
    }

    async fn sku(&self) -> Result<&str> {
        Ok(&self.full()?.sku)
    }

    async fn title(&self) -> &str {
        self.shared().1
    }

    async fn brand(&self) -> Result<&str> {
        Ok(&self.full()?.brand)
    }

    async fn category(&self) -> Result<&str> {
        Ok(&self.full()?.category)
    }

    async fn description(&self) -> Result<&str> {
        Ok(&self.full()?.description)
    }

    async fn price(&self) -> Plain<Money> {
        Money::of(self.shared().2)
    }

    async fn images(&self) -> Images<'_> {
        match &self.product {
            Source::Full(p) => Images::Set(&p.images),
            Source::Summary(p) => Images::Thumb(&p.images.thumb),
        }
    }

    /// Average rating and number of reviews, from reviews; one call for all products shown.
    async fn review_summary(&self, ctx: &Context<'_>) -> Result<Option<Plain<ReviewSummary>>> {
        let summary = match &self.summary {
            Some(loaded) => loaded.clone().gql()?,
            None => {
                let scope = Scope::of(ctx)?;
                scope.loaders.review_summary(self.id_text()).await.gql()?
            }
        };
        // The service says 0 for "no reviews yet"; a page must not draw that as zero stars.
        Ok(summary.map(|s| {
            Plain(ReviewSummary {
                average: (s.count > 0).then_some(s.average),
                count: s.count as i32,
            })
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
            .for_product(&scope.call, self.id_text())
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

plain_object!(ReviewSummary { "average" => average, "count" => count });

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
