//! The assembled gateway of one BFF: its config, upstream clients, authenticator and
//! readiness, and the one function that stacks the layers every request passes through.
//! The BFF contributes only its own routes.

mod drain;
mod health;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use futures_util::future::Either;

use crate::auth::{AuthGuard, Authenticator, ClientHeaderStrip};
use crate::cache::{CachedUpstream, EntityCache};
use crate::config::{AuthPolicy, Config};
use crate::edge::admission::{self, Admission};
use crate::edge::client_ip::{self, TrustedProxies};
use crate::edge::compress::Compression;
use crate::edge::hygiene::{BeforeRouting, HygienePolicy};
use crate::edge::{self, EdgePolicy};
use crate::lifecycle::Lifecycle;
use crate::observe::exposition::Registry;
use crate::ratelimit::LimitFamilies;
use crate::ratelimit::{Enforcement, Operations, QuotaUse, RateLimiter};
use crate::server::ConnectionStats;
use crate::server::around::{Around, AroundLayer, Next, Rest};
use crate::upstream::{Upstream, UpstreamFamilies};
use crate::{compose, observe, proxy, rest};

/// What the one per-request layer after routing needs.
#[derive(Clone)]
struct Front {
    edge: EdgePolicy,
    /// `None` when `[compression] enabled = false`.
    compression: Option<Arc<Compression>>,
    proxies: TrustedProxies,
    gateway: Gateway,
    /// The proxy routes: what serves a request the router matched to no route.
    routes: proxy::Table<Guard>,
}

/// Every routed request, in one layer (each layer is a boxed future and a moved request):
/// the edge (deadline, identity headers stripped, request id, trace context), then the
/// client address (known before auth and the limits run), then `observe::track` around
/// admission, auth, limits and the handler, so their refusals are counted and logged too, with the
/// request body guarded so that a refusal does not cost the client its connection. The
/// handler is the route's, or, for a path the router matched to no route, the proxy route
/// whose prefix covers it (`proxy::Table`), else the router's fallback.
impl Around for Front {
    async fn around<S: Rest>(&self, mut request: Request, next: Next<S>) -> Response {
        let id = edge::admit(&self.edge, &mut request);
        let encoding = self
            .compression
            .as_ref()
            .and_then(|c| Some((c, c.negotiate(request.headers(), request.method())?)));
        client_ip::attach(&self.proxies, &mut request);
        // A path no route matched is a proxy route's when a prefix covers it.
        let proxied = match request.extensions().get::<MatchedPath>() {
            Some(_) => None,
            None => self.routes.find(request.uri().path()),
        };
        let route = proxied.as_ref().map(proxy::Proxied::label);
        // A body left unread by a refusal is read in the background: the connection stays
        // usable for the client's next request (or the answer says it closes).
        let (request, body) = drain::guard(request);
        // Admission inside `track`: a shed request is counted and logged too.
        let admission = self.gateway.0.admission.as_deref();
        let observer = self.gateway.observer();
        let mut response = observe::track(observer, request, route, |request| {
            admission::serve(admission, request, |request| match proxied {
                // Boxed: the exchange's future is large, and inline it would be copied with
                // this layer's own each time that moves.
                Some(proxied) => Either::Left(Box::pin(proxied.serve(request))),
                None => Either::Right(next.run(request)),
            })
        })
        .await;
        if let Some((compression, encoding)) = encoding {
            response = compression.apply(encoding, response);
        }
        drain::close_if_unread(&mut response, body);
        edge::echo_id(&mut response, &id);
        response
    }
}

/// What runs between routing and a protected route's handler, as one layer (each layer is a
/// boxed route, a boxed future and a moved request): authenticate (the limits key on the
/// identity), then charge the rate limits, then the handler.
#[derive(Clone)]
struct Guard {
    /// `None` for a route open to all, with no scope to hold.
    auth: Option<AuthGuard>,
    /// `None` when no rate-limit rule and no quota is configured.
    limits: Option<Enforcement>,
}

impl Around for Guard {
    async fn around<S: Rest>(&self, mut request: Request, next: Next<S>) -> Response {
        if let Some(auth) = &self.auth
            && let Err(refusal) = auth.admit(&mut request).await
        {
            return refusal;
        }
        match &self.limits {
            Some(limits) => limits.around(request, next).await,
            None => next.run(request).await,
        }
    }
}

/// Shared state of one BFF instance. Cheap to clone.
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

