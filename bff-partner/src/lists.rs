//! The partner API's lists, paged by cursor (`manifold::rest::Page`): a product search and a
//! customer's orders. Parameters are checked before any backend is called; the backends'
//! cursors are wrapped (`Cursors`), so a client can neither read nor make one, and one the
//! backend no longer takes is the client's 400, never a 5xx.

use backends::{Backends, CATEGORIES, ProductFilter};
use manifold::axum::extract::rejection::{PathRejection, QueryRejection};
use manifold::axum::extract::{Extension, Path, Query};
use manifold::axum::http::Uri;
use manifold::error::Problem;
use manifold::request::CallContext;
use manifold::rest::{Cursors, INVALID_CURSOR, Page, limit, next_link};
use manifold::upstream::{UpstreamError, UpstreamErrorKind};
use serde::Deserialize;

use crate::api::{DEFAULT_PAGE, MAX_PAGE, MAX_TEXT};
use crate::handlers::{path_id, unknown};
use crate::model::{OrderSummary, Product};

/// The cursors of each list: one list's cursor is refused by the other.
const SEARCH: Cursors = Cursors::new("products");
const ORDERS: Cursors = Cursors::new("orders");

#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    category: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/search/products?q=&category=&limit=&cursor=`: one catalog call per page.
pub async fn search_products(
    Extension(backends): Extension<Backends>,
    call: CallContext,
    uri: Uri,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Page<Product>, Problem> {
    let Query(query) = query.map_err(|_| Problem::bad_request("invalid query string"))?;
    let limit = limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    if let Some(q) = &query.q
        && q.chars().count() > MAX_TEXT
    {
        return Err(Problem::bad_request(format!(
            "q: at most {MAX_TEXT} characters"
        )));
    }
    let category = match query.category.as_deref() {
        None => None,
        Some(c) if CATEGORIES.contains(&c) => Some(c),
        Some(_) => {
            return Err(Problem::bad_request(format!(
                "category: expected one of {}",
                CATEGORIES.join(", ")
            )));
        }
    };
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| SEARCH.unwrap(c))
        .transpose()?;
    let filter = ProductFilter {
        q: query.q.as_deref(),
        category,
    };
    let page = backends
        .catalog
        .find(&call, filter, limit, cursor.as_deref())
        .await
        .map_err(|e| refused_cursor(e, cursor.is_some()))?;
    Ok(Page {
        items: page.items.into_iter().map(Product::from).collect(),
        next: page.next_cursor.map(|c| next_link(&uri, &SEARCH.wrap(&c))),
    })
}

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/customers/{id}/orders?limit=&cursor=`: newest first, one orders call per page.
/// The orders service answers 404 for a customer it does not know, and so does this route.
pub async fn customer_orders(
    Extension(backends): Extension<Backends>,
    call: CallContext,
    uri: Uri,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Page<OrderSummary>, Problem> {
    let id = path_id(id)?;
    let Query(query) = query.map_err(|_| Problem::bad_request("invalid query string"))?;
    let limit = limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| ORDERS.unwrap(c))
        .transpose()?;
    let page = backends
        .orders
        .list(&call, &id, limit, cursor.as_deref())
        .await
        .map_err(|e| match e.kind {
            UpstreamErrorKind::NotFound => unknown("customer", &id, e),
            _ => refused_cursor(e, cursor.is_some()),
        })?;
    Ok(Page {
        items: page.items.into_iter().map(OrderSummary::from).collect(),
        next: page.next_cursor.map(|c| next_link(&uri, &ORDERS.wrap(&c))),
    })
}

/// A backend's 400 to a request carrying a cursor is about the cursor (the other parameters
/// were checked here): one this gateway wrapped for another query, or that the backend no
/// longer knows. The client's 400, not a failed backend.
fn refused_cursor(e: UpstreamError, had_cursor: bool) -> Problem {
    match e.kind {
        UpstreamErrorKind::Rejected(400) if had_cursor => Problem::bad_request(INVALID_CURSOR),
        _ => e.into(),
    }
}
