//! What one client request leaves behind, collected while it runs: its GraphQL operation,
//! its backend calls and which were slow or failed, its cache outcome, the spans it made.
//! `observe::track` turns it into metrics, one access-log line and a server span when the
//! request ends.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::identity::{Identity, Principal};
use super::trace::SpanRecord;

/// One backend call a request made (all its tries together).
#[derive(Clone, Debug)]
pub struct BackendCall {
    pub upstream: Arc<str>,
    pub took: Duration,
    /// The failure's `extensions.code`, when it failed.
    pub error: Option<&'static str>,
}

/// What admission control did with a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Admitted {
    /// No admission control on the way (disabled, or a probe).
    #[default]
    Unchecked = 0,
    /// Admitted at once.
    Now = 1,
    /// Admitted after a wait in the queue.
    Queued = 2,
    /// Refused with 503: over the limit and the queue.
    Shed = 3,
}

impl Admitted {
    pub fn as_str(self) -> &'static str {
        match self {
            Admitted::Unchecked => "none",
            Admitted::Now => "admitted",
            Admitted::Queued => "queued",
            Admitted::Shed => "shed",
        }
    }
}

/// Collected during one request; shared with every backend call it makes.
#[derive(Debug, Default)]
pub struct RequestRecord {
    operation: Mutex<Option<Arc<str>>>,
    calls: AtomicU32,
    /// The GraphQL operation's estimated cost (0: not a GraphQL request).
    cost: AtomicU64,
    backends: Mutex<Vec<BackendCall>>,
    cache: Mutex<Option<&'static str>>,
    /// What admission control did with the request (`Admitted as u8`).
    admitted: AtomicU8,
    /// Who the request proved to be, once authenticated (the identity `auth` built).
    caller: OnceLock<Arc<Identity>>,
    /// Spans are kept only when an exporter will send them.
    keep_spans: bool,
    spans: Mutex<Vec<SpanRecord>>,
}

impl RequestRecord {
    pub fn new(keep_spans: bool) -> Self {
        Self {
            keep_spans,
            ..Self::default()
        }
    }

    /// The GraphQL operation, as a bounded label (`RequestMetrics::operation_label`).
    pub fn set_operation(&self, label: Arc<str>) {
        *self.operation.lock().unwrap_or_else(|e| e.into_inner()) = Some(label);
    }

    /// Who the request proved to be (shared, not copied: the access line formats it only
    /// when it is written).
    pub fn set_caller(&self, identity: Arc<Identity>) {
        let _ = self.caller.set(identity);
    }

    /// The caller `set_caller` recorded, if any: its principal, never its credential.
    pub fn caller(&self) -> Option<&Principal> {
        self.caller.get().map(|identity| identity.principal())
    }

    /// The GraphQL operation's estimated cost (`graphql::cost`).
    pub fn set_cost(&self, cost: u64) {
        self.cost.store(cost, Ordering::Relaxed);
    }

    /// The cost set by `set_cost`, if any.
    pub fn cost(&self) -> Option<u64> {
        Some(self.cost.load(Ordering::Relaxed)).filter(|c| *c > 0)
    }

    pub fn operation(&self) -> Option<Arc<str>> {
        self.operation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The cache outcome of the request (`hit`, `miss`, `stale`); the cache reports every
    /// lookup and the request keeps the one that says most: stale over miss over hit.
    pub fn set_cache(&self, outcome: &'static str) {
        let rank = |o: Option<&str>| match o {
            Some("stale") => 3,
            Some("miss") => 2,
            Some("hit") => 1,
            _ => 0,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if rank(Some(outcome)) > rank(*cache) {
            *cache = Some(outcome);
        }
    }

    /// What admission control did (`edge::admission`).
    pub fn set_admitted(&self, admitted: Admitted) {
        self.admitted.store(admitted as u8, Ordering::Relaxed);
    }

    pub fn admitted(&self) -> Admitted {
        match self.admitted.load(Ordering::Relaxed) {
            1 => Admitted::Now,
            2 => Admitted::Queued,
            3 => Admitted::Shed,
            _ => Admitted::Unchecked,
        }
    }

    pub fn backend_call(&self, call: BackendCall) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    pub fn wants_spans(&self) -> bool {
        self.keep_spans
    }

    pub fn add_span(&self, span: SpanRecord) {
        if self.keep_spans {
            self.spans
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(span);
        }
    }

    /// The cache outcome kept by `set_cache`.
    pub fn cache_outcome(&self) -> Option<&'static str> {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Every backend call so far.
    pub fn backends(&self) -> Vec<BackendCall> {
        self.backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The spans kept so far, taken out.
    pub fn take_spans(&self) -> Vec<SpanRecord> {
        std::mem::take(&mut *self.spans.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
