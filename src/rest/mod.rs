//! REST plumbing the facades share: a route answers 400 to query parameters it does not take
//! (`?fields=`, `limit`, `page` on a route without them were silently ignored, and a client
//! could not tell its typo from an unsupported feature); routes that announce their end say
//! so on every answer (`Deprecation`, `Sunset`, `Link`); `?fields=` selection (`fields`) and
//! cursor pagination (`page`).

mod fields;
mod page;

pub use fields::{FIELDS, FieldSelection, select_fields};
pub use page::{CURSOR, Cursors, INVALID_CURSOR, MAX_CURSOR_LEN, Page, limit, next_link};

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use http::{HeaderName, HeaderValue, header};

use crate::config::{DeprecationConfig, epoch_seconds, http_date};
use crate::error::{Code, Problem};

/// One deprecated route: its path, and the headers its answers carry.
#[derive(Clone, Debug)]
struct Deprecated {
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The deprecated routes.
#[derive(Clone, Debug, Default)]
pub struct Deprecations(Arc<[Deprecated]>);

impl Deprecations {
    /// From validated config; `None` when no route is deprecated (no layer, no cost).
    pub fn new(configs: &[DeprecationConfig]) -> Option<Self> {
        let routes: Vec<Deprecated> = configs
            .iter()
            .map(|c| {
                let mut headers = Vec::new();
                let at = epoch_seconds(&c.deprecation).ok();
                if let Some(v) = at.and_then(|at| HeaderValue::from_str(&format!("@{at}")).ok()) {
                    headers.push((HeaderName::from_static("deprecation"), v));
                }
                let sunset = c.sunset.as_deref().and_then(|s| http_date(s).ok());
                if let Some(v) = sunset.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    headers.push((HeaderName::from_static("sunset"), v));
                }
                let link = c
                    .link
                    .as_ref()
                    .map(|l| format!("<{l}>; rel=\"deprecation\""));
                if let Some(v) = link.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    headers.push((header::LINK, v));
                }
                Deprecated {
                    path: c.path.clone(),
                    headers,
                }
            })
            .collect();
        (!routes.is_empty()).then(|| Self(routes.into()))
    }

    /// The headers the answers on `path` (a route's template or a proxy prefix) carry, if
    /// that path is deprecated.
    pub fn headers_of(&self, path: &str) -> Option<&[(HeaderName, HeaderValue)]> {
        let deprecated = self.0.iter().find(|d| d.path == path)?;
        Some(&deprecated.headers)
    }
}

/// Middleware (`from_fn_with_state`, after routing): the deprecation headers of the route that
/// matched. Proxy routes, which the router does not match, add their own (`proxy::Table`).
pub async fn deprecation_headers(
    State(deprecations): State<Deprecations>,
    request: Request,
    next: Next,
) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    let headers = matched.and_then(|matched| deprecations.headers_of(matched.as_str()));
    for (name, value) in headers.unwrap_or_default() {
        response.headers_mut().append(name.clone(), value.clone());
    }
    response
}

/// The query parameters one route takes.
#[derive(Clone, Debug, Default)]
pub struct KnownQuery(pub Arc<[String]>);

impl KnownQuery {
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self(names.into_iter().map(Into::into).collect())
    }
}

/// Middleware (`from_fn_with_state`): 400 for a query string that does not parse or names a
/// parameter the route does not take.
pub async fn refuse_unknown_query(
    State(known): State<KnownQuery>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(query) = request.uri().query() {
        // Borrowed where nothing was percent-encoded: no allocation per parameter.
        type Pairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;
        let Ok(pairs) = serde_urlencoded::from_str::<Pairs<'_>>(query) else {
            return Problem::new(Code::BadRequest, "the query string does not parse")
                .into_response();
        };
        if let Some((name, _)) = pairs
            .iter()
            .find(|(k, _)| !known.0.iter().any(|known| known == k))
        {
            let takes = if known.0.is_empty() {
                "no query parameters".to_owned()
            } else {
                known.0.join(", ")
            };
            let detail = format!("unknown query parameter {name:?}; this route takes {takes}");
            return Problem::new(Code::BadRequest, detail).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn only_the_routes_own_parameters_pass() {
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route_layer(axum::middleware::from_fn_with_state(
                KnownQuery::new(["limit"]),
                refuse_unknown_query,
            ));
        let status = |uri: &'static str| {
            let app = app.clone();
            async move {
                let request = Request::get(uri).body(Body::empty()).unwrap();
                app.oneshot(request).await.unwrap().status().as_u16()
            }
        };
        assert_eq!(status("/").await, 200);
        assert_eq!(status("/?limit=3").await, 200);
        assert_eq!(status("/?limit=3&fields=id").await, 400);
        assert_eq!(status("/?page=2").await, 400);
    }
}
