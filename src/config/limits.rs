//! The `[limits]` section: how much of a request head the server accepts (URI length, header
//! bytes and count), how long a client may take to send it, which hosts it answers for, what
//! a `;` in a path becomes, and the default body cap of proxy routes. The body cap of the
//! routes that read bodies whole stays in `[server] max_request_body`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::validate::Problems;
use super::{ByteSize, units};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
        check(
            !self.header_read_timeout.is_zero(),
            "header_read_timeout",
            "must be greater than 0",
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
        let text = format!(
            "{base}[limits]\nmax_uri = \"10\"\nmax_header_bytes = \"2MiB\"\nmax_headers = 0\nheader_read_timeout = \"0s\"\nallowed_hosts = [\"a.example\", \"b.example:80\", \"\"]\nmax_proxy_body = \"0\"\n"
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
                "limits.allowed_hosts[1]",
                "limits.allowed_hosts[2]",
                "limits.max_proxy_body",
            ]
        );
    }
}
