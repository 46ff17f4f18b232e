//! End-to-end tests: the demo backends and the BFFs started in-process on free loopback
//! ports, talked to over real HTTP. One test binary (each `tests/*.rs` file would link
//! separately, which is slow); each test starts its own stack, so they run in parallel.

mod cache;
mod compose;
mod compression;
mod config;
mod deploy;
mod docs;
mod drain;
mod graphql;
mod graphql_http;
mod harness;
mod ide;
mod keepalive;
mod mobile;
mod monitoring;
mod observe;
mod partner;
mod partner_lists;
mod proxy;
mod ratelimit;
mod redis_server;
mod reload;
mod resilience;
mod schemathesis;
mod security;
mod tls;
mod web;
