//! Compressed answers: negotiated by `Accept-Encoding` (zstd, br, gzip), decoded back to the
//! very answer an uncompressed request gets; small answers, proxied bodies and requests
//! without `Accept-Encoding` go out as they are; a compressed answer's `ETag` is weak and
//! still revalidates.

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
use demo_services::Service;
use manifold::config::ByteSize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::harness::Stack;

const HOME: &str = "{ home { greeting me { id name } recommendations(first: 10) { id title thumbnailUrl } banners { id title imageUrl } } }";

async fn decode(encoding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => GzipDecoder::new(bytes).read_to_end(&mut out).await,
        "br" => BrotliDecoder::new(bytes).read_to_end(&mut out).await,
        "zstd" => ZstdDecoder::new(bytes).read_to_end(&mut out).await,
        other => panic!("unexpected encoding {other}"),
    }
    .unwrap_or_else(|e| panic!("not valid {encoding}: {e}"));
    out
}

#[tokio::test]
async fn graphql_answers_are_compressed_as_the_client_accepts() {
    let stack = Stack::start(&bff_mobile::SPEC).await;
    let token = stack.token("42", "mobile", &[]).await;
    let home = |accept: Option<&'static str>| {
        let mut request = stack
            .http
            .post(stack.url("/graphql"))
            .bearer_auth(&token)
            .json(&json!({ "query": HOME }));
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        request.send()
    };
    let plain = home(None).await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain: Value = plain.json().await.unwrap();
    assert!(plain["data"]["home"]["me"]["id"].is_string(), "{plain}");
    let plain_size = serde_json::to_vec(&plain).unwrap().len();
    for (accept, expected) in [
        ("gzip", "gzip"),
        ("br;q=1.0, gzip;q=0.8", "br"),
        ("gzip, deflate, br, zstd", "zstd"),
    ] {
        let response = home(Some(accept)).await.unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(headers["content-encoding"], expected, "{accept}");
        assert!(
            headers
                .get_all("vary")
                .iter()
                .any(|v| v.to_str().unwrap().contains("accept-encoding")),
            "{headers:?}"
        );
        let wire = response.bytes().await.unwrap();
        let decoded: Value = serde_json::from_slice(&decode(expected, &wire).await).unwrap();
        assert_eq!(decoded, plain, "{accept}");
        assert!(
            wire.len() * 2 < plain_size,
            "{expected}: {} bytes on the wire for {plain_size}",
            wire.len()
        );
    }
    // An encoding nobody offers, or a small answer: as it is.
    let identity = home(Some("deflate")).await.unwrap();
    assert!(identity.headers().get("content-encoding").is_none());
    let small = stack
        .http
        .post(stack.url("/graphql"))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(small.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn a_compressed_rest_answer_has_a_weak_etag_that_revalidates() {
    // The merged order is a few hundred bytes: compressed from 64 on.
    let stack = Stack::start_with(&bff_partner::SPEC, |config| {
        config.compression.min_size = ByteSize(64);
    })
    .await;
    let get = |if_none_match: Option<String>| {
        let mut request = stack
            .http
            .get(stack.url("/v1/orders/o-42-1"))
            .header("x-api-key", "demo-partner-key")
            .header("accept-encoding", "gzip");
        if let Some(tag) = if_none_match {
            request = request.header("if-none-match", tag);
        }
        request.send()
    };
    let first = get(None).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-encoding"], "gzip");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    let again = get(Some(etag)).await.unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn proxied_bodies_go_out_as_the_backend_encoded_them() {
    let stack = Stack::start(&bff_web::SPEC).await;
    let token = stack.token("42", "web", &["orders:read"]).await;
    stack.reset_stats().await;
    let response = stack
        .http
        .get(stack.url("/api/users/42"))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-encoding").is_none());
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["id"], "42");
    // The client's Accept-Encoding reached the backend: compressing is its choice.
    let seen = &stack.stats(Service::Users).await["last_request"]["headers"];
    assert_eq!(seen["accept-encoding"], "gzip", "{seen}");
}
