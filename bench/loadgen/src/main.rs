//! A closed-loop HTTP/1.1 load generator for the overload scenario (`bench/overload.py`):
//! `N` connections, each sending its next request when the last is answered, for a fixed
//! time. Unlike wrk it keeps latencies per status, so the scenario can tell how fast excess
//! load was refused (503) apart from how fast admitted requests were served (200).
//!
//! ```text
//! loadgen URL --connections N --duration SECONDS [--method POST] [--body-file F]
//!         [--header "name: value"]... [--tokens-file F] [--bad TEXT] [--timeout SECONDS]
//! ```
//! Prints one JSON line: requests, seconds, per status `{count, p50_ms, p99_ms, max_ms}`,
//! errors by kind, answers that were 2xx but held `--bad`, and one such answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

struct Plan {
    uri: Uri,
    authority: String,
    method: Method,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    tokens: Vec<HeaderValue>,
    next_token: AtomicUsize,
    bad: Option<String>,
    timeout: Duration,
    until: Instant,
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
        "loadgen: {problem}\nusage: loadgen URL --connections N --duration S [--method M] [--body-file F] [--header 'k: v']... [--tokens-file F] [--bad TEXT] [--timeout S]"
    );
    std::process::exit(64);
}

fn parse() -> (Plan, usize) {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let (mut connections, mut duration, mut timeout) = (64usize, 10u64, 5u64);
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
    let plan = Plan {
        uri,
        authority,
        method,
        body,
        headers,
        tokens,
        next_token: AtomicUsize::new(0),
        bad,
        timeout: Duration::from_secs(timeout),
        until: Instant::now() + Duration::from_secs(duration),
    };
    (plan, connections)
}

fn request(plan: &Plan) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(plan.method.clone())
        .uri(plan.uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, plan.authority.as_str())
        .body(Full::new(plan.body.clone()))
        .expect("a valid request");
    let headers = request.headers_mut();
    for (name, value) in &plan.headers {
        headers.insert(name, value.clone());
    }
    if !plan.tokens.is_empty() {
        let i = plan.next_token.fetch_add(1, Ordering::Relaxed) % plan.tokens.len();
        headers.insert(http::header::AUTHORIZATION, plan.tokens[i].clone());
    }
    request
}

/// One connection's loop: (re)connect, send, read the whole answer, record, until the end.
async fn connection(plan: Arc<Plan>) -> Tally {
    let mut tally = Tally::default();
    let addr = plan.authority.clone();
    'connect: while Instant::now() < plan.until {
        let Ok(Ok(stream)) = tokio::time::timeout(plan.timeout, TcpStream::connect(&addr)).await
        else {
            tally.connect_errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            tally.connect_errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < plan.until {
            if sender.ready().await.is_err() {
                continue 'connect;
            }
            let started = Instant::now();
            let exchange = async {
                let response = sender.send_request(request(&plan)).await?;
                let status = response.status().as_u16();
                let body = response.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            };
            match tokio::time::timeout(plan.timeout, exchange).await {
                Ok(Ok((status, body))) => {
                    let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                    tally.by_status.entry(status).or_default().push(micros);
                    let found = plan
                        .bad
                        .as_deref()
                        .filter(|_| status < 300)
                        .and_then(|bad| find(&body, bad.as_bytes()));
                    if let Some(at) = found {
                        tally.bad += 1;
                        let end = (at + 300).min(body.len());
                        tally.bad_sample.get_or_insert_with(|| {
                            String::from_utf8_lossy(&body[at..end]).into_owned()
                        });
                    }
                }
                Ok(Err(_)) => {
                    tally.io_errors += 1;
                    continue 'connect;
                }
                Err(_) => {
                    tally.timeouts += 1;
                    continue 'connect;
                }
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
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
    let report = serde_json::json!({
        "requests": requests,
        "seconds": seconds,
        "by_status": by_status,
        "connect_errors": total.connect_errors,
        "io_errors": total.io_errors,
        "timeouts": total.timeouts,
        "bad": total.bad,
        "bad_sample": total.bad_sample.unwrap_or_default(),
    });
    println!("{report}");
}
