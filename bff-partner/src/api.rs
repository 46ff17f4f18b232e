//! The route table of the partner API: ONE list that both mounts the routes (`router`) and is
//! rendered into the OpenAPI document (`crate::openapi`). A route's scope, parameters and
//! failure statuses are written here once; the router enforces the scope and the document
//! states it. Handlers themselves live in `crate::handlers`.

use backends::{Backends, CATEGORIES};
use manifold::Gateway;
use manifold::auth::require_route_scope;
use manifold::axum::middleware::{from_fn, from_fn_with_state};
use manifold::axum::routing::{MethodFilter, MethodRouter, on};
use manifold::axum::{Extension, Router};
use manifold::config::AuthPolicy;
use manifold::rest::{FieldSelection, KnownQuery, Page, refuse_unknown_query, select_fields};

use crate::handlers;
use crate::lists;
use crate::model::{OpenApiDocument, Order, OrderSummary, Product, ProductBatch, Schema};
use crate::usage::{USAGE_FIELDS, Usage};

/// Items per page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;
/// Longest free-text parameter (`q`), in characters.
pub const MAX_TEXT: usize = 200;

pub const PRODUCTS_READ: &str = "products:read";
pub const ORDERS_READ: &str = "orders:read";

/// One operation of the partner API.
pub struct Route {
    pub verb: Verb,
    /// Axum and OpenAPI share the `{param}` template syntax.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    /// Who may call it: anyone, any valid key, or a key holding a scope.
    pub access: Access,
    pub params: &'static [Param],
    pub ok: Success,
    /// Failures besides 401/403, which every keyed route has.
    pub failures: &'static [Failure],
    /// Builds the endpoint for the verb above.
    pub mount: fn(MethodFilter) -> MethodRouter<Gateway>,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key (the OpenAPI document).
    Public,
    /// Any valid key, whatever its scopes: routes about the key itself (its usage). They are
    /// rate-limited like any other, and read the key's quotas without spending them.
    AnyKey,
    /// A key that holds this scope.
    Scope(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
        }
    }

    /// The operation key in an OpenAPI path item.
    pub fn key(self) -> &'static str {
        match self {
            Verb::Get => "get",
        }
    }
}

pub struct Param {
    pub name: &'static str,
    pub location: Location,
    pub description: &'static str,
    /// Whether a request must carry it (a path parameter always does).
    pub required: bool,
    pub kind: ParamKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// One id, as `crate::ids` checks it.
    Id,
    /// Comma-separated ids, 1 to `ids::MAX_BATCH` of them, repeats counted.
    IdList,
    /// Items per page: an integer from 1 to `MAX_PAGE`, `DEFAULT_PAGE` when absent.
    Limit,
    /// The opaque cursor of a page's `next` link.
    Cursor,
    /// Free text of at most `MAX_TEXT` characters.
    Text,
    /// One of a fixed set of values.
    OneOf(&'static [&'static str]),
    /// `fields=a,b`: some top-level fields of the resource.
    Fields(Selection),
}

/// What `?fields=` selects among on one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The resource's top-level fields (each item's, for a page or a batch).
    pub fields: &'static [&'static str],
    /// Whether they are the fields of each element of `items`; the envelope's other keys
    /// (`next`, `missing`) always stay.
    pub of_items: bool,
    /// Fields kept whatever the selection: what says the answer is partial.
    pub always: &'static [&'static str],
}

impl Selection {
    const fn resource(fields: &'static [&'static str]) -> Self {
        Selection {
            fields,
            of_items: false,
            always: &[],
        }
    }

    const fn items(fields: &'static [&'static str]) -> Self {
        Selection {
            fields,
            of_items: true,
            always: &[],
        }
    }

    /// The core's layer for it.
    fn layer(self) -> FieldSelection {
        if self.of_items {
            FieldSelection::items(self.fields.iter().copied())
        } else {
            FieldSelection::resource(self.fields.iter().copied(), self.always.iter().copied())
        }
    }
}

/// The 200 response: a description and the component schema of its JSON body.
pub struct Success {
    pub description: &'static str,
    pub schema: &'static str,
}

