//! The sample backends Manifold is demonstrated, tested and benchmarked against: nine
//! microservices and a demo identity provider, each a real axum HTTP service on its own port.
//!
//! This crate owns the *backends'* behaviour (the shapes in `README.md`, deterministic data,
//! fault injection, request accounting). It knows nothing about the gateway: the core crate's
//! tests and the demo binary start these services and point Manifold at them.
//!
//! - [`Service`] names the ten services and their demo ports.
//! - [`start`] serves one service on an address, [`Backends::start`] all ten.
//! - [`router`] builds one service's [`axum::Router`] for in-process use.

#![forbid(unsafe_code)]

mod cart;
mod catalog;
mod chaos;
mod data;
mod error;
mod fields;
mod idp;
mod memo;
mod notifications;
mod orders;
mod promotions;
mod recommendations;
mod reviews;
mod server;
mod shell;
mod shipping;
mod stats;
mod texts;
mod timer;
mod users;
mod words;

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

pub use server::{Backends, RunningService, start};

/// One of the ten sample backends. The declaration order is the order of the README table
/// and of the demo ports (9100 + index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Auth,
    Users,
    Orders,
    Catalog,
    Recommendations,
    Notifications,
    Cart,
    Reviews,
    Shipping,
    Promotions,
}

impl Service {
    /// Every service, in port order.
    pub const ALL: [Service; 10] = [
        Service::Auth,
        Service::Users,
        Service::Orders,
        Service::Catalog,
        Service::Recommendations,
        Service::Notifications,
        Service::Cart,
        Service::Reviews,
        Service::Shipping,
        Service::Promotions,
    ];

    /// The first demo port; service `i` of [`Service::ALL`] listens on `BASE_PORT + i`.
    pub const BASE_PORT: u16 = 9100;

    /// The lowercase name used in URLs, configs and logs (`"catalog"`).
    pub fn name(self) -> &'static str {
        match self {
            Service::Auth => "auth",
            Service::Users => "users",
            Service::Orders => "orders",
            Service::Catalog => "catalog",
            Service::Recommendations => "recommendations",
            Service::Notifications => "notifications",
            Service::Cart => "cart",
            Service::Reviews => "reviews",
            Service::Shipping => "shipping",
            Service::Promotions => "promotions",
        }
    }

    /// The inverse of [`Service::name`].
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The fixed demo port, 9100..=9109 in README order.
    pub fn default_port(self) -> u16 {
        Service::BASE_PORT + self.index() as u16
    }

    /// Position in [`Service::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The `Cache-Control` each service puts on its successful answers (README "Caching
    /// hints"); the IdP sends none so a gateway never caches a JWKS across a rotation.
    fn cache_control(self) -> Option<&'static str> {
        match self {
            Service::Auth => None,
            Service::Catalog | Service::Promotions => Some("public, max-age=60"),
            Service::Reviews => Some("public, max-age=30"),
            Service::Recommendations => Some("private, max-age=30"),
            Service::Users
            | Service::Orders
            | Service::Cart
            | Service::Notifications
            | Service::Shipping => Some("private, no-store"),
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Router for one service with fresh state (empty stats, no chaos, no created orders), for
/// in-process use. `self_url` is the base URL the service is reachable at; the IdP uses it as
/// its issuer. The IdP's first key is generated on the first request that needs it.
pub fn router(service: Service, self_url: &str) -> axum::Router {
    // Nobody can signal this router's shutdown; the sender lives inside its state, so
    // `hang` faults hang for as long as the router is served.
    let (shutdown, _) = watch::channel(false);
    assemble(service, self_url, None, shutdown)
}

/// The full router: the service's own endpoints inside the shared shell (health, stats,
/// chaos, echo). `idp` is a pre-warmed identity provider, when the caller made one.
fn assemble(
    service: Service,
    self_url: &str,
    idp: Option<Arc<idp::Idp>>,
    shutdown: watch::Sender<bool>,
) -> axum::Router {
    let domain = match service {
        Service::Auth => idp::routes(idp.unwrap_or_else(|| Arc::new(idp::Idp::new(self_url)))),
        Service::Users => users::routes(),
        Service::Orders => orders::routes(),
        Service::Catalog => catalog::routes(),
        Service::Recommendations => recommendations::routes(),
        Service::Notifications => notifications::routes(),
        Service::Cart => cart::routes(),
        Service::Reviews => reviews::routes(),
        Service::Shipping => shipping::routes(),
        Service::Promotions => promotions::routes(),
    };
    shell::wrap(domain, service.cache_control(), shutdown)
}
