//! The Redis connection behind state that instances share (the shared rate limits, the
//! cache's shared tier, persisted GraphQL queries): made lazily, reconnecting by itself,
//! every command on a short budget, so a slow or absent Redis costs each request at most
//! `timeout`; and after a failure Redis is left alone for a while (`SharedRedis`), so an
//! outage costs requests nothing and each instance goes on with its local state.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

/// Whether this build can open the Redis at `url`: the one check config validation runs on
/// every `redis_url` (rate limits, the cache tier, persisted queries), so `--check` never
/// accepts a URL the process then fails to open. Today that is `redis://` only: the `redis`
/// crate is built without TLS, so `rediss://` is refused here, with a message that says so.
/// A build that adds TLS (or Cluster) extends this one function.
pub fn usable_redis_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme {
        "redis" => {}
        "rediss" => {
            return Err(
                "rediss:// (Redis over TLS) is not supported by this build; use redis://".into(),
            );
        }
        _ => return Err("must be a redis:// URL".into()),
    }
    redis::IntoConnectionInfo::into_connection_info(url)
        .map(drop)
        .map_err(|e| format!("is not a usable Redis URL: {e}"))
}

/// A connection to `url` that does not connect yet: the first command does, and the manager
/// reconnects after failures.
pub(crate) fn lazy_connection(
    url: &str,
    timeout: Duration,
) -> Result<ConnectionManager, redis::RedisError> {
    // Small requests waiting for their answer: Nagle's algorithm would only delay them.
    let info = redis::IntoConnectionInfo::into_connection_info(url)?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    let client = redis::Client::open(info)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(client, config)
}

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
    connection: ConnectionManager,
    timeout: Duration,
    rest: Duration,
    resting_until: Mutex<Option<Instant>>,
}

impl SharedRedis {
    /// Does not connect: the first call does. Fails only on a bad URL.
    pub fn new(url: &str, timeout: Duration, rest: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            connection: lazy_connection(url, timeout)?,
            timeout,
            rest,
            resting_until: Mutex::new(None),
        })
    }

    /// Runs `call` on the connection within the budget, unless Redis is resting.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, SharedCallError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
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
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
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
    use super::usable_redis_url;

    #[test]
    fn only_what_this_build_can_open_is_usable() {
        assert_eq!(usable_redis_url("redis://127.0.0.1:6379/0"), Ok(()));
        let tls = usable_redis_url("rediss://cache.example:6380").unwrap_err();
        assert!(tls.contains("not supported by this build"), "{tls}");
        assert_eq!(
            usable_redis_url("http://127.0.0.1:6379"),
            Err("must be a redis:// URL".into())
        );
        assert!(usable_redis_url("redis://127.0.0.1:6379/not-a-db").is_err());
    }
}
