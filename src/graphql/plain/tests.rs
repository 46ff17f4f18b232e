//! Every selection a plain object can be given is answered exactly as async-graphql's own
//! executor answers it for the same derived type: the oracle is the schema's `slow` twin.

use async_graphql::{
    EmptyMutation, EmptySubscription, ErrorExtensions, Interface, Object, Schema, SimpleObject,
};
use serde_json::{Value as Json, json};

use super::{Fallible, Plain, PlainList};

#[derive(SimpleObject, Clone)]
struct Money {
    amount: String,
    currency: String,
    /// Fails on every object (a backend that is down).
    rate: Fallible<f64>,
}

#[derive(SimpleObject, Clone)]
struct Card {
    id: String,
    rank: i32,
    on_sale: bool,
    price: Money,
    was: Option<Money>,
    tags: Vec<String>,
    prices: Vec<Money>,
    /// Fails on the second card.
    stock: Fallible<Option<i32>>,
}

plain_object!(Money { "amount" => amount, "currency" => currency, "rate" => rate });
plain_object!(Card {
    "id" => id,
    "rank" => rank,
    "onSale" => on_sale,
    "price" => price,
    "was" => was,
    "tags" => tags,
    "prices" => prices,
    "stock" => stock,
});

/// A card that forgets one of its fields, as a typo in `plain_object!` would.
#[derive(SimpleObject, Clone)]
#[graphql(name = "Partial")]
struct Partial {
    id: String,
    title: String,
}

plain_object!(Partial { "id" => id });

#[derive(Interface)]
#[graphql(field(name = "id", ty = "&String"))]
enum Node {
    Card(Card),
}

fn card(n: i32) -> Card {
    let failed = |message: &str| {
        async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "UNAVAILABLE"))
    };
    let money = |amount: &str| Money {
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
        rate: Fallible(Err(failed("rates are down"))),
    };
    Card {
        id: format!("c{n}"),
        rank: n,
        on_sale: n % 2 == 0,
        price: money("9.99"),
        was: (n == 1).then(|| money("12.00")),
        tags: vec!["new".to_owned(), format!("t{n}")],
        prices: vec![money("1.00"), money("2.00"), money("3.00")],
        stock: Fallible(if n == 2 {
            Err(failed("stock is down"))
        } else {
            Ok(Some(n * 10))
        }),
    }
}

struct Query;

#[Object]
impl Query {
    async fn slow(&self) -> Card {
        card(1)
    }
    async fn fast(&self) -> Plain<Card> {
        Plain(card(1))
    }
    async fn slow_list(&self) -> Vec<Card> {
        vec![card(1), card(2), card(3)]
    }
    async fn fast_list(&self) -> PlainList<Card> {
        PlainList(vec![card(1), card(2), card(3)])
    }
    async fn slow_optional(&self) -> Option<Card> {
        Some(card(2))
    }
    async fn fast_optional(&self) -> Option<Plain<Card>> {
        Some(Plain(card(2)))
    }
    async fn node(&self) -> Node {
        Node::Card(card(3))
    }
    async fn partial(&self) -> Plain<Partial> {
        Plain(Partial {
            id: "p".to_owned(),
            title: "kept out".to_owned(),
        })
    }
}

type TestSchema = Schema<Query, EmptyMutation, EmptySubscription>;

fn schema() -> TestSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .register_output_type::<Node>()
        .finish()
}

async fn data(query: &str) -> Json {
    let response = schema().execute(query).await;
    assert!(response.errors.is_empty(), "{query}: {:?}", response.errors);
    response.data.into_json().unwrap()
}

/// The selection sets the tests give both twins: every kind of field, aliases, a key
/// selected twice (merged), `__typename`, fragments (named, inline, on the type and on an
/// interface it implements, and on a type it is not), `@skip` and `@include`.
const SELECTIONS: &[&str] = &[
    "{ id rank onSale tags }",
    "{ price { amount currency } was { amount } prices { currency amount } }",
    "{ a: id b: id price { amount } price { currency } p: prices { amount } p: prices { currency } }",
    "{ __typename price { __typename amount } kind: __typename }",
    "{ ...Head ... on Card { rank } ... { onSale } ... on Node { id } }",
    "{ id price @skip(if: true) { amount } tags @include(if: false) rank @include(if: true) }",
    "{ ...Head price { ... on Money { amount } } }",
];

