//! Compressed answers: zstd, br or gzip as the client's `Accept-Encoding` allows (q-values
//! first, then `[compression] encodings` in order), streamed through the encoder. A request
//! without an acceptable encoding costs one header lookup. Never compressed: answers smaller
//! than `min_size` (when their size is known), `text/event-stream`, images, gRPC, bodies that
//! already carry a `Content-Encoding`, answers without a body (HEAD, 204, 304), and a proxy
//! route's answers unless the route says `compress = true` (`AsEncoded`: the backend's
//! encoding passes through). A compressed answer says `Vary: Accept-Encoding`, loses its
//! `Content-Length` and `Accept-Ranges`, and its `ETag` becomes weak (the bytes differ; the
//! representation is the same, and `If-None-Match` compares weakly).

use std::io;

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use axum::body::Body;
use axum::response::Response;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body::Body as _;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::config::{CompressionConfig, CompressionLevel};

/// How many encodings there are to offer.
const ENCODINGS: usize = 3;

/// Put on a response whose body goes out exactly as its backend encoded it.
#[derive(Clone, Copy, Debug)]
pub struct AsEncoded;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Zstd,
    Brotli,
    Gzip,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The encoding a token names, in any case.
    fn of(token: &str) -> Option<Self> {
        [
            ("zstd", Encoding::Zstd),
            ("br", Encoding::Brotli),
            ("gzip", Encoding::Gzip),
            ("x-gzip", Encoding::Gzip),
        ]
        .into_iter()
        .find_map(|(name, e)| token.eq_ignore_ascii_case(name).then_some(e))
    }
}

/// `[compression]`, ready for every request.
#[derive(Clone, Debug)]
pub struct Compression {
    offered: Vec<Encoding>,
    min_size: u64,
    level: Level,
}

impl Compression {
    /// `None` when compression is off.
    pub fn new(config: &CompressionConfig) -> Option<Self> {
        // Each at most once (so at most `ENCODINGS`), in the configured order.
        let mut offered: Vec<Encoding> = Vec::with_capacity(ENCODINGS);
        for e in config.encodings.iter().filter_map(|e| Encoding::of(e)) {
            if !offered.contains(&e) {
                offered.push(e);
            }
        }
        (config.enabled && !offered.is_empty()).then(|| Self {
            offered,
            min_size: config.min_size.bytes(),
            level: match config.level {
                CompressionLevel::Fastest => Level::Fastest,
                CompressionLevel::Default => Level::Default,
                CompressionLevel::Best => Level::Best,
            },
        })
    }

