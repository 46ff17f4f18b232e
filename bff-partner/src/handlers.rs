//! The handlers of the partner API. Input is checked before any backend is called; every
//! failure leaves as a `Problem` (problem+json), backend failures through the core's one
//! mapping (`From<UpstreamError> for Problem`).

use backends::Backends;
use manifold::axum::Json;
use manifold::axum::body::Bytes;
use manifold::axum::extract::rejection::{PathRejection, QueryRejection};
use manifold::axum::extract::{Extension, Path, Query};
use manifold::axum::http::header;
use manifold::axum::response::{IntoResponse, Response};
use manifold::config::Config;
use manifold::error::{Code, Problem};
use manifold::request::CallContext;
use manifold::upstream::{UpstreamError, UpstreamErrorKind};
use serde::Deserialize;

use crate::ids;
use crate::model::{Degraded, Order, Product, ProductBatch};
use crate::openapi;

/// `GET /v1/products/{id}`
pub async fn product(
    Extension(backends): Extension<Backends>,
    call: CallContext,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Product>, Problem> {
    let id = path_id(id)?;
    let product = backends
        .catalog
        .get(&call, &id)
        .await
        .map_err(|e| unknown("product", &id, e))?;
    Ok(Json(product.into()))
}

#[derive(Deserialize)]
pub struct BatchQuery {
    ids: Option<String>,
}

/// `GET /v1/products?ids=a,b`: one catalog call for the whole batch.
pub async fn products(
    Extension(backends): Extension<Backends>,
    call: CallContext,
    query: Result<Query<BatchQuery>, QueryRejection>,
) -> Result<Json<ProductBatch>, Problem> {
    let Query(query) = query.map_err(|_| Problem::bad_request("invalid query string"))?;
    let asked = ids::list(query.ids.as_deref())?;
    let found = backends.catalog.batch(&call, &asked).await?;
    Ok(Json(ProductBatch::new(&asked, found)))
}

/// `GET /v1/orders/{id}`: the order first (it names the products and the shipment), then the
/// catalog batch and the shipment concurrently, merged into one resource. When catalog or
/// shipping fails, the order is still served without that part and lists it in `degraded`.
pub async fn order(
    Extension(backends): Extension<Backends>,
    call: CallContext,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Order>, Problem> {
    let id = path_id(id)?;
    let order = backends
        .orders
        .get(&call, &id)
        .await
        .map_err(|e| unknown("order", &id, e))?;
    let mut product_ids: Vec<&str> = Vec::with_capacity(order.items.len());
    for line in &order.items {
        if !product_ids.contains(&line.product_id.as_str()) {
            product_ids.push(&line.product_id);
        }
    }
    let order_ids = [order.id.as_str()];
    let (products, shipments) = tokio::join!(
        async {
            if product_ids.is_empty() {
                return Ok(Vec::new());
            }
            backends.catalog.batch(&call, &product_ids).await
        },
        backends.shipping.for_orders(&call, &order_ids),
    );
    // The order is critical; product details and the shipment are not: without them the
    // order is still served, saying what is missing.
    let mut degraded = Vec::new();
    let products = products.unwrap_or_else(|e| {
        tracing::warn!(order = %id, code = %e.code(), detail = %e.detail, "order served without product details");
        degraded.push(Degraded::Products);
        Vec::new()
    });
    let shipments = shipments.unwrap_or_else(|e| {
        tracing::warn!(order = %id, code = %e.code(), detail = %e.detail, "order served without its shipment");
        degraded.push(Degraded::Shipment);
        Vec::new()
    });
    Ok(Json(Order::merge(order, products, shipments, degraded)))
}

/// The document for this generation's config, serialized once per generation.
#[derive(Clone)]
pub struct OpenApiJson(pub Bytes);

impl OpenApiJson {
    pub fn new(config: &Config) -> Self {
        Self(Bytes::from(
            serde_json::to_vec(&openapi::document(config)).unwrap_or_default(),
        ))
    }
}

/// `GET /openapi.json`
pub async fn openapi(Extension(document): Extension<OpenApiJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document.0).into_response()
}

/// Any path no route matches.
pub async fn no_such_route() -> Problem {
    Problem::not_found("no such route; the routes are listed in /openapi.json")
}

/// A route's path with a method it does not serve (axum adds `Allow`).
pub async fn method_not_allowed() -> Problem {
    Problem::new(Code::MethodNotAllowed, "method not allowed on this route")
}

/// A backend's 404 for the id the client asked for is the client's 404, named; any other
/// failure maps as usual.
pub fn unknown(what: &str, id: &str, e: UpstreamError) -> Problem {
    if e.kind == UpstreamErrorKind::NotFound {
        Problem::not_found(format!("no {what} with id {id:?}"))
    } else {
        e.into()
    }
}

/// The id in the path, checked.
pub fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    let Path(id) = id.map_err(|_| Problem::bad_request("invalid id in the path"))?;
    ids::check(&id)?;
    Ok(id)
}
