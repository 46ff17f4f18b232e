//! The `[server]` section: the public listener, the budget of one client request, the
//! shutdown deadlines and the largest body read whole.

use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::{Problems, positive};
use super::{ByteSize, units};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerConfig {
    /// Address of the public listener.
    pub listen: SocketAddr,
    /// Total budget of one client request, shared by every backend call it makes.
    #[serde(default = "defaults::request_timeout", with = "units::duration")]
    pub request_timeout: Duration,
    /// The hard deadline after SIGTERM/SIGINT, counted from the signal: whatever is still
    /// running then is cut off and the process exits.
    #[serde(default = "defaults::shutdown_timeout", with = "units::duration")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM, how long the listener keeps serving new requests while `/readyz`
    /// already fails: the load balancer's deregistration lag (checks interval x fall).
    #[serde(default, with = "units::duration")]
    pub drain_delay: Duration,
    /// Largest request body the BFF reads whole (GraphQL, REST). Proxy routes stream instead.
    #[serde(default = "defaults::max_request_body")]
    pub max_request_body: ByteSize,
}

impl ServerConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            positive(self.request_timeout),
            "server.request_timeout",
            "must be greater than 0",
        );
        p.check(
            positive(self.shutdown_timeout),
            "server.shutdown_timeout",
            "must be greater than 0",
        );
        p.check(
            self.drain_delay < self.shutdown_timeout,
            "server.drain_delay",
            "must be shorter than server.shutdown_timeout (the hard deadline counts from the signal)",
        );
        p.check(
            self.max_request_body.bytes() > 0,
            "server.max_request_body",
            "must be greater than 0",
        );
    }
}

mod defaults {
    use super::ByteSize;
    use std::time::Duration;

    pub fn request_timeout() -> Duration {
        Duration::from_secs(3)
    }
    pub fn shutdown_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_request_body() -> ByteSize {
        ByteSize(1 << 20)
    }
}
