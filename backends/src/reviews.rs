//! reviews service: a product's reviews and batched rating summaries.

use serde::Deserialize;

use super::join_ids;
use manifold::cache::CachedUpstream;
use manifold::cache::policy::BatchEndpoint;
use manifold::request::CallContext;
use manifold::upstream::Text;
use manifold::upstream::{UpstreamError, path_query};

#[derive(Clone, Debug)]
pub struct Reviews(pub(super) CachedUpstream);

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewList {
    pub items: Vec<Review>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub id: Text,
    pub author: Text,
    pub rating: u8,
    pub title: Text,
    pub body: Text,
    pub created_at: Text,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewSummary {
    pub product_id: Text,
    pub average: f64,
    pub count: u32,
}

impl Reviews {
    pub async fn for_product(
        &self,
        ctx: &CallContext,
        product_id: &str,
    ) -> Result<ReviewList, UpstreamError> {
        self.0
            .get_json(
                ctx,
                &path_query(&["/reviews"], &[("productId", product_id)]),
            )
            .await
    }

    pub async fn summaries<S: AsRef<str>>(
        &self,
        ctx: &CallContext,
        product_ids: &[S],
    ) -> Result<Vec<ReviewSummary>, UpstreamError> {
        let ids: Vec<&str> = product_ids.iter().map(AsRef::as_ref).collect();
        let endpoint = BatchEndpoint {
            kind: "review-summary",
            id_field: "productId",
            path: &|ids| path_query(&["/reviews/summary"], &[("productIds", &join_ids(ids))]),
            view: None,
        };
        self.0.get_batch_json(ctx, &endpoint, &ids).await
    }
}
