//! The Redis connection behind state that instances share (the shared rate limits, the
//! cache's shared tier): made lazily, reconnecting by itself, every command on a short
//! budget, so a slow or absent Redis costs each request at most `timeout`.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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
