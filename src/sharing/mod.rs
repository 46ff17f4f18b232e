//! The Redis behind state that instances share (the shared rate limits, the cache's shared
//! tier and its purge broadcast, persisted GraphQL queries): one node or a Cluster, over TCP
//! or TLS (`connection`), made lazily, reconnecting by itself, every command on a short
//! budget, so a slow or absent Redis costs each request at most `timeout`; and after a
//! failure Redis is left alone for a while (`SharedRedis`), so an outage costs requests
//! nothing and each instance goes on with its local state. A pub/sub channel that outlives
//! connections is `subscription`.

mod connection;
mod subscription;

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub use connection::{RedisClient, RedisConnection};
pub use subscription::Subscription;

use crate::config::RedisEndpoint;

/// Why a shared call gave nothing: the caller goes on with its local state either way.
#[derive(Debug, thiserror::Error)]
pub enum SharedCallError {
    #[error("redis call failed: {0}")]
    Call(#[from] redis::RedisError),
    #[error("redis call took longer than {0:?}")]
    Timeout(Duration),
    #[error("redis is resting after a failure")]
    Resting,
}

/// A lazy Redis connection whose calls are bounded by `timeout` and skipped for `rest` after
/// a failure.
pub struct SharedRedis {
    client: RedisClient,
    connection: RedisConnection,
    timeout: Duration,
    rest: Duration,
    resting_until: Mutex<Option<Instant>>,
}

impl SharedRedis {
    /// Does not connect: the first call does. Fails only on an endpoint this build cannot
    /// use (which `--check` refuses). Must run inside a tokio runtime.
    pub fn new(
        endpoint: &RedisEndpoint,
        timeout: Duration,
        rest: Duration,
    ) -> Result<Self, redis::RedisError> {
        let client = RedisClient::new(endpoint)?;
        Ok(Self {
            connection: client.connect_lazily(timeout)?,
            client,
            timeout,
            rest,
            resting_until: Mutex::new(None),
        })
    }

    /// Runs `call` on the connection within the budget, unless Redis is resting.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, SharedCallError>
    where
        F: FnOnce(RedisConnection) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        if self.resting().is_some_and(|until| Instant::now() < until) {
            return Err(SharedCallError::Resting);
        }
        let result = match tokio::time::timeout(self.timeout, call(self.connection.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SharedCallError::Call(e)),
            Err(_) => Err(SharedCallError::Timeout(self.timeout)),
        };
        *self.resting() = result.is_err().then(|| Instant::now() + self.rest);
        result
    }

    /// The connection itself, for a call that keeps a budget of its own (a purge's SCAN).
    pub fn connection(&self) -> RedisConnection {
        self.connection.clone()
    }

    /// Whether this is a Cluster: a script or a pipeline must then keep to one slot.
    pub fn is_cluster(&self) -> bool {
        self.client.is_cluster()
    }

    /// The budget of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn resting(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.resting_until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: String, cluster: bool) -> RedisEndpoint {
        RedisEndpoint {
            url: url.into(),
            ca_file: None,
            cluster,
        }
    }

    /// A Redis that refuses connections, and one that accepts them and never answers: each
    /// call costs at most the budget (a little more for the clock), single node or Cluster,
    /// and then Redis rests.
    #[tokio::test]
    async fn an_absent_or_silent_redis_costs_a_call_at_most_its_budget() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let budget = Duration::from_millis(100);
        for port in [silent.local_addr().unwrap().port(), closed_port] {
            for cluster in [false, true] {
                let url = format!("redis://127.0.0.1:{port}/");
                let redis =
                    SharedRedis::new(&endpoint(url, cluster), budget, Duration::from_secs(60))
                        .expect("a lazy connection");
                let started = Instant::now();
                let first =
                    redis
                        .call(|mut c| async move {
                            redis::cmd("PING").query_async::<String>(&mut c).await
                        })
                        .await;
                assert!(first.is_err(), "port {port}, cluster {cluster}");
                assert!(
                    started.elapsed() < budget * 3,
                    "took {:?}",
                    started.elapsed()
                );
                let second =
                    redis
                        .call(|mut c| async move {
                            redis::cmd("PING").query_async::<String>(&mut c).await
                        })
                        .await;
                assert!(
                    matches!(second, Err(SharedCallError::Resting)),
                    "{second:?}"
                );
            }
        }
    }
}
