//! The OpenAPI 3.1 document of the partner API, rendered from the same route table that mounts
//! the routes (`crate::api::ROUTES`) and from the resources' schemas (`crate::model`).
//! `schemas/partner.openapi.json` is this document, checked in.

mod declared;

use manifold::config::Config;
use manifold::error::{PROBLEM_JSON, Problem};
use manifold::rest::MAX_CURSOR_LEN;
use serde_json::{Map, Value, json};

use crate::api::{
    Access, DEFAULT_PAGE, Failure, Location, MAX_PAGE, MAX_TEXT, Param, ParamKind, ROUTES, Route,
};
use crate::ids::{self, MAX_BATCH};
use crate::model::{self, schema_ref};

pub const OPENAPI_VERSION: &str = "3.1.0";

/// Names of the two ways to present a key, under `components.securitySchemes`.
const BEARER: &str = "bearerApiKey";
const HEADER: &str = "headerApiKey";

/// The whole document for a partner BFF running `config`: the coded routes, the endpoints
/// it declares, and which of them are deprecated.
pub fn document(config: &Config) -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[route.verb.key()] = operation(route);
    }
    for endpoint in &config.endpoints {
        let item = paths
            .entry(endpoint.path.as_str())
            .or_insert_with(|| Value::Object(Map::new()));
        item["get"] = declared::operation(endpoint);
    }
    for deprecated in &config.deprecations {
        if let Some(Value::Object(item)) = paths.get_mut(&deprecated.path) {
            for op in item.values_mut() {
                op["deprecated"] = Value::Bool(true);
            }
        }
    }
    let schemas: Map<String, Value> = model::schemas()
        .into_iter()
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect();
    let mut responses: Map<String, Value> = FAILURES
        .iter()
        .map(|f| (f.component().to_owned(), failure_response(*f)))
        .collect();
    responses.insert(
        "NotModified".to_owned(),
        json!({
            "description": "Unchanged since the answer whose `ETag` was sent as `If-None-Match`; \
                            no body.",
            "headers": { "ETag": header_ref("ETag") }
        }),
    );
    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Manifold partner API",
            "version": "1.0.0",
            "summary": "Products and orders for partners, versioned under /v1.",
            "description": "Read products and orders with an API key. Send the key as \
                            `Authorization: Bearer <key>` or as `X-Api-Key: <key>`; each route \
                            needs a scope the key holds. Errors are `application/problem+json` \
                            with a stable `code`. Within /v1 fields are only ever added.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
        },
        "servers": [{ "url": "/", "description": "The gateway serving this document." }],
        "tags": [
            { "name": "products", "description": "The catalog." },
            { "name": "orders", "description": "Orders with their items and shipment." },
            { "name": "customers", "description": "A customer's data across services." },
            { "name": "meta", "description": "About the API itself." }
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The API key as a bearer token: `Authorization: Bearer <key>`."
                },
                HEADER: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Api-Key",
                    "description": "The API key in its own header: `X-Api-Key: <key>`."
                }
            },
            "schemas": schemas,
            "responses": responses,
            "headers": headers()
        }
    })
}

fn operation(route: &Route) -> Value {
    let keyed = route.access != Access::Public;
    let mut responses = Map::new();
    responses.insert(
        "200".to_owned(),
        json!({
            "description": route.ok.description,
            "headers": success_headers(keyed),
            "content": {
                "application/json": {
                    "schema": { "$ref": format!("#/components/schemas/{}", route.ok.schema) }
                }
            }
        }),
    );
    // Every GET answer carries an ETag; the same `If-None-Match` gets a 304.
    responses.insert(
        "304".to_owned(),
        json!({ "$ref": "#/components/responses/NotModified" }),
    );
    insert_failures(&mut responses, route.failures, keyed);
    let security = match route.access {
        Access::Scope(scope) => security(&[scope]),
        Access::AnyKey => {
            // Any valid key will do: it has no scope to lack.
            responses.remove("403");
            security(&[])
        }
        Access::Public => json!([]),
    };
    let parameters: Vec<Value> = route.params.iter().map(parameter).collect();
    let mut op = json!({
        "operationId": route.operation_id,
        "tags": [route.tag],
        "summary": route.summary,
        "description": route.description,
        "security": security,
        "responses": responses
    });
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    op
}

