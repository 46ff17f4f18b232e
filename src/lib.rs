//! Manifold's core: the generic machinery every Backend-for-Frontend binary shares. A request
//! meets the modules roughly in this order: `server` accepts (request heads bounded), `edge`
//! checks it (limits, one path normalisation, CORS) and stamps it (request id, deadline,
//! identity headers stripped, client IP), `auth` verifies who is calling and what it may do,
//! `ratelimit` charges it, the BFF's own routes (GraphQL via `graphql`, REST via `rest`) or a
//! `proxy` route run, and every backend call goes through `backends` (typed clients) ->
//! `upstream` (one service, called well).
//! `observe` answers health checks; `bff` is the shared `main`; `lifecycle` and `reload`
//! keep one process serving across SIGTERM drains and config reloads.

#![forbid(unsafe_code)]

pub mod auth;
pub mod backends;
pub mod bff;
pub mod cache;
pub mod config;
pub mod edge;
pub mod gateway;
pub mod graphql;
pub mod lifecycle;
pub mod observe;
pub mod proxy;
pub mod ratelimit;
pub mod reload;
pub mod rest;
pub mod server;
mod sharing;
pub mod upstream;

/// Every binary linking the core allocates with mimalloc: with glibc's malloc, allocation was
/// a quarter of the proxy route's instructions (`bench/profile.py --callgrind`, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use async_graphql;
pub use axum;
pub use bff::{BffSpec, RunningBff};
pub use gateway::Gateway;
