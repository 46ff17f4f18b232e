//! What a shed request gets and leaves behind: a prepared 503, and an access line for the
//! first `SHED_LINES_PER_SECOND` each second with one line counting the rest.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use tokio::time::Instant;

use crate::error::{Code, Problem};
use crate::observe::access_log::AccessLine;

/// Access lines a second for requests refused before the app; the rest are counted.
pub(super) const SHED_LINES_PER_SECOND: u32 = 10;

/// The answer to a shed request: 503, `Retry-After: 1`, a problem body encoded once.
pub(super) fn overloaded() -> Response {
    static BODY: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    let body = BODY.get_or_init(|| {
        let problem = Problem::new(Code::Overloaded, OVERLOADED_DETAIL);
        serde_json::to_vec(&problem).unwrap_or_default().into()
    });
    let mut response = Response::new(axum::body::Body::from(body.clone()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::error::PROBLEM_JSON),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

const OVERLOADED_DETAIL: &str =
    "this instance is at its limit of requests in progress; retry shortly";

/// The access lines of requests refused before the app: the first few each second, and a
/// count of the others.
pub(super) struct ShedLog {
    created: Instant,
    /// The current second, counted from `created`.
    second: AtomicU64,
    logged: AtomicU32,
    unlogged: AtomicU64,
}

impl ShedLog {
    pub(super) fn new() -> Self {
        Self {
            created: Instant::now(),
            second: AtomicU64::new(0),
            logged: AtomicU32::new(0),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Writes `request`'s access line, or counts it; true when the line was written.
    pub(super) fn note<B>(&self, request: &http::Request<B>) -> bool {
        let now = self.created.elapsed().as_secs();
        let second = self.second.load(Ordering::Relaxed);
        if now != second
            && self
                .second
                .compare_exchange(second, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.logged.store(0, Ordering::Relaxed);
            let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
            if unlogged > 0 {
                tracing::warn!(
                    target: "manifold::access",
                    admission = "shed",
                    status = 503,
                    unlogged,
                    "requests shed at once without an access line each"
                );
            }
        }
        if self.logged.fetch_add(1, Ordering::Relaxed) >= SHED_LINES_PER_SECOND {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let client_ip = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.get(..256).unwrap_or(ua));
        AccessLine {
            request_id: "",
            method: request.method().as_str(),
            route: "",
            client_ip,
            caller: None,
            user_agent,
            bytes_in: None,
            bytes_out: None,
            operation: None,
            cost: 0,
            status: 503,
            took: Duration::ZERO,
            backend_calls: 0,
            cache: None,
            limit: "none",
            admission: "shed",
            slowest: None,
            failed: &[],
            trace_id: 0,
        }
        .write();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_refusals_each_second_get_a_line_and_the_rest_are_counted() {
        let log = ShedLog::new();
        let request = http::Request::get("/graphql").body(()).unwrap();
        let written = (0..25).filter(|_| log.note(&request)).count();
        assert_eq!(written, SHED_LINES_PER_SECOND as usize);
        assert_eq!(log.unlogged.load(Ordering::Relaxed), 15);
        // The next second: its first refusal writes the count of the last one, and a line.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(log.note(&request));
        assert_eq!(log.unlogged.load(Ordering::Relaxed), 0);
    }
}
