//! The `[cors]` section: which browser origins may call the BFF cross-origin, with which
//! methods and headers, and how long a preflight answer may be cached. Empty
//! `allowed_origins` (the default) means no CORS headers at all.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units;
use super::validate::Problems;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CorsConfig {
    /// Exact origins, e.g. `"https://shop.example.com"`. `"*"` is refused: the web client
    /// sends credentials.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default = "defaults::methods")]
    pub allowed_methods: Vec<String>,
    #[serde(default = "defaults::headers")]
    pub allowed_headers: Vec<String>,
    /// Response headers scripts may read.
    #[serde(default = "defaults::expose")]
    pub expose_headers: Vec<String>,
    #[serde(default = "defaults::max_age", with = "units::duration")]
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_methods: defaults::methods(),
            allowed_headers: defaults::headers(),
            expose_headers: defaults::expose(),
            max_age: defaults::max_age(),
        }
    }
}

impl CorsConfig {
    pub fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    pub(super) fn validate(&self, p: &mut Problems) {
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
                && origin.parse::<http::Uri>().is_ok_and(|u| {
                    u.path_and_query().is_none_or(|p| p.as_str() == "/") && !origin.ends_with('/')
                })
                && http::HeaderValue::from_str(origin).is_ok();
            if !valid {
                p.push(
                    format!("cors.allowed_origins[{i}]"),
                    "must be an origin like \"https://shop.example.com\" (scheme, host, port; no path, no \"*\")",
                );
            }
        }
        for (i, method) in self.allowed_methods.iter().enumerate() {
            if method.parse::<http::Method>().is_err() {
                p.push(
                    format!("cors.allowed_methods[{i}]"),
                    "is not an HTTP method",
                );
            }
        }
        for (key, list) in [
            ("allowed_headers", &self.allowed_headers),
            ("expose_headers", &self.expose_headers),
        ] {
            for (i, name) in list.iter().enumerate() {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    p.push(format!("cors.{key}[{i}]"), "is not a header name");
                }
            }
        }
    }
}

mod defaults {
    use std::time::Duration;

    pub fn methods() -> Vec<String> {
        ["GET", "POST"].map(String::from).to_vec()
    }
    pub fn headers() -> Vec<String> {
        ["authorization", "content-type", "x-request-id"]
            .map(String::from)
            .to_vec()
    }
    pub fn expose() -> Vec<String> {
        vec!["x-request-id".to_owned()]
    }
    pub fn max_age() -> Duration {
        Duration::from_secs(600)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn origins_must_be_exact_origins() {
        let text = "[server]\nlisten = \"127.0.0.1:0\"\n[cors]\n\
                    allowed_origins = [\"https://shop.example.com\", \"*\", \"https://a.example/path\"]\n\
                    allowed_methods = [\"GET\", \"BAD METHOD\"]\n";
        let errors = Config::parse(text, "test", Vec::new(), &[]).unwrap_err();
        let keys: Vec<&str> = errors.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "cors.allowed_origins[1]",
                "cors.allowed_origins[2]",
                "cors.allowed_methods[1]"
            ]
        );
    }
}
