//! recommendations service: product ids picked for a user.

use serde::Deserialize;

use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::Text;
use manifold::upstream::{UpstreamError, path_query};

#[derive(Clone, Debug)]
pub struct Recommendations(pub(super) CachedUpstream);

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationList {
    pub items: Vec<Recommendation>,
}

/// A pick: the product alone (asked of the service as `fields=items.productId`; its score
/// and the reason it gives are not shown, and were most of its answer's bytes).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub product_id: Text,
}

impl Recommendations {
    pub async fn for_user(
        &self,
        ctx: &CallContext,
        user_id: &str,
        limit: u32,
    ) -> Result<RecommendationList, UpstreamError> {
        let limit = limit.to_string();
        self.0
            .get_json(
                ctx,
                &path_query(
                    &["/recommendations"],
                    &[
                        ("userId", user_id),
                        ("limit", &limit),
                        ("fields", "items.productId"),
                    ],
                ),
            )
            .await
    }
}
