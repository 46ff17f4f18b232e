//! Per-request batching of backend calls that take many ids: every key asked for while one
//! wave of fields resolves becomes ONE call. The wave is one poll of the request's execution:
//! sibling fields register their keys as the executor polls them together, and `in_waves`,
//! which drives that execution, starts every batch begun in a poll once the poll is over,
//! then drives the batches' loads in the same task. So a batch leaves when every resolver of
//! its wave has asked, neither after a timer (async-graphql's `DataLoader` waits for tokio's
//! millisecond tick: 0.2 to 1.2 ms between the home query's waves, on its critical path) nor
//! when another worker thread happens to run a spawned task in the middle of the poll.
//! A batch over `max` keys leaves at once. One `Batcher` per request, never shared between
//! callers; a batcher asked outside `in_waves` spawns its batch behind the current poll.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::oneshot;

/// Values by key, as a batch's load gives them and a caller gets them: a map of at most
/// a batch's keys, hashed with foldhash (keyed per process) rather than SipHash, which was
/// 3% of the mobile home's instructions in these maps alone.
pub type ByKey<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a batch resolves to: the values found, by key (a key not found is left out).
type Found<K, V, E> = Result<Arc<ByKey<K, V>>, E>;

/// Where each caller waiting on a batch gets its answer.
type Waiter<K, V, E> = oneshot::Sender<Found<K, V, E>>;

/// The call that loads one batch.
type LoadFn<K, V, E> = dyn Fn(Vec<K>) -> BoxFuture<'static, Result<ByKey<K, V>, E>> + Send + Sync;

/// A batch's load together with answering its callers.
type Load = BoxFuture<'static, ()>;

tokio::task_local! {
    /// The wave of the execution `in_waves` is polling, while it polls it.
    static WAVE: Wave;
}

/// The batches begun during one poll of an execution, started when the poll is over.
#[derive(Clone, Default)]
struct Wave(Arc<Mutex<Begun>>);

#[derive(Default)]
struct Begun {
    /// Batchers whose pending keys leave at the end of this poll.
    open: Vec<Arc<dyn Open>>,
    /// Batches that filled up during this poll, taken already.
    full: Vec<Load>,
}

impl Wave {
    fn begun(&self) -> std::sync::MutexGuard<'_, Begun> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A batcher's pending keys, seen from the wave that starts them.
trait Open: Send + Sync {
    /// The load of the keys pending now, if any are.
    fn take(&self) -> Option<Load>;
}

/// Runs `execution` so that the batches each of its polls begins leave when that poll is
/// over, their loads driven here, in the execution's own task.
pub async fn in_waves<F: Future>(execution: F) -> F::Output {
    let wave = Wave::default();
    let mut execution = std::pin::pin!(WAVE.scope(wave.clone(), execution));
    let mut loads: FuturesUnordered<Load> = FuturesUnordered::new();
    std::future::poll_fn(|cx| {
        // A load that finishes answers its callers, which the execution then sees.
        while let Poll::Ready(Some(())) = loads.poll_next_unpin(cx) {}
        if let Poll::Ready(output) = execution.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        let (open, full) = {
            let mut begun = wave.begun();
            (
                std::mem::take(&mut begun.open),
                std::mem::take(&mut begun.full),
            )
        };
        if open.is_empty() && full.is_empty() {
            return Poll::Pending;
        }
        loads.extend(full);
        loads.extend(open.iter().filter_map(|batcher| batcher.take()));
        while let Poll::Ready(Some(())) = loads.poll_next_unpin(cx) {}
        Poll::Pending
    })
    .await
}

/// Batches the keys of one kind asked for by one request.
pub struct Batcher<K, V, E> {
    shared: Arc<Shared<K, V, E>>,
}

struct Shared<K, V, E> {
    load: Arc<LoadFn<K, V, E>>,
    max: usize,
    pending: Mutex<Pending<K, V, E>>,
}

struct Pending<K, V, E> {
    keys: Vec<K>,
    waiting: Vec<Waiter<K, V, E>>,
}

impl<K, V, E> Pending<K, V, E> {
    fn take(&mut self) -> (Vec<K>, Vec<Waiter<K, V, E>>) {
        (
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.waiting),
        )
    }
}

impl<K, V, E> Shared<K, V, E> {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending<K, V, E>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K, V, E> Open for Shared<K, V, E>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    fn take(&self) -> Option<Load> {
        let (batch, waiting) = self.pending().take();
        (!waiting.is_empty()).then(|| load_and_answer(self.load.clone(), batch, waiting).boxed())
    }
}

