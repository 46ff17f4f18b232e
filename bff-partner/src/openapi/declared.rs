//! The operations of the endpoints declared in config (`[[endpoints]]`, served by the core's
//! `compose` with no Rust of their own), described from their declaration: the path's
//! parameters, the keys each call puts in the answer (with the fields its allow-list keeps),
//! `degraded` naming the optional calls that failed, the key and scopes they need.

use manifold::config::{AuthPolicy, CallConfig, EndpointConfig, FIELDS};
use serde_json::{Map, Value, json};

use super::{insert_failures, security, success_headers};
use crate::api::Failure;
use crate::ids;

/// What a declared endpoint answers besides the edge's and the key's failures: a backend's
/// 404 for a critical call is the client's 404; backends failing are 502/503/504.
const DECLARED_FAILURES: &[Failure] = &[
    Failure::NotFound,
    Failure::BadGateway,
    Failure::ServiceUnavailable,
    Failure::GatewayTimeout,
];

/// The OpenAPI operation of `endpoint`.
pub fn operation(endpoint: &EndpointConfig) -> Value {
    let keyed = endpoint.auth != AuthPolicy::None;
    let mut responses = Map::new();
    responses.insert(
        "200".to_owned(),
        json!({
            "description": "The composed answer.",
            "headers": success_headers(keyed),
            "content": { "application/json": { "schema": answer_schema(endpoint) } }
        }),
    );
    responses.insert(
        "304".to_owned(),
        json!({ "$ref": "#/components/responses/NotModified" }),
    );
    insert_failures(&mut responses, DECLARED_FAILURES, keyed);
    let scopes: Vec<&str> = endpoint.scopes.iter().map(String::as_str).collect();
    let mut parameters: Vec<Value> = manifold::config::path_params(&endpoint.path)
        .into_iter()
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "required": true,
                // What the edge and the backends take as an id: the partner API's one rule.
                "schema": ids::schema()
            })
        })
        .collect();
    // `?fields=` where the declaration says what the answer's fields are (`compose` takes it
    // exactly there).
    if let Some(fields) = endpoint.fields() {
        parameters.push(json!({
            "name": FIELDS,
            "in": "query",
            "required": false,
            "description": "The fields to answer with, comma-separated; the others are left \
                            out (`degraded` always stays). Absent: all of them.",
            "style": "form",
            "explode": false,
            "schema": {
                "type": "array",
                "items": { "type": "string", "enum": fields },
                "minItems": 1
            }
        }));
    }
    let mut op = json!({
        "operationId": endpoint.operation_id.clone().unwrap_or_else(|| operation_id(&endpoint.path)),
        "tags": [endpoint.tag.as_deref().unwrap_or("composed")],
        "summary": endpoint.summary.as_deref().unwrap_or(&endpoint.path),
        "description": endpoint.description.as_deref().unwrap_or(
            "Composed from several backend calls, declared in the gateway's config."),
        "security": if keyed { security(&scopes) } else { json!([]) },
        "responses": responses
    });
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    op
}

/// `getV1CustomersIdOverview` for `/v1/customers/{id}/overview`.
fn operation_id(path: &str) -> String {
    let mut id = "get".to_owned();
    for word in path
        .split(['/', '{', '}', '-', '_'])
        .filter(|w| !w.is_empty())
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            id.extend(first.to_uppercase());
            id.push_str(chars.as_str());
        }
    }
    id
}

/// The answer: the keys the calls place at the root (a call merged into the root with
/// `at = ""` contributes its allow-listed fields), and `degraded`.
fn answer_schema(endpoint: &EndpointConfig) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut open = false;
    for call in endpoint.calls.iter().filter(|c| c.join.is_none()) {
        let key = call.key();
        if key.is_empty() {
            open |= call.allow.is_empty();
            for field in &call.allow {
                properties.insert(field.clone(), json!({ "description": from(call) }));
                if call.critical {
                    required.push(Value::String(field.clone()));
                }
            }
        } else {
            properties.insert(key.to_owned(), json!({ "description": from(call) }));
            if call.critical {
                required.push(Value::String(key.to_owned()));
            }
        }
    }
    for call in &endpoint.calls {
        let Some(join) = &call.join else { continue };
        if let Some(Value::String(text)) = properties
            .get_mut(&join.into)
            .and_then(|p| p.get_mut("description"))
        {
            text.push_str(&format!(
                "; each item with `{}` from {}",
                join.as_field,
                source(call)
            ));
        }
    }
    for property in properties.values_mut() {
        if let Some(Value::String(text)) = property.get_mut("description") {
            text.push('.');
        }
    }
    let optional: Vec<Value> = endpoint
        .calls
        .iter()
        .filter(|c| !c.critical)
        .map(|c| Value::String(c.name.clone()))
        .collect();
    if !optional.is_empty() {
        properties.insert(
            "degraded".to_owned(),
            json!({
                "description": "The optional calls that failed (their keys are left out), when \
                                any did.",
                "type": "array",
                "items": { "type": "string", "enum": optional }
            }),
        );
    }
    // A field selection leaves out what it does not name, required or not.
    if endpoint.fields().is_some() {
        required.clear();
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": open
    })
}

/// "From the `users` service (fields: id, name)".
fn from(call: &CallConfig) -> String {
    format!("From {}", source(call))
}

fn source(call: &CallConfig) -> String {
    let mut text = format!("the `{}` service", call.upstream);
    if !call.allow.is_empty() {
        text.push_str(&format!(" (fields: {})", call.allow.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_derived_from_the_path() {
        assert_eq!(
            operation_id("/v1/customers/{id}/overview"),
            "getV1CustomersIdOverview"
        );
        assert_eq!(operation_id("/a-b/c_d"), "getABCD");
    }
}
