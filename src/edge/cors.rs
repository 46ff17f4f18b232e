//! CORS for browser clients, from `[cors]`: tower-http's `CorsLayer` answers preflights
//! itself (before routing and auth, so an `OPTIONS` needs no token) and adds the
//! `Access-Control-*` headers for listed origins only. No layer at all when no origin is
//! listed.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// The layer for `config`, or `None` when CORS is off. Entries were validated with the
/// config; any that do not parse are skipped.
pub fn layer(config: &CorsConfig) -> Option<CorsLayer> {
    if !config.enabled() {
        return None;
    }
    // Shared, not a list the layer owns: the service is cloned for every request, and a
    // cloned list is an allocation each time.
    let origins: Arc<[HeaderValue]> = config
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let methods: Vec<Method> = config
        .allowed_methods
        .iter()
        .filter_map(|m| m.parse().ok())
        .collect();
    let names = |list: &[String]| -> Vec<HeaderName> {
        list.iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                origins.contains(origin)
            }))
            .allow_methods(methods)
            .allow_headers(names(&config.allowed_headers))
            .expose_headers(names(&config.expose_headers))
            .max_age(config.max_age),
    )
}
