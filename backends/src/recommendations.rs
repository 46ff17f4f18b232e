//! recommendations service: product ids picked for a user.

use serde::Deserialize;

use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::{UpstreamError, query};

#[derive(Clone, Debug)]
pub struct Recommendations(pub(super) CachedUpstream);

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationList {
    pub items: Vec<Recommendation>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub product_id: String,
    pub score: f64,
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
                &format!(
                    "/recommendations{}",
                    query(&[("userId", user_id), ("limit", &limit)])
                ),
            )
            .await
    }
}
