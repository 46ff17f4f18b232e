//! A bounded steady load: `workers` clients, each sending one home-screen query at a time,
//! until stopped, a request count or a time limit is reached. Every request's outcome is
//! kept with its completion time, so tests can count failures and find gaps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use serde_json::{Value, json};
use tokio::task::JoinSet;

pub const QUERY: &str = "query Home { home { greeting me { id name } } }";

/// Hard bounds whatever the test does.
const MAX_REQUESTS: u64 = 200_000;
const MAX_TIME: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Outcome {
    pub done: Instant,
    pub ok: bool,
    pub detail: String,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    tasks: JoinSet<Vec<Outcome>>,
}

impl Load {
    pub fn start(url: String, token: String, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..workers {
            let (stop, sent, url, token) = (stop.clone(), sent.clone(), url.clone(), token.clone());
            tasks.spawn(async move {
                // One connection pool per worker, like separate clients.
                let http = reqwest::Client::new();
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::Relaxed)
                    && started.elapsed() < MAX_TIME
                    && sent.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS
                {
                    let (ok, detail) = one(&http, &url, &token).await;
                    outcomes.push(Outcome {
                        done: Instant::now(),
                        ok,
                        detail,
                    });
                }
                outcomes
            });
        }
        Load { stop, sent, tasks }
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Polls until at least `n` requests were sent.
    pub async fn wait_sent(&self, n: u64, limit: Duration) {
        let until = Instant::now() + limit;
        while self.sent() < n {
            assert!(
                Instant::now() < until,
                "load stalled at {} requests",
                self.sent()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn stop(mut self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        while let Some(done) = self.tasks.join_next().await {
            all.extend(done.expect("load worker"));
        }
        all.sort_by_key(|o| o.done);
        all
    }
}

async fn one(http: &reqwest::Client, url: &str, token: &str) -> (bool, String) {
    let response = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": QUERY }))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return (false, format!("transport: {e}")),
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let ok = status == 200 && body["data"]["home"]["me"]["id"].is_string();
    (ok, format!("{status} {body}"))
}

/// Failures, and the longest time without any successful completion after `from`.
pub fn summary(outcomes: &[Outcome], from: Instant) -> (usize, Duration) {
    let failures = outcomes.iter().filter(|o| !o.ok).count();
    let mut last = from;
    let mut gap = Duration::ZERO;
    for o in outcomes.iter().filter(|o| o.ok && o.done >= from) {
        gap = gap.max(o.done - last);
        last = o.done;
    }
    (failures, gap)
}
