//! `[admission]`: how many requests one BFF instance works on at once. The limit adapts to
//! what the instance can do (see `edge::admission`): it shrinks while woken work waits longer
//! than `max_delay` for a worker (the instance is short of CPU), and grows back while it is
//! used and work is picked up in time. Over it, a request waits in a short queue for a place,
//! or is answered 503 with `Retry-After` at once.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units;
use super::validate::{Problems, positive};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct AdmissionConfig {
    pub enabled: bool,
    /// The limit at start, and its bounds.
    pub initial_limit: u32,
    pub min_limit: u32,
    pub max_limit: u32,
    /// Requests that may wait for a place; more are refused at once.
    pub queue: u32,
    /// How long a queued request waits for a place before it is refused.
    #[serde(with = "units::duration")]
    pub queue_timeout: Duration,
    /// How long woken work may wait for a worker thread (sampled every few milliseconds)
    /// before the limit shrinks.
    #[serde(with = "units::duration")]
    pub max_delay: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_limit: 32,
            min_limit: 2,
            max_limit: 4096,
            queue: 64,
            queue_timeout: Duration::from_millis(10),
            max_delay: Duration::from_micros(150),
        }
    }
}

impl AdmissionConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.min_limit > 0,
            "admission.min_limit",
            "must be greater than 0",
        );
        p.check(
            self.min_limit <= self.initial_limit && self.initial_limit <= self.max_limit,
            "admission.initial_limit",
            "must be between min_limit and max_limit",
        );
        p.check(
            positive(self.queue_timeout) || self.queue == 0,
            "admission.queue_timeout",
            "must be greater than 0",
        );
        p.check(
            positive(self.max_delay),
            "admission.max_delay",
            "must be greater than 0",
        );
    }
}
