//! The `[limits]` section: how much of a request head the server accepts (URI length, header
//! bytes and count), how long a client may take to send a head or a body, to start talking,
//! to sit idle and to read what it is sent, how many connections the listener holds (in all
//! and per client IP) and how many HTTP/2 streams one connection may open; which hosts it
//! answers for, what a `;` in a path becomes, and the default body cap of proxy routes. The
//! body cap of the routes that read bodies whole stays in `[server] max_request_body`. The
//! listener reads its part of this section when it starts; a reload does not change it.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::Problems;
use super::{ByteSize, units};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LimitsConfig {
    /// Longest request target (path and query); longer is 414.
    #[serde(default = "defaults::max_uri")]
    pub max_uri: ByteSize,
    /// Largest total of header names and values; larger is 431.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: ByteSize,
    /// Most header fields in one request; more is 431.
    #[serde(default = "defaults::max_headers")]
    pub max_headers: usize,
    /// Time a client has to send the whole request head; the connection is closed after it.
    #[serde(default = "defaults::header_read_timeout", with = "units::duration")]
    pub header_read_timeout: Duration,
    /// Time a new connection has to send its first byte (TLS or HTTP); closed after it.
    #[serde(default = "defaults::first_byte_timeout", with = "units::duration")]
    pub first_byte_timeout: Duration,
    /// How long a connection may stay open with no request in flight and nothing read.
    #[serde(default = "defaults::idle_timeout", with = "units::duration")]
    pub idle_timeout: Duration,
    /// Time a client has to send a whole request body, counted from its head; 408 after it
    /// (and the HTTP/1.1 connection is closed).
    #[serde(default = "defaults::body_read_timeout", with = "units::duration")]
    pub body_read_timeout: Duration,
    /// How long a write to the client may make no progress (a client that does not read what
    /// it asked for) before the connection is closed.
    #[serde(default = "defaults::write_timeout", with = "units::duration")]
    pub write_timeout: Duration,
    /// Connections the listener holds open at once; more are closed at accept.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Connections one client IP (the TCP peer) may hold open; more are closed at accept.
    /// Behind a load balancer every connection shares its address: raise this to match.
    #[serde(default = "defaults::max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    #[serde(default = "defaults::http2_max_concurrent_streams")]
    pub http2_max_concurrent_streams: u32,
    /// Hosts (`Host`, or the HTTP/2 authority; the port is ignored) this gateway answers
    /// for; any other is 421. Empty: every host.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// What a `;` in a request path becomes: refused with 400, or forwarded as `%3B` (so no
    /// backend reads it as a path parameter: `..;/` is `..` to Tomcat, Jetty and Spring).
    #[serde(default)]
    pub path_semicolons: PathSemicolons,
    /// Body cap of a proxy route without its own `max_body`; larger is 413.
    #[serde(default = "defaults::max_proxy_body")]
    pub max_proxy_body: ByteSize,
}

