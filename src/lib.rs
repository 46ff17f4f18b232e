//! Manifold's core: the generic machinery every Backend-for-Frontend binary shares. It names
//! no client and no backend service: a BFF brings its own routes and its own typed clients,
//! built on `cache::CachedUpstream`.
//!
//! The modules stand on floors (`layers.txt` at the project root; CI checks that every import
//! points down or sideways), in the order a request meets them: `config`, `sharing` and
//! `outbound` (the TLS connector of every client the gateway makes) are the ground; `error` (the problem body and its codes) and `request` (what one request
//! carries) stand on it; `server` accepts (request heads bounded), `auth` verifies who is
//! calling, `observe` records the request; every backend call goes through `cache` ->
//! `upstream` (one service, called well); `edge` checks and stamps requests (limits, path
//! normalisation, CORS, request id, deadline, client IP), `ratelimit` charges them; then
//! `proxy` routes and `graphql` plumbing run; `admin` is the operator's side; `gateway`
//! assembles one BFF, `reload` and `lifecycle` keep it serving across config reloads and
//! drains, and `bff` is the shared `main`.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod bff;
pub mod cache;
pub mod compose;
pub mod config;
pub mod edge;
pub mod embed;
pub mod error;
pub mod gateway;
pub mod graphql;
pub mod lifecycle;
pub mod observe;
pub mod outbound;
pub mod proxy;
pub mod ratelimit;
pub mod reload;
pub mod request;
pub mod rest;
pub mod server;
pub mod sharing;
pub mod upstream;

/// Every binary linking the core allocates with mimalloc: with glibc's malloc, allocation was
/// a quarter of the proxy route's instructions (`bench/profile.py --callgrind`, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use async_graphql;
pub use axum;
pub use bff::{BffSpec, RunningBff};
pub use gateway::Gateway;
