//! Purges reach every instance: a purge received by one instance (`admin`'s purge endpoint)
//! is published on the Redis channel `{redis_prefix}purge` of the shared tier (same Redis,
//! same TLS, one node or a Cluster, whose PUBLISH reaches every node), and every instance
//! subscribed there drops the purged keys from its local tier. The message carries the
//! sender's random id, so the sender ignores its own; applying one twice is harmless. A
//! subscription lost with its connection is made again (`sharing::Subscription`); a purge
//! published meanwhile is missed by that instance, whose local entries then live out their
//! freshness (the shared tier itself was purged directly).

use std::sync::Arc;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::shared::{SharedTier, SharedTierError};
use crate::sharing::Subscription;

/// The message on the channel.
#[derive(Serialize, Deserialize)]
struct PurgeMessage {
    /// The instance that purged.
    from: String,
    prefix: Option<String>,
    tag: Option<String>,
}

/// This instance's end of the channel: it publishes its purges and applies the others'.
pub(super) struct PurgeBroadcast {
    tier: Arc<SharedTier>,
    channel: String,
    origin: String,
    _subscription: Subscription,
}

impl PurgeBroadcast {
    /// Subscribes (in the background) and calls `apply(prefix, tag)` for every purge another
    /// instance publishes. Must run inside a tokio runtime.
    pub fn start(
        tier: Arc<SharedTier>,
        apply: impl Fn(Option<String>, Option<String>) + Send + Sync + 'static,
    ) -> Self {
        let channel = format!("{}purge", tier.prefix());
        let origin = format!("{:016x}", fastrand::u64(..));
        let own = origin.clone();
        let subscription = Subscription::spawn(tier.redis(), channel.clone(), move |payload| {
            match serde_json::from_slice::<PurgeMessage>(payload) {
                Ok(message) if message.from != own => {
                    tracing::debug!(prefix = ?message.prefix, tag = ?message.tag, "purge from another instance");
                    apply(message.prefix, message.tag);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "ignored a malformed purge message"),
            }
        });
        Self {
            tier,
            channel,
            origin,
            _subscription: subscription,
        }
    }

    /// Tells every other instance to purge `prefix` and `tag` locally.
    pub async fn publish(
        &self,
        prefix: Option<&str>,
        tag: Option<&str>,
    ) -> Result<(), SharedTierError> {
        let message = PurgeMessage {
            from: self.origin.clone(),
            prefix: prefix.map(str::to_owned),
            tag: tag.map(str::to_owned),
        };
        let message = serde_json::to_string(&message).unwrap_or_default();
        let channel = self.channel.clone();
        self.tier
            .redis()
            .call(|mut c| async move { c.publish::<_, _, ()>(channel, message).await })
            .await
    }
}
