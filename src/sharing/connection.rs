//! The connection under a shared store: one node (the redis crate's `ConnectionManager`) or
//! a Cluster (its `ClusterConnection`), over TCP or TLS, behind one type so that the stores
//! do not care which. Both are made without connecting and reconnect by themselves. A
//! Cluster routes each command by its key's slot; what spans slots is the stores' business
//! (a script or a pipeline must stay in one slot), except SCAN, which is per node: here it
//! visits every primary.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::io::tcp::TcpSettings;
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, RedisResult, TlsCertificates, Value,
};

use crate::config::RedisEndpoint;

/// What connects to one endpoint, built (and so checked) without connecting.
#[derive(Clone)]
pub struct RedisClient {
    /// The URL's own node (a Cluster's seed): where pub/sub connects first.
    node: redis::Client,
    /// The URL's settings (credentials, TLS), for clients of the Cluster's other nodes.
    info: ConnectionInfo,
    ca: Option<Vec<u8>>,
    cluster: Option<ClusterClient>,
}

impl RedisClient {
    /// Fails on a URL this build cannot use (a bad address, TLS or Cluster not built in) or a
    /// CA bundle that does not load.
    pub fn new(endpoint: &RedisEndpoint) -> RedisResult<Self> {
        let ca = endpoint.ca_pem().map_err(|why| {
            RedisError::from((ErrorKind::InvalidClientConfig, "bad CA bundle", why))
        })?;
        // Small requests waiting for their answer: Nagle's algorithm would only delay them.
        let info = endpoint
            .url
            .expose()
            .into_connection_info()?
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let node = node_client(info.clone(), ca.as_deref())?;
        let cluster = match endpoint.cluster {
            false => None,
            true => {
                let mut builder = ClusterClientBuilder::new([info.clone()])
                    .tcp_settings(TcpSettings::default().set_nodelay(true))
                    // MOVED and ASK are retries too: a few, quickly, within the call's budget.
                    .retries(3)
                    .min_retry_wait(10)
                    .max_retry_wait(100);
                if let Some(ca) = &ca {
                    builder = builder.certs(certificates(ca));
                }
                Some(builder.build()?)
            }
        };
        Ok(Self {
            node,
            info,
            ca,
            cluster,
        })
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The URL's own node.
    pub fn node(&self) -> &redis::Client {
        &self.node
    }

    /// A client of another node of the same deployment: same credentials, same TLS.
    pub fn for_node(&self, host: &str, port: u16) -> RedisResult<redis::Client> {
        let addr = match self.info.addr() {
            ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: None,
            },
            _ => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        node_client(self.info.clone().set_addr(addr), self.ca.as_deref())
    }

    /// A connection that does not connect yet: the first command does. Each command waits
    /// at most `timeout` for its answer.
    pub fn connect_lazily(&self, timeout: Duration) -> RedisResult<RedisConnection> {
        let connect = timeout.max(Duration::from_millis(250));
        if let Some(cluster) = &self.cluster {
            let config = ClusterConfig::new()
                .set_connection_timeout(connect)
                .set_response_timeout(timeout);
            return Ok(RedisConnection::Cluster(
                cluster.get_pending_async_connection_with_config(config),
            ));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        ConnectionManager::new_lazy_with_config(self.node.clone(), config)
            .map(RedisConnection::Node)
    }
}

fn certificates(ca: &[u8]) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.to_vec()),
    }
}

fn node_client(info: ConnectionInfo, ca: Option<&[u8]>) -> RedisResult<redis::Client> {
    match ca {
        Some(ca) => redis::Client::build_with_tls(info, certificates(ca)),
        None => redis::Client::open(info),
    }
}

/// A connection to one node or to a Cluster. Cheap to clone (both share their sockets).
#[derive(Clone)]
pub enum RedisConnection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisConnection {
    /// Every key matching the glob `pattern`: one SCAN on a node, one on each primary of a
    /// Cluster (a SCAN sees only the keys of the node it runs on).
    pub async fn scan_match(&mut self, pattern: &str) -> RedisResult<Vec<String>> {
        match self {
            Self::Node(c) => {
                let on_node = |cmd: Cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async(&mut c).await }
                };
                scan(pattern, on_node).await
            }
            Self::Cluster(c) => {
                let mut keys = Vec::new();
                for (host, port) in primaries(c).await? {
                    let on_node = |cmd: Cmd| {
                        let mut c = c.clone();
                        let host = host.clone();
                        async move {
                            let routing = SingleNodeRoutingInfo::ByAddress { host, port };
                            let value = c
                                .route_command(cmd, RoutingInfo::SingleNode(routing))
                                .await?;
                            Ok(redis::from_redis_value(value)?)
                        }
                    };
                    keys.extend(scan(pattern, on_node).await?);
                }
                Ok(keys)
            }
        }
    }

    /// The primaries of a Cluster (`host`, `port`); none for a single node.
    pub async fn primaries(&mut self) -> RedisResult<Vec<(String, u16)>> {
        match self {
            Self::Node(_) => Ok(Vec::new()),
            Self::Cluster(c) => primaries(c).await,
        }
    }
}

/// SCAN to the end, each step run by `step`.
async fn scan<F, Fut>(pattern: &str, mut step: F) -> RedisResult<Vec<String>>
where
    F: FnMut(Cmd) -> Fut,
    Fut: Future<Output = RedisResult<(u64, Vec<String>)>>,
{
    let (mut cursor, mut keys) = (0u64, Vec::new());
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(500);
        let (next, found) = step(cmd).await?;
        keys.extend(found);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

async fn primaries(c: &mut ClusterConnection) -> RedisResult<Vec<(String, u16)>> {
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(c).await?;
    Ok(parse_primaries(&nodes))
}

/// The reachable primaries of a `CLUSTER NODES` answer: lines of `id ip:port@cport[,host]
/// flags master ping pong epoch link slots...`.
fn parse_primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, flags) = (fields.get(1)?, fields.get(2)?);
            let primary = flags.split(',').any(|f| f == "master")
                && !flags
                    .split(',')
                    .any(|f| matches!(f, "fail" | "fail?" | "noaddr" | "handshake"));
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            let port = port.parse().ok().filter(|p| *p != 0)?;
            (primary && !host.is_empty()).then(|| (host.to_owned(), port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_are_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,redis-2 master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7003@17003 slave b2 0 1 2 connected
d4 127.0.0.1:7004@17004 master,fail - 0 1 4 disconnected
e5 :0@0 master,noaddr - 0 1 5 disconnected
";
        assert_eq!(
            parse_primaries(nodes),
            vec![
                ("127.0.0.1".to_owned(), 7001),
                ("127.0.0.1".to_owned(), 7002)
            ]
        );
    }
}