/// The error statuses a route documents; each has a problem+json response component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    UriTooLong,
    TooManyRequests,
    HeaderFieldsTooLarge,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
}

/// Failures of a lookup by id: a malformed id, an unknown one, a failed backend.
const ID_LOOKUP_FAILURES: &[Failure] = &[
    Failure::BadRequest,
    Failure::NotFound,
    Failure::BadGateway,
    Failure::ServiceUnavailable,
    Failure::GatewayTimeout,
];

/// Failures of a list that is not anyone's: bad parameters, a failed backend.
const LIST_FAILURES: &[Failure] = &[
    Failure::BadRequest,
    Failure::BadGateway,
    Failure::ServiceUnavailable,
    Failure::GatewayTimeout,
];

const fn fields(selection: Selection) -> Param {
    Param {
        name: "fields",
        location: Location::Query,
        description: "The fields to answer with, comma-separated (of each item, for a list); \
                      the others are left out. Absent: all of them.",
        required: false,
        kind: ParamKind::Fields(selection),
    }
}

const LIMIT: Param = Param {
    name: "limit",
    location: Location::Query,
    description: "Items per page, at most 100.",
    required: false,
    kind: ParamKind::Limit,
};

const CURSOR: Param = Param {
    name: "cursor",
    location: Location::Query,
    description: "Where the page starts: only ever the `cursor` of a `next` link this API \
                  gave. Absent: the first page.",
    required: false,
    kind: ParamKind::Cursor,
};

