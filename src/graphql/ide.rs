//! The GraphQL IDE a BFF serves in development mode (`[graphql] mode = "development"`):
//! GraphiQL 3.9.0 on React 18.3.1, at `GET /ide`, pointed at the BFF's own `/graphql`. Every
//! file is in the binary (`ide/vendor/`, fetched from npm by `ide/fetch.sh`, licences beside
//! them), so the page needs neither a CDN nor the network; its Content-Security-Policy lets it
//! load and call nothing but this origin.
//!
//! Each file is served at `/ide/<hash>/<name>` (`crate::embed`). This module does not own the
//! endpoint the IDE calls, nor its authentication: the page is public, the operations it
//! sends carry the caller's header.

use std::sync::LazyLock;

use axum::Router;

use crate::embed::{Asset, CSS, EmbeddedPage, JAVASCRIPT};
use crate::gateway::Gateway;

static ASSETS: [Asset; 6] = [
    Asset {
        name: "graphiql.min.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("ide/vendor/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        body: include_bytes!("ide/vendor/graphiql.min.css"),
    },
    Asset {
        name: "react.production.min.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("ide/vendor/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("ide/vendor/react-dom.production.min.js"),
    },
    Asset {
        name: "ide.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("ide/ide.js"),
    },
    Asset {
        name: "ide.css",
        content_type: CSS,
        body: include_bytes!("ide/ide.css"),
    },
];

/// Same-origin only. Styles may be inline (GraphiQL sets element styles), fonts and icons
/// are `data:` URLs inside its CSS; nothing else is allowed anywhere.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
    style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static IDE: LazyLock<EmbeddedPage> = LazyLock::new(|| {
    EmbeddedPage::new("/ide", include_str!("ide/index.html"), &ASSETS, PAGE_POLICY)
});

/// `GET /ide` and its files; no authentication.
pub(super) fn routes() -> Router<Gateway> {
    IDE.routes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_and_nothing_off_this_origin() {
        let page = IDE.html();
        assert_eq!(IDE.asset_paths().count(), ASSETS.len());
        for path in IDE.asset_paths() {
            assert!(page.contains(&path), "{page}");
        }
        assert!(!page.contains('{'), "a placeholder left: {page}");
        assert!(!page.contains("http"), "an absolute URL: {page}");
    }
}
