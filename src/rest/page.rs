//! Cursor pagination for REST lists: a page is `{"items": [...], "next": <URL or null>}`, and
//! `Link: <next>; rel="next"` (RFC 8288) while there is a next page. `next` is a relative
//! URL: the request's own path and parameters with the cursor of the next page.
//!
//! A cursor is opaque to clients: the backend's own cursor, wrapped (base64url of a versioned
//! form that names which list it belongs to) so that clients cannot build or read one, and
//! the gateway may change what is inside without breaking them. One that does not unwrap is
//! a 400 (`invalid cursor`), before any backend is called.

use std::borrow::Cow;

use axum::Json;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Uri, header};
use serde::Serialize;

use crate::error::Problem;

/// The query parameter carrying the cursor.
pub const CURSOR: &str = "cursor";

/// Longest cursor accepted; the gateway's own are far shorter.
pub const MAX_CURSOR_LEN: usize = 512;

/// The version of the wrapped form: `1:<list>:<backend cursor>`.
const VERSION: &str = "1";

/// The detail of every refused cursor: a client can only have made it up or cut it short.
pub const INVALID_CURSOR: &str = "invalid cursor: use the `next` link of the previous page";

/// One page of a list.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The next page's URL; `null` on the last page.
    pub next: Option<String>,
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let link = self
            .next
            .as_deref()
            .and_then(|next| HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")).ok());
        let mut response = Json(self).into_response();
        if let Some(link) = link {
            response.headers_mut().append(header::LINK, link);
        }
        response
    }
}

/// `limit`: an integer in `1..=max` written in decimal digits; `default` when absent.
pub fn limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, Problem> {
    let Some(raw) = raw else { return Ok(default) };
    let refused = || Problem::bad_request(format!("limit: expected an integer from 1 to {max}"));
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(refused()),
    }
}

/// The cursors of one list (`list` names it, so one list's cursor is refused by another).
#[derive(Clone, Copy, Debug)]
pub struct Cursors {
    list: &'static str,
}

impl Cursors {
    /// `list`: a short name without `:`.
    pub const fn new(list: &'static str) -> Self {
        Self { list }
    }

    /// The client's cursor for the backend's `cursor`.
    pub fn wrap(self, cursor: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{VERSION}:{}:{cursor}", self.list))
    }

    /// The backend's cursor inside a client's `token`, or the 400 for one that is not this
    /// list's.
    pub fn unwrap(self, token: &str) -> Result<String, Problem> {
        let refused = || Problem::bad_request(INVALID_CURSOR);
        if token.is_empty() || token.len() > MAX_CURSOR_LEN {
            return Err(refused());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| refused())?;
        let text = String::from_utf8(bytes).map_err(|_| refused())?;
        let mut parts = text.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(VERSION), Some(list), Some(cursor))
                if list == self.list && !cursor.is_empty() =>
            {
                Ok(cursor.to_owned())
            }
            _ => Err(refused()),
        }
    }
}

/// The relative URL of the next page: `uri`'s path and query parameters, in their order,
/// with `cursor` in place of the one it had (if any).
pub fn next_link(uri: &Uri, cursor: &str) -> String {
    let pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> =
        pairs.into_iter().filter(|(k, _)| k != CURSOR).collect();
    pairs.push((Cow::Borrowed(CURSOR), Cow::Borrowed(cursor)));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("{}?{query}", uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    #[test]
    fn limits_are_digits_within_bounds() {
        assert_eq!(limit(None, 20, 100).unwrap(), 20);
        assert_eq!(limit(Some("1"), 20, 100).unwrap(), 1);
        assert_eq!(limit(Some("100"), 20, 100).unwrap(), 100);
        assert_eq!(limit(Some("007"), 20, 100).unwrap(), 7);
        for bad in [
            "",
            "0",
            "101",
            "-1",
            "+5",
            "1.5",
            "abc",
            " 5",
            "99999999999",
        ] {
            let problem = limit(Some(bad), 20, 100).unwrap_err();
            assert_eq!(problem.status, 400, "{bad:?}");
            assert!(problem.detail.contains("1 to 100"), "{}", problem.detail);
        }
    }

    #[test]
    fn a_cursor_unwraps_only_as_it_was_wrapped() {
        let search = Cursors::new("s");
        let token = search.wrap("p1234");
        assert!(!token.contains("p1234"), "opaque: {token}");
        assert_eq!(search.unwrap(&token).unwrap(), "p1234");
        // A backend cursor may hold anything, the separator included.
        assert_eq!(search.unwrap(&search.wrap("a:b c")).unwrap(), "a:b c");
        let orders = Cursors::new("o");
        let mut tampered = token.clone();
        tampered.replace_range(2..3, if &token[2..3] == "A" { "B" } else { "A" });
        for bad in [
            orders.wrap("p1234").as_str(),
            tampered.as_str(),
            "",
            "p1234",
            "!!!!",
            &URL_SAFE_NO_PAD.encode("2:s:p1"),
            &URL_SAFE_NO_PAD.encode("1:s:"),
            &URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
            &"A".repeat(MAX_CURSOR_LEN + 1),
        ] {
            let problem = search.unwrap(bad).unwrap_err();
            assert_eq!(
                (problem.status, problem.detail.as_str()),
                (400, INVALID_CURSOR),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_next_link_keeps_the_parameters_and_replaces_the_cursor() {
        let uri: Uri = "/v1/search/products?q=oak%20lamp&cursor=old&fields=id,title&limit=5"
            .parse()
            .unwrap();
        assert_eq!(
            next_link(&uri, "bmV4dA"),
            "/v1/search/products?q=oak+lamp&fields=id%2Ctitle&limit=5&cursor=bmV4dA"
        );
        let bare: Uri = "/v1/customers/4%202/orders".parse().unwrap();
        assert_eq!(next_link(&bare, "c"), "/v1/customers/4%202/orders?cursor=c");
    }

    #[tokio::test]
    async fn a_page_links_its_next_page_and_the_last_one_does_not() {
        let page = Page {
            items: vec![1, 2],
            next: Some("/list?cursor=c".to_owned()),
        };
        let response = page.into_response();
        assert_eq!(
            response.headers()[header::LINK],
            "</list?cursor=c>; rel=\"next\""
        );
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"items":[1,2],"next":"/list?cursor=c"}"#);

        let last = Page::<u8> {
            items: vec![],
            next: None,
        }
        .into_response();
        assert!(last.headers().get(header::LINK).is_none());
        let body = to_bytes(last.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"items":[],"next":null}"#);
    }
}
