//! catalog service: products, one, a batch, or a search page.

use serde::Deserialize;

use super::{ImageSet, Money, join_ids};
use crate::cache::policy::BatchEndpoint;
use crate::upstream::{CallContext, Upstream, UpstreamError, path_segment, query};

#[derive(Clone, Debug)]
pub struct Catalog(pub(super) Upstream);

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: String,
    pub sku: String,
    pub title: String,
    pub brand: String,
    pub category: String,
    pub description: String,
    pub price: Money,
    pub images: ImageSet,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub next_cursor: Option<String>,
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
        let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
        let endpoint = BatchEndpoint {
            kind: "product",
            id_field: "id",
            path: &|ids| format!("/products{}", query(&[("ids", &join_ids(ids))])),
        };
        self.0.get_batch_json(ctx, &endpoint, &ids).await
    }

    pub async fn search(
        &self,
        ctx: &CallContext,
        q: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ProductPage, UpstreamError> {
        let limit = limit.to_string();
        let mut params = vec![("q", q), ("limit", limit.as_str())];
        if let Some(c) = cursor {
            params.push(("cursor", c));
        }
        self.0
            .get_json(ctx, &format!("/products{}", query(&params)))
            .await
    }
}