pub static ROUTES: &[Route] = &[
    Route {
        verb: Verb::Get,
        path: "/v1/products/{id}",
        operation_id: "getProduct",
        tag: "products",
        summary: "Get a product",
        description: "One product of the catalog: identity, copy, price and two image URLs.",
        access: Access::Scope(PRODUCTS_READ),
        params: &[
            Param {
                name: "id",
                location: Location::Path,
                description: "Product id, e.g. `p42`.",
                required: true,
                kind: ParamKind::Id,
            },
            fields(Selection::resource(Product::FIELDS)),
        ],
        ok: Success {
            description: "The product.",
            schema: Product::NAME,
        },
        failures: ID_LOOKUP_FAILURES,
        mount: |verb| on(verb, handlers::product),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/products",
        operation_id: "getProducts",
        tag: "products",
        summary: "Get several products at once",
        description: "Up to 100 products by id, in the order asked, in one round trip. Ids the \
                      catalog does not know are listed in `missing` instead of failing the batch; \
                      repeated ids are answered once (and count towards the 100).",
        access: Access::Scope(PRODUCTS_READ),
        params: &[
            Param {
                name: "ids",
                location: Location::Query,
                description: "Comma-separated product ids, e.g. `p1,p2`: at least 1, at most \
                              100, repeats counted. Nothing is trimmed: `p1, p2` is refused.",
                required: true,
                kind: ParamKind::IdList,
            },
            fields(Selection::items(Product::FIELDS)),
        ],
        ok: Success {
            description: "The products found, and the ids not found.",
            schema: ProductBatch::NAME,
        },
        failures: LIST_FAILURES,
        mount: |verb| on(verb, handlers::products),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/search/products",
        operation_id: "searchProducts",
        tag: "products",
        summary: "Search the catalog",
        description: "Products in id order, a page at a time: those whose title holds every \
                      word of `q` (case-insensitive), in `category`. Without either, the whole \
                      catalog.",
        access: Access::Scope(PRODUCTS_READ),
        params: &[
            Param {
                name: "q",
                location: Location::Query,
                description: "Words that must all occur in the title, e.g. `oak lamp`.",
                required: false,
                kind: ParamKind::Text,
            },
            Param {
                name: "category",
                location: Location::Query,
                description: "Only products of this category.",
                required: false,
                kind: ParamKind::OneOf(&CATEGORIES),
            },
            LIMIT,
            CURSOR,
            fields(Selection::items(Product::FIELDS)),
        ],
        ok: Success {
            description: "A page of products.",
            schema: <Page<Product> as Schema>::NAME,
        },
        failures: LIST_FAILURES,
        mount: |verb| on(verb, lists::search_products),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/orders/{id}",
        operation_id: "getOrder",
        tag: "orders",
        summary: "Get an order with its items and shipment",
        description: "The order, each item with its product's title, SKU and thumbnail, and the \
                      order's shipment (null before one exists). All parts are required: when a \
                      backend behind any of them fails, the answer is a problem, never a partial \
                      order.",
        access: Access::Scope(ORDERS_READ),
        params: &[
            Param {
                name: "id",
                location: Location::Path,
                description: "Order id, e.g. `o-42-1`.",
                required: true,
                kind: ParamKind::Id,
            },
            fields(Selection {
                fields: Order::FIELDS,
                of_items: false,
                always: &["degraded"],
            }),
        ],
        ok: Success {
            description: "The order.",
            schema: Order::NAME,
        },
        failures: ID_LOOKUP_FAILURES,
        mount: |verb| on(verb, handlers::order),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/customers/{id}/orders",
        operation_id: "listCustomerOrders",
        tag: "customers",
        summary: "List a customer's orders",
        description: "The customer's orders, newest first, a page at a time. An order placed \
                      while paging shows up on the first page, not in the middle. An unknown \
                      customer is a 404 (the orders service knows every customer).",
        access: Access::Scope(ORDERS_READ),
        params: &[
            Param {
                name: "id",
                location: Location::Path,
                description: "Customer id, e.g. `42`.",
                required: true,
                kind: ParamKind::Id,
            },
            LIMIT,
            CURSOR,
            fields(Selection::items(OrderSummary::FIELDS)),
        ],
        ok: Success {
            description: "A page of the customer's orders.",
            schema: <Page<OrderSummary> as Schema>::NAME,
        },
        failures: ID_LOOKUP_FAILURES,
        mount: |verb| on(verb, lists::customer_orders),
    },
    Route {
        verb: Verb::Get,
        path: "/openapi.json",
        operation_id: "getOpenApiDocument",
        tag: "meta",
        summary: "This document",
        description: "The OpenAPI 3.1 description of this API. No key needed.",
        access: Access::Public,
        params: &[],
        ok: Success {
            description: "The OpenAPI document.",
            schema: OpenApiDocument::NAME,
        },
        // A query parameter (it takes none).
        failures: &[Failure::BadRequest],
        mount: |verb| on(verb, handlers::openapi),
    },
    Route {
        verb: Verb::Get,
        path: "/v1/usage",
        operation_id: "getUsage",
        tag: "meta",
        summary: "Your key's quotas and rate limits",
        description: "What the calling key has used of each quota in the current window (a UTC \
                      day or month) and when it resets, and what is left of each rate limit. \
                      Any valid key may read its own usage; reading it spends no quota (it is \
                      rate-limited like any request).",
        access: Access::AnyKey,
        params: &[fields(Selection::resource(USAGE_FIELDS))],
        ok: Success {
            description: "The key's usage.",
            schema: Usage::NAME,
        },
        // A query parameter (it takes none); the limits' shared store unreachable.
        failures: &[Failure::BadRequest, Failure::ServiceUnavailable],
        mount: |verb| on(verb, manifold::ratelimit::usage),
    },
];

