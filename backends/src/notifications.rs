//! notifications service: a user's notification feed (only the summary is modelled).

use serde::Deserialize;

use manifold::cache::CachedUpstream;
use manifold::request::CallContext;
use manifold::upstream::{UpstreamError, path_query};

#[derive(Clone, Debug)]
pub struct Notifications(pub(super) CachedUpstream);

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSummary {
    pub unread_count: u32,
}

impl Notifications {
    /// The unread count alone (`limit=0`: none of the notifications themselves).
    pub async fn summary(
        &self,
        ctx: &CallContext,
        user_id: &str,
    ) -> Result<NotificationSummary, UpstreamError> {
        self.0
            .get_json(
                ctx,
                &path_query(&["/notifications"], &[("userId", user_id), ("limit", "0")]),
            )
            .await
    }
}
