//! Injected latency that lasts what it says. tokio's timer counts whole milliseconds and
//! rounds every deadline up, and a busy runtime looks at it only now and then: with a 20 ms
//! `tokio::time::sleep`, a backend called directly by the benchmark (64 connections)
//! answered in 21.5 ms at the median (22.2 ms on a slower machine), so "backends at 20 ms"
//! were slower than 20 ms for every client. `sleep` here wakes from one timer thread that
//! waits on a condition variable with nanosecond timeouts (the kernel's slack is ~50 us) and
//! hands the wake-up to the waiting task: 20.4 ms at the median, at 1 and at 64 connections.

// This thread keeps its own precise clock outside any runtime; the workspace's one-clock rule
// (clippy.toml) is for code that runs on tokio.
#![allow(clippy::disallowed_methods)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Waits `delay`, to within the kernel's timer slack. Cancel-safe: dropping the future drops
/// the wake-up (its heap entry goes when due).
pub async fn sleep(delay: Duration) {
    let (wake, woken) = oneshot::channel();
    timer().add(Instant::now() + delay, wake);
    // An error means the timer thread is gone (the process is ending): nothing to wait for.
    let _ = woken.await;
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::default());
        std::thread::Builder::new()
            .name("chaos-timer".into())
            .spawn(|| timer.run())
            .expect("spawn the chaos timer thread");
        timer
    })
}

#[derive(Default)]
struct Timer {
    due: Mutex<BinaryHeap<Reverse<Due>>>,
    changed: Condvar,
}

/// One pending wake-up; ordered by deadline, then by arrival.
struct Due {
    at: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Timer {
    fn add(&self, at: Instant, wake: oneshot::Sender<()>) {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = due.peek().is_none_or(|Reverse(first)| at < first.at);
        due.push(Reverse(Due { at, seq, wake }));
        drop(due);
        if earliest {
            // The thread sleeps until the old first deadline: it must look again.
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            while due.peek().is_some_and(|Reverse(first)| first.at <= now) {
                if let Some(Reverse(first)) = due.pop() {
                    let _ = first.wake.send(()); // the waiter may have gone
                }
            }
            due = match due.peek() {
                Some(Reverse(first)) => {
                    let wait = first.at - now;
                    self.changed
                        .wait_timeout(due, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.changed.wait(due).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_last_their_delay_and_wake_in_deadline_order() {
        let started = Instant::now();
        let long = tokio::spawn(async move {
            sleep(Duration::from_millis(30)).await;
            started.elapsed()
        });
        let short = tokio::spawn(async move {
            sleep(Duration::from_millis(10)).await;
            started.elapsed()
        });
        let (long, short) = (long.await.unwrap(), short.await.unwrap());
        assert!(short >= Duration::from_millis(10), "{short:?}");
        assert!(long >= Duration::from_millis(30), "{long:?}");
        assert!(short < long, "{short:?} vs {long:?}");
    }

    #[tokio::test]
    async fn a_dropped_sleep_does_not_stop_the_others() {
        let dropped = tokio::spawn(sleep(Duration::from_millis(5)));
        dropped.abort();
        let started = Instant::now();
        sleep(Duration::from_millis(10)).await;
        assert!(started.elapsed() >= Duration::from_millis(10));
    }
}
