//! The point in time by which a client's request must be answered, shared by every backend
//! call it makes. On tokio's clock, so paused-time tests cover it.

use std::time::Duration;

use tokio::time::Instant;

/// The point in time by which a client's request must be answered.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    pub fn remaining(&self) -> Duration {
        self.remaining_at(Instant::now())
    }

    /// What is left as of `now` (a call reads the clock once for its first steps).
    pub fn remaining_at(&self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }

    pub fn instant(&self) -> Instant {
        self.0
    }
}
