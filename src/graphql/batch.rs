//! Per-request batching of backend calls that take many ids: every key asked for while one
//! wave of fields resolves becomes ONE call. The wave is the request's current poll: sibling
//! fields register their keys as the executor polls them together, so the batch leaves once
//! that poll is over (a task spawned behind it, which yields once more), not after a timer
//! (async-graphql's `DataLoader` waits for tokio's millisecond tick: 0.2 to 1.2 ms between
//! the home query's waves, on its critical path). A batch over `max` keys leaves at once.
//! One `Batcher` per request, never shared between callers.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
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

/// Batches the keys of one kind asked for by one request.
pub struct Batcher<K, V, E> {
    load: Arc<LoadFn<K, V, E>>,
    max: usize,
    pending: Arc<Mutex<Pending<K, V, E>>>,
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
            load: Arc::new(load),
            max: max.max(1),
            pending: Arc::new(Mutex::new(Pending {
                keys: Vec::new(),
                waiting: Vec::new(),
            })),
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
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let first = pending.waiting.is_empty();
            for key in &keys {
                if !pending.keys.contains(key) {
                    pending.keys.push(key.clone());
                }
            }
            pending.waiting.push(sent);
            if pending.keys.len() >= self.max {
                Some(pending.take())
            } else {
                if first {
                    self.dispatch_after_this_poll();
                }
                None
            }
        };
        if let Some((batch, waiting)) = full {
            tokio::spawn(load_and_answer(self.load.clone(), batch, waiting));
        }
        let found = match answer.await {
            Ok(found) => found?,
            // The loading task was cancelled (the runtime is shutting down).
            Err(_) => return Ok(ByKey::default()),
        };
        // The last caller to get a batch owns it (`load_and_answer`): its values are moved
        // out rather than cloned, so a value held in an `Arc` is held by this answer alone.
        Ok(match Arc::try_unwrap(found) {
            Ok(mut found) => keys
                .into_iter()
                .filter_map(|k| found.remove(&k).map(|v| (k, v)))
                .collect(),
            Err(found) => keys
                .into_iter()
                .filter_map(|k| found.get(&k).map(|v| (k, v.clone())))
                .collect(),
        })
    }

    /// Spawns the task that takes this wave's keys: spawned from the request's task, it runs
    /// once that task's poll is over, after the sibling fields polled with it asked.
    fn dispatch_after_this_poll(&self) {
        let (pending, load) = (self.pending.clone(), self.load.clone());
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            let (batch, waiting) = pending.lock().unwrap_or_else(|e| e.into_inner()).take();
            if !waiting.is_empty() {
                load_and_answer(load, batch, waiting).await;
            }
        });
    }
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
    // The last one gets the batch itself: the task keeps no share of it.
    if let Some(last) = last {
        let _ = last.send(found);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::FutureExt;

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
        let (a, b, c) = tokio::join!(
            batcher.load_one(1),
            batcher.load_many([2, 1]),
            batcher.load_one(404)
        );
        assert_eq!(a.unwrap(), Some("v1".to_owned()));
        let b = b.unwrap();
        assert_eq!((b.len(), b[&2].as_str()), (2, "v2"));
        assert_eq!(c.unwrap(), None);
        assert_eq!(*calls.lock().unwrap(), vec![vec![1, 2, 404]]);
        // A later wave is a call of its own.
        assert_eq!(batcher.load_one(5).await.unwrap(), Some("v5".to_owned()));
        assert_eq!(calls.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_leaves_at_once_and_the_rest_waits_for_the_poll() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let batcher = counting(calls.clone());
        // Asked in one poll: the first ask fills a batch (of at most 3), which leaves then;
        // the second starts the next batch, which leaves after the poll.
        let (full, rest) = tokio::join!(batcher.load_many([1, 2, 3, 4]), batcher.load_one(5));
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
        let (a, b) = tokio::join!(batcher.load_one(1), batcher.load_one(2));
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
        assert_eq!(batcher.load_many([1, 2]).await.unwrap().len(), 2);
        assert_eq!(
            copies.load(Ordering::Relaxed),
            0,
            "one caller: nothing copied"
        );
        let (a, b) = tokio::join!(batcher.load_many([3, 4]), batcher.load_one(3));
        assert_eq!((a.unwrap().len(), b.unwrap().is_some()), (2, true));
        // The first of the two gets copies of what it asked for (one or two); the last, none.
        let copied = copies.load(Ordering::Relaxed);
        assert!(copied == 1 || copied == 2, "{copied} copies");
    }
}
