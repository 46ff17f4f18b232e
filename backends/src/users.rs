//! users service: profiles.

use serde::Deserialize;

use super::{Image, ImageSet, Items, entity_path, join_ids};
use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::Text;
use manifold::upstream::{UpstreamError, path_query};

#[derive(Clone, Debug)]
pub struct Users(pub(super) CachedUpstream);

/// The members of a profile [`User`] reads: the users service sends only these.
const USER_FIELDS: &str = "id,name,email,avatar,locale";

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Text,
    pub name: Text,
    pub email: Text,
    pub avatar: ImageSet,
    pub locale: Text,
}

/// What a user's own card shows (name and a small avatar): `Users::card` asks for these alone.
#[derive(Clone, Debug, Deserialize)]
pub struct UserCard {
    pub id: Text,
    pub name: Text,
    pub avatar: SmallAvatar,
}

/// The one avatar size a [`UserCard`] keeps.
#[derive(Clone, Debug, Deserialize)]
pub struct SmallAvatar {
    pub small: Image,
}

/// The members of a [`UserCard`], its avatar narrowed to one size.
const CARD_FIELDS: &str = "id,name,avatar.small";

impl Users {
    /// User `id`'s card: a greeting and a "signed in as" need no email, locale or five more
    /// avatar sizes.
    pub async fn card(&self, ctx: &CallContext, id: &str) -> Result<UserCard, UpstreamError> {
        self.0
            .get_json(ctx, &entity_path("users", id, CARD_FIELDS))
            .await
    }

    pub async fn get(&self, ctx: &CallContext, id: &str) -> Result<User, UpstreamError> {
        self.0
            .get_json(ctx, &entity_path("users", id, USER_FIELDS))
            .await
    }

    pub async fn batch(
        &self,
        ctx: &CallContext,
        ids: &[String],
    ) -> Result<Vec<User>, UpstreamError> {
        let page: Items<User> = self
            .0
            .get_json(
                ctx,
                &path_query(
                    &["/users"],
                    &[("ids", &join_ids(ids)), ("fields", USER_FIELDS)],
                ),
            )
            .await?;
        Ok(page.items)
    }
}