/// Either scheme will do; the listed roles are the scopes the key must hold.
fn security(scopes: &[&str]) -> Value {
    json!([{ BEARER: scopes }, { HEADER: scopes }])
}

/// What a route can answer besides 200 and 304: its own failures, what the edge answers on
/// any route (a request head or body over the limits, shedding under overload), and on a
/// keyed route the key's failures and its rate limits; each a `$ref` to its component.
fn insert_failures(responses: &mut Map<String, Value>, own: &[Failure], keyed: bool) {
    let mut failures = own.to_vec();
    failures.extend([
        Failure::BadRequest,
        Failure::PayloadTooLarge,
        Failure::UriTooLong,
        Failure::HeaderFieldsTooLarge,
        Failure::ServiceUnavailable,
    ]);
    if keyed {
        failures.extend([
            Failure::Unauthorized,
            Failure::Forbidden,
            Failure::TooManyRequests,
        ]);
    }
    failures.sort();
    failures.dedup();
    for failure in failures {
        responses.insert(
            failure.status().to_string(),
            json!({ "$ref": format!("#/components/responses/{}", failure.component()) }),
        );
    }
}

/// A header of `components.headers`, by name.
fn header_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

/// The headers of a 200: its ETag and request id, and on a keyed route its limits.
fn success_headers(keyed: bool) -> Value {
    let mut headers = json!({
        "ETag": header_ref("ETag"),
        "X-Request-Id": header_ref("X-Request-Id")
    });
    if keyed {
        headers["RateLimit-Policy"] = header_ref("RateLimit-Policy");
        headers["RateLimit"] = header_ref("RateLimit");
    }
    headers
}

/// Every header the document names, under `components.headers`.
fn headers() -> Value {
    json!({
        "ETag": {
            "description": "The answer's entity tag (weak when the body was compressed); send \
                            it back as `If-None-Match` to get a 304 while it is unchanged.",
            "schema": { "type": "string" }
        },
        "X-Request-Id": {
            "description": "This request's id (the client's own, when it sent a sane one): \
                            quote it when reporting a problem.",
            "schema": { "type": "string" }
        },
        "RateLimit-Policy": {
            "description": "Each limit and quota that applies to the key \
                            (draft-ietf-httpapi-ratelimit-headers), e.g. \
                            `\"per-key\";q=6000;w=60`: `q` units per window of `w` seconds.",
            "schema": { "type": "string" }
        },
        "RateLimit": {
            "description": "What is left of each limit and quota, in the order of \
                            `RateLimit-Policy`, e.g. `\"per-key\";r=5999;t=1`: `r` units left, \
                            whole again in `t` seconds.",
            "schema": { "type": "string" }
        },
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": { "type": "integer", "minimum": 1 }
        }
    })
}

/// One parameter as the route takes it: required only when a request must carry it, and a
/// schema that holds exactly the values the handlers accept.
fn parameter(param: &Param) -> Value {
    let location = match param.location {
        Location::Path => "path",
        Location::Query => "query",
    };
    let mut out = json!({
        "name": param.name,
        "in": location,
        "required": param.required || param.location == Location::Path,
        "description": param.description
    });
    let schema = match param.kind {
        ParamKind::Id => ids::schema(),
        ParamKind::IdList => json!({
            "type": "array",
            "items": ids::schema(),
            "minItems": 1,
            "maxItems": MAX_BATCH
        }),
        ParamKind::Limit => json!({
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_PAGE,
            "default": DEFAULT_PAGE
        }),
        ParamKind::Cursor => json!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CURSOR_LEN,
            "description": "Opaque: a value any other than a `next` link's is a 400."
        }),
        ParamKind::Text => json!({ "type": "string", "maxLength": MAX_TEXT }),
        ParamKind::OneOf(values) => json!({ "type": "string", "enum": values }),
        ParamKind::Fields(selection) => json!({
            "type": "array",
            "items": { "type": "string", "enum": selection.fields },
            "minItems": 1
        }),
    };
    if schema["type"] == "array" {
        // `ids=a,b`, `fields=a,b`: an array in the form style, not exploded.
        out["style"] = json!("form");
        out["explode"] = json!(false);
    }
    out["schema"] = schema;
    out
}

