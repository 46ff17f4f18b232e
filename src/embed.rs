//! Web pages served from the binary (the GraphQL IDE, a REST facade's API reference): a page
//! and its files, every byte compiled in (`include_bytes!`), so the page needs neither a CDN
//! nor the network. Each file is served at `<page>/<hash>/<name>`, the hash of its content,
//! so it may be cached for a year (`immutable`): a build that changes a file changes its URL.
//! The page itself is revalidated on every load and carries the Content-Security-Policy its
//! owner gives it. What the page does once loaded is its owner's business.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};

/// One embedded file of a page.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

pub const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";

const ASSET_CACHING: &str = "public, max-age=31536000, immutable";

/// A page and its files, ready to serve: `{name}` in the template stands for each file's URL.
pub struct EmbeddedPage {
    /// Where the page is served, e.g. `/ide`.
    route: &'static str,
    html: String,
    assets: &'static [Asset],
    hashes: Vec<String>,
    policy: &'static str,
}

impl EmbeddedPage {
    /// `template` with every `{name}` of `assets` replaced by that file's URL, relative to the
    /// page (so it works under whatever prefix serves it).
    pub fn new(
        route: &'static str,
        template: &str,
        assets: &'static [Asset],
        policy: &'static str,
    ) -> Self {
        let hashes: Vec<String> = assets.iter().map(|a| content_hash(a.body)).collect();
        let mut html = template.to_owned();
        for (asset, hash) in assets.iter().zip(&hashes) {
            html = html.replace(
                &format!("{{{}}}", asset.name),
                &asset_path(route, hash, asset.name),
            );
        }
        Self {
            route,
            html,
            assets,
            hashes,
            policy,
        }
    }

    /// The page with its file URLs filled in.
    pub fn html(&self) -> &str {
        &self.html
    }

    /// The URL of each file, relative to the page, in the order given.
    pub fn asset_paths(&self) -> impl Iterator<Item = String> + '_ {
        self.assets
            .iter()
            .zip(&self.hashes)
            .map(|(asset, hash)| asset_path(self.route, hash, asset.name))
    }

    /// `GET <route>` and `GET <route>/{hash}/{name}`; no authentication.
    pub fn routes<S: Clone + Send + Sync + 'static>(&'static self) -> Router<S> {
        Router::new()
            .route(self.route, get(move || async move { self.page() }))
            .route(
                &format!("{}/{{hash}}/{{name}}", self.route),
                get(
                    move |Path((hash, name)): Path<(String, String)>| async move {
                        self.asset(&hash, &name)
                    },
                ),
            )
    }

    fn page(&self) -> Response {
        let mut response = self.html.clone().into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(self.policy),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }

    /// A file by name, only under its current hash (an old page's URL is a 404, not a stale
    /// file cached for a year under a name that now means something else).
    fn asset(&self, hash: &str, name: &str) -> Response {
        let found = self
            .assets
            .iter()
            .zip(&self.hashes)
            .find(|(asset, current)| asset.name == name && *current == hash);
        let Some((asset, _)) = found else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let mut response = asset.body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(ASSET_CACHING),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// `<last segment of route>/<hash>/<name>`, relative to the page at `route`.
fn asset_path(route: &str, hash: &str, name: &str) -> String {
    let page = route.rsplit('/').next().unwrap_or(route);
    format!("{page}/{hash}/{name}")
}

/// The first 8 bytes of the SHA-256 of `body`, in hex.
fn content_hash(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    digest[..8].iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    use super::*;

    static ASSETS: [Asset; 2] = [
        Asset {
            name: "app.js",
            content_type: JAVASCRIPT,
            body: b"console.log(1)",
        },
        Asset {
            name: "app.css",
            content_type: CSS,
            body: b"body{}",
        },
    ];

    static PAGE: LazyLock<EmbeddedPage> = LazyLock::new(|| {
        EmbeddedPage::new(
            "/docs",
            r#"<script src="{app.js}"></script><link href="{app.css}">"#,
            &ASSETS,
            "default-src 'none'",
        )
    });

    async fn get(uri: &str) -> Response {
        let app: Router = PAGE.routes();
        let request = Request::get(uri).body(Body::empty()).unwrap();
        app.oneshot(request).await.unwrap()
    }

    #[test]
    fn the_page_names_every_asset_by_its_hash() {
        let paths: Vec<String> = PAGE.asset_paths().collect();
        assert_eq!(paths.len(), 2);
        for path in &paths {
            assert!(path.starts_with("docs/"), "{path}");
            assert!(PAGE.html().contains(path.as_str()), "{}", PAGE.html());
        }
        assert!(!PAGE.html().contains('{'), "{}", PAGE.html());
    }

    #[tokio::test]
    async fn files_are_served_under_their_hash_only_with_a_long_lifetime() {
        let page = get("/docs").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_SECURITY_POLICY],
            "default-src 'none'"
        );
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
        let path = PAGE.asset_paths().next().unwrap();
        let ok = get(&format!("/{path}")).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], JAVASCRIPT);
        assert_eq!(ok.headers()[header::CACHE_CONTROL], ASSET_CACHING);
        let hash = path.split('/').nth(1).unwrap();
        let stale = get(&format!("/docs/{}/app.js", "0".repeat(16))).await;
        assert_eq!(stale.status(), StatusCode::NOT_FOUND);
        let unknown = get(&format!("/docs/{hash}/secret.txt")).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }
}
