//! The `[server]` section: the public listener and the threads serving it, the budget of one
//! client request, the shutdown deadlines and the largest body read whole.

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
    /// How requests are spread over threads; see `Runtime`. Needs a restart to change.
    #[serde(default)]
    pub runtime: Runtime,
    /// Threads serving requests; 0 (the default) is one per CPU the process may use. Needs a
    /// restart to change.
    #[serde(default)]
    pub workers: usize,
}

/// How requests are spread over the worker threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// One tokio multi-thread runtime: idle workers steal queued work from busy ones, so a
    /// burst on a few connections spreads over every core. The default: under overload it
    /// keeps refusals fast (admission's targets are measured with it).
    #[default]
    WorkStealing,
    /// Each worker owns a listener of its own on the same port (`SO_REUSEPORT`: the kernel
    /// spreads connections over them) and serves its connections from accept to close, with
    /// backend connection pools of its own: no request or backend answer crosses threads
    /// (nginx's and Envoy's shape). On the benchmark's two cores it costs about a quarter
    /// less CPU per proxied request, but a busy worker's connections cannot move: at 10x
    /// overload refusals wait behind its work (BENCHMARKS.md).
    ThreadPerCore,
}

impl ServerConfig {
    /// How many worker threads serve requests (`workers`, or one per available CPU).
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
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
        p.check(
            self.workers <= 1024,
            "server.workers",
            "must be at most 1024 (0 is one per CPU)",
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
