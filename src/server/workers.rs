//! The worker threads of `server.runtime = "thread-per-core"`: one current-thread tokio
//! runtime per thread, each accepting on a listener of its own (`RunningServer::
//! spawn_per_worker`), so a connection, its requests and their backend calls stay on one
//! thread. The process's other work (startup, the admin listener, signals, config reloads,
//! health checks) runs on the main thread's runtime. Work that must run on every worker
//! (admission control's delay sampler, which measures the thread it runs on) asks
//! `spawn_on_each`.

use std::future::Future;
use std::io;
use std::sync::OnceLock;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// Running worker threads. Dropping it stops them (after what they run is dropped).
pub struct Workers {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

/// The workers this process serves on, once `Workers::register` was called.
static REGISTERED: OnceLock<Vec<Handle>> = OnceLock::new();

impl Workers {
    /// Starts `count` threads (at least one), each running a current-thread runtime until
    /// the `Workers` is dropped.
    pub fn start(count: usize) -> io::Result<Self> {
        let mut workers = Workers {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop);
            workers.threads.push(
                std::thread::Builder::new()
                    .name(format!("manifold-worker-{i}"))
                    .spawn(move || {
                        let _ = runtime.block_on(stopped);
                    })?,
            );
        }
        Ok(workers)
    }

    /// The runtimes, one per thread.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Makes these the workers `spawn_on_each` spawns on, for the rest of the process (the
    /// first registration wins).
    pub fn register(&self) {
        let _ = REGISTERED.set(self.handles.clone());
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stops.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Spawns `task(i)` on each registered worker `i`, or `task(0)` once on the current runtime
/// when this process registered none (work stealing, tests). Must run inside a tokio
/// runtime.
pub fn spawn_on_each<F, Fut>(task: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match REGISTERED.get() {
        Some(handles) if !handles.is_empty() => {
            for (i, handle) in handles.iter().enumerate() {
                drop(handle.spawn(task(i)));
            }
        }
        _ => drop(tokio::spawn(task(0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_worker_is_a_thread_of_its_own_and_stops_when_dropped() {
        let workers = Workers::start(2).unwrap();
        let mut names = Vec::new();
        for handle in workers.handles() {
            let name = handle
                .spawn(async { std::thread::current().name().map(str::to_owned) })
                .await
                .unwrap();
            names.push(name.unwrap_or_default());
        }
        assert_eq!(names, ["manifold-worker-0", "manifold-worker-1"]);
        let handle = workers.handles()[0].clone();
        drop(workers);
        // A stopped runtime drops what is spawned on it: the task never answers.
        let late = handle.spawn(async { 1 });
        assert!(late.await.is_err());
    }
}
