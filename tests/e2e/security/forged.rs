//! JWT verification as an attacker sees it: a battery of forged and broken tokens, each
//! refused with 401 and no backend call.

use demo_services::Service;
use jsonwebtoken::Header;
use serde_json::{Value, json};

use super::forge::{
    KeyServer, b64, claims_of, good_claims, header_of, hs256, now, with_claims, with_header,
};
use crate::harness::Stack;

const PROFILE: &str = "{ viewer { profile { name } } }";
/// The second trusted issuer of these stacks: a key only the test holds.
const TEST_ISSUER: &str = "https://tests.idp.example";

/// bff-web trusting the demo IdP and, as a second `[[auth.jwt]]` entry, `keys`.
async fn stack_with_second_issuer(keys: &KeyServer) -> Stack {
    let jwks_url = keys.jwks_url.clone();
    Stack::start_with(&bff_web::SPEC, move |config| {
        let mut second = config.auth.jwt[0].clone();
        second.issuer = TEST_ISSUER.to_owned();
        second.jwks_url = jwks_url.into();
        config.auth.jwt.push(second);
    })
    .await
}

/// The status of a GraphQL call and of a proxied call with `authorization` (raw header value).
async fn statuses(
    stack: &Stack,
    authorization: Option<&str>,
    extra: &[(&str, String)],
) -> Vec<u16> {
    let mut out = Vec::new();
    for (method, path) in [("POST", "/graphql"), ("GET", "/api/users/42")] {
        let mut request = match method {
            "POST" => stack
                .http
                .post(stack.url(path))
                .json(&json!({ "query": PROFILE })),
            _ => stack.http.get(stack.url(path)),
        };
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        for (name, value) in extra {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("BFF reachable");
        if response.status() == 401 {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(
                challenge.starts_with("Bearer"),
                "401 without a Bearer challenge"
            );
        }
        out.push(response.status().as_u16());
    }
    out
}

/// A case name, the `Authorization` value, and other headers.
type Elsewhere<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, String)>);

