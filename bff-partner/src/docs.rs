//! The API reference page at `GET /docs`: Swagger UI 5.30.3 over the document this BFF serves
//! at `/openapi.json`. Every file is in the binary (`docs/vendor/`, fetched from npm by
//! `docs/fetch.sh`, licences beside them; served by `manifold::embed`), so the page works
//! offline; its Content-Security-Policy lets it load and call nothing but this origin.

use std::sync::LazyLock;

use manifold::Gateway;
use manifold::axum::Router;
use manifold::embed::{Asset, CSS, EmbeddedPage, JAVASCRIPT};

static ASSETS: [Asset; 4] = [
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("docs/vendor/swagger-ui-bundle.js"),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: CSS,
        body: include_bytes!("docs/vendor/swagger-ui.css"),
    },
    Asset {
        name: "docs.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("docs/docs.js"),
    },
    Asset {
        name: "docs.css",
        content_type: CSS,
        body: include_bytes!("docs/docs.css"),
    },
];

/// Same-origin only: the document and "Try it out" go to this origin. Swagger UI sets element
/// styles; its icons are `data:` URLs inside its CSS.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static PAGE: LazyLock<EmbeddedPage> = LazyLock::new(|| {
    EmbeddedPage::new(
        "/docs",
        include_str!("docs/index.html"),
        &ASSETS,
        PAGE_POLICY,
    )
});

/// `GET /docs` and its files; public, like the document it shows.
pub fn routes() -> Router<Gateway> {
    PAGE.routes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_and_nothing_off_this_origin() {
        let page = PAGE.html();
        assert_eq!(PAGE.asset_paths().count(), ASSETS.len());
        for path in PAGE.asset_paths() {
            assert!(page.contains(&path), "{page}");
        }
        assert!(!page.contains('{'), "a placeholder left: {page}");
        assert!(!page.contains("http"), "an absolute URL: {page}");
    }
}
