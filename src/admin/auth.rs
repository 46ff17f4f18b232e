//! The admin listener's guard. With `[admin] token` (or `token_file`) set, every request for
//! data or action — `/metrics`, `/admin/api/*`, `/admin/reload`, the cache endpoints — must
//! carry `Authorization: Bearer <token>`, from any peer; a token is required by `--check`
//! whenever the listener is off loopback. The dashboard's page, script and style hold no
//! data and are served without it: the page asks for the token and sends it with each call.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};

use super::CurrentGateway;
use crate::error::{Code, Problem};

/// Paths served to anyone who can reach the listener: static files without data.
const OPEN: [&str; 4] = ["/", "/admin", "/admin/dashboard.js", "/admin/dashboard.css"];

/// Runs `request` when it may: no token configured, an open path, or the right bearer.
pub async fn guard(
    State(current): State<CurrentGateway>,
    request: Request,
    next: Next,
) -> Response {
    if OPEN.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let token = match current().config().admin.token() {
        Ok(token) => token,
        Err(e) => {
            // Closed, not open, when the mounted token cannot be read.
            tracing::error!(error = %e, "cannot read admin.token_file; admin requests refused");
            let problem = Problem::new(Code::Unauthenticated, "the admin token cannot be read")
                .with_status(StatusCode::SERVICE_UNAVAILABLE);
            return problem.into_response();
        }
    };
    match token {
        Some(token) if !bearer_matches(request.headers(), token.expose()) => unauthorized(),
        _ => next.run(request).await,
    }
}

/// Whether `Authorization` is `Bearer <token>`, compared digest to digest in constant time
/// (neither the token's bytes nor its length show in the time taken).
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(sent) = crate::auth::bearer(headers) else {
        return false;
    };
    let sent: [u8; 32] = Sha256::digest(sent.as_bytes()).into();
    let want: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let diff = sent
        .iter()
        .zip(&want)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

fn unauthorized() -> Response {
    let mut response = Problem::new(
        Code::Unauthenticated,
        "the admin listener needs Authorization: Bearer <admin.token>",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"manifold-admin\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let token = "a-token-of-some-length";
        assert!(bearer_matches(
            &with("Bearer a-token-of-some-length"),
            token
        ));
        assert!(bearer_matches(
            &with("bearer a-token-of-some-length"),
            token
        ));
        assert!(!bearer_matches(
            &with("Bearer a-token-of-some-lengt"),
            token
        ));
        assert!(!bearer_matches(
            &with("Basic a-token-of-some-length"),
            token
        ));
        assert!(!bearer_matches(&with("a-token-of-some-length"), token));
        assert!(!bearer_matches(&HeaderMap::new(), token));
    }
}
