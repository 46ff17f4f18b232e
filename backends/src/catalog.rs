//! catalog service: products, one, a batch, or a search page.

use serde::Deserialize;

use super::{Image, ImageSet, Money, batch_path, join_ids};
use manifold::cache::CachedUpstream;
use manifold::cache::policy::BatchEndpoint;
use manifold::request::CallContext;
use manifold::upstream::Text;
use manifold::upstream::{UpstreamError, path_query, path_segment};

#[derive(Clone, Debug)]
pub struct Catalog(pub(super) CachedUpstream);

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: Text,
    pub sku: Text,
    pub title: Text,
    pub brand: Text,
    pub category: Text,
    pub description: Text,
    pub price: Money,
    pub images: ImageSet,
}

/// What a list of products shows: id, title, price and thumbnail. Asked of the catalog as a
/// projection (`SUMMARY_FIELDS`): the description is most of a product's bytes, and a list
/// would receive and scan it for every product it shows.
#[derive(Clone, Debug, Deserialize)]
pub struct ProductSummary {
    pub id: Text,
    pub title: Text,
    pub price: Money,
    pub images: Thumbnail,
}

/// The members of a product a `ProductSummary` asks the catalog for.
const SUMMARY_FIELDS: &str = "id,title,price,images.thumb";

/// The one image size a `ProductSummary` keeps (and asks the catalog for: `images.thumb`).
#[derive(Clone, Debug, Deserialize)]
pub struct Thumbnail {
    pub thumb: Image,
}

/// The catalog's categories: a search filters by one of them (lowercase; the catalog also
/// takes other cases).
pub const CATEGORIES: [&str; 8] = [
    "electronics",
    "home",
    "kitchen",
    "garden",
    "sports",
    "toys",
    "books",
    "fashion",
];

/// What a search keeps: products whose title holds every word of `q` (case-insensitive),
/// in `category`. `None` filters nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProductFilter<'a> {
    pub q: Option<&'a str>,
    pub category: Option<&'a str>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub next_cursor: Option<Text>,
}

impl Catalog {
    /// One product; cached as the entity `product:{id}`, shared with `batch`.
    pub async fn get(&self, ctx: &CallContext, id: &str) -> Result<Product, UpstreamError> {
        self.0
            .get_entity_json(
                ctx,
                &format!("product:{id}"),
                &format!("/products/{}", path_segment(id)),
            )
            .await
    }

    /// The products it knows among `ids`: the cached ones from the cache, the others in one
    /// call.
    pub async fn batch<S: AsRef<str>>(
        &self,
        ctx: &CallContext,
        ids: &[S],
    ) -> Result<Vec<Product>, UpstreamError> {
        self.batch_as(ctx, ids, None).await
    }

    /// `batch` as summaries: the catalog is asked for only their fields, and they are cached
    /// apart from whole products (a purge of `product:{id}` drops both).
    pub async fn batch_summaries<S: AsRef<str>>(
        &self,
        ctx: &CallContext,
        ids: &[S],
    ) -> Result<Vec<ProductSummary>, UpstreamError> {
        self.batch_as(ctx, ids, Some(SUMMARY_FIELDS)).await
    }

    /// A batch of products, only the `fields` of each when that is `Some`.
    async fn batch_as<S: AsRef<str>, T: serde::de::DeserializeOwned>(
        &self,
        ctx: &CallContext,
        ids: &[S],
        fields: Option<&str>,
    ) -> Result<Vec<T>, UpstreamError> {
        let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
        let path = |ids: &[&str]| batch_path("products", "ids", &join_ids(ids), fields);
        let endpoint = BatchEndpoint {
            kind: "product",
            id_field: "id",
            path: &path,
            view: fields,
        };
        self.0.get_batch_json(ctx, &endpoint, &ids).await
    }

    /// Products whose titles hold every word of `q`, a page of at most `limit` from `cursor`.
    pub async fn search(
        &self,
        ctx: &CallContext,
        q: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ProductPage, UpstreamError> {
        let filter = ProductFilter {
            q: Some(q),
            category: None,
        };
        self.find(ctx, filter, limit, cursor).await
    }

    /// The products `filter` lets through, in id order: a page of at most `limit` (the
    /// catalog caps it at 100) from `cursor`, a `next_cursor` of the catalog's. The catalog
    /// answers 400 for a cursor it did not issue and for a category not in `CATEGORIES`.
    pub async fn find(
        &self,
        ctx: &CallContext,
        filter: ProductFilter<'_>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ProductPage, UpstreamError> {
        let limit = limit.to_string();
        let mut params = vec![("limit", limit.as_str())];
        if let Some(q) = filter.q {
            params.push(("q", q));
        }
        if let Some(category) = filter.category {
            params.push(("category", category));
        }
        if let Some(c) = cursor {
            params.push(("cursor", c));
        }
        self.0
            .get_json(ctx, &path_query(&["/products"], &params))
            .await
    }
}
