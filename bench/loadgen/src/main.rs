//! An HTTP/1.1 load generator for the overload scenario (`bench/overload.py`). Closed loop
//! by default: `N` connections, each sending its next request when the last is answered, for
//! a fixed time. With `--rate R`, open loop: request `i` is due at `start + i / R` whatever
//! became of the others, sent on the first of the `N` connections that is free, and its
//! latency counts from when it was due (so time spent waiting for a free connection is
//! counted, not omitted; a connection that was free early counts from when its timer woke). Unlike wrk it keeps latencies per status, so the scenario can tell
//! how fast excess load was refused (503) apart from how fast admitted requests were served.
//! It writes requests prepared once and reads answers with a minimal HTTP/1.1 parser
//! (`Content-Length` or chunked framing): it shares two cores with the gateway it loads, and
//! hyper's client cost 1.6 times as much CPU per request (15.7 against 10.0 us).
//!
//! ```text
//! loadgen URL --connections N --duration SECONDS [--rate PER_SECOND] [--method POST]
//!         [--body-file F] [--header "name: value"]... [--tokens-file F] [--bad TEXT]
//!         [--timeout SECONDS]
//! ```
//! Prints one JSON line: requests, seconds, per status `{count, p50_ms, p99_ms, max_ms}`,
//! errors by kind, answers that were 2xx but held `--bad`, and one such answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

struct Plan {
    authority: String,
    /// Each request written out whole, one per token.
    requests: Vec<Vec<u8>>,
    next_token: AtomicUsize,
    bad: Option<String>,
    timeout: Duration,
    started: Instant,
    until: Instant,
    /// Open loop: the interval between due times, and the next request's number.
    interval: Option<Duration>,
    next_due: AtomicU64,
}

impl Plan {
    /// When the next request is due: now in a closed loop; `None` once past the end.
    fn due(&self) -> Option<Instant> {
        let due = match self.interval {
            None => Instant::now(),
            Some(interval) => {
                let i = self.next_due.fetch_add(1, Ordering::Relaxed);
                self.started + interval.mul_f64(i as f64)
            }
        };
        (due < self.until).then_some(due)
    }
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    /// Latencies in microseconds, by status.
    by_status: BTreeMap<u16, Vec<u32>>,
    connect_errors: u64,
    io_errors: u64,
    timeouts: u64,
    bad: u64,
    bad_sample: Option<String>,
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "loadgen: {problem}\nusage: loadgen URL --connections N --duration S [--rate R] [--method M] [--body-file F] [--header 'k: v']... [--tokens-file F] [--bad TEXT] [--timeout S]"
    );
    std::process::exit(64);
}

fn parse() -> (Plan, usize) {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let (mut connections, mut duration, mut timeout) = (64usize, 10u64, 5u64);
    let mut rate: Option<f64> = None;
    let (mut method, mut body, mut headers, mut tokens, mut bad) =
        (Method::GET, Bytes::new(), Vec::new(), Vec::new(), None);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--connections" => {
                connections = value().parse().unwrap_or_else(|_| usage("--connections"))
            }
            "--duration" => duration = value().parse().unwrap_or_else(|_| usage("--duration")),
            "--rate" => {
                rate = Some(value().parse().unwrap_or_else(|_| usage("--rate")))
                    .filter(|r: &f64| *r > 0.0)
                    .or_else(|| usage("--rate must be positive"))
            }
            "--timeout" => timeout = value().parse().unwrap_or_else(|_| usage("--timeout")),
            "--method" => method = value().parse().unwrap_or_else(|_| usage("--method")),
            "--body-file" => {
                body = std::fs::read(value())
                    .unwrap_or_else(|e| usage(&e.to_string()))
                    .into();
            }
            "--header" => {
                let line = value();
                let (name, v) = line
                    .split_once(':')
                    .unwrap_or_else(|| usage("--header k: v"));
                let name =
                    HeaderName::try_from(name.trim()).unwrap_or_else(|_| usage("header name"));
                let v = HeaderValue::try_from(v.trim()).unwrap_or_else(|_| usage("header value"));
                headers.push((name, v));
            }
            "--tokens-file" => {
                let text =
                    std::fs::read_to_string(value()).unwrap_or_else(|e| usage(&e.to_string()));
                tokens = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|t| HeaderValue::try_from(format!("Bearer {}", t.trim())))
                    .collect::<Result<_, _>>()
                    .unwrap_or_else(|_| usage("a token is not a header value"));
            }
            "--bad" => bad = Some(value()).filter(|b| !b.is_empty()),
            _ if url.is_none() && !arg.starts_with("--") => url = Some(arg),
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    let uri: Uri = url
        .unwrap_or_else(|| usage("no URL"))
        .parse()
        .unwrap_or_else(|_| usage("bad URL"));
    if uri.scheme_str() != Some("http") {
        usage("only http:// URLs");
    }
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| usage("no host"));
    let requests = encode_requests(&method, &uri, &authority, &headers, &tokens, &body);
    let plan = Plan {
        authority,
        requests,
        next_token: AtomicUsize::new(0),
        bad,
        timeout: Duration::from_secs(timeout),
        started: Instant::now(),
        until: Instant::now() + Duration::from_secs(duration),
        interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
        next_due: AtomicU64::new(0),
    };
    (plan, connections)
}

