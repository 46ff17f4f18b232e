//! Request accounting for one service: how many requests reached it, per path, how many
//! response body bytes it sent, and what the last request looked like. Gateway tests read it
//! through `GET /_stats` to assert upstream call counts, trimming and forwarded headers.
//!
//! `/healthz` and every `/_*` path are not counted, so probing and test plumbing never
//! disturb the numbers. A request is counted when it arrives (a hung request still counts);
//! its bytes when the response body is produced.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde::Serialize;

use crate::shell::lock;

/// The counters of one service.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    tally: Mutex<Tally>,
}

#[derive(Debug, Default, Serialize)]
struct Tally {
    requests: u64,
    bytes_sent: u64,
    /// Requests whose caller went away before they were answered (the handler was dropped).
    cancelled: u64,
    by_path: BTreeMap<String, u64>,
    last_request: Option<LastRequest>,
}

#[derive(Debug, Serialize)]
struct LastRequest {
    method: String,
    path: String,
    /// The raw query string, `null` when the request had none.
    query: Option<String>,
    /// Lowercase header names; repeated headers are joined with `", "`.
    headers: BTreeMap<String, String>,
}

impl Stats {
    fn record_request(&self, request: &Request) {
        let uri = request.uri();
        // Built before taking the lock, which is then held only for the bookkeeping.
        let last = LastRequest {
            method: request.method().as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: header_map(request.headers()),
        };
        let mut tally = lock(&self.tally);
        tally.requests += 1;
        match tally.by_path.get_mut(uri.path()) {
            Some(count) => *count += 1,
            None => {
                tally.by_path.insert(uri.path().to_owned(), 1);
            }
        }
        tally.last_request = Some(last);
    }

    fn add_cancelled(&self) {
        lock(&self.tally).cancelled += 1;
    }

    fn add_bytes(&self, bytes: u64) {
        lock(&self.tally).bytes_sent += bytes;
    }

    fn snapshot(&self) -> Vec<u8> {
        // Serialising a tally cannot fail (string keys, plain numbers); an empty body would
        // only ever signal a bug.
        serde_json::to_vec(&*lock(&self.tally)).unwrap_or_default()
    }

    fn reset(&self) {
        *lock(&self.tally) = Tally::default();
    }
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    map
}

/// Whether a path is part of the service (counted) rather than probing or test plumbing.
fn is_counted(path: &str) -> bool {
    path != "/healthz" && !path.starts_with("/_")
}

/// Middleware: counts the request, then the bytes of whatever answer leaves the service
/// (including chaos-injected ones, which is why it sits outside the chaos layer).
pub(crate) async fn count(
    State(stats): State<Arc<Stats>>,
    request: Request,
    next: Next,
) -> Response {
    if !is_counted(request.uri().path()) {
        return next.run(request).await;
    }
    stats.record_request(&request);
    // Dropped unanswered when the client goes away mid-request (hyper drops the handler).
    let mut unanswered = Unanswered(Some(stats.clone()));
    let response = next.run(request).await;
    unanswered.0 = None;
    if let Some(len) = response.body().size_hint().exact() {
        stats.add_bytes(len);
        return response;
    }
    // A streamed body: count the chunks as they go out.
    let (parts, body) = response.into_parts();
    let counted = body.into_data_stream().inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            stats.add_bytes(bytes.len() as u64);
        }
    });
    Response::from_parts(parts, Body::from_stream(counted))
}

/// Counts a request as cancelled if dropped while still armed.
struct Unanswered(Option<Arc<Stats>>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(stats) = self.0.take() {
            stats.add_cancelled();
        }
    }
}

/// `GET /_stats` and `DELETE /_stats`.
pub(crate) fn routes(stats: Arc<Stats>) -> Router {
    Router::new()
        .route("/_stats", get(show).delete(reset))
        .with_state(stats)
}

async fn show(State(stats): State<Arc<Stats>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        stats.snapshot(),
    )
        .into_response()
}

async fn reset(State(stats): State<Arc<Stats>>) -> StatusCode {
    stats.reset();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_plumbing_are_not_counted() {
        assert!(is_counted("/users/1"));
        assert!(is_counted("/products"));
        assert!(!is_counted("/healthz"));
        assert!(!is_counted("/_stats"));
        assert!(!is_counted("/_echo"));
    }

    #[test]
    fn repeated_headers_are_joined() {
        let mut headers = HeaderMap::new();
        headers.append("X-Trace", "a".parse().unwrap());
        headers.append("x-trace", "b".parse().unwrap());
        let map = header_map(&headers);
        assert_eq!(map["x-trace"], "a, b");
    }
}
