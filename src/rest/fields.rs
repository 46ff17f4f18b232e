//! `?fields=a,b`: a client asks for some top-level fields of a resource (of each item of a
//! page or batch) instead of all of them. The selection is checked before the handler runs
//! (a name the resource does not have is a 400 that lists the ones it has), and the handler's
//! JSON answer is trimmed afterwards, so every GET that says what its fields are gets it
//! without code of its own: the coded routes of a facade and the declared endpoints alike.
//!
//! The layer sits inside `cache::http::conditional`, so the `ETag` is the trimmed body's:
//! two selections are two representations with two tags, and `If-None-Match` works for each.
//! Without a `fields` parameter the answer passes untouched, never parsed. With one, only the
//! top level (and each item's top level) is parsed; the values kept are copied byte for byte
//! in their order.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{Code, Problem};

pub use crate::config::FIELDS;

/// The envelope key whose elements a page or batch selection trims.
const ITEMS: &str = "items";

/// What `?fields=` may select on one route, and where it applies.
#[derive(Clone, Debug)]
pub struct FieldSelection(Arc<Selectable>);

#[derive(Debug)]
struct Selectable {
    /// The fields a client may name.
    allowed: Vec<String>,
    /// Fields kept whatever the selection (what says the answer is partial, e.g. `degraded`).
    always: Vec<String>,
    /// Whether the fields are those of each element of `items` (a page or a batch, whose
    /// other keys, `next` or `missing`, always stay) rather than of the answer itself.
    of_items: bool,
}

impl FieldSelection {
    /// Fields of the answer itself; `always` are kept whatever the client selects.
    pub fn resource<S: Into<String>>(
        allowed: impl IntoIterator<Item = S>,
        always: impl IntoIterator<Item = S>,
    ) -> Self {
        Self(Arc::new(Selectable {
            allowed: allowed.into_iter().map(Into::into).collect(),
            always: always.into_iter().map(Into::into).collect(),
            of_items: false,
        }))
    }

    /// Fields of each element of the answer's `items`; the envelope's other keys stay.
    pub fn items<S: Into<String>>(allowed: impl IntoIterator<Item = S>) -> Self {
        Self(Arc::new(Selectable {
            allowed: allowed.into_iter().map(Into::into).collect(),
            always: Vec::new(),
            of_items: true,
        }))
    }

    /// The fields a client may name.
    pub fn allowed(&self) -> &[String] {
        &self.0.allowed
    }

    /// The names a query string selects: `None` without a `fields` parameter; a 400 for one
    /// that is empty, repeated, or names a field this route does not have.
    pub fn selected(&self, query: Option<&str>) -> Result<Option<Vec<String>>, Problem> {
        let Some(query) = query else { return Ok(None) };
        let pairs = serde_urlencoded::from_str::<Vec<(Cow<'_, str>, Cow<'_, str>)>>(query)
            .map_err(|_| Problem::bad_request("the query string does not parse"))?;
        let mut given = pairs
            .into_iter()
            .filter(|(k, _)| k == FIELDS)
            .map(|(_, v)| v);
        let Some(value) = given.next() else {
            return Ok(None);
        };
        if given.next().is_some() {
            return Err(Problem::bad_request(
                "give fields once, its names separated by commas",
            ));
        }
        let mut names = Vec::new();
        for name in value.split(',') {
            if !self.0.allowed.iter().any(|a| a == name) {
                return Err(Problem::new(
                    Code::BadRequest,
                    format!(
                        "fields: {name:?} is not a field of this resource; it has {}",
                        self.0.allowed.join(", ")
                    ),
                ));
            }
            names.push(name.to_owned());
        }
        Ok(Some(names))
    }

    /// `body` (a JSON object) with only the selected fields, or `None` when it is not one.
    pub fn trim(&self, body: &[u8], selected: &[String]) -> Option<Vec<u8>> {
        let members: Members<'_> = serde_json::from_slice(body).ok()?;
        let mut out = Vec::with_capacity(body.len() / 2);
        if !self.0.of_items {
            let keep =
                |k: &str| selected.iter().any(|s| s == k) || self.0.always.iter().any(|a| a == k);
            write_object(&mut out, &members.0, keep, |out, _, raw| {
                out.extend_from_slice(raw.get().as_bytes());
            });
            return Some(out);
        }
        let mut trimmed_items = true;
        write_object(
            &mut out,
            &members.0,
            |_| true,
            |out, key, raw| match key {
                ITEMS => trimmed_items &= write_items(out, raw, selected),
                _ => out.extend_from_slice(raw.get().as_bytes()),
            },
        );
        trimmed_items.then_some(out)
    }
}

/// Middleware (`from_fn_with_state`, after routing, inside `conditional`): checks `fields`
/// before the handler runs and trims its 200 JSON answer.
pub async fn select_fields(
    State(selection): State<FieldSelection>,
    request: Request,
    next: Next,
) -> Response {
    let selected = match selection.selected(request.uri().query()) {
        Ok(Some(selected)) => selected,
        Ok(None) => return next.run(request).await,
        Err(problem) => return problem.into_response(),
    };
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::OK || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // The handlers' answers are built in memory already: collecting one costs a copy.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(trimmed) = selection.trim(&bytes, &selected) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(trimmed))
}

