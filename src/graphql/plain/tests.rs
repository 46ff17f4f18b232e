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

/// `query` executed with its plain answers written as they resolve (as the endpoint does
/// for a document whose keys are unique), then the whole answer as the endpoint writes it;
/// and how many plain answers were kept written.
async fn written(query: &str) -> (String, async_graphql::Response, usize) {
    let prewritten = super::Prewritten::default();
    let request = async_graphql::Request::new(query).data(prewritten.clone());
    let response = schema().execute(request).await;
    let mut out = Vec::new();
    crate::graphql::json::write_response(&mut out, &response, Some(&prewritten)).unwrap();
    let kept = prewritten.with_kept(|kept| kept.len());
    (String::from_utf8(out).unwrap(), response, kept)
}

/// The answer as the endpoint writes it from a value tree.
async fn as_tree(query: &str) -> (String, async_graphql::Response) {
    let response = schema().execute(query).await;
    let mut out = Vec::new();
    crate::graphql::json::write_response(&mut out, &response, None).unwrap();
    (String::from_utf8(out).unwrap(), response)
}

fn keys_unique(query: &str) -> bool {
    super::keys_unique(&async_graphql::parser::parse_query(query).unwrap())
}

/// Written as JSON while resolving, a plain answer is byte for byte what the derived type's
/// value tree is written as: every kind of field, aliases, `__typename`, fragments and
/// directives, for an object, a list and an optional object.
#[tokio::test]
async fn written_plain_answers_are_the_bytes_of_the_derived_ones() {
    let selections = SELECTIONS.iter().copied().chain([
        "{ ...Head rank }",
        "{ ... on Card { rank tags } id }",
        "{ prices { ... on Money { amount } currency } k: __typename }",
    ]);
    let mut compared = 0;
    for (slow, fast) in [
        ("slow", "fast"),
        ("slowList", "fastList"),
        ("slowOptional", "fastOptional"),
    ] {
        for selection in selections.clone() {
            let fragments = if selection.contains("...Head") {
                FRAGMENTS
            } else {
                ""
            };
            let fast = format!("{{ x: {fast} {selection} }} {fragments}");
            if !keys_unique(&fast) {
                continue;
            }
            let (expected, _) = as_tree(&format!("{{ x: {slow} {selection} }} {fragments}")).await;
            let (answered, response, kept) = written(&fast).await;
            assert!(response.errors.is_empty(), "{fast}: {:?}", response.errors);
            assert_eq!(answered, expected, "{fast}");
            assert_eq!(kept, 1, "{fast}: written, not a value tree");
            compared += 1;
        }
    }
    assert_eq!(compared, 3 * 7, "the selections whose keys are unique");
}

/// A failed field inside a plain answer: the answer is a value tree after all, so that the
/// error has its path (and completion can reach it), and the answer and errors are those of
/// the value tree.
#[tokio::test]
async fn a_plain_answer_with_a_failed_field_is_a_value_tree() {
    let query = "{ x: fastList { id s: stock price { amount rate } } }";
    assert!(keys_unique(query));
    let (expected, tree) = as_tree(query).await;
    let (answered, response, kept) = written(query).await;
    assert_eq!(answered, expected);
    assert_eq!(kept, 0);
    assert_eq!(response.errors.len(), 4, "{:?}", response.errors);
    assert_eq!(response.errors, tree.errors);
}

#[test]
fn keys_are_unique_unless_a_set_names_one_twice() {
    for unique in [
        "{ a { id } b: a { id } }",
        "{ a { id ... on A { name } } }",
        "query { a { ...F } } fragment F on A { id b { id } }",
        "query Q { a { id } } query R { a { id } }",
    ] {
        assert!(keys_unique(unique), "{unique}");
    }
    for twice in [
        "{ a { id } a { name } }",
        "{ a { id id } }",
        "{ a { x: id x: name } }",
        "{ a { id ... on A { id } } }",
        "{ a { id ...F } } fragment F on A { id }",
        "{ a { ...F ...F } } fragment F on A { id }",
        "{ a { id } } fragment F on A { b { c c } }",
        "{ a { b { c { id ... { id } } } } }",
        "{ a { ...Missing } }",
        // Fragments spreading each other (validation refuses them later) end the walk at a
        // bound instead of looping.
        "{ a { ...F } } fragment F on A { ...G } fragment G on A { id ...F }",
    ] {
        assert!(!keys_unique(twice), "{twice}");
    }
}