struct Inner {
    config: Config,
    upstreams: BTreeMap<String, CachedUpstream>,
    /// `None` when `[cache] enabled = false`.
    cache: Option<EntityCache>,
    authenticator: Arc<Authenticator>,
    /// `None` when no rate-limit rule and no quota is configured.
    rate_limiter: Option<Arc<RateLimiter>>,
    /// `None` when `[admission] enabled = false`.
    admission: Option<Arc<Admission>>,
    /// Shared with every generation a config reload builds.
    lifecycle: Arc<Lifecycle>,
    /// The public listener's connection counters; shared with every generation too.
    connections: Arc<ConnectionStats>,
    /// What `/metrics` renders: every component's families.
    metrics: Registry,
    observer: Arc<observe::Observer>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot set up the rate-limit store: {0}")]
    RateLimitStore(#[from] redis::RedisError),
    #[error("cannot set up the shared cache tier: {0}")]
    CacheStore(redis::RedisError),
    /// A TLS file named by the config no longer loads (validation read it earlier).
    #[error("{key}: {source}")]
    Tls {
        key: String,
        source: crate::config::ClientTlsError,
    },
}

impl Gateway {
    /// Builds clients for every upstream and starts loading the JWKS. Must run inside a
    /// tokio runtime. The config must already be validated.
    pub fn new(config: Config) -> Result<Self, BuildError> {
        Self::build(config, Arc::default(), None)
    }

    /// The next generation after a config reload: a new gateway for `config` that shares
    /// this one's lifecycle (draining flag, reload status) and keeps the state of what did
    /// not change — the cache with the same settings keeps its entries; an upstream with the
    /// same config (and cache) keeps its pool, breaker, health and retry budget; the rate
    /// limiter with the same rules keeps its counters, and a new one the local quota counts.
    pub fn next_generation(&self, config: Config) -> Result<Self, BuildError> {
        Self::build(config, self.0.lifecycle.clone(), Some(self))
    }

    fn build(
        config: Config,
        lifecycle: Arc<Lifecycle>,
        previous: Option<&Gateway>,
    ) -> Result<Self, BuildError> {
        let same_cache = previous.is_some_and(|p| p.0.config.cache == config.cache);
        let cache = match previous {
            Some(p) if same_cache => p.0.cache.clone(),
            _ if config.cache.enabled => {
                Some(EntityCache::new(&config.cache).map_err(BuildError::CacheStore)?)
            }
            _ => None,
        };
        let mut upstreams = BTreeMap::new();
        for (name, cfg) in &config.upstreams {
            let kept = previous
                .filter(|p| {
                    same_cache && p.0.config.upstreams.get(name).is_some_and(|old| old == cfg)
                })
                .and_then(|p| p.0.upstreams.get(name).cloned());
            let upstream = match kept {
                Some(upstream) => upstream,
                None => {
                    let cached = cache.as_ref().and_then(|cache| {
                        let policy = config.cache.upstreams.get(name)?;
                        Some(cache.for_upstream(policy))
                    });
                    let upstream = Upstream::new(name, cfg).map_err(|source| BuildError::Tls {
                        key: format!("upstreams.{name}.tls.{}", source.key()),
                        source,
                    })?;
                    CachedUpstream::new(upstream, cached)
                }
            };
            upstreams.insert(name.clone(), upstream);
        }
        let authenticator =
            Arc::new(
                Authenticator::new(&config.auth).map_err(|source| BuildError::Tls {
                    key: format!("auth.jwt.{}", source.key()),
                    source,
                })?,
            );
        // The adaptive limit keeps what it learnt across a reload that does not change it.
        let admission = match previous {
            Some(p) if p.0.config.admission == config.admission => p.0.admission.clone(),
            _ => config.admission.enabled.then(|| {
                let admission = Arc::new(Admission::new(&config.admission));
                admission.watch();
                admission
            }),
        };
        let rate_limiter = match previous {
            Some(p) if p.0.config.rate_limit == config.rate_limit => p.0.rate_limiter.clone(),
            // New limits, but the quotas used today stay used (counted locally).
            _ => RateLimiter::new(
                &config.rate_limit,
                previous.and_then(|p| p.0.rate_limiter.as_deref()),
            )?,
        };
        // Metrics and the span exporter outlive a reload unless their own settings changed.
        let observer = match previous {
            Some(p) if p.0.config.log == config.log && p.0.config.tracing == config.tracing => {
                p.0.observer.clone()
            }
            _ => Arc::new(
                observe::Observer::new(&config).map_err(|source| BuildError::Tls {
                    key: format!("tracing.{}", source.key()),
                    source,
                })?,
            ),
        };
        // Each component writes its own metric families; the page lists them in this order.
        let mut metrics = Registry::default();
        metrics.register(Arc::new(observe::process::ProcessFamilies));
        metrics.register(observer.clone());
        let upstream_list = upstreams.values().map(|u| u.upstream().clone());
        metrics.register(Arc::new(UpstreamFamilies(upstream_list.collect())));
        metrics.register(Arc::new(LimitFamilies(rate_limiter.clone())));
        if let Some(admission) = &admission {
            metrics.register(admission.clone());
        }
        if let Some(cache) = &cache {
            metrics.register(Arc::new(cache.clone()));
        }
        metrics.register(lifecycle.clone());
        let connections = previous.map_or_else(Arc::default, |p| p.0.connections.clone());
        metrics.register(connections.clone());
        Ok(Gateway(Arc::new(Inner {
            config,
            upstreams,
            cache,
            authenticator,
            rate_limiter,
            admission,
            lifecycle,
            connections,
            observer,
            metrics,
        })))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The counters the public listener keeps about its connections.
    pub fn connection_stats(&self) -> &Arc<ConnectionStats> {
        &self.0.connections
    }

    /// The metric families of every component, for `/metrics`.
    pub fn metrics(&self) -> &Registry {
        &self.0.metrics
    }

    /// The entity cache, when enabled (its counters feed metrics and tests).
    pub fn cache(&self) -> Option<&EntityCache> {
        self.0.cache.as_ref()
    }

    /// Every configured upstream by name, behind the cache where `[cache]` caches it: what a
    /// BFF's typed clients are built on (their stats feed metrics and tests).
    pub fn upstreams(&self) -> &BTreeMap<String, CachedUpstream> {
        &self.0.upstreams
    }

    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.0.authenticator
    }

