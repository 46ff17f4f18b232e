//! The access log: one line per request (target `manifold::access`), in the process's log
//! format (`[log] format`: text or JSON). Every field is a value the gateway chose or
//! bounded — request id, route template, operation name, status, timings, upstream names,
//! the client's address, the caller's id (never its credential), a truncated `User-Agent` —
//! never another header, a query string or a body, so no token, API key or cookie can end
//! up here.
//! Also the recent-error entry the dashboard lists.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::request::{BackendCall, Principal};

/// The fields of one access-log line.
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    /// The client's address (`edge::client_ip`: the peer, or what trusted proxies said).
    pub client_ip: Option<IpAddr>,
    /// The user or API client the request proved to be (`user:42`, `client:acme`).
    pub caller: Option<&'a Principal>,
    pub user_agent: Option<&'a str>,
    /// The request body's declared length (0 without a body; unknown when chunked).
    pub bytes_in: Option<u64>,
    /// The answer's body length, when known as the head leaves (not for a stream).
    pub bytes_out: Option<u64>,
    pub operation: Option<&'a str>,
    /// The GraphQL operation's estimated cost (0 for other requests).
    pub cost: u64,
    pub status: u16,
    pub took: Duration,
    pub backend_calls: u32,
    pub cache: Option<&'static str>,
    /// Rate-limit outcome: `allowed`, `refused` or `none` (no limit applies).
    pub limit: &'static str,
    /// Admission control: `admitted`, `queued`, `shed` or `none` (not checked).
    pub admission: &'static str,
    /// The backend call that took longest.
    pub slowest: Option<&'a BackendCall>,
    /// Backend calls that failed: the response is partial (or an error) because of them.
    pub failed: &'a [&'a BackendCall],
    pub trace_id: u128,
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl AccessLine<'_> {
    pub fn write(&self) {
        let partial = self
            .failed
            .iter()
            .map(|c| format!("{}:{}", c.upstream, c.error.unwrap_or("error")))
            .collect::<Vec<_>>()
            .join(",");
        tracing::info!(
            target: "manifold::access",
            request_id = self.request_id,
            method = self.method,
            route = self.route,
            client_ip = self.client_ip.map(tracing::field::display),
            caller = self.caller.map(tracing::field::display),
            user_agent = self.user_agent,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            operation = self.operation.unwrap_or(""),
            cost = self.cost,
            status = self.status,
            latency_ms = millis(self.took),
            backend_calls = self.backend_calls,
            cache = self.cache.unwrap_or("none"),
            limit = self.limit,
            admission = self.admission,
            slowest_backend = self.slowest.map_or("", |c| &*c.upstream),
            slowest_backend_ms = self.slowest.map_or(0.0, |c| millis(c.took)),
            partial = partial.as_str(),
            trace_id = %format_args!("{:032x}", self.trace_id),
            "request"
        );
    }
}

/// A failed or partial request, as the dashboard lists it.
#[derive(Clone, Debug, Serialize)]
pub struct RecentError {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    pub request_id: String,
    pub route: String,
    pub operation: Option<String>,
    pub status: u16,
    pub latency_ms: f64,
    /// `upstream: code` of each failed backend call.
    pub failed_backends: Vec<String>,
}

impl From<&AccessLine<'_>> for RecentError {
    fn from(line: &AccessLine<'_>) -> Self {
        RecentError {
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            request_id: line.request_id.to_owned(),
            route: line.route.to_owned(),
            operation: line.operation.map(str::to_owned),
            status: line.status,
            latency_ms: millis(line.took),
            failed_backends: line
                .failed
                .iter()
                .map(|c| format!("{}: {}", c.upstream, c.error.unwrap_or("error")))
                .collect(),
        }
    }
}