/// Mounts every route of the table: keyed routes behind API-key authentication and their
/// scope, public ones as they are. Anything unmatched answers with a problem, too.
pub fn router(gateway: &Gateway) -> Router<Gateway> {
    let mut public = Router::new();
    let mut keyed = Router::new();
    let mut any_key = Router::new();
    for route in ROUTES {
        let mut endpoint = (route.mount)(route.verb.filter());
        // `?fields=`, checked before the handler and applied to its answer.
        for param in route.params {
            if let ParamKind::Fields(selection) = param.kind {
                endpoint =
                    endpoint.route_layer(from_fn_with_state(selection.layer(), select_fields));
            }
        }
        // A query parameter the route does not document is a 400, not silently ignored.
        let known = route
            .params
            .iter()
            .filter(|p| p.location == Location::Query)
            .map(|p| p.name);
        let endpoint = endpoint.route_layer(from_fn_with_state(
            KnownQuery::new(known),
            refuse_unknown_query,
        ));
        match route.access {
            Access::Scope(scope) => {
                let endpoint = endpoint.route_layer(from_fn_with_state(scope, require_route_scope));
                keyed = keyed.route(route.path, endpoint);
            }
            Access::AnyKey => any_key = any_key.route(route.path, endpoint),
            Access::Public => public = public.route(route.path, endpoint),
        }
    }
    // Inside authentication: ETag / If-None-Match (on the answer as trimmed by `fields`), and
    // Age / Warning when cached data was used; the handlers' clients over this generation's
    // upstreams.
    let keyed = keyed
        .route_layer(from_fn(manifold::cache::http::conditional))
        .layer(Extension(Backends::new(gateway.upstreams())));
    // Public answers (the document) get an ETag too.
    let public = public
        .route_layer(from_fn(manifold::cache::http::conditional))
        .layer(Extension(handlers::OpenApiJson::new(gateway.config())));
    let mut app = public
        .merge(crate::docs::routes())
        .merge(gateway.protect(keyed, AuthPolicy::ApiKey));
    // A key's own usage, with an ETag like any GET; its quotas are read, not spent. (Layers
    // on a router without routes panic: mounted only while the table has such a route.)
    if any_key.has_routes() {
        let any_key = any_key.route_layer(from_fn(manifold::cache::http::conditional));
        app = app.merge(gateway.protect_reading_quotas(any_key, AuthPolicy::ApiKey));
    }
    app.method_not_allowed_fallback(handlers::method_not_allowed)
        .fallback(handlers::no_such_route)
}

#[cfg(test)]
mod tests {
    //! The mounted router against the table, in-process. Every upstream points at a closed
    //! port: a request that reached a backend would answer 502, so a 4xx proves the gateway
    //! refused it before calling anything.

    use manifold::auth::hash_api_key;
    use manifold::axum::body::{Body, to_bytes};
    use manifold::axum::http::{HeaderMap, Request, StatusCode, header};
    use manifold::error::PROBLEM_JSON;
    use manifold::ratelimit::RATELIMIT_POLICY;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::SPEC;
    use crate::ids::{MAX_BATCH, MAX_ID_LEN};

    const DEMO_KEY: &str = "demo-partner-key";
    const PRODUCTS_ONLY_KEY: &str = "products-only-key";

    async fn app() -> Router {
        app_with(|_| {}).await
    }

    /// `app` with its config adjusted first.
    async fn app_with(adjust: impl FnOnce(&mut manifold::config::Config)) -> Router {
        let text = format!(
            "{}\n[auth.api_keys.products-only]\nsha256 = \"{}\"\nscopes = [\"{PRODUCTS_READ}\"]\n",
            SPEC.embedded_config,
            hash_api_key(PRODUCTS_ONLY_KEY)
        );
        let mut config = SPEC
            .parse_config(&text, std::iter::empty())
            .expect("valid config");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        for upstream in config.upstreams.values_mut() {
            upstream.url = Some(url.clone());
        }
        adjust(&mut config);
        let gateway = Gateway::new(config).expect("gateway");
        gateway.clone().into_router(router(&gateway))
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        key: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        // As a client sends it over HTTP/1.1: with a Host (the edge refuses one without).
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "partner.test");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (
            status,
            headers,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    fn is_problem(headers: &HeaderMap, body: &Value, status: StatusCode) -> bool {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            == Some(PROBLEM_JSON)
            && body["status"] == status.as_u16()
            && body["code"].is_string()
    }

    /// A request path for a route's template, with its parameters filled in.
    fn example_uri(route: &Route) -> String {
        let mut uri = route.path.replace("{id}", "p1");
        let mut separator = '?';
        for param in route
            .params
            .iter()
            .filter(|p| p.location == Location::Query)
        {
            let value = match param.kind {
                ParamKind::Id | ParamKind::IdList => "p1",
                ParamKind::Limit => "5",
                // Only the API makes cursors.
                ParamKind::Cursor => continue,
                ParamKind::Text => "lamp",
                ParamKind::OneOf(values) => values[0],
                ParamKind::Fields(selection) => selection.fields[0],
            };
            uri.push(separator);
            uri.push_str(&format!("{}={value}", param.name));
            separator = '&';
        }
        uri
    }

    #[tokio::test]
    async fn every_route_is_mounted_with_the_auth_its_table_entry_documents() {
        let app = app().await;
        for route in ROUTES {
            let (status, headers, body) = call(&app, "GET", &example_uri(route), None).await;
            match route.access {
                Access::Scope(_) | Access::AnyKey => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", route.path);
                    assert!(is_problem(&headers, &body, status), "{}", route.path);
                    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
                }
                Access::Public => assert_eq!(status, StatusCode::OK, "{}", route.path),
            }
        }
        let (_, headers, served) = call(&app, "GET", "/openapi.json", None).await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let shipped = SPEC
            .parse_config(SPEC.embedded_config, std::iter::empty())
            .expect("shipped config");
        assert_eq!(served, crate::openapi::document(&shipped));
    }

