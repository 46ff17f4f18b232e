//! CORS for browser clients, from `[cors]`: tower-http's `CorsLayer` answers preflights
//! itself (before routing and auth, so an `OPTIONS` needs no token) and adds the
//! `Access-Control-*` headers for listed origins only. No layer at all when no origin is
//! listed. A request with no `Origin` (any client but a browser's cross-origin call) passes
//! by the layer ([`Gate`]) and gets the headers it would have added without one.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use futures_util::future::BoxFuture;
use http::{HeaderName, HeaderValue, Method, Request, header};
use tower::util::Either;
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use crate::config::CorsConfig;

/// The router behind `[cors]`: tower-http's layer for preflights and requests that name an
/// `Origin`; for the rest (every non-browser client), the router itself and the two headers
/// the layer adds to a response whatever the origin: `Vary` (appended) and the exposed
/// headers. The layer builds and merges those for every request: 7% of a proxied request's
/// instructions (`bench/profile.py proxy-plain --callgrind`).
#[derive(Clone)]
pub struct Gate {
    /// Shared: the router clones its services for every request, and a layer's clone is
    /// an allocation; only a request with an `Origin` takes a copy.
    cors: Arc<Cors<Router>>,
    plain: Router,
    vary: HeaderValue,
    expose: Option<HeaderValue>,
}

impl Gate {
    /// `router` behind `config`'s CORS, or `router` alone when CORS is off.
    pub fn wrap(config: &CorsConfig, router: Router) -> Either<Gate, Router> {
        let Some(layer) = layer(config) else {
            return Either::Right(router);
        };
        // As the layer writes them: the names joined by commas (none: no header).
        let expose = names(&config.expose_headers)
            .iter()
            .map(HeaderName::as_str)
            .collect::<Vec<_>>()
            .join(",");
        Either::Left(Gate {
            cors: Arc::new(layer.layer(router.clone())),
            plain: router,
            // tower-http's default `Vary` for a CORS layer, the same bytes it writes.
            vary: HeaderValue::from_static(
                "origin, access-control-request-method, access-control-request-headers",
            ),
            expose: HeaderValue::from_str(&expose)
                .ok()
                .filter(|v| !v.is_empty()),
        })
    }
}

impl Service<Request<Body>> for Gate {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A `Router` is always ready (axum's docs): neither copy needs polling.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.serve(request)
    }
}

impl Gate {
    /// `call` through a shared reference (the request's future takes what it needs).
    pub fn serve(
        &self,
        request: Request<Body>,
    ) -> BoxFuture<'static, Result<Response, Infallible>> {
        if request.method() == Method::OPTIONS || request.headers().contains_key(header::ORIGIN) {
            return Box::pin(Cors::clone(&self.cors).call(request));
        }
        let (vary, expose) = (self.vary.clone(), self.expose.clone());
        let answer = self.plain.clone().call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            let headers = response.headers_mut();
            headers.append(header::VARY, vary);
            if let Some(expose) = expose {
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
            }
            Ok(response)
        })
    }
}

fn names(list: &[String]) -> Vec<HeaderName> {
    list.iter()
        .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .collect()
}

/// The layer for `config`, or `None` when CORS is off. Entries were validated with the
/// config; any that do not parse are skipped.
fn layer(config: &CorsConfig) -> Option<CorsLayer> {
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

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    const ALLOWED: &str = "https://shop.example";

    fn config() -> CorsConfig {
        CorsConfig {
            allowed_origins: vec![ALLOWED.into()],
            ..CorsConfig::default()
        }
    }

    /// A route whose answer already varies by something else: CORS's `Vary` adds to it.
    fn router() -> Router {
        Router::new().route(
            "/thing",
            get(|| async { ([(header::VARY, "accept-encoding")], "thing") }),
        )
    }

    fn request(method: Method, origin: Option<&str>) -> Request<Body> {
        let mut request = Request::builder().method(method).uri("/thing");
        if let Some(origin) = origin {
            request = request
                .header(header::ORIGIN, origin)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET");
        }
        request.body(Body::empty()).unwrap()
    }

    /// Status and every header, in order, through the gate and through tower-http's layer
    /// alone.
    async fn both(method: Method, origin: Option<&str>) -> [(u16, Vec<(String, String)>); 2] {
        let Either::Left(gate) = Gate::wrap(&config(), router()) else {
            panic!("CORS is configured");
        };
        let layer = layer(&config()).unwrap().layer(router());
        let seen = |response: Response| {
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            (response.status().as_u16(), headers)
        };
        [
            seen(gate.oneshot(request(method.clone(), origin)).await.unwrap()),
            seen(layer.oneshot(request(method, origin)).await.unwrap()),
        ]
    }

    #[tokio::test]
    async fn a_request_without_origin_passes_by_the_layer_with_the_headers_it_would_add() {
        let [gate, layer] = both(Method::GET, None).await;
        assert_eq!(gate, layer);
        let (status, headers) = gate;
        assert_eq!(status, 200);
        let vary: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n == "vary")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            vary,
            [
                "accept-encoding",
                "origin, access-control-request-method, access-control-request-headers"
            ]
        );
        assert!(
            headers
                .iter()
                .any(|(n, v)| n == "access-control-expose-headers" && v.contains("x-request-id"))
        );
        assert!(
            !headers
                .iter()
                .any(|(n, _)| n == "access-control-allow-origin")
        );
    }

    #[tokio::test]
    async fn origins_and_preflights_still_go_through_the_layer() {
        for (method, origin) in [
            (Method::GET, Some(ALLOWED)),
            (Method::GET, Some("https://evil.example")),
            (Method::OPTIONS, Some(ALLOWED)),
            // An `OPTIONS` without `Origin` is still the layer's (the route has no OPTIONS).
            (Method::OPTIONS, None),
        ] {
            let [gate, layer] = both(method.clone(), origin).await;
            assert_eq!(gate, layer, "{method} {origin:?}");
        }
        let [(_, allowed), _] = both(Method::GET, Some(ALLOWED)).await;
        assert!(
            allowed
                .iter()
                .any(|(n, v)| n == "access-control-allow-origin" && v == ALLOWED)
        );
        let [(status, _), _] = both(Method::OPTIONS, None).await;
        assert_eq!(status, 200, "a preflight answered by the layer");
    }
}