/// The bytes of the next request (tokens taken in turn).
fn request(plan: &Plan) -> &[u8] {
    let i = plan.next_token.fetch_add(1, Ordering::Relaxed) % plan.requests.len();
    &plan.requests[i]
}

/// Every request the run sends, written out once: one per token (or one without).
fn encode_requests(
    method: &Method,
    uri: &Uri,
    authority: &str,
    headers: &[(HeaderName, HeaderValue)],
    tokens: &[HeaderValue],
    body: &[u8],
) -> Vec<Vec<u8>> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let encode = |token: Option<&HeaderValue>| {
        let mut out = format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\n").into_bytes();
        for (name, value) in headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(token) = token {
            out.extend_from_slice(b"authorization: ");
            out.extend_from_slice(token.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() || *method == Method::POST {
            out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    };
    if tokens.is_empty() {
        vec![encode(None)]
    } else {
        tokens.iter().map(|t| encode(Some(t))).collect()
    }
}

/// One answer read off the connection.
struct Answer {
    status: u16,
    /// The body's bytes are `buf[body]`.
    body: std::ops::Range<usize>,
    /// The head or body ends here; what follows belongs to the next answer.
    end: usize,
    close: bool,
}

#[derive(Debug)]
struct Malformed;

/// Parses one whole answer at the start of `buf`: `Ok(None)` when more bytes are needed.
/// Bodies are framed by `Content-Length` or chunked; the head must fit in `buf`.
fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, Malformed> {
    let Some(head_end) = find(buf, b"\r\n\r\n").map(|at| at + 4) else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| Malformed)?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or(Malformed)?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| Malformed)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if chunked {
        // The body is the chunks' framing too; the bad-answer search looks through it.
        let mut at = head_end;
        loop {
            let Some(line_end) = find(&buf[at..], b"\r\n") else {
                return Ok(None);
            };
            let size = std::str::from_utf8(&buf[at..at + line_end])
                .ok()
                .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
                .ok_or(Malformed)?;
            let next = at + line_end + 2 + size + 2;
            if buf.len() < next {
                return Ok(None);
            }
            at = next;
            if size == 0 {
                return Ok(Some(Answer {
                    status,
                    body: head_end..at,
                    end: at,
                    close,
                }));
            }
        }
    }
    let length = length.unwrap_or(0);
    if buf.len() < head_end + length {
        return Ok(None);
    }
    let end = head_end + length;
    Ok(Some(Answer {
        status,
        body: head_end..end,
        end,
        close,
    }))
}

