//! The state of one BFF process that outlives any one config: whether it is shutting down
//! (`/readyz` fails from the signal on), and how the last config reloads went (shown by the
//! admin API, counted by metrics). Every `Gateway` generation built by a reload shares the
//! same `Lifecycle`. The reload mechanics themselves are `reload`; the drain is `bff`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use crate::observe::exposition::{Exposition, MetricFamilies};
use serde::Serialize;

/// Process-wide state shared by every config generation.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    reloads: ReloadStatus,
}

impl Lifecycle {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// From now on `/readyz` fails and responses ask clients to close their connections.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn reloads(&self) -> &ReloadStatus {
        &self.reloads
    }
}

/// Outcome counters and the last result of config reloads.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    succeeded: AtomicU64,
    failed: AtomicU64,
    last: Mutex<Option<ReloadOutcome>>,
}

/// One reload attempt, as the admin API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadOutcome {
    /// Seconds since the Unix epoch.
    pub at_unix_s: u64,
    /// What asked for it: `sighup`, `file-change` or `api`.
    pub trigger: String,
    pub ok: bool,
    /// Every problem found (key path and reason), empty when `ok`.
    pub errors: Vec<String>,
    /// Config generation serving after this attempt (1 = the one loaded at start).
    pub generation: u64,
}

/// What `GET /admin/reload` answers.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadSnapshot {
    pub generation: u64,
    pub succeeded_total: u64,
    pub failed_total: u64,
    pub last: Option<ReloadOutcome>,
}

impl ReloadStatus {
    /// Successful reloads since start (metric `config_reloads_total{result="ok"}`).
    pub fn succeeded_total(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }

    /// Refused reloads since start (metric `config_reloads_total{result="failed"}`).
    pub fn failed_total(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The generation now serving: 1 plus the successful reloads.
    pub fn generation(&self) -> u64 {
        1 + self.succeeded_total()
    }

    pub fn record_success(&self, trigger: &str) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
        self.set_last(trigger, Vec::new());
    }

    pub fn record_failure(&self, trigger: &str, errors: Vec<String>) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.set_last(trigger, errors);
    }

    fn set_last(&self, trigger: &str, errors: Vec<String>) {
        let at_unix_s = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let outcome = ReloadOutcome {
            at_unix_s,
            trigger: trigger.to_owned(),
            ok: errors.is_empty(),
            errors,
            generation: self.generation(),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }

    pub fn snapshot(&self) -> ReloadSnapshot {
        ReloadSnapshot {
            generation: self.generation(),
            succeeded_total: self.succeeded_total(),
            failed_total: self.failed_total(),
            last: self.last.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

impl MetricFamilies for Lifecycle {
    /// Config reloads by result.
    fn write(&self, o: &mut Exposition) {
        let reloads = self.reloads();
        o.header(
            "manifold_config_reloads_total",
            "counter",
            "Config reloads by result (a failed one keeps the old config).",
        );
        o.line(
            "manifold_config_reloads_total",
            &[("result", "success")],
            reloads.succeeded_total(),
        );
        o.line(
            "manifold_config_reloads_total",
            &[("result", "failure")],
            reloads.failed_total(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_keeps_the_last_outcome() {
        let status = ReloadStatus::default();
        assert_eq!(status.generation(), 1);
        status.record_failure("sighup", vec!["server.request_timeout: bad".into()]);
        let snap = status.snapshot();
        assert_eq!((snap.generation, snap.failed_total), (1, 1));
        let last = snap.last.unwrap();
        assert!(!last.ok);
        assert_eq!(last.errors.len(), 1);
        status.record_success("file-change");
        let snap = status.snapshot();
        assert_eq!((snap.generation, snap.succeeded_total), (2, 1));
        assert!(snap.last.unwrap().ok);
    }
}
