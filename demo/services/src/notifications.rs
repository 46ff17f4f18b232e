//! notifications (9105): the 20 latest notifications of a user, some unread; `limit` (0 to
//! 20) keeps the newest few, and `limit=0` answers the unread count alone.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::data::{self, Seeded};
use crate::error::ApiError;
use crate::memo::{JsonBytes, Memo};
use crate::orders;
use crate::texts;
use crate::users;

const COUNT: u32 = 20;
/// Memory for inboxes' JSON: ~1,200 of them (~6.7 KB each).
const MEMO_BUDGET: usize = 8 << 20;

/// Serialised inboxes by (user number, how many notifications they hold).
type Inboxes = Memo<(u32, u32)>;

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/notifications", get(inbox))
        .with_state(Arc::new(Inboxes::new(MEMO_BUDGET)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inbox {
    user_id: String,
    unread_count: usize,
    items: Vec<Notification>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    body: String,
    read: bool,
    created_at: String,
    deep_link: String,
}

#[derive(Deserialize)]
struct InboxQuery {
    #[serde(rename = "userId")]
    user_id: Option<String>,
    limit: Option<String>,
}

fn notification(user: u32, i: u32) -> Notification {
    let mut seed = Seeded::pair("notification", user, i);
    let (kind, title) = seed.pick(texts::NOTIFICATION_KINDS);
    let deep_link = match kind {
        "order_update" => {
            let n = seed.between(1, u64::from(orders::seeded_count(user)));
            format!("manifold://orders/o-{user}-{n}")
        }
        "price_drop" | "back_in_stock" => {
            format!("manifold://products/p{}", seed.between(1, 50_000))
        }
        "review_reply" => format!("manifold://reviews/r-p{}-1", seed.between(1, 50_000)),
        "security" => "manifold://account/security".to_owned(),
        _ => "manifold://promotions".to_owned(),
    };
    Notification {
        id: format!("n-{user}-{i}"),
        kind,
        title,
        body: data::prose(&mut seed, texts::NOTIFICATION_TEXT, 200),
        // The newest few are unread, older ones mostly read.
        read: i > 3 && seed.percent(85),
        // i = 1 is the newest, about one notification every 18 hours.
        created_at: data::rfc3339(
            data::DEMO_NOW - i64::from(i) * 18 * 3600 + seed.below(3600) as i64,
        ),
        deep_link,
    }
}

/// The inbox of `user` with its `limit` newest notifications (the unread count is of all of
/// them); a known user's id is canonical, so `user` names its bytes.
fn inbox_of(user: u32, limit: u32) -> Inbox {
    let mut items: Vec<Notification> = (1..=COUNT).map(|i| notification(user, i)).collect();
    let unread_count = items.iter().filter(|n| !n.read).count();
    items.truncate(limit as usize);
    Inbox {
        user_id: user.to_string(),
        unread_count,
        items,
    }
}

/// `?limit=`: 0 to 20 (more is 20), 20 when absent.
fn limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw.map(str::parse::<u32>) {
        None => Ok(COUNT),
        Some(Ok(n)) => Ok(n.min(COUNT)),
        Some(Err(_)) => Err(ApiError::bad(format!(
            "limit: expected an integer from 0 to {COUNT}, got {:?}",
            raw.unwrap_or_default()
        ))),
    }
}

async fn inbox(
    State(inboxes): State<Arc<Inboxes>>,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<JsonBytes, ApiError> {
    let Query(query) = query?;
    let user_id = data::required(&query.user_id, "userId")?;
    let user = users::known_user(user_id)?;
    let limit = limit(query.limit.as_deref())?;
    Ok(JsonBytes(
        inboxes.json((user, limit), || inbox_of(user, limit)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memoised inboxes are the bytes serde writes for freshly built ones, cold and warm.
    #[test]
    fn memoised_inboxes_are_serdes_bytes() {
        let inboxes = Memo::new(1 << 20);
        for round in 0..2 {
            for user in (1..=users::USER_COUNT).step_by(331).chain([1, 10_000]) {
                let items: Vec<Notification> = (1..=COUNT).map(|i| notification(user, i)).collect();
                let old = Inbox {
                    user_id: user.to_string(),
                    unread_count: items.iter().filter(|n| !n.read).count(),
                    items,
                };
                let json = inboxes.json((user, COUNT), || inbox_of(user, COUNT));
                assert_eq!(json, serde_json::to_vec(&old).unwrap(), "{user} {round}");
            }
        }
    }

    /// A limit keeps the newest notifications and the count of all unread ones; 0 is the
    /// count alone; a limit that is not a number is refused.
    #[test]
    fn a_limit_keeps_the_newest_and_the_whole_count() {
        let whole = inbox_of(42, COUNT);
        let two = inbox_of(42, 2);
        assert_eq!(two.unread_count, whole.unread_count);
        let ids = |inbox: &Inbox| inbox.items.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&two), ids(&whole)[..2]);
        assert!(inbox_of(42, 0).items.is_empty());
        assert_eq!(limit(None).unwrap(), COUNT);
        assert_eq!(limit(Some("0")).unwrap(), 0);
        assert_eq!(limit(Some("500")).unwrap(), COUNT);
        assert!(limit(Some("-1")).is_err());
    }
}