/// Sends `request` and reads its answer into `buf` (which keeps any bytes past it).
async fn exchange(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    request: &[u8],
) -> std::io::Result<Answer> {
    stream.write_all(request).await?;
    loop {
        match parse_answer(buf) {
            Ok(Some(answer)) => return Ok(answer),
            Ok(None) => {}
            Err(Malformed) => return Err(std::io::Error::other("malformed answer")),
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// One connection's loop: (re)connect, send, read the whole answer, record, until the end.
async fn connection(plan: Arc<Plan>) -> Tally {
    let mut tally = Tally::default();
    let addr = plan.authority.clone();
    let mut buf = Vec::with_capacity(64 * 1024);
    'connect: while Instant::now() < plan.until {
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(plan.timeout, TcpStream::connect(&addr)).await
        else {
            tally.connect_errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        buf.clear();
        loop {
            let Some(due) = plan.due() else {
                break 'connect;
            };
            // Latency counts from when the request was due, or, when the connection was
            // free before that, from when the timer woke it (the timer's 1 ms grain is the
            // generator's, not the server's).
            let now = Instant::now();
            if now >= plan.until {
                // Due within the run, but no connection was free before its end: never sent
                // (counted from the schedule at the end).
                break 'connect;
            }
            let started = if due > now {
                tokio::time::sleep_until(due).await;
                Instant::now()
            } else {
                due
            };
            let request = request(&plan);
            let answer =
                tokio::time::timeout(plan.timeout, exchange(&mut stream, &mut buf, request));
            let answer = match answer.await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => {
                    tally.io_errors += 1;
                    continue 'connect;
                }
                Err(_) => {
                    tally.timeouts += 1;
                    continue 'connect;
                }
            };
            let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
            tally
                .by_status
                .entry(answer.status)
                .or_default()
                .push(micros);
            let body = &buf[answer.body.clone()];
            let found = plan
                .bad
                .as_deref()
                .filter(|_| answer.status < 300)
                .and_then(|bad| find(body, bad.as_bytes()));
            if let Some(at) = found {
                tally.bad += 1;
                let end = (at + 300).min(body.len());
                tally
                    .bad_sample
                    .get_or_insert_with(|| String::from_utf8_lossy(&body[at..end]).into_owned());
            }
            buf.drain(..answer.end);
            if answer.close {
                continue 'connect;
            }
        }
    }
    tally
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn main() {
    let (plan, connections) = parse();
    let rate = plan.interval.map(|i| 1.0 / i.as_secs_f64());
    // One thread: it is cheaper per request than a work-stealing pool (no worker waking
    // another), and one core drives more load than the scenario needs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    let plan = Arc::new(plan);
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(connection(plan.clone())))
            .collect();
        let mut tallies = Vec::with_capacity(tasks.len());
        for task in tasks {
            tallies.push(task.await.expect("a connection task"));
        }
        tallies
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut total = Tally::default();
    for tally in tallies {
        for (status, mut latencies) in tally.by_status {
            total
                .by_status
                .entry(status)
                .or_default()
                .append(&mut latencies);
        }
        total.connect_errors += tally.connect_errors;
        total.io_errors += tally.io_errors;
        total.timeouts += tally.timeouts;
        total.bad += tally.bad;
        total.bad_sample = total.bad_sample.or(tally.bad_sample);
    }
    let mut by_status = serde_json::Map::new();
    let mut requests = 0;
    for (status, mut latencies) in total.by_status {
        latencies.sort_unstable();
        requests += latencies.len();
        by_status.insert(
            status.to_string(),
            serde_json::json!({
                "count": latencies.len(),
                "p50_ms": percentile(&latencies, 0.50),
                "p99_ms": percentile(&latencies, 0.99),
                "max_ms": percentile(&latencies, 1.0),
            }),
        );
    }
    // Open loop: requests that were due within the run but found no free connection by its
    // end (a server that answers slower than the rate lets them pile up).
    let unsent = plan.interval.map_or(0, |interval| {
        let due = (plan.until - plan.started).as_secs_f64() / interval.as_secs_f64();
        let tried = requests as u64 + total.connect_errors + total.io_errors + total.timeouts;
        (due.ceil() as u64).saturating_sub(tried)
    });
    let report = serde_json::json!({
        "unsent": unsent,
        "requests": requests,
        "seconds": seconds,
        "rate": rate,
        "by_status": by_status,
        "connect_errors": total.connect_errors,
        "io_errors": total.io_errors,
        "timeouts": total.timeouts,
        "bad": total.bad,
        "bad_sample": total.bad_sample.unwrap_or_default(),
    });
    println!("{report}");
}