#[tokio::test]
async fn forged_and_broken_tokens_are_refused_without_backend_calls() {
    let ours = KeyServer::start("tests-1").await;
    let attacker = KeyServer::start("attacker-1").await;
    let stack = stack_with_second_issuer(&ours).await;
    let idp = stack.service_url(Service::Auth);
    let valid = stack.token("42", "web", &["orders:read"]).await;
    let real_kid = header_of(&valid)["kid"].as_str().unwrap().to_owned();
    let jwks_text = stack
        .http
        .get(format!("{idp}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks: Value = serde_json::from_str(&jwks_text).unwrap();
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();

    // Controls: a real token and one from the second issuer pass, so the battery below fails
    // for the reason each case names, not because the plumbing is broken.
    assert_eq!(
        statuses(&stack, Some(&format!("Bearer {valid}")), &[]).await,
        [200, 200]
    );
    let ours_valid = ours.sign(Header::default(), &good_claims(TEST_ISSUER, "web"));
    assert_eq!(
        statuses(&stack, Some(&format!("Bearer {ours_valid}")), &[]).await,
        [200, 200]
    );

    let claims = claims_of(&valid);
    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut case = |name: &'static str, token: String| cases.push((name, token));

    // The algorithm is the key's, never the token's.
    for alg in ["none", "None", "NONE"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": real_kid });
        case("unsigned", format!("{}.{}.", b64(&header), b64(&claims)));
        case(
            "unsigned, junk signature",
            format!("{}.{}.AAAA", b64(&header), b64(&claims)),
        );
    }
    case(
        "RS384 header on an RS256 signature",
        with_header(&valid, &json!({ "alg": "RS384", "kid": real_kid })),
    );
    case(
        "PS256 header on an RS256 signature",
        with_header(&valid, &json!({ "alg": "PS256", "kid": real_kid })),
    );
    let hs_header = json!({ "alg": "HS256", "typ": "JWT", "kid": real_kid });
    case(
        "HS256 keyed with the JWKS text",
        hs256(&hs_header, &claims, jwks_text.as_bytes()),
    );
    case(
        "HS256 keyed with the modulus",
        hs256(&hs_header, &claims, n.as_bytes()),
    );
    let public_key_json = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    case(
        "HS256 keyed with the public JWK",
        hs256(&hs_header, &claims, &public_key_json),
    );

    // Keys named by the token are never fetched or used.
    let mut jku = Header::new(jsonwebtoken::Algorithm::RS256);
    jku.kid = Some(attacker.kid.clone());
    jku.jku = Some(attacker.jwks_url.clone());
    case("foreign jku", attacker.sign(jku, &claims));
    let mut x5u = Header::new(jsonwebtoken::Algorithm::RS256);
    x5u.x5u = Some(attacker.jwks_url.clone());
    case("foreign x5u", attacker.sign(x5u, &claims));
    let mut embedded = Header::new(jsonwebtoken::Algorithm::RS256);
    embedded.kid = Some(real_kid.clone());
    embedded.jwk = Some(serde_json::from_value(attacker.public_jwk.clone()).unwrap());
    case("embedded jwk, real kid", attacker.sign(embedded, &claims));
    case(
        "real kid, attacker's key",
        attacker.sign(
            Header {
                kid: Some(real_kid.clone()),
                ..Header::default()
            },
            &claims,
        ),
    );
    case(
        "other issuer's key for the real issuer",
        ours.sign(Header::default(), &claims),
    );

    // Odd kids.
    for kid in [
        json!(null),
        json!(""),
        json!("../../../../etc/passwd"),
        json!("k\u{0}"),
        json!(42),
        json!("x".repeat(4000)),
        json!("' OR 1=1 --"),
    ] {
        let mut header = header_of(&valid);
        header["kid"] = kid;
        case("odd kid", with_header(&valid, &header));
    }

    // Claims: time, issuer, audience, required ones. Signed by a trusted key, so only the
    // claim can be what is refused.
    let t = now();
    let mut bad_claims: Vec<(&str, Value)> = Vec::new();
    let base = good_claims(TEST_ISSUER, "web");
    for (name, key, value) in [
        ("expired", "exp", json!(t - 120)),
        ("not yet valid", "nbf", json!(t + 600)),
        ("issued in the future", "iat", json!(t + 600)),
        ("wrong issuer", "iss", json!("https://evil.example")),
        ("wrong audience", "aud", json!("mobile")),
        (
            "audience list without web",
            "aud",
            json!(["mobile", "partner"]),
        ),
        ("exp as text", "exp", json!("tomorrow")),
    ] {
        let mut c = base.clone();
        c[key] = value;
        bad_claims.push((name, c));
    }
    for missing in ["exp", "iss", "aud", "sub"] {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(missing);
        bad_claims.push(("a required claim missing", c));
    }
    for (name, c) in &bad_claims {
        case(name, ours.sign(Header::default(), c));
    }
    let expired = stack
        .token_with(json!({ "sub": "42", "aud": "web", "ttl_s": -120 }))
        .await;
    case("expired, from the IdP", expired);
    case(
        "mobile audience, from the IdP",
        stack.token("42", "mobile", &[]).await,
    );
    case(
        "claims swapped under a valid signature",
        with_claims(&valid, &claims_with_sub(&claims, "1")),
    );

    // Shape and size.
    case("truncated", valid[..valid.len() - 10].to_owned());
    case(
        "signature dropped",
        valid[..valid.rfind('.').unwrap() + 1].to_owned(),
    );
    case(
        "two segments",
        valid[..valid.rfind('.').unwrap()].to_owned(),
    );
    case("four segments", format!("{valid}.AAAA"));
    // A character base64url does not have, always (replacing `-`, which a token may lack,
    // left some tokens valid).
    let mut not_base64 = valid.clone();
    let payload = valid.find('.').unwrap() + 1;
    not_base64.replace_range(payload..=payload, "+");
    case("not base64", not_base64);
    case("garbage", "not.a.jwt".to_owned());
    let mut huge = base.clone();
    huge["pad"] = json!("x".repeat(12 * 1024));
    case(
        "huge but validly signed",
        ours.sign(Header::default(), &huge),
    );

    stack.reset_stats().await;
    for (name, token) in &cases {
        assert_eq!(
            statuses(&stack, Some(&format!("Bearer {token}")), &[]).await,
            [401, 401],
            "{name}"
        );
    }
    // The header is the only place a token is read from.
    let elsewhere: [Elsewhere; 5] = [
        ("no credentials", None, vec![]),
        ("basic scheme", Some("Basic NDI6c2VjcmV0"), vec![]),
        ("empty bearer", Some("Bearer "), vec![]),
        (
            "cookie",
            None,
            vec![("cookie", format!("access_token={valid}"))],
        ),
        (
            "x-access-token",
            None,
            vec![("x-access-token", valid.clone())],
        ),
    ];
    for (name, authorization, extra) in &elsewhere {
        assert_eq!(
            statuses(&stack, *authorization, extra).await,
            [401, 401],
            "{name}"
        );
    }
    let in_query = stack
        .http
        .get(stack.url(&format!("/api/users/42?access_token={valid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 401, "token in the query");

    for service in Service::ALL.into_iter().filter(|s| *s != Service::Auth) {
        assert_eq!(
            stack.requests(service).await,
            0,
            "{} was called",
            service.name()
        );
    }
    assert_eq!(
        attacker.fetches(),
        0,
        "a URL from a token header was fetched"
    );
    println!(
        "{} forged or broken tokens refused",
        cases.len() + elsewhere.len() + 1
    );
}

fn claims_with_sub(claims: &Value, sub: &str) -> Value {
    let mut c = claims.clone();
    c["sub"] = json!(sub);
    c
}
