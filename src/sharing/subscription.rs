//! A subscription to one pub/sub channel that outlives connections: a background task keeps
//! a dedicated connection SUBSCRIBEd (on a Cluster, to the URL's node, else to any primary
//! that answers: a PUBLISH reaches every node of a Cluster), pings it so a connection that
//! died silently is noticed, and after a loss subscribes again. Messages published while no
//! connection was open are lost: what is sent this way must be safe to miss (a purge is also
//! applied to Redis itself) and to apply twice.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::RedisResult;
use redis::aio::PubSub;

use super::{RedisClient, RedisConnection, SharedRedis};

/// Between a lost connection and the next attempt.
const RETRY: Duration = Duration::from_secs(1);
/// How often an idle subscription checks that its connection is alive.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The running subscription; dropping it ends the task.
pub struct Subscription(tokio::task::JoinHandle<()>);

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Deliver = Arc<dyn Fn(&[u8]) + Send + Sync>;

impl Subscription {
    /// Hands the payload of every message on `channel` to `deliver`, from now until dropped.
    /// Must run inside a tokio runtime.
    pub fn spawn(
        redis: &SharedRedis,
        channel: String,
        deliver: impl Fn(&[u8]) + Send + Sync + 'static,
    ) -> Self {
        let listener = Listener {
            client: redis.client.clone(),
            connection: redis.connection(),
            channel,
            budget: redis.timeout.max(Duration::from_secs(1)),
            deliver: Arc::new(deliver),
        };
        Self(tokio::spawn(listener.run()))
    }
}

struct Listener {
    client: RedisClient,
    /// The shared connection: on a Cluster, it names the primaries to try.
    connection: RedisConnection,
    channel: String,
    /// For connecting, subscribing and each keep-alive ping.
    budget: Duration,
    deliver: Deliver,
}

impl Listener {
    async fn run(self) {
        let mut lost = false;
        loop {
            match self.subscribe().await {
                Ok(pubsub) => {
                    if lost {
                        tracing::info!(channel = %self.channel, "redis subscription restored");
                    }
                    let e = self.listen(pubsub).await;
                    tracing::warn!(channel = %self.channel, error = %e, "redis subscription lost; subscribing again");
                    lost = true;
                }
                Err(e) if !lost => {
                    tracing::warn!(channel = %self.channel, error = %e, "cannot subscribe in redis; trying again");
                    lost = true;
                }
                Err(e) => {
                    tracing::debug!(channel = %self.channel, error = %e, "still cannot subscribe")
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// A subscribed connection: to the URL's node, else (a Cluster) to any primary.
    async fn subscribe(&self) -> RedisResult<PubSub> {
        let first = self.subscribe_on(self.client.node()).await;
        if first.is_ok() || !self.client.is_cluster() {
            return first;
        }
        let primaries = within(self.budget, self.connection.clone().primaries()).await;
        for (host, port) in primaries.unwrap_or_default() {
            if let Ok(pubsub) = self.subscribe_on(&self.client.for_node(&host, port)?).await {
                return Ok(pubsub);
            }
        }
        first
    }

    async fn subscribe_on(&self, client: &redis::Client) -> RedisResult<PubSub> {
        let mut pubsub = within(self.budget, client.get_async_pubsub()).await?;
        within(self.budget, pubsub.subscribe(&self.channel)).await?;
        Ok(pubsub)
    }

    /// Delivers messages until the connection is lost; returns why.
    async fn listen(&self, pubsub: PubSub) -> redis::RedisError {
        let (mut sink, mut messages) = pubsub.split();
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => (self.deliver)(message.get_payload_bytes()),
                    None => return closed(),
                },
                _ = keepalive.tick() => {
                    if let Err(e) = within(self.budget, sink.ping::<redis::Value>()).await {
                        return e;
                    }
                }
            }
        }
    }
}

async fn within<T>(budget: Duration, call: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    tokio::time::timeout(budget, call)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no answer within the budget",
            )))
        })
}

fn closed() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "connection closed"))
}
