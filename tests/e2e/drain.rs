//! The drain after SIGTERM, connection by connection, in-process: `/readyz` fails at once
//! while the listener keeps serving for `server.drain_delay`; HTTP/1 keep-alive connections
//! are told to close after their current response; HTTP/2 connections get GOAWAY and end
//! cleanly once their streams finish; requests in flight complete.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use demo_services::Service;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpStream;

use manifold::config::Config;
use manifold::server::workers::Workers;

use crate::harness::Stack;

fn get(addr: SocketAddr, path: &str, token: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap()
}

fn drain_settings(config: &mut Config) {
    config.server.drain_delay = Duration::from_millis(300);
    config.server.shutdown_timeout = Duration::from_secs(5);
}

#[tokio::test]
async fn sigterm_fails_readiness_then_closes_connections_gracefully() {
    drains_gracefully(Stack::start_with(&bff_web::SPEC, drain_settings).await).await;
}

/// The same drain with the public listener on two worker threads (`thread-per-core`, each
/// with its own listener): every one stops accepting, and what is in flight on any finishes.
#[tokio::test]
async fn on_worker_threads_the_drain_is_the_same() {
    let workers = Workers::start(2).expect("worker threads");
    let stack = Stack::start_on(&bff_web::SPEC, workers.handles(), drain_settings).await;
    drains_gracefully(stack).await;
    drop(workers);
}

async fn drains_gracefully(stack: Stack) {
    let addr = stack.bff.addr();
    let token = stack.token("42", "web", &[]).await;

    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut h2, h2_conn) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
    let h2_conn = tokio::spawn(h2_conn);
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut h1, h1_conn) = http1::handshake(io).await.unwrap();
    let h1_conn = tokio::spawn(h1_conn);
    let before = h1
        .send_request(get(addr, "/healthz", &token))
        .await
        .unwrap();
    assert!(before.headers().get("connection").is_none());
    before.into_body().collect().await.unwrap();

    // A request in flight over HTTP/2 when the signal comes.
    stack.reset_stats().await;
    stack
        .chaos(Service::Users, json!({ "latency_ms": 800 }))
        .await;
    let slow = h2.send_request(get(addr, "/api/users/42", &token));
    let slow = tokio::spawn(async move {
        let response = slow.await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok::<_, hyper::Error>(status)
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while stack.requests(Service::Users).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let Stack { bff, backends, .. } = stack;
    let signalled = Instant::now();
    let shutdown = tokio::spawn(bff.shutdown());

    // During the drain delay: not ready, but still served, and HTTP/1 is asked to close.
    h2.ready().await.unwrap();
    let readyz = h2.send_request(get(addr, "/readyz", &token)).await.unwrap();
    assert_eq!(readyz.status(), StatusCode::SERVICE_UNAVAILABLE);
    let during = h1
        .send_request(get(addr, "/healthz", &token))
        .await
        .unwrap();
    assert_eq!(during.status(), StatusCode::OK);
    assert_eq!(during.headers()["connection"], "close");
    during.into_body().collect().await.unwrap();
    assert!(
        signalled.elapsed() < Duration::from_millis(300),
        "{:?}",
        signalled.elapsed()
    );
    // The HTTP/1 connection ends after that response.
    tokio::time::timeout(Duration::from_secs(2), h1_conn)
        .await
        .expect("HTTP/1 connection closed")
        .unwrap()
        .unwrap();

    // The in-flight stream completes; the HTTP/2 connection then ends cleanly (GOAWAY,
    // not a reset), and the process-level shutdown finishes.
    assert_eq!(slow.await.unwrap().unwrap(), StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(2), h2_conn)
        .await
        .expect("HTTP/2 connection closed")
        .unwrap()
        .expect("closed gracefully");
    shutdown.await.unwrap().expect("clean shutdown");
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    drop(backends);
}
