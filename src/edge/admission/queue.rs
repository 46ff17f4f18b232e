//! Whether admission control's queue is worth waiting in: under saturation most waits end
//! with a place; under sustained overload most end in vain, or arrivals find the queue full
//! (more wait than places free up: waiting then only delays the 503, and a queue that admits
//! in turn keeps its waits mostly successful), and then the queue rests for `QUEUE_REST`
//! (see the module above).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How long the queue is skipped once waiting in it has been in vain.
pub(super) const QUEUE_REST: Duration = Duration::from_secs(1);
/// Waits in vain, within one window, before the queue rests (when they are most waits).
pub(super) const IN_VAIN_EVIDENCE: u32 = 8;
/// The window over which waits are counted.
pub(super) const QUEUE_WINDOW: Duration = Duration::from_secs(1);

/// Whether the queue is worth waiting in, from how the latest waits in it ended.
pub(super) struct QueueHealth {
    created: Instant,
    /// Milliseconds after `created`.
    window_start: AtomicU64,
    resting_until: AtomicU64,
    waits: AtomicU32,
    in_vain: AtomicU32,
    /// Arrivals that found the queue full.
    overflows: AtomicU32,
}

impl QueueHealth {
    pub(super) fn new() -> Self {
        Self {
            created: Instant::now(),
            window_start: AtomicU64::new(0),
            resting_until: AtomicU64::new(0),
            waits: AtomicU32::new(0),
            in_vain: AtomicU32::new(0),
            overflows: AtomicU32::new(0),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX / 2)
    }

    pub(super) fn resting(&self) -> bool {
        self.millis() < self.resting_until.load(Ordering::Relaxed)
    }

    /// A wait in the queue ended, with a place or `in_vain`. True when this starts a rest.
    pub(super) fn waited(&self, in_vain: bool) -> bool {
        let now = self.window(self.millis());
        let waits = self.waits.fetch_add(1, Ordering::Relaxed) + 1;
        let in_vain = self
            .in_vain
            .fetch_add(u32::from(in_vain), Ordering::Relaxed)
            + u32::from(in_vain);
        if in_vain >= IN_VAIN_EVIDENCE && in_vain * 2 >= waits {
            self.rest(now);
            return true;
        }
        false
    }

    /// An arrival found the queue full. True when this starts a rest.
    pub(super) fn overflowed(&self) -> bool {
        let now = self.window(self.millis());
        if self.overflows.fetch_add(1, Ordering::Relaxed) + 1 >= IN_VAIN_EVIDENCE {
            self.rest(now);
            return true;
        }
        false
    }

    /// Starts a new window of counts when the current one is over; `now` again.
    fn window(&self, now: u64) -> u64 {
        let start = self.window_start.load(Ordering::Relaxed);
        let window = QUEUE_WINDOW.as_millis() as u64;
        if now >= start + window
            && self
                .window_start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.clear();
        }
        now
    }

    fn rest(&self, now: u64) {
        let rest = QUEUE_REST.as_millis() as u64;
        self.resting_until.store(now + rest, Ordering::Relaxed);
        // The next window starts after the rest, with nothing counted.
        self.window_start.store(now + rest, Ordering::Relaxed);
        self.clear();
    }

    fn clear(&self) {
        self.waits.store(0, Ordering::Relaxed);
        self.in_vain.store(0, Ordering::Relaxed);
        self.overflows.store(0, Ordering::Relaxed);
    }
}
