//! Every selection a plain object can be given is answered exactly as async-graphql's own
//! executor answers it for the same derived type: the oracle is the schema's `slow` twin.

use async_graphql::{EmptyMutation, EmptySubscription, Interface, Object, Schema, SimpleObject};
use serde_json::{Value as Json, json};

use super::{Plain, PlainList};

#[derive(SimpleObject, Clone)]
struct Money {
    amount: String,
    currency: String,
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
}

plain_object!(Money { "amount" => amount, "currency" => currency });
plain_object!(Card {
    "id" => id,
    "rank" => rank,
    "onSale" => on_sale,
    "price" => price,
    "was" => was,
    "tags" => tags,
    "prices" => prices,
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
    let money = |amount: &str| Money {
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
    };
    Card {
        id: format!("c{n}"),
        rank: n,
        on_sale: n % 2 == 0,
        price: money("9.99"),
        was: (n == 1).then(|| money("12.00")),
        tags: vec!["new".to_owned(), format!("t{n}")],
        prices: vec![money("1.00"), money("2.00")],
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
        vec![card(1), card(2)]
    }
    async fn fast_list(&self) -> PlainList<Card> {
        PlainList(vec![card(1), card(2)])
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
