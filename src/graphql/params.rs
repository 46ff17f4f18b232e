//! The GraphQL-over-HTTP request parameters (`query`, `operationName`, `variables`,
//! `extensions`), from a POST's JSON body or a GET's query string, checked before anything
//! runs: each has the type the spec gives it (`null` counts as absent), a POST must say it is
//! JSON (in UTF-8), and what is wrong is said in words a client developer can act on.

use async_graphql::Variables;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value};

/// What a request asks for, before its document is parsed.
#[derive(Debug, Default)]
pub(super) struct Params {
    pub query: Option<String>,
    pub operation_name: Option<String>,
    pub variables: Option<Map<String, Value>>,
    pub extensions: Option<Map<String, Value>>,
    /// A trusted document's id, instead of `query`.
    pub document_id: Option<String>,
}

/// A request that cannot run, and the status it gets.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadRequest {
    pub status: StatusCode,
    pub message: String,
}

impl BadRequest {
    fn new(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

/// A POST body's fields; a field of the wrong type fails the whole body.
#[derive(Deserialize)]
struct Body {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<Map<String, Value>>,
    extensions: Option<Map<String, Value>>,
    #[serde(rename = "documentId")]
    document_id: Option<String>,
}

/// A GET's query string: `variables` and `extensions` are JSON text.
#[derive(Deserialize)]
struct Query {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
    #[serde(rename = "documentId")]
    document_id: Option<String>,
}

impl Params {
    /// The parameters of a POST: its content type must be JSON (UTF-8, the default).
    pub fn from_post(headers: &HeaderMap, body: &[u8]) -> Result<Self, BadRequest> {
        json_content_type(headers)?;
        if body.is_empty() {
            return Err(BadRequest::new("a POST needs a JSON body with a query"));
        }
        if is_batch(body) {
            return Err(BadRequest::new(
                "a JSON array is a batch of operations, which this API does not accept: \
                 send one operation per request",
            ));
        }
        let body: Body = serde_json::from_slice(body)
            .map_err(|e| BadRequest::new(format!("the body is not a GraphQL request: {e}")))?;
        Ok(body.into())
    }

    /// The operations of a batch POST (a JSON array of requests), at most `max` of them.
    pub fn batch_from_post(
        headers: &HeaderMap,
        body: &[u8],
        max: usize,
    ) -> Result<Vec<Self>, BadRequest> {
        json_content_type(headers)?;
        let batch: Vec<Body> = serde_json::from_slice(body).map_err(|e| {
            BadRequest::new(format!("the body is not a batch of GraphQL requests: {e}"))
        })?;
        if batch.is_empty() || batch.len() > max {
            return Err(BadRequest::new(format!(
                "a batch carries 1 to {max} operations, this one {}",
                batch.len()
            )));
        }
        Ok(batch.into_iter().map(Self::from).collect())
    }

    /// The parameters of a GET, from its query string.
    pub fn from_get(query: Option<&str>) -> Result<Self, BadRequest> {
        let query: Query = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| BadRequest::new(format!("the query string is not understood: {e}")))?;
        Ok(Self {
            query: query.query,
            operation_name: query.operation_name,
            variables: json_object("variables", query.variables.as_deref())?,
            extensions: json_object("extensions", query.extensions.as_deref())?,
            document_id: query.document_id,
        })
    }

    /// The request to run: `query` is required.
    pub fn into_request(self) -> Result<async_graphql::Request, BadRequest> {
        let Some(query) = self.query else {
            return Err(BadRequest::new("the query parameter is required"));
        };
        let mut request = async_graphql::Request::new(query);
        request.operation_name = self.operation_name;
        if let Some(variables) = self.variables {
            request.variables = Variables::from_json(Value::Object(variables));
        }
        for (name, value) in self.extensions.into_iter().flatten() {
            if let Ok(value) = async_graphql::Value::from_json(value) {
                request.extensions.0.insert(name, value);
            }
        }
        Ok(request)
    }
}

impl From<Body> for Params {
    fn from(body: Body) -> Self {
        Self {
            query: body.query,
            operation_name: body.operation_name,
            variables: body.variables,
            extensions: body.extensions,
            document_id: body.document_id,
        }
    }
}

/// Whether a POST body is a JSON array: a batch of operations.
pub(super) fn is_batch(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// `application/json`, with no charset but UTF-8; anything else is 415.
fn json_content_type(headers: &HeaderMap) -> Result<(), BadRequest> {
    let unsupported = |message: &str| BadRequest {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: message.to_owned(),
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported(
            "a POST must have content-type: application/json",
        ));
    };
    let value = value.to_str().unwrap_or("").to_ascii_lowercase();
    let mut parts = value.split(';').map(str::trim);
    if parts.next() != Some("application/json") {
        return Err(unsupported(
            "a POST must have content-type: application/json",
        ));
    }
    for part in parts {
        if let Some(charset) = part.strip_prefix("charset=")
            && !matches!(charset.trim_matches('"'), "utf-8" | "utf8")
        {
            return Err(unsupported("the body must be UTF-8"));
        }
    }
    Ok(())
}

/// A GET parameter holding a JSON object (or nothing).
fn json_object(name: &str, text: Option<&str>) -> Result<Option<Map<String, Value>>, BadRequest> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(Value::Null) => Ok(None),
        _ => Err(BadRequest::new(format!(
            "the {name} parameter must be a JSON object"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        headers
    }

    fn post(body: &str) -> Result<Params, BadRequest> {
        Params::from_post(&json(), body.as_bytes())
    }

    #[test]
    fn a_post_needs_json_in_utf8() {
        assert_eq!(
            Params::from_post(&HeaderMap::new(), b"{}")
                .unwrap_err()
                .status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let mut text = HeaderMap::new();
        text.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            Params::from_post(&text, b"{}").unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let mut latin = HeaderMap::new();
        let value = "application/json; charset=iso-8859-1".parse().unwrap();
        latin.insert(header::CONTENT_TYPE, value);
        assert!(Params::from_post(&latin, b"{\"query\":\"{a}\"}").is_err());
        let mut utf8 = HeaderMap::new();
        utf8.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=UTF-8".parse().unwrap(),
        );
        assert!(Params::from_post(&utf8, b"{\"query\":\"{a}\"}").is_ok());
    }

    #[test]
    fn parameters_must_have_their_types_and_null_is_absent() {
        for bad in [
            r#"{"query": 1}"#,
            r#"{"query": {"a": 1}}"#,
            r#"{"query": "{a}", "operationName": false}"#,
            r#"{"query": "{a}", "variables": "x"}"#,
            r#"{"query": "{a}", "variables": [1]}"#,
            r#"{"query": "{a}", "extensions": 0}"#,
            "{ \"not json",
            "",
        ] {
            assert_eq!(
                post(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        let fine = post(
            r#"{"query": "{a}", "operationName": null, "variables": null, "extensions": null}"#,
        );
        assert!(fine.unwrap().into_request().is_ok());
        let missing = post(r#"{"qeury": "{a}"}"#)
            .unwrap()
            .into_request()
            .unwrap_err();
        assert_eq!(missing.message, "the query parameter is required");
        let batch = post(r#"[{"query": "{a}"}]"#).unwrap_err();
        assert!(batch.message.contains("batch"), "{batch:?}");
    }

    #[test]
    fn a_get_reads_json_variables_from_the_query_string() {
        let params = Params::from_get(Some(
            "query=query%20Q(%24n%3A%20Int)%20%7B%20a%20%7D&operationName=Q&variables=%7B%22n%22%3A3%7D",
        ))
        .unwrap();
        let request = params.into_request().unwrap();
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(request.variables.into_value().into_json().unwrap()["n"], 3);
        assert!(Params::from_get(Some("query=%7Ba%7D&variables=%5B1%5D")).is_err());
        assert!(Params::from_get(None).unwrap().into_request().is_err());
    }

    #[test]
    fn a_batch_is_an_array_of_requests_within_the_cap() {
        let two = br#"[{"query": "{a}"}, {"query": "{b}", "operationName": null}]"#;
        let batch = Params::batch_from_post(&json(), two, 2).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].query.as_deref(), Some("{b}"));
        let over = Params::batch_from_post(&json(), two, 1).unwrap_err();
        assert!(over.message.contains("1 to 1"), "{over:?}");
        assert!(Params::batch_from_post(&json(), b"[]", 4).is_err());
        assert!(Params::batch_from_post(&json(), br#"[{"query": 1}]"#, 4).is_err());
        assert!(Params::batch_from_post(&HeaderMap::new(), two, 4).is_err());
        assert!(is_batch(b"  [{}]") && !is_batch(b"{}"));
    }
}
