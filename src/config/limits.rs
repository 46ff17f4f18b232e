//! The `[limits]` section: how much of a request head the server accepts (URI length, header
//! bytes and count) and how long a client may take to send it. Body size stays in
//! `[server] max_request_body`, next to the routes that read bodies whole.

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
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_uri: defaults::max_uri(),
            max_header_bytes: defaults::max_header_bytes(),
            max_headers: defaults::max_headers(),
            header_read_timeout: defaults::header_read_timeout(),
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
    }
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
            "{base}[limits]\nmax_uri = \"10\"\nmax_header_bytes = \"2MiB\"\nmax_headers = 0\nheader_read_timeout = \"0s\"\n"
        );
        let errors = Config::parse(&text, "test", Vec::new(), &[]).unwrap_err();
        let keys: Vec<&str> = errors.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "limits.max_uri",
                "limits.max_header_bytes",
                "limits.max_headers",
                "limits.header_read_timeout"
            ]
        );
    }
}