const FRAGMENTS: &str = "fragment Head on Card { id price { currency } }";

#[tokio::test]
async fn plain_objects_answer_as_the_derived_ones_do() {
    for (slow, fast) in [
        ("slow", "fast"),
        ("slowList", "fastList"),
        ("slowOptional", "fastOptional"),
    ] {
        for selection in SELECTIONS {
            let fragments = if selection.contains("...Head") {
                FRAGMENTS
            } else {
                ""
            };
            let expected = data(&format!("{{ x: {slow} {selection} }} {fragments}")).await;
            let answered = data(&format!("{{ x: {fast} {selection} }} {fragments}")).await;
            assert_eq!(answered, expected, "{fast} {selection}");
            assert!(
                expected["x"].is_object() || expected["x"].is_array(),
                "{expected}"
            );
        }
    }
}

/// The keys come in the order the selection names them, as the spec orders a response
/// (read from the response's own map: `serde_json` here sorts its keys).
#[tokio::test]
async fn keys_are_in_selection_order() {
    let response = schema()
        .execute("{ fast { tags id price { currency amount } rank } }")
        .await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let keys = |value: &async_graphql::Value| -> Vec<String> {
        match value {
            async_graphql::Value::Object(map) => map.keys().map(|k| k.to_string()).collect(),
            other => panic!("not an object: {other}"),
        }
    };
    let async_graphql::Value::Object(data) = &response.data else {
        panic!("no data");
    };
    let fast = &data["fast"];
    assert_eq!(keys(fast), ["tags", "id", "price", "rank"]);
    let async_graphql::Value::Object(fast) = fast else {
        unreachable!()
    };
    assert_eq!(keys(&fast["price"]), ["currency", "amount"]);
}

/// A field the type registers but its `plain_object!` forgot is an error naming it, with
/// the rest of the object answered, never a panic or a silently missing key.
#[tokio::test]
async fn a_field_the_impl_forgot_is_an_error_that_names_it() {
    let response = schema().execute("{ partial { id title } }").await;
    assert_eq!(response.errors.len(), 1, "{:?}", response.errors);
    let message = &response.errors[0].message;
    assert!(
        message.contains("\"title\"") && message.contains("Partial"),
        "{message}"
    );
    let data = response.data.into_json().unwrap();
    assert_eq!(data, json!({"partial": {"id": "p", "title": null}}));
}

/// A failed field is `null` where it stands, and its error carries the path and extensions
/// async-graphql's executor gives it (through lists, aliases and nested objects); the rest
/// of the object is answered.
#[tokio::test]
async fn a_failed_field_is_null_with_its_error_at_its_path() {
    let errors = |response: &async_graphql::Response| {
        let mut errors: Vec<String> = response
            .errors
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        errors.sort();
        errors
    };
    let selection = "{ id s: stock price { amount rate } }";
    let slow = schema()
        .execute(format!("{{ x: slowList {selection} }}"))
        .await;
    let fast = schema()
        .execute(format!("{{ x: fastList {selection} }}"))
        .await;
    assert_eq!(errors(&fast), errors(&slow));
    let paths: Vec<Json> = fast.errors.iter().map(|e| json!(e.path)).collect();
    for path in [
        json!(["x", 1, "s"]),
        json!(["x", 0, "price", "rate"]),
        json!(["x", 1, "price", "rate"]),
        json!(["x", 2, "price", "rate"]),
    ] {
        assert!(paths.contains(&path), "{path} not in {paths:?}");
    }
    assert_eq!(fast.errors.len(), 4, "{:?}", fast.errors);
    let data = fast.data.into_json().unwrap();
    assert_eq!(data["x"][0]["s"], json!(10));
    assert_eq!(data["x"][1]["s"], Json::Null);
    assert_eq!(data["x"][1]["id"], json!("c2"));
    assert_eq!(data["x"][0]["price"]["rate"], Json::Null);
    assert_eq!(data["x"][0]["price"]["amount"], json!("9.99"));
}
