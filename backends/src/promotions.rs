//! promotions service: banners for a user and a placement.

use serde::Deserialize;

use super::{Image, Items};
use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::Text;
use manifold::upstream::{UpstreamError, path_query};

#[derive(Clone, Debug)]
pub struct Promotions(pub(super) CachedUpstream);

/// The members of a [`Promotion`]: the promotions service sends only these.
const PROMOTION_FIELDS: &str = "id,title,images.medium,link";

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    pub id: Text,
    pub title: Text,
    pub images: BannerImage,
    pub link: Text,
}

/// The one image size a [`Promotion`] keeps: a banner across a phone's width.
#[derive(Clone, Debug, Deserialize)]
pub struct BannerImage {
    pub medium: Image,
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
                &path_query(
                    &["/promotions"],
                    &[
                        ("userId", user_id),
                        ("placement", placement),
                        ("fields", PROMOTION_FIELDS),
                    ],
                ),
            )
            .await?;
        Ok(page.items)
    }
}