    pub fn rate_limiter(&self) -> Option<&Arc<RateLimiter>> {
        self.0.rate_limiter.as_ref()
    }

    /// Request metrics, recent errors, the span exporter.
    pub fn observer(&self) -> &Arc<observe::Observer> {
        &self.0.observer
    }

    /// The 503 for `request` when admission control would shed it anyway, answered before
    /// the app (see `edge::admission`).
    pub fn refuse_at_once<B>(&self, request: &http::Request<B>) -> Option<Response> {
        self.0.admission.as_ref()?.refuse_at_once(request)
    }

    /// Ready for traffic: keys loaded and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.0.authenticator.is_ready() && !self.is_draining()
    }

    pub fn is_draining(&self) -> bool {
        self.0.lifecycle.is_draining()
    }

    /// Marks the instance as shutting down: `/readyz` fails from now on.
    pub fn start_draining(&self) {
        self.0.lifecycle.start_draining();
    }

    /// Draining flag and config reload status, shared by every generation.
    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.0.lifecycle
    }

    /// Puts every route of `router` behind authentication under `policy` and the rate
    /// limits and quotas: 401 or 429 before any handler runs, and an `Arc<Identity>`
    /// extension for the handlers.
    pub fn protect(&self, router: Router<Gateway>, policy: AuthPolicy) -> Router<Gateway> {
        self.guard(router, policy, &[], QuotaUse::Spend, Operations::NotCharged)
    }

    /// `protect` for the GraphQL endpoint, which charges each operation's estimated cost
    /// (`ratelimit::OperationCharge`) to the rules and quotas priced by operation.
    pub(crate) fn protect_operations(
        &self,
        router: Router<Gateway>,
        policy: AuthPolicy,
    ) -> Router<Gateway> {
        self.guard(router, policy, &[], QuotaUse::Spend, Operations::Charged)
    }

    /// `protect` for routes that tell a caller its usage (`ratelimit::usage`): the rules
    /// charge their requests, the quotas are only read, so asking does not use them up.
    pub fn protect_reading_quotas(
        &self,
        router: Router<Gateway>,
        policy: AuthPolicy,
    ) -> Router<Gateway> {
        self.guard(router, policy, &[], QuotaUse::Read, Operations::NotCharged)
    }

    /// `protect` for a router of any state (the proxy routes carry their own), with the
    /// scopes the identity must hold, what its requests do to quotas, and whether its
    /// handler charges operations.
    fn guard<S: Clone + Send + Sync + 'static>(
        &self,
        router: Router<S>,
        policy: AuthPolicy,
        scopes: &[String],
        quotas: QuotaUse,
        operations: Operations,
    ) -> Router<S> {
        match self.guard_of(policy, scopes, quotas, operations) {
            Some(guard) => router.route_layer(AroundLayer::new(guard)),
            None => router, // nothing to check: no layer to pass through
        }
    }

    /// What `guard` puts in front of a route; `None` when there is nothing to check.
    fn guard_of(
        &self,
        policy: AuthPolicy,
        scopes: &[String],
        quotas: QuotaUse,
        operations: Operations,
    ) -> Option<Guard> {
        let auth = (policy != AuthPolicy::None || !scopes.is_empty()).then(|| {
            let mut auth = AuthGuard::new(self.0.authenticator.clone(), policy);
            auth.scopes = scopes.to_vec().into();
            auth
        });
        let limits = self.0.rate_limiter.as_ref().map(|limiter| Enforcement {
            limiter: limiter.clone(),
            quotas,
            operations,
        });
        (auth.is_some() || limits.is_some()).then_some(Guard { auth, limits })
    }

    /// `into_app` as a `Router`.
    pub fn into_router(self, bff: Router<Gateway>) -> Router {
        Router::new().fallback_service(self.into_app(bff))
    }

    /// The complete app: the BFF's routes, the configured proxy routes, health endpoints, and
    /// the edge layers around all of them. A service of its own, not a `Router`: one router
    /// more around it would cost every request a routing step and a boxed future.
    pub fn into_app(self, bff: Router<Gateway>) -> BeforeRouting {
        let config = &self.0.config;
        let body_limit =
            usize::try_from(config.server.max_request_body.bytes()).unwrap_or(usize::MAX);
        let edge_policy = EdgePolicy {
            request_timeout: config.server.request_timeout,
            strip: Arc::new(ClientHeaderStrip::new(&config.auth.strip_headers)),
            sample_ratio: config.tracing.sample_ratio,
        };
        let hygiene_policy = HygienePolicy::new(config);
        let deprecations = rest::Deprecations::new(&config.deprecations);
        // Proxy routes and declared endpoints are guarded alike: their requests spend quotas,
        // and charge no operations.
        let (spend, uncharged) = (QuotaUse::Spend, Operations::NotCharged);
        let proxied = proxy::Table::new(
            config,
            &self.0.upstreams,
            deprecations.as_ref(),
            |policy, scopes| self.guard_of(policy, scopes, spend, uncharged),
        );
        let front = Front {
            edge: edge_policy,
            compression: Compression::new(&config.compression).map(Arc::new),
            proxies: TrustedProxies::new(&config.client_ip),
            gateway: self.clone(),
            routes: proxied,
        };
        let guard = |router: Router, policy: AuthPolicy, scopes: &[String]| {
            self.guard(router, policy, scopes, spend, uncharged)
        };
        let declared = compose::routes(config, &self.0.upstreams, guard);
        let own = bff
            .merge(health::routes())
            // Bodies read whole (GraphQL, REST) are capped here; proxied ones as they stream by.
            .layer(DefaultBodyLimit::max(body_limit))
            .with_state(self.clone());
        let mut routed = own.merge(declared);
        if let Some(deprecations) = deprecations {
            routed = routed.layer(from_fn_with_state(deprecations, rest::deprecation_headers));
        }
        let routed = routed.layer(AroundLayer::new(front));
        // What must run BEFORE routing wraps the whole router (a `Router::layer` runs after
        // it): hygiene first (limits, the one path normalisation), then CORS, whose preflight
        // answers need no token.
        BeforeRouting::new(hygiene_policy, &config.cors, routed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(redis_url: &str) -> Config {
        let text =
            format!("[server]\nlisten = \"127.0.0.1:0\"\n[cache]\nredis_url = \"{redis_url}\"\n");
        Config::parse(&text, "test", std::iter::empty(), &[]).expect("valid test config")
    }

    /// The cache a gateway holds, by identity (a kept cache is the same allocation).
    fn same_cache(a: &Gateway, b: &Gateway) -> bool {
        let metrics = |g: &Gateway| g.cache().expect("cache enabled").metrics() as *const _;
        std::ptr::eq(metrics(a), metrics(b))
    }

    #[tokio::test]
    async fn a_reload_that_only_moves_redis_builds_a_new_cache() {
        // Redis connections are lazy: nothing listens on these ports, nothing is dialled.
        let first = Gateway::new(config("redis://127.0.0.1:1/0")).expect("gateway");
        let unchanged = first
            .next_generation(config("redis://127.0.0.1:1/0"))
            .expect("gateway");
        assert!(
            same_cache(&first, &unchanged),
            "an unchanged [cache] is kept"
        );
        let moved = first
            .next_generation(config("redis://127.0.0.1:2/0"))
            .expect("gateway");
        assert!(
            !same_cache(&first, &moved),
            "a new redis_url needs a new cache (and connection)"
        );
        // A new password is a new URL too, though both print as `:<redacted>@`.
        let with_password = moved
            .next_generation(config("redis://:old-password@127.0.0.1:2/0"))
            .expect("gateway");
        let new_password = with_password
            .next_generation(config("redis://:new-password@127.0.0.1:2/0"))
            .expect("gateway");
        assert!(!same_cache(&with_password, &new_password));
    }
}
