//! REST plumbing the facades share: a route answers 400 to query parameters it does not take
//! (`?fields=`, `limit`, `page` on a route without them were silently ignored, and a client
//! could not tell its typo from an unsupported feature).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{Code, Problem};

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
        let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
            return Problem::new(Code::BadRequest, "the query string does not parse")
                .into_response();
        };
        if let Some((name, _)) = pairs.iter().find(|(k, _)| !known.0.contains(k)) {
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