/// Every failure with a response component, in status order.
const FAILURES: [Failure; 11] = [
    Failure::BadRequest,
    Failure::Unauthorized,
    Failure::Forbidden,
    Failure::NotFound,
    Failure::PayloadTooLarge,
    Failure::UriTooLong,
    Failure::TooManyRequests,
    Failure::HeaderFieldsTooLarge,
    Failure::BadGateway,
    Failure::ServiceUnavailable,
    Failure::GatewayTimeout,
];

impl Failure {
    pub fn status(self) -> u16 {
        match self {
            Failure::BadRequest => 400,
            Failure::Unauthorized => 401,
            Failure::Forbidden => 403,
            Failure::NotFound => 404,
            Failure::PayloadTooLarge => 413,
            Failure::UriTooLong => 414,
            Failure::TooManyRequests => 429,
            Failure::HeaderFieldsTooLarge => 431,
            Failure::BadGateway => 502,
            Failure::ServiceUnavailable => 503,
            Failure::GatewayTimeout => 504,
        }
    }

    fn component(self) -> &'static str {
        match self {
            Failure::BadRequest => "BadRequest",
            Failure::Unauthorized => "Unauthorized",
            Failure::Forbidden => "Forbidden",
            Failure::NotFound => "NotFound",
            Failure::PayloadTooLarge => "PayloadTooLarge",
            Failure::UriTooLong => "UriTooLong",
            Failure::TooManyRequests => "TooManyRequests",
            Failure::HeaderFieldsTooLarge => "HeaderFieldsTooLarge",
            Failure::BadGateway => "BadGateway",
            Failure::ServiceUnavailable => "ServiceUnavailable",
            Failure::GatewayTimeout => "GatewayTimeout",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Failure::BadRequest => {
                "The request is invalid (code `BAD_REQUEST`, `BAD_PATH` or `BAD_HEADER`): a \
                 malformed id or parameter, a query parameter the route does not take, a field \
                 it does not have, a cursor it did not give, a batch that is empty or has more \
                 than 100 ids (repeats counted), a malformed request head."
            }
            Failure::Unauthorized => {
                "No API key, or one that is unknown or disabled (code `UNAUTHENTICATED`)."
            }
            Failure::Forbidden => "The key lacks the scope this route needs (code `FORBIDDEN`).",
            Failure::NotFound => "No resource with this id (code `NOT_FOUND`).",
            Failure::PayloadTooLarge => {
                "The request's body is larger than this API takes (code `PAYLOAD_TOO_LARGE`)."
            }
            Failure::UriTooLong => "The request's URI is too long (code `URI_TOO_LONG`).",
            Failure::TooManyRequests => {
                "A rate limit of the key is used up (code `RATE_LIMITED`), or one of its \
                 quotas (code `QUOTA_EXCEEDED`, naming the quota in `quota` and the instant it \
                 resets in `resetsAt`): `Retry-After` says when to try again, `RateLimit` which \
                 limit it was."
            }
            Failure::HeaderFieldsTooLarge => {
                "The request has too many header fields, or too large ones (code \
                 `HEADERS_TOO_LARGE`)."
            }
            Failure::BadGateway => {
                "A backend service failed or answered badly (code `UPSTREAM_UNAVAILABLE`, \
                 `UPSTREAM_REJECTED` or `UPSTREAM_BAD_RESPONSE`; `service` names it)."
            }
            Failure::ServiceUnavailable => {
                "Not answered now, try again after `Retry-After` seconds: the gateway is \
                 shedding load (code `OVERLOADED`), or a backend service is not available to \
                 it (code `UPSTREAM_UNAVAILABLE`, `CIRCUIT_OPEN` or `UPSTREAM_SATURATED`; \
                 `service` names it)."
            }
            Failure::GatewayTimeout => {
                "A backend service did not answer in time (code `UPSTREAM_TIMEOUT`; `service` \
                 names it)."
            }
        }
    }
}

