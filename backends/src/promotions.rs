//! promotions service: banners for a user and a placement.

use serde::Deserialize;

use super::{ImageSet, Items};
use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::{UpstreamError, query};

#[derive(Clone, Debug)]
pub struct Promotions(pub(super) CachedUpstream);

/// The members of a [`Promotion`]: the promotions service sends only these.
const PROMOTION_FIELDS: &str = "id,title,subtitle,images,link";

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    pub id: String,
    pub title: String,
    pub subtitle: String,
    pub images: ImageSet,
    pub link: String,
}

impl Promotions {
    pub async fn for_user(
        &self,
        ctx: &CallContext,
        user_id: &str,
        placement: &str,
    ) -> Result<Vec<Promotion>, UpstreamError> {
        let page: Items<Promotion> = self
            .0
            .get_json(
                ctx,
                &format!(
                    "/promotions{}",
                    query(&[
                        ("userId", user_id),
                        ("placement", placement),
                        ("fields", PROMOTION_FIELDS)
                    ])
                ),
            )
            .await?;
        Ok(page.items)
    }
}