impl<K, V, E> Batcher<K, V, E>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// Batches of at most `max` keys, each loaded by `load`.
    pub fn new(
        max: usize,
        load: impl Fn(Vec<K>) -> BoxFuture<'static, Result<ByKey<K, V>, E>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                load: Arc::new(load),
                max: max.max(1),
                pending: Mutex::new(Pending {
                    keys: Vec::new(),
                    waiting: Vec::new(),
                }),
            }),
        }
    }

    /// The value of `key`, or `None` when the backend does not know it.
    pub async fn load_one(&self, key: K) -> Result<Option<V>, E> {
        let mut found = self.load_many([key.clone()]).await?;
        Ok(found.remove(&key))
    }

    /// The values found among `keys`, by key, loaded with the other keys of this wave.
    pub async fn load_many(&self, keys: impl IntoIterator<Item = K>) -> Result<ByKey<K, V>, E> {
        let keys: Vec<K> = keys.into_iter().collect();
        let (sent, answer) = oneshot::channel();
        let full = {
            let mut pending = self.shared.pending();
            let first = pending.waiting.is_empty();
            for key in &keys {
                if !pending.keys.contains(key) {
                    pending.keys.push(key.clone());
                }
            }
            pending.waiting.push(sent);
            if pending.keys.len() >= self.shared.max {
                Some(pending.take())
            } else {
                if first {
                    self.leave_after_this_poll();
                }
                None
            }
        };
        if let Some((batch, waiting)) = full {
            begin(load_and_answer(self.shared.load.clone(), batch, waiting).boxed());
        }
        let found = match answer.await {
            Ok(found) => found?,
            // The load was dropped unfinished (the execution or the runtime is ending).
            Err(_) => return Ok(ByKey::default()),
        };
        // The last caller to get a batch owns it (`load_and_answer`): its values are moved
        // out rather than cloned, so a value held in an `Arc` is held by this answer alone.
        // Sized for every key up front (a map collected from a filter grew from nothing).
        let mut answer = ByKey::with_capacity_and_hasher(keys.len(), Default::default());
        match Arc::try_unwrap(found) {
            Ok(mut found) => answer.extend(
                keys.into_iter()
                    .filter_map(|k| found.remove(&k).map(|v| (k, v))),
            ),
            Err(found) => answer.extend(
                keys.into_iter()
                    .filter_map(|k| found.get(&k).map(|v| (k, v.clone()))),
            ),
        }
        Ok(answer)
    }

    /// Has this batcher's pending keys leave once the current poll is over: started by the
    /// wave driving the execution or, outside one, by a task spawned from here, which runs
    /// after the request's task's poll if nothing else takes it first (another worker can).
    fn leave_after_this_poll(&self) {
        match current_wave() {
            Some(wave) => wave.begun().open.push(self.shared.clone()),
            None => {
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    if let Some(load) = shared.take() {
                        load.await;
                    }
                });
            }
        }
    }
}

/// Hands a taken batch's `load` to the wave being polled or, outside one, to a task.
fn begin(load: Load) {
    match current_wave() {
        Some(wave) => wave.begun().full.push(load),
        None => drop(tokio::spawn(load)),
    }
}

/// The wave of the execution `in_waves` is polling in this task, if it is.
fn current_wave() -> Option<Wave> {
    WAVE.try_with(Wave::clone).ok()
}