fn failure_response(failure: Failure) -> Value {
    let mut response = json!({
        "description": failure.description(),
        "content": { PROBLEM_JSON: { "schema": schema_ref::<Problem>() } }
    });
    if matches!(failure, Failure::Unauthorized | Failure::Forbidden) {
        response["headers"] = json!({
            "WWW-Authenticate": {
                "description": "The challenge, e.g. `Bearer error=\"invalid_token\"`.",
                "schema": { "type": "string" }
            }
        });
    }
    if failure == Failure::TooManyRequests {
        response["headers"] = json!({
            "Retry-After": header_ref("Retry-After"),
            "RateLimit-Policy": header_ref("RateLimit-Policy"),
            "RateLimit": header_ref("RateLimit")
        });
    }
    if failure == Failure::ServiceUnavailable {
        response["headers"] = json!({ "Retry-After": header_ref("Retry-After") });
    }
    response
}

#[cfg(test)]
mod conformance;

/// The document of the shipped config (`schemas/partner.openapi.json`).
#[cfg(test)]
pub(crate) fn shipped() -> Value {
    let config = crate::SPEC
        .parse_config(crate::SPEC.embedded_config, std::iter::empty())
        .expect("the shipped config");
    document(&config)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;

    const OPERATION_KEYS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// Every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        doc.pointer(reference.strip_prefix('#')?)
    }

    #[test]
    fn the_document_is_structurally_valid_openapi_3_1() {
        let doc = shipped();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
        assert!(doc["servers"][0]["url"].is_string());
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes[BEARER]["type"], "http");
        assert_eq!(schemes[BEARER]["scheme"], "bearer");
        assert_eq!(schemes[HEADER]["type"], "apiKey");
        assert_eq!(schemes[HEADER]["in"], "header");
        assert_eq!(schemes[HEADER]["name"], "X-Api-Key");

        let mut operation_ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            assert!(path.starts_with('/'), "{path}");
            for (key, op) in item.as_object().expect("path item") {
                assert!(OPERATION_KEYS.contains(&key.as_str()), "{path}: {key}");
                let id = op["operationId"].as_str().expect("operationId");
                assert!(operation_ids.insert(id), "operationId {id} twice");
                let responses = op["responses"].as_object().expect("responses");
                assert!(responses.contains_key("200"), "{path} {key}: no 200");
                for (status, response) in responses {
                    assert!(status.parse::<u16>().is_ok(), "{path}: status {status}");
                    let response = match response["$ref"].as_str() {
                        Some(r) => resolve(&doc, r).expect("response ref"),
                        None => response,
                    };
                    assert!(response["description"].is_string(), "{path} {status}");
                    if status.starts_with(['4', '5']) {
                        assert!(response["content"][PROBLEM_JSON]["schema"].is_object());
                    }
                }
                for requirement in op["security"].as_array().expect("security") {
                    for scheme in requirement.as_object().expect("requirement").keys() {
                        assert!(schemes.get(scheme).is_some(), "unknown scheme {scheme}");
                    }
                }
            }
        }

        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            assert!(
                r.starts_with("#/components/"),
                "{r} points outside components"
            );
            assert!(resolve(&doc, r).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn every_route_is_documented_once_with_its_parameters_and_auth() {
        let doc = shipped();
        let documented: usize = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|item| item.as_object().map_or(0, |ops| ops.len()))
            .sum();
        let declared = crate::SPEC
            .parse_config(crate::SPEC.embedded_config, std::iter::empty())
            .expect("the shipped config")
            .endpoints;
        assert!(!declared.is_empty());
        assert_eq!(documented, ROUTES.len() + declared.len());
        for endpoint in &declared {
            let op = &doc["paths"][&endpoint.path]["get"];
            assert!(op["operationId"].is_string(), "{}", endpoint.path);
            assert_eq!(op["security"][1][HEADER], json!(endpoint.scopes));
        }
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.verb.key()];
            assert_eq!(op["operationId"], route.operation_id, "{}", route.path);
            let in_template: BTreeSet<&str> = route
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(in_template, declared, "{}", route.path);
            match route.access {
                Access::Scope(scope) => {
                    assert_eq!(
                        op["security"],
                        json!([{ BEARER: [scope] }, { HEADER: [scope] }])
                    );
                    assert!(
                        op["responses"]["401"].is_object() && op["responses"]["403"].is_object()
                    );
                }
                Access::AnyKey => {
                    assert_eq!(op["security"], json!([{ BEARER: [] }, { HEADER: [] }]));
                    assert!(op["responses"]["401"].is_object());
                    assert!(op["responses"].get("403").is_none(), "no scope to lack");
                }
                Access::Public => assert_eq!(op["security"], json!([])),
            }
        }
    }

    /// `?fields=` offers exactly the top-level fields the route's resource (or each item of
    /// its page or batch) is documented with, and every route answering one offers it.
    #[test]
    fn fields_name_exactly_the_documented_fields_of_each_resource() {
        let doc = shipped();
        for route in ROUTES.iter().filter(|r| r.ok.schema != "OpenApiDocument") {
            let op = &doc["paths"][route.path][route.verb.key()];
            let param = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == "fields")
                .unwrap_or_else(|| panic!("{} takes no fields", route.path));
            assert_eq!(
                (param["style"].as_str(), param["explode"].as_bool()),
                (Some("form"), Some(false))
            );
            let offered: BTreeSet<&str> = param["schema"]["items"]["enum"]
                .as_array()
                .expect("enum")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let mut schema = &doc["components"]["schemas"][route.ok.schema];
            let Some(selection) = route.params.iter().find_map(|p| match p.kind {
                ParamKind::Fields(s) => Some(s),
                _ => None,
            }) else {
                panic!("{}: no selection", route.path)
            };
            if selection.of_items {
                let item = schema["properties"]["items"]["items"]["$ref"]
                    .as_str()
                    .expect("items");
                schema = resolve(&doc, item).expect("item schema");
            }
            let documented: BTreeSet<&str> = schema["properties"]
                .as_object()
                .expect("properties")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(offered, documented, "{}", route.path);
            for always in selection.always {
                assert!(documented.contains(always), "{}: {always}", route.path);
            }
        }
    }

    /// `schemas/partner.openapi.json` is generated from this code; regenerate with
    /// `UPDATE_SCHEMAS=1 cargo test -p bff-partner`. Compared as JSON, not as text: key order
    /// depends on whether some crate in the build enables serde_json's `preserve_order`.
    #[test]
    fn checked_in_document_matches_the_code() {
        let doc = shipped();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/partner.openapi.json"
        );
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            let mut text = serde_json::to_string_pretty(&doc).expect("serialize");
            text.push('\n');
            std::fs::write(path, text).expect("write schema");
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        let on_disk: Value = serde_json::from_str(&on_disk).unwrap_or(Value::Null);
        assert!(
            on_disk == doc,
            "schemas/partner.openapi.json differs from the code; run UPDATE_SCHEMAS=1 cargo test -p bff-partner"
        );
    }
}