    #[tokio::test]
    async fn a_key_without_the_route_scope_is_forbidden() {
        let app = app().await;
        let (status, headers, body) =
            call(&app, "GET", "/v1/orders/o-1-1", Some(PRODUCTS_ONLY_KEY)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(is_problem(&headers, &body, status));
        assert_eq!(body["code"], "FORBIDDEN");
        // The same key passes on a route its scope covers (and meets the closed backend).
        let (status, _, body) = call(&app, "GET", "/v1/products/p1", Some(PRODUCTS_ONLY_KEY)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["code"], "UPSTREAM_UNAVAILABLE");
        assert_eq!(body["service"], "catalog");
    }

    #[tokio::test]
    async fn any_key_reads_its_own_usage_and_reading_spends_no_quota() {
        // The shipped rule, refilled slowly enough that no unit comes back during the test.
        let app =
            app_with(|c| c.rate_limit.rules[0].per = std::time::Duration::from_secs(3_600)).await;
        // A key without the orders scope still reads its usage: no scope is needed.
        let (status, headers, first) =
            call(&app, "GET", "/v1/usage", Some(PRODUCTS_ONLY_KEY)).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let policy = headers[RATELIMIT_POLICY].to_str().unwrap_or_default();
        assert!(policy.contains("\"daily\";q=100000;w=86400"), "{policy}");
        assert_eq!(first["quotas"][0]["name"], "daily");
        assert_eq!(first["quotas"][0]["period"], "day");
        assert_eq!(first["quotas"][0]["limit"], 100_000);
        assert_eq!(first["quotas"][1]["name"], "monthly");
        assert_eq!(first["quotas"][1]["period"], "month");
        assert_eq!(first["rules"][0]["name"], "per-key");
        assert_eq!(first["rules"][0]["window"], 3_600);
        assert_eq!(
            first["rules"][0]["remaining"], 5_999,
            "this request was charged"
        );
        let (_, _, second) = call(&app, "GET", "/v1/usage", Some(PRODUCTS_ONLY_KEY)).await;
        assert_eq!(second["quotas"][0]["used"], 0, "reading spends no quota");
        assert_eq!(second["quotas"][1]["used"], 0);
        assert_eq!(
            second["rules"][0]["remaining"], 5_998,
            "but is rate-limited"
        );
        // Any other route spends a unit of each quota (the closed backend's 502 too: it was
        // let in).
        call(&app, "GET", "/v1/products/p1", Some(PRODUCTS_ONLY_KEY)).await;
        let (_, _, third) = call(&app, "GET", "/v1/usage", Some(PRODUCTS_ONLY_KEY)).await;
        assert_eq!(third["quotas"][0]["used"], 1);
        assert_eq!(third["quotas"][0]["remaining"], 99_999);
        assert_eq!(third["quotas"][1]["used"], 1);
        // Each key reads its own.
        let (_, _, demo) = call(&app, "GET", "/v1/usage", Some(DEMO_KEY)).await;
        assert_eq!(demo["quotas"][0]["used"], 0);
        let (status, _, _) = call(&app, "GET", "/v1/usage?key=demo", Some(DEMO_KEY)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, quotas) =
            call(&app, "GET", "/v1/usage?fields=quotas", Some(DEMO_KEY)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            quotas["quotas"].is_array() && quotas.get("rules").is_none(),
            "{quotas}"
        );
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_any_backend_call() {
        let app = app().await;
        let many: Vec<String> = (1..=MAX_BATCH + 1).map(|n| format!("p{n}")).collect();
        let repeated = vec!["p1"; MAX_BATCH + 1].join(",");
        let long = "x".repeat(MAX_ID_LEN + 1);
        let wordy = "w".repeat(MAX_TEXT + 1);
        for uri in [
            "/v1/products".to_owned(),
            "/v1/products?ids=".to_owned(),
            "/v1/products?ids=,,".to_owned(),
            "/v1/products?ids=a&ids=b".to_owned(),
            "/v1/products?ids=p1,%20p2".to_owned(),
            "/v1/products?ids=p1,,p2".to_owned(),
            format!("/v1/products?ids={}", many.join(",")),
            format!("/v1/products?ids={repeated}"),
            format!("/v1/products/{long}"),
            "/v1/products/%FF".to_owned(),
            "/v1/products/%C2%85".to_owned(),
            "/v1/products/a%20b".to_owned(),
            "/v1/orders/%00".to_owned(),
            format!("/v1/orders/{long}"),
            "/v1/customers/4,2/orders".to_owned(),
            "/v1/search/products?limit=0".to_owned(),
            "/v1/search/products?limit=101".to_owned(),
            "/v1/search/products?limit=ten".to_owned(),
            "/v1/search/products?limit=".to_owned(),
            "/v1/search/products?cursor=bm90LWEtY3Vyc29y".to_owned(),
            "/v1/search/products?cursor=".to_owned(),
            "/v1/search/products?category=Books".to_owned(),
            "/v1/search/products?category=".to_owned(),
            format!("/v1/search/products?q={wordy}"),
            "/v1/search/products?page=2".to_owned(),
            "/v1/customers/42/orders?limit=-1".to_owned(),
            "/v1/customers/42/orders?cursor=%21".to_owned(),
            "/v1/products/p1?fields=".to_owned(),
            "/v1/products/p1?fields=id,images".to_owned(),
            "/v1/products/p1?fields=id&fields=title".to_owned(),
            "/v1/products?ids=p1&fields=missing".to_owned(),
            "/v1/orders/o-1-1?fields=items,degraded,notes".to_owned(),
            "/v1/customers/42/orders?fields=items".to_owned(),
        ] {
            let (status, headers, body) = call(&app, "GET", &uri, Some(DEMO_KEY)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert!(is_problem(&headers, &body, status), "{uri}");
        }
        // At the bounds, the request goes on to the (closed) backend.
        let hundred = vec!["p1"; MAX_BATCH].join(",");
        // 64 characters, 128 bytes.
        let widest = "%C3%A9".repeat(MAX_ID_LEN);
        for uri in [
            format!("/v1/products?ids={hundred}&fields=id"),
            format!("/v1/products/{widest}"),
            "/v1/search/products?limit=100&category=books&q=&fields=id,price".to_owned(),
            "/v1/customers/42/orders?limit=1&fields=itemCount".to_owned(),
        ] {
            let (status, _, body) = call(&app, "GET", &uri, Some(DEMO_KEY)).await;
            // 502, or 503 once the closed backend's breaker has opened.
            assert!(status.is_server_error(), "{uri}: {body}");
            assert!(body["service"].is_string(), "{uri}: {body}");
        }
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_problems_too() {
        let app = app().await;
        let (status, headers, body) = call(&app, "GET", "/v1/users/1", Some(DEMO_KEY)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(is_problem(&headers, &body, status));
        let (status, headers, body) = call(&app, "DELETE", "/v1/products/p1", Some(DEMO_KEY)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(is_problem(&headers, &body, status));
        let allow = headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(allow.contains("GET"), "Allow: {allow}");
    }
}
