//! The GraphQL IDE a BFF serves in development mode (`[graphql] mode = "development"`):
//! GraphiQL 3.9.0 on React 18.3.1, at `GET /ide`, pointed at the BFF's own `/graphql`. Every
//! file is in the binary (`ide/vendor/`, fetched from npm by `ide/fetch.sh`, licences beside
//! them), so the page needs neither a CDN nor the network; its Content-Security-Policy lets it
//! load and call nothing but this origin.
//!
//! Each file is served at `/ide/<hash>/<name>`, the hash of its content, so it may be cached
//! for a year (`immutable`): a new build that changes a file changes its URL. The page itself
//! is revalidated on every load. This module does not own the endpoint the IDE calls, nor its
//! authentication: the page is public, the operations it sends carry the caller's header.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};

use crate::gateway::Gateway;

/// One embedded file of the IDE.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 6] = [
    Asset {
        name: "graphiql.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ide/vendor/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("ide/vendor/graphiql.min.css"),
    },
    Asset {
        name: "react.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ide/vendor/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ide/vendor/react-dom.production.min.js"),
    },
    Asset {
        name: "ide.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("ide/ide.js"),
    },
    Asset {
        name: "ide.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("ide/ide.css"),
    },
];

/// The page, with `{name}` standing for each asset's URL.
const PAGE_TEMPLATE: &str = include_str!("ide/index.html");

/// Same-origin only. Styles may be inline (GraphiQL sets element styles), fonts and icons
/// are `data:` URLs inside its CSS; nothing else is allowed anywhere.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
    style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ASSET_CACHING: &str = "public, max-age=31536000, immutable";

/// The page with its asset URLs filled in, and each asset's content hash; made once.
struct Ide {
    page: String,
    hashes: Vec<String>,
}

static IDE: LazyLock<Ide> = LazyLock::new(|| {
    let hashes: Vec<String> = ASSETS.iter().map(|a| content_hash(a.body)).collect();
    let mut page = PAGE_TEMPLATE.to_owned();
    for (asset, hash) in ASSETS.iter().zip(&hashes) {
        // Relative to `<base>/ide`: the page works under whatever prefix serves it.
        page = page.replace(
            &format!("{{{}}}", asset.name),
            &asset_path(hash, asset.name),
        );
    }
    Ide { page, hashes }
});

/// `ide/<hash>/<name>`, relative to the page.
fn asset_path(hash: &str, name: &str) -> String {
    format!("ide/{hash}/{name}")
}

/// The first 8 bytes of the SHA-256 of `body`, in hex.
fn content_hash(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    digest[..8].iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// `GET /ide` and its files; no authentication.
pub(super) fn routes() -> Router<Gateway> {
    Router::new()
        .route("/ide", get(page))
        .route("/ide/{hash}/{name}", get(asset))
}

async fn page() -> Response {
    let mut response = IDE.page.as_str().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// An asset by name, only under its current hash (an old page's URL is a 404, not a stale
/// file cached for a year under a name that now means something else).
async fn asset(Path((hash, name)): Path<(String, String)>) -> Response {
    let found = ASSETS
        .iter()
        .zip(&IDE.hashes)
        .find(|(asset, current)| asset.name == name && **current == hash);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_by_its_hash_and_nothing_off_this_origin() {
        let page = &IDE.page;
        for (asset, hash) in ASSETS.iter().zip(&IDE.hashes) {
            assert!(page.contains(&asset_path(hash, asset.name)), "{page}");
        }
        assert!(!page.contains('{'), "a placeholder left: {page}");
        assert!(!page.contains("http"), "an absolute URL: {page}");
    }

    #[tokio::test]
    async fn assets_are_served_with_their_type_and_a_long_lifetime_under_their_hash_only() {
        let (asset, hash) = (&ASSETS[0], &IDE.hashes[0]);
        let ok = super::asset(Path((hash.clone(), asset.name.to_owned()))).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], asset.content_type);
        assert_eq!(ok.headers()[header::CACHE_CONTROL], ASSET_CACHING);
        let stale = super::asset(Path(("0".repeat(16), asset.name.to_owned()))).await;
        assert_eq!(stale.status(), StatusCode::NOT_FOUND);
        let unknown = super::asset(Path((hash.clone(), "secret.txt".to_owned()))).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }
}
