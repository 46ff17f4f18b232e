//! The request id: the client's `x-request-id` when it is short and plain, else a new one;
//! echoed in the response, sent to every backend, written in the access log.

use std::sync::Arc;

use http::HeaderName;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request id (in the request's `Stamp`).
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// A client-chosen id is kept only when short and plain, so it is safe in logs and headers.
pub fn is_sane_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub fn new_request_id() -> String {
    super::trace::hex32(fastrand::u128(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_request_ids_are_kept() {
        assert!(is_sane_id("abc-123_x.y:z"));
        assert!(!is_sane_id(""));
        assert!(!is_sane_id("a b"));
        assert!(!is_sane_id(&"x".repeat(200)));
        assert_eq!(new_request_id().len(), 32);
    }
}
