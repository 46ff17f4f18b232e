//! Keep-alive through early refusals. A 401, 413 or 429 is answered before the request body
//! is read; HTTP/1.1 can only take the next request on that connection once the body has
//! been read, so hyper closed it, and a client that pools connections (OkHttp, URLSession)
//! lost its next request to a broken pipe. Here a request body dropped unread is read to its
//! end in the background, bounded in bytes and time, so the connection stays usable; a body
//! too large for that gets `Connection: close` on the answer, so the client knows.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

/// The most a refused request's body is read to keep its connection.
const MAX_DRAIN_BYTES: u64 = 64 * 1024;
/// The most time that reading may take.
const MAX_DRAIN_TIME: Duration = Duration::from_secs(1);

/// What the answer needs to know of a request body: whether it was read to its end.
#[derive(Clone, Default)]
pub(super) struct BodyState(Arc<AtomicBool>);

impl BodyState {
    fn finished(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Wraps a request's body (only one that has a body) so that, dropped unread, it is read to
/// its end in the background. Gives what the answer needs to say about it.
pub(super) fn guard(request: Request) -> (Request, Option<(BodyState, Option<u64>)>) {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    if declared.unwrap_or(0) == 0 && !chunked {
        return (request, None);
    }
    let state = BodyState::default();
    let (parts, body) = request.into_parts();
    let body = Body::new(DrainOnDrop {
        body: Some(body),
        state: state.clone(),
    });
    (Request::from_parts(parts, body), Some((state, declared)))
}

/// After the answer: a refusal whose request body was not read, and is too large to read
/// in the background (or of unknown length), closes the connection, and says so.
pub(super) fn close_if_unread(response: &mut Response, guarded: Option<(BodyState, Option<u64>)>) {
    let Some((state, declared)) = guarded else {
        return;
    };
    let refused = response.status().is_client_error() || response.status().is_server_error();
    let too_large = declared.is_none_or(|len| len > MAX_DRAIN_BYTES);
    if refused && !state.finished() && too_large {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

struct DrainOnDrop {
    body: Option<Body>,
    state: BodyState,
}

impl HttpBody for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.state.0.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(mut body) = self.body.take() else {
            return;
        };
        if self.state.finished() || body.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let drain = async {
                let mut read = 0u64;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Some(data) = frame.data_ref() {
                        read += data.len() as u64;
                        if read > MAX_DRAIN_BYTES {
                            return;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(MAX_DRAIN_TIME, drain).await;
        });
    }
}