/// A JSON object's members in their order, each value unparsed.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// `{...}` of the members `keep` keeps, each value written by `value`.
fn write_object(
    out: &mut Vec<u8>,
    members: &[(String, &RawValue)],
    keep: impl Fn(&str) -> bool,
    mut value: impl FnMut(&mut Vec<u8>, &str, &RawValue),
) {
    out.push(b'{');
    let mut first = true;
    for (key, raw) in members.iter().filter(|(k, _)| keep(k)) {
        if !first {
            out.push(b',');
        }
        first = false;
        // A key that was a JSON string is one again: writing it cannot fail.
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        value(out, key, raw);
    }
    out.push(b'}');
}

/// `raw` (a list of objects) with each object trimmed to `selected`; `false` (and nothing
/// written) when it is not a list.
fn write_items(out: &mut Vec<u8>, raw: &RawValue, selected: &[String]) -> bool {
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else {
        return false;
    };
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match serde_json::from_str::<Members<'_>>(item.get()) {
            Ok(members) => write_object(
                out,
                &members.0,
                |k| selected.iter().any(|s| s == k),
                |out, _, raw| out.extend_from_slice(raw.get().as_bytes()),
            ),
            Err(_) => out.extend_from_slice(item.get().as_bytes()),
        }
    }
    out.push(b']');
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn trimmed(selection: &FieldSelection, body: &str, selected: &[&str]) -> String {
        let out = selection
            .trim(body.as_bytes(), &names(selected))
            .expect("an object");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_resource_keeps_the_selected_fields_and_its_always_ones_in_their_order() {
        let order = FieldSelection::resource(["id", "total", "items", "degraded"], ["degraded"]);
        let body = r#"{"id":"o-1","total":{"amount":"1.00","currency":"EUR"},"items":[{"a":1}],"degraded":[]}"#;
        assert_eq!(
            trimmed(&order, body, &["total", "id"]),
            r#"{"id":"o-1","total":{"amount":"1.00","currency":"EUR"},"degraded":[]}"#
        );
        assert_eq!(
            trimmed(&order, body, &["id", "id"]),
            r#"{"id":"o-1","degraded":[]}"#
        );
        // Escaped keys and strings survive as what they mean.
        let odd = FieldSelection::resource(["a\"b"], []);
        assert_eq!(
            trimmed(&odd, r#"{"a\"b":"x\u0000y","c":1}"#, &["a\"b"]),
            r#"{"a\"b":"x\u0000y"}"#
        );
        assert!(order.trim(b"[1,2]", &names(&["id"])).is_none());
        assert!(order.trim(b"{\"id\":", &names(&["id"])).is_none());
    }

    #[test]
    fn a_page_trims_each_item_and_keeps_its_envelope() {
        let page = FieldSelection::items(["id", "title", "price"]);
        let body = r#"{"items":[{"id":"p1","title":"A","price":1},{"id":"p2","title":"B","price":2}],"next":"/x?cursor=c","missing":["p9"]}"#;
        assert_eq!(
            trimmed(&page, body, &["price", "id"]),
            r#"{"items":[{"id":"p1","price":1},{"id":"p2","price":2}],"next":"/x?cursor=c","missing":["p9"]}"#
        );
        assert_eq!(
            trimmed(&page, r#"{"items":[],"next":null}"#, &["id"]),
            r#"{"items":[],"next":null}"#
        );
        assert!(page.trim(br#"{"items":3}"#, &names(&["id"])).is_none());
    }

    #[test]
    fn a_selection_names_only_fields_the_resource_has() {
        let product = FieldSelection::items(["id", "title"]);
        assert_eq!(product.selected(None).unwrap(), None);
        assert_eq!(product.selected(Some("limit=3")).unwrap(), None);
        assert_eq!(
            product.selected(Some("fields=title%2Cid&limit=3")).unwrap(),
            Some(names(&["title", "id"]))
        );
        for bad in [
            "fields=",
            "fields=id,,title",
            "fields=id,%20title",
            "fields=ID",
            "fields=id&fields=title",
            "fields=nope",
        ] {
            let problem = product.selected(Some(bad)).unwrap_err();
            assert_eq!(problem.status, 400, "{bad}");
        }
        let detail = product.selected(Some("fields=nope")).unwrap_err().detail;
        assert!(
            detail.contains("\"nope\"") && detail.contains("id, title"),
            "{detail}"
        );
    }

    #[tokio::test]
    async fn the_layer_checks_first_and_trims_only_ok_json_answers() {
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|| async { axum::Json(json!({"id": 1, "title": "t"})) }),
            )
            .route(
                "/missing",
                axum::routing::get(|| async { Problem::not_found("no such thing") }),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                FieldSelection::resource(["id", "title"], []),
                select_fields,
            ));
        let get = |uri: &'static str| {
            let app = app.clone();
            async move {
                let request = Request::get(uri).body(Body::empty()).unwrap();
                let response = app.oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
                (status, serde_json::from_slice::<Value>(&body).unwrap())
            }
        };
        assert_eq!(get("/").await, (200, json!({"id": 1, "title": "t"})));
        assert_eq!(get("/?fields=title").await, (200, json!({"title": "t"})));
        let (status, problem) = get("/?fields=name").await;
        assert_eq!(status, 400);
        assert_eq!(problem["code"], "BAD_REQUEST");
        let (status, problem) = get("/missing?fields=id").await;
        assert_eq!((status, &problem["status"]), (404, &json!(404)));
    }
}
