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
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
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

#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    bytes_sent: u64,
    /// Requests whose caller went away before they were answered (the handler was dropped).
    cancelled: u64,
    by_path: BTreeMap<String, u64>,
    last_request: Option<LastRequest>,
}

/// The last counted request, captured as cheaply as every request has to be: method and URI
/// are shared (reference-counted) with the request, and the headers are copied into buffers
/// that are reused from one request to the next, so recording allocates nothing once warm.
/// [`Tally::view`] turns it into what `/_stats` shows.
#[derive(Debug)]
struct LastRequest {
    method: Method,
    uri: Uri,
    /// Every header name and value back to back, in `HeaderMap` iteration order.
    header_text: Vec<u8>,
    /// Per header, where its name ends and where its value ends in `header_text`.
    header_ends: Vec<(usize, usize)>,
}

impl LastRequest {
    fn new(request: &Request) -> Self {
        let mut last = LastRequest {
            method: request.method().clone(),
            uri: request.uri().clone(),
            header_text: Vec::new(),
            header_ends: Vec::new(),
        };
        last.capture_headers(request.headers());
        last
    }

    fn capture(&mut self, request: &Request) {
        self.method = request.method().clone();
        self.uri = request.uri().clone();
        self.capture_headers(request.headers());
    }

    fn capture_headers(&mut self, headers: &HeaderMap) {
        self.header_text.clear();
        self.header_ends.clear();
        for (name, value) in headers {
            self.header_text.extend_from_slice(name.as_str().as_bytes());
            let name_end = self.header_text.len();
            self.header_text.extend_from_slice(value.as_bytes());
            self.header_ends.push((name_end, self.header_text.len()));
        }
    }

    /// `(name, value)` pairs as captured; names are lowercase ASCII (`HeaderName` is).
    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut start = 0;
        self.header_ends.iter().map(move |&(name_end, value_end)| {
            let name = std::str::from_utf8(&self.header_text[start..name_end]).unwrap_or("");
            let value = &self.header_text[name_end..value_end];
            start = value_end;
            (name, value)
        })
    }
}

/// What `/_stats` shows: the field order and shapes are the README's.
#[derive(Serialize)]
struct TallyView<'a> {
    requests: u64,
    bytes_sent: u64,
    cancelled: u64,
    by_path: &'a BTreeMap<String, u64>,
    last_request: Option<LastRequestView<'a>>,
}

#[derive(Serialize)]
struct LastRequestView<'a> {
    method: &'a str,
    path: &'a str,
    /// The raw query string, `null` when the request had none.
    query: Option<&'a str>,
    /// Lowercase header names; repeated headers are joined with `", "`.
    headers: BTreeMap<String, String>,
}

impl Tally {
    fn view(&self) -> TallyView<'_> {
        TallyView {
            requests: self.requests,
            bytes_sent: self.bytes_sent,
            cancelled: self.cancelled,
            by_path: &self.by_path,
            last_request: self.last_request.as_ref().map(|last| LastRequestView {
                method: last.method.as_str(),
                path: last.uri.path(),
                query: last.uri.query(),
                headers: joined_headers(last.headers()),
            }),
        }
    }
}

impl Stats {
    fn record_request(&self, request: &Request) {
        let path = request.uri().path();
        let mut tally = lock(&self.tally);
        tally.requests += 1;
        match tally.by_path.get_mut(path) {
            Some(count) => *count += 1,
            None => {
                tally.by_path.insert(path.to_owned(), 1);
            }
        }
        match &mut tally.last_request {
            Some(last) => last.capture(request),
            None => tally.last_request = Some(LastRequest::new(request)),
        }
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
        serde_json::to_vec(&lock(&self.tally).view()).unwrap_or_default()
    }

    fn reset(&self) {
        *lock(&self.tally) = Tally::default();
    }
}

/// Headers by name, values of a repeated header joined with `", "` in arrival order; bytes
/// that are not UTF-8 are replaced.
fn joined_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value);
        map.entry(name.to_owned())
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

    fn shown(stats: &Stats) -> serde_json::Value {
        serde_json::from_slice(&stats.snapshot()).unwrap()
    }

    #[test]
    fn repeated_headers_are_joined() {
        let stats = Stats::default();
        let request = Request::builder()
            .uri("/users/1")
            .header("X-Trace", "a")
            .header("accept", "application/json")
            .header("x-trace", "b")
            .header("x-odd", &b"caf\xe9"[..])
            .body(Body::empty())
            .unwrap();
        stats.record_request(&request);
        let headers = &shown(&stats)["last_request"]["headers"];
        assert_eq!(headers["x-trace"], "a, b");
        assert_eq!(headers["accept"], "application/json");
        assert_eq!(headers["x-odd"], "caf\u{fffd}");
    }

    /// The reused capture buffers never leak one request's headers into the next.
    #[test]
    fn the_last_request_replaces_the_one_before() {
        let stats = Stats::default();
        let first = Request::builder()
            .method("POST")
            .uri("/orders?userId=1&limit=3")
            .header(
                "x-long-header-name",
                "a rather long value to leave slack behind",
            )
            .header("x-user-id", "1")
            .body(Body::empty())
            .unwrap();
        stats.record_request(&first);
        let second = Request::builder()
            .uri("/users/2")
            .header("x-user-id", "2")
            .body(Body::empty())
            .unwrap();
        stats.record_request(&second);
        let shown = shown(&stats);
        assert_eq!(
            shown["last_request"],
            serde_json::json!({
                "method": "GET",
                "path": "/users/2",
                "query": null,
                "headers": {"x-user-id": "2"},
            })
        );
        assert_eq!(shown["by_path"]["/orders"], 1);
        assert_eq!(shown["requests"], 2);
        let text = stats.snapshot();
        let order = br#"{"requests":2,"bytes_sent":0,"cancelled":0,"by_path":{"/orders""#;
        assert!(text.starts_with(order), "field order is the README's");
    }
}