    /// The encoding for a request with these headers, if it accepts one we offer.
    pub fn negotiate(&self, request: &HeaderMap, method: &Method) -> Option<Encoding> {
        if method == Method::HEAD {
            return None;
        }
        let accept = request.get(header::ACCEPT_ENCODING)?.to_str().ok()?;
        let mut best: Option<(f32, usize)> = None;
        let mut wildcard = None;
        // The offered encodings the client named (with any q), by rank.
        let mut named = [false; ENCODINGS];
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            if token == "*" {
                wildcard = Some(q);
                continue;
            }
            let Some(rank) = Encoding::of(token).and_then(|e| self.rank(e)) else {
                continue;
            };
            named[rank] = true;
            if q > 0.0 && best.is_none_or(|(bq, br)| q > bq || (q == bq && rank < br)) {
                best = Some((q, rank));
            }
        }
        match (best, wildcard) {
            (Some((_, rank)), _) => Some(self.offered[rank]),
            // `*` stands for anything not named: the first offered that was not refused.
            (None, Some(q)) if q > 0.0 => (0..self.offered.len())
                .find(|&rank| !named[rank])
                .map(|rank| self.offered[rank]),
            _ => None,
        }
    }

    fn rank(&self, encoding: Encoding) -> Option<usize> {
        self.offered.iter().position(|e| *e == encoding)
    }

    /// `response` compressed with `encoding`, unless it is one never to compress.
    pub fn apply(&self, encoding: Encoding, response: Response) -> Response {
        if !self.compressible(&response) {
            return response;
        }
        let (mut parts, body) = response.into_parts();
        let headers = &mut parts.headers;
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::ACCEPT_RANGES);
        if let Some(weak) = headers
            .get(header::ETAG)
            .and_then(|t| t.to_str().ok())
            .filter(|t| !t.starts_with("W/"))
            .and_then(|t| HeaderValue::from_str(&format!("W/{t}")).ok())
        {
            headers.insert(header::ETAG, weak);
        }
        let reader = StreamReader::new(body.into_data_stream().map_err(io::Error::other));
        let body = match encoding {
            Encoding::Zstd => Body::from_stream(ReaderStream::new(ZstdEncoder::with_quality(
                reader, self.level,
            ))),
            Encoding::Brotli => Body::from_stream(ReaderStream::new(BrotliEncoder::with_quality(
                reader, self.level,
            ))),
            Encoding::Gzip => Body::from_stream(ReaderStream::new(GzipEncoder::with_quality(
                reader, self.level,
            ))),
        };
        Response::from_parts(parts, body)
    }

    fn compressible(&self, response: &Response) -> bool {
        let headers = response.headers();
        let status = response.status();
        if status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status.is_informational()
            || response.extensions().get::<AsEncoded>().is_some()
            || headers.contains_key(header::CONTENT_ENCODING)
            || headers.contains_key(header::CONTENT_RANGE)
        {
            return false;
        }
        let size = response.body().size_hint();
        if size.exact().is_some_and(|n| n < self.min_size) {
            return false;
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let never = ["text/event-stream", "image/", "application/grpc"];
        !never.iter().any(|t| content_type.starts_with(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;

    fn compression() -> Compression {
        Compression::new(&CompressionConfig {
            min_size: ByteSize(10),
            ..CompressionConfig::default()
        })
        .unwrap()
    }

    fn negotiate(accept: &str) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap(),
        );
        compression().negotiate(&headers, &Method::GET)
    }

    #[test]
    fn the_clients_q_values_decide_then_the_servers_order() {
        assert_eq!(negotiate("gzip"), Some(Encoding::Gzip));
        assert_eq!(negotiate("gzip, deflate, br, zstd"), Some(Encoding::Zstd));
        assert_eq!(negotiate("gzip;q=1, br;q=0.5"), Some(Encoding::Gzip));
        assert_eq!(negotiate("br;q=0, gzip;q=0.1"), Some(Encoding::Gzip));
        assert_eq!(negotiate("identity"), None);
        assert_eq!(negotiate("deflate"), None);
        assert_eq!(negotiate("*"), Some(Encoding::Zstd));
        assert_eq!(negotiate("zstd;q=0, *"), Some(Encoding::Brotli));
        assert_eq!(negotiate("*;q=0"), None);
        assert_eq!(
            compression().negotiate(&HeaderMap::new(), &Method::GET),
            None
        );
    }

    fn response(content_type: &str, body: &'static str) -> Response {
        let mut response = Response::new(Body::from(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        response
    }

    #[tokio::test]
    async fn json_is_compressed_and_its_etag_weakened() {
        let mut r = response("application/json", "{\"a\":\"aaaaaaaaaaaaaaaaaaaaaaaa\"}");
        r.headers_mut()
            .insert(header::ETAG, HeaderValue::from_static("\"t\""));
        let r = compression().apply(Encoding::Gzip, r);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::VARY], "accept-encoding");
        assert_eq!(r.headers()[header::ETAG], "W/\"t\"");
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip member");
    }

    #[test]
    fn what_is_never_compressed_goes_out_as_it_is() {
        let c = compression();
        let small = c.apply(Encoding::Gzip, response("application/json", "{}"));
        let sse = c.apply(
            Encoding::Gzip,
            response("text/event-stream", "data: xxxxxxxxxxxxxxxx\n\n"),
        );
        let mut encoded = response("application/json", "xxxxxxxxxxxxxxxxxxxxxxxx");
        encoded
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        let encoded = c.apply(Encoding::Gzip, encoded);
        let mut proxied = response("application/json", "xxxxxxxxxxxxxxxxxxxxxxxx");
        proxied.extensions_mut().insert(AsEncoded);
        let proxied = c.apply(Encoding::Gzip, proxied);
        for r in [&small, &sse, &proxied] {
            assert!(!r.headers().contains_key(header::CONTENT_ENCODING));
        }
        assert_eq!(encoded.headers()[header::CONTENT_ENCODING], "br");
    }
}