/// `[limits] path_semicolons`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PathSemicolons {
    #[default]
    Reject,
    Encode,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_uri: defaults::max_uri(),
            max_header_bytes: defaults::max_header_bytes(),
            max_headers: defaults::max_headers(),
            header_read_timeout: defaults::header_read_timeout(),
            first_byte_timeout: defaults::first_byte_timeout(),
            idle_timeout: defaults::idle_timeout(),
            body_read_timeout: defaults::body_read_timeout(),
            write_timeout: defaults::write_timeout(),
            max_connections: defaults::max_connections(),
            max_connections_per_ip: defaults::max_connections_per_ip(),
            http2_max_concurrent_streams: defaults::http2_max_concurrent_streams(),
            allowed_hosts: Vec::new(),
            path_semicolons: PathSemicolons::default(),
            max_proxy_body: defaults::max_proxy_body(),
        }
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        let mut check =
            |ok: bool, key: &str, message: &str| p.check(ok, format!("limits.{key}"), message);
        check(
            (64..=(1 << 20)).contains(&self.max_uri.bytes()),
            "max_uri",
            "must be between 64 bytes and 1MiB",
        );
        check(
            (1024..=(1 << 20)).contains(&self.max_header_bytes.bytes()),
            "max_header_bytes",
            "must be between 1KiB and 1MiB",
        );
        check(
            (8..=1000).contains(&self.max_headers),
            "max_headers",
            "must be between 8 and 1000",
        );
        for (key, timeout) in [
            ("header_read_timeout", self.header_read_timeout),
            ("first_byte_timeout", self.first_byte_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            check(!timeout.is_zero(), key, "must be greater than 0");
        }
        check(
            self.max_connections >= 1,
            "max_connections",
            "must be at least 1",
        );
        check(
            (1..=self.max_connections.max(1)).contains(&self.max_connections_per_ip),
            "max_connections_per_ip",
            "must be between 1 and limits.max_connections",
        );
        check(
            (1..=10_000).contains(&self.http2_max_concurrent_streams),
            "http2_max_concurrent_streams",
            "must be between 1 and 10000",
        );
        for (i, host) in self.allowed_hosts.iter().enumerate() {
            p.check(
                is_host_name(host),
                format!("limits.allowed_hosts[{i}]"),
                "must be a host name or address without port, e.g. \"api.example.com\"",
            );
        }
        p.check(
            self.max_proxy_body.bytes() > 0,
            "limits.max_proxy_body".to_owned(),
            "must be greater than 0",
        );
    }
}

/// `api.example.com`, `127.0.0.1`, `[::1]`: what may appear left of a port in `Host`.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host
            .parse::<http::uri::Authority>()
            .is_ok_and(|a| a.port().is_none() && a.as_str() == host && !host.contains('@'))
}

mod defaults {
    use super::ByteSize;
    use std::time::Duration;

    pub fn max_uri() -> ByteSize {
        ByteSize(8 << 10)
    }
    pub fn max_header_bytes() -> ByteSize {
        ByteSize(32 << 10)
    }
    pub fn max_headers() -> usize {
        100
    }
    pub fn header_read_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn first_byte_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn body_read_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn write_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_connections() -> usize {
        10_000
    }
    pub fn max_connections_per_ip() -> usize {
        1_000
    }
    pub fn http2_max_concurrent_streams() -> u32 {
        100
    }
    pub fn max_proxy_body() -> ByteSize {
        ByteSize(8 << 20)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn limits_have_defaults_and_bounds() {
        let base = "[server]\nlisten = \"127.0.0.1:0\"\n";
        let config = Config::parse(base, "test", Vec::new(), &[]).expect("defaults");
        assert_eq!(config.limits.max_uri.bytes(), 8 << 10);
        assert_eq!(config.limits.max_headers, 100);
        assert_eq!(config.limits.idle_timeout.as_secs(), 60);
        assert_eq!(config.limits.max_connections_per_ip, 1_000);
        assert_eq!(config.limits.http2_max_concurrent_streams, 100);
        let text = format!(
            "{base}[limits]\nmax_uri = \"10\"\nmax_header_bytes = \"2MiB\"\nmax_headers = 0\n\
             header_read_timeout = \"0s\"\nfirst_byte_timeout = \"0s\"\nidle_timeout = \"0s\"\n\
             body_read_timeout = \"0s\"\nwrite_timeout = \"0ms\"\nmax_connections = 10\n\
             max_connections_per_ip = 11\nhttp2_max_concurrent_streams = 0\n\
             allowed_hosts = [\"a.example\", \"b.example:80\", \"\"]\nmax_proxy_body = \"0\"\n"
        );
        let errors = Config::parse(&text, "test", Vec::new(), &[]).unwrap_err();
        let keys: Vec<&str> = errors.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "limits.max_uri",
                "limits.max_header_bytes",
                "limits.max_headers",
                "limits.header_read_timeout",
                "limits.first_byte_timeout",
                "limits.idle_timeout",
                "limits.body_read_timeout",
                "limits.write_timeout",
                "limits.max_connections_per_ip",
                "limits.http2_max_concurrent_streams",
                "limits.allowed_hosts[1]",
                "limits.allowed_hosts[2]",
                "limits.max_proxy_body",
            ]
        );
    }
}
