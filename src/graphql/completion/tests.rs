//! The completion against async-graphql's own answers.

use async_graphql::{EmptyMutation, EmptySubscription, Object, Result, Schema, SimpleObject};
use serde_json::{Value as Json, json};

use super::*;

/// A shop with failures on demand: `broken` fields fail, as a backend call would.
struct Query;

#[Object]
impl Query {
    async fn shelf(&self) -> Option<Shelf> {
        Some(Shelf)
    }
    async fn required(&self) -> Shelf {
        Shelf
    }
}

struct Shelf;

#[Object]
impl Shelf {
    async fn title(&self) -> &str {
        "books"
    }
    async fn note(&self) -> Result<Option<String>> {
        Err("notes are down".into())
    }
    async fn owner(&self) -> Result<Owner> {
        Err("owners are down".into())
    }
    async fn items(&self) -> Vec<Option<Item>> {
        (0..3).map(|id| Some(Item { id })).collect()
    }
    async fn strict_items(&self) -> Vec<Item> {
        (0..3).map(|id| Item { id }).collect()
    }
}

#[derive(SimpleObject)]
struct Owner {
    name: String,
}

struct Item {
    id: i32,
}

#[Object]
impl Item {
    async fn id(&self) -> i32 {
        self.id
    }
    /// Fails for item 1 only.
    async fn price(&self) -> Result<i32> {
        match self.id {
            1 => Err("prices are down".into()),
            id => Ok(id * 10),
        }
    }
}

type Shop = Schema<Query, EmptyMutation, EmptySubscription>;

fn shop() -> Shop {
    Schema::new(Query, EmptyMutation, EmptySubscription)
}

/// `query` run by async-graphql alone.
async fn raw(schema: &Shop, query: &str) -> async_graphql::Response {
    schema.execute(query).await
}

/// `query` run and completed, as the endpoint does; data and error paths as JSON.
async fn run(query: &str) -> (Json, Vec<Json>) {
    let schema = shop();
    let mut response = raw(&schema, query).await;
    let document = async_graphql::parser::parse_query(query).unwrap();
    Completion::new(&schema.sdl()).complete(&mut response, &document, None);
    let paths = response
        .errors
        .iter()
        .map(|e| serde_json::to_value(&e.path).unwrap())
        .collect();
    (response.data.into_json().unwrap(), paths)
}

/// The cause, reproduced: async-graphql 7.2 leaves a failed field out, and an object
/// whose fields all failed is `null` even where the schema says non-null. Should an
/// upgrade change this, the completion may have become unnecessary.
#[tokio::test]
async fn async_graphql_leaves_failed_fields_out() {
    let schema = shop();
    let response = raw(&schema, "{ shelf { title note owner { name } } }").await;
    let data = response.data.into_json().unwrap();
    assert_eq!(data, json!({ "shelf": { "title": "books" } }));
    assert_eq!(response.errors.len(), 2);

    // `required` is `Shelf!`, yet `null`, and nothing propagates to `data`.
    let response = raw(&schema, "{ required { owner { name } } }").await;
    let data = response.data.into_json().unwrap();
    assert_eq!(data, json!({ "required": null }));
    let response = raw(&schema, "{ shelf { title items { id price } } }").await;
    let data = response.data.into_json().unwrap();
    assert_eq!(data["shelf"]["items"][1], json!({ "id": 1 }));
}

#[tokio::test]
async fn a_failed_nullable_field_is_null_with_its_error_in_place() {
    let (data, paths) = run("{ shelf { title note } }").await;
    assert_eq!(data, json!({ "shelf": { "title": "books", "note": null } }));
    assert_eq!(paths, [json!(["shelf", "note"])]);
    // In the order the document selects it, aliases and fragments included.
    let (data, _) = run("{ shelf { n: note ...F } } fragment F on Shelf { title }").await;
    let keys: Vec<&String> = data["shelf"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["n", "title"]);
}

#[tokio::test]
async fn a_failed_non_null_field_nulls_its_nearest_nullable_parent() {
    let (data, paths) = run("{ shelf { title owner { name } } }").await;
    assert_eq!(data, json!({ "shelf": null }));
    assert_eq!(paths, [json!(["shelf", "owner"])]);
    // No nullable parent: `data` itself.
    let (data, paths) = run("{ shelf { title } required { owner { name } } }").await;
    assert_eq!(data, Json::Null);
    assert_eq!(paths, [json!(["required", "owner"])]);
}

#[tokio::test]
async fn an_object_whose_fields_all_failed_is_still_an_object() {
    let (data, _) = run("{ shelf { note } }").await;
    assert_eq!(data, json!({ "shelf": { "note": null } }));
}

#[tokio::test]
async fn a_failed_non_null_field_in_a_nullable_item_nulls_that_item_only() {
    let (data, paths) = run("{ shelf { items { id price } } }").await;
    assert_eq!(
        data,
        json!({ "shelf": { "items": [
            { "id": 0, "price": 0 },
            null,
            { "id": 2, "price": 20 },
        ] } })
    );
    assert_eq!(paths, [json!(["shelf", "items", 1, "price"])]);
    // Non-null items: the list goes, up to the shelf (the list is non-null too).
    let (data, _) = run("{ shelf { strictItems { id price } } }").await;
    assert_eq!(data, json!({ "shelf": null }));
}

#[tokio::test]
async fn errors_without_a_typed_path_leave_the_response_alone() {
    let schema = shop();
    let document = async_graphql::parser::parse_query("{ shelf { title } }").unwrap();
    let mut response = async_graphql::Response::new(Value::from_json(json!({ "x": 1 })).unwrap());
    response
        .errors
        .push(async_graphql::ServerError::new("no path", None));
    let mut unknown = async_graphql::ServerError::new("unknown", None);
    unknown.path = vec![PathSegment::Field("nope".into())];
    response.errors.push(unknown);
    Completion::new(&schema.sdl()).complete(&mut response, &document, None);
    assert_eq!(response.data.into_json().unwrap(), json!({ "x": 1 }));
}