async fn load_and_answer<K, V, E>(
    load: Arc<LoadFn<K, V, E>>,
    batch: Vec<K>,
    mut waiting: Vec<Waiter<K, V, E>>,
) where
    E: Clone,
{
    let found = load(batch).await.map(Arc::new);
    let last = waiting.pop();
    for waiter in waiting {
        let _ = waiter.send(found.clone());
    }
    // The last one gets the batch itself: the load keeps no share of it.
    if let Some(last) = last {
        let _ = last.send(found);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn counting(calls: Arc<Mutex<Vec<Vec<u32>>>>) -> Batcher<u32, String, String> {
        Batcher::new(3, move |keys: Vec<u32>| {
            calls.lock().unwrap().push(keys.clone());
            async move {
                Ok(keys
                    .into_iter()
                    .filter(|k| *k != 404)
                    .map(|k| (k, format!("v{k}")))
                    .collect())
            }
            .boxed()
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_asked_in_one_poll_are_one_call_and_each_caller_gets_its_own() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let batcher = counting(calls.clone());
        let (a, b, c) = in_waves(async {
            tokio::join!(
                batcher.load_one(1),
                batcher.load_many([2, 1]),
                batcher.load_one(404)
            )
        })
        .await;
        assert_eq!(a.unwrap(), Some("v1".to_owned()));
        let b = b.unwrap();
        assert_eq!((b.len(), b[&2].as_str()), (2, "v2"));
        assert_eq!(c.unwrap(), None);
        assert_eq!(*calls.lock().unwrap(), vec![vec![1, 2, 404]]);
        // A later wave is a call of its own.
        let later = in_waves(batcher.load_one(5)).await;
        assert_eq!(later.unwrap(), Some("v5".to_owned()));
        assert_eq!(calls.lock().unwrap().len(), 2);
    }

    /// However long the rest of a poll takes, its batch waits for it: nothing running on
    /// another worker thread meanwhile takes the keys asked so far (a task spawned behind
    /// the poll did, here at once: the test's body is not on a worker thread).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_leaves_when_its_whole_poll_is_over_however_long_it_takes() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let batcher = counting(calls.clone());
        let slow_sibling = async {
            // Busy within this poll until the first key's batch is called, or 100 ms.
            let until = tokio::time::Instant::now() + Duration::from_millis(100);
            while calls.lock().unwrap().is_empty() && tokio::time::Instant::now() < until {
                std::thread::yield_now();
            }
            batcher.load_one(2).await
        };
        let (a, b) = in_waves(async { tokio::join!(batcher.load_one(1), slow_sibling) }).await;
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            (Some("v1".into()), Some("v2".into()))
        );
        assert_eq!(*calls.lock().unwrap(), vec![vec![1, 2]]);
    }

    /// Outside `in_waves`, a batch still leaves once the poll is over, from a task.
    #[tokio::test]
    async fn outside_a_wave_a_spawned_task_takes_the_batch_after_the_poll() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let batcher = counting(calls.clone());
        let both = async { tokio::join!(batcher.load_one(1), batcher.load_one(2)) };
        let (a, b) = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("a batch nobody takes leaves its callers waiting");
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            (Some("v1".into()), Some("v2".into()))
        );
        assert_eq!(*calls.lock().unwrap(), vec![vec![1, 2]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_leaves_at_once_and_the_rest_waits_for_the_poll() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let batcher = counting(calls.clone());
        // Asked in one poll: the first ask fills a batch (of at most 3), which leaves then;
        // the second starts the next batch, which leaves after the poll.
        let (full, rest) =
            in_waves(async { tokio::join!(batcher.load_many([1, 2, 3, 4]), batcher.load_one(5)) })
                .await;
        assert_eq!(full.unwrap().len(), 4);
        assert_eq!(rest.unwrap(), Some("v5".to_owned()));
        assert_eq!(*calls.lock().unwrap(), vec![vec![1, 2, 3, 4], vec![5]]);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_caller_in_it() {
        let tries = Arc::new(AtomicUsize::new(0));
        let counted = tries.clone();
        let batcher: Batcher<u32, u32, String> = Batcher::new(10, move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Err("down".to_owned()) }.boxed()
        });
        let (a, b) =
            in_waves(async { tokio::join!(batcher.load_one(1), batcher.load_one(2)) }).await;
        assert_eq!((a, b), (Err("down".to_owned()), Err("down".to_owned())));
        assert_eq!(tries.load(Ordering::Relaxed), 1);
    }

    /// A value that counts its copies.
    struct Counted(Arc<AtomicUsize>);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Ordering::Relaxed);
            Self(self.0.clone())
        }
    }

    /// The last caller to get a batch has its values moved to it; only the others get
    /// copies (so a value in an `Arc` ends up held by one answer, and can be moved on).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_caller_of_a_batch_gets_its_values_without_copies() {
        let copies = Arc::new(AtomicUsize::new(0));
        let counted = copies.clone();
        let batcher: Batcher<u32, Counted, String> = Batcher::new(10, move |keys| {
            let counted = counted.clone();
            async move {
                Ok(keys
                    .into_iter()
                    .map(|k| (k, Counted(counted.clone())))
                    .collect())
            }
            .boxed()
        });
        assert_eq!(in_waves(batcher.load_many([1, 2])).await.unwrap().len(), 2);
        assert_eq!(
            copies.load(Ordering::Relaxed),
            0,
            "one caller: nothing copied"
        );
        let (a, b) =
            in_waves(async { tokio::join!(batcher.load_many([3, 4]), batcher.load_one(3)) }).await;
        assert_eq!((a.unwrap().len(), b.unwrap().is_some()), (2, true));
        // The first of the two gets copies of what it asked for (one or two); the last, none.
        let copied = copies.load(Ordering::Relaxed);
        assert!(copied == 1 || copied == 2, "{copied} copies");
    }
}
