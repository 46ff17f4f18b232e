//! `[compression]`: answers compressed as the client's `Accept-Encoding` allows (zstd, br,
//! gzip), above a minimum size. What is never compressed (event streams, bodies already
//! encoded, proxied bodies unless their route says so) is `edge::compress`'s business; this
//! section owns the keys and their defaults.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ByteSize;
use super::validate::Problems;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CompressionConfig {
    pub enabled: bool,
    /// Bodies smaller than this (when their size is known) go out as they are.
    pub min_size: ByteSize,
    /// The encodings offered, most preferred first, among `zstd`, `br` and `gzip`; the
    /// client's q-values decide first.
    pub encodings: Vec<String>,
    /// `fastest` (the default: compression on the request path costs CPU per answer),
    /// `default` or `best`.
    pub level: CompressionLevel,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompressionLevel {
    #[default]
    Fastest,
    Default,
    Best,
}

/// The encodings `[compression] encodings` may name.
pub const ENCODINGS: [&str; 3] = ["zstd", "br", "gzip"];

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_size: ByteSize(1024),
            encodings: ENCODINGS.iter().map(|e| (*e).to_owned()).collect(),
            level: CompressionLevel::Fastest,
        }
    }
}

impl CompressionConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        for (i, encoding) in self.encodings.iter().enumerate() {
            p.check(
                ENCODINGS.contains(&encoding.as_str()),
                format!("compression.encodings[{i}]"),
                format!("{encoding:?} is not one of \"zstd\", \"br\", \"gzip\""),
            );
        }
        p.check(
            !self.enabled || !self.encodings.is_empty(),
            "compression.encodings",
            "must name at least one encoding (or set enabled = false)",
        );
    }
}
