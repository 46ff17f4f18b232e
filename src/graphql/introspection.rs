//! Introspection in development mode. The standard IntrospectionQuery (graphql-js's
//! `getIntrospectionQuery()`) nests `ofType` eight levels deep under `__schema { types {
//! fields { type ...` and selects a few hundred fields: every BFF's `max_depth` refuses it,
//! and async-graphql counts introspection fields in depth and complexity like any other. So
//! an operation that selects nothing but introspection fields at its root runs on a schema
//! of its own: built `introspection_only` (any other root field resolves to nothing), without
//! the complexity limit and with a depth limit made for introspection documents. Everything
//! before execution (the field bound, the cost check) still applies to it.
//!
//! In production there is no such schema: `harden` disables introspection, and a document
//! asking for `__schema` or `__type` is refused here (`refuse`) instead of answered `null`.

use std::collections::HashSet;

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{ObjectType, Pos, Schema, SchemaBuilder, SubscriptionType};

use crate::config::GraphqlConfig;

/// The deepest introspection operation allowed: the standard query is 14 deep, tools that
/// ask for deeper type references (graphql-js 17's `typeDepth`) get a few more levels.
const MAX_DEPTH: usize = 20;

/// The root fields an introspection operation may select.
const INTROSPECTION_FIELDS: [&str; 3] = ["__schema", "__type", "__typename"];

/// The schema introspection operations run on in development mode; `None` in production.
pub(super) fn schema<Q, M, S>(
    builder: SchemaBuilder<Q, M, S>,
    config: &GraphqlConfig,
) -> Option<Schema<Q, M, S>>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    config.mode.is_development().then(|| {
        builder
            .introspection_only()
            .limit_depth(MAX_DEPTH)
            .limit_recursive_depth(32)
            .finish()
    })
}

/// What a document's operations select at their roots (through fragments too).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Roots {
    /// Nothing but `__schema`, `__type` and `__typename`, in queries only.
    pub only_introspection: bool,
    /// The first `__schema` or `__type`, where it is.
    pub schema_or_type: Option<Pos>,
}

/// The roots of every operation in `document`: a few selections each, looked at once.
pub(super) fn roots(document: &ExecutableDocument) -> Roots {
    let mut walk = Walk {
        document,
        seen: HashSet::new(),
        roots: Roots {
            only_introspection: true,
            schema_or_type: None,
        },
    };
    for (_, operation) in document.operations.iter() {
        if operation.node.ty != OperationType::Query {
            walk.roots.only_introspection = false;
        }
        walk.set(&operation.node.selection_set.node);
    }
    walk.roots
}

/// `Err` with the error to answer when `document` asks for `__schema` or `__type` (on a
/// schema without introspection, async-graphql answers `null` without a word).
pub(super) fn refuse(document: &ExecutableDocument) -> Result<(), async_graphql::ServerError> {
    match roots(document).schema_or_type {
        Some(pos) => Err(async_graphql::ServerError::new(
            "introspection is disabled",
            Some(pos),
        )),
        None => Ok(()),
    }
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    /// Fragments walked already (a cycle, which validation refuses, ends here).
    seen: HashSet<&'a str>,
    roots: Roots,
}

impl<'a> Walk<'a> {
    fn set(&mut self, set: &'a SelectionSet) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if !INTROSPECTION_FIELDS.contains(&name) {
                        self.roots.only_introspection = false;
                    } else if name != "__typename" && self.roots.schema_or_type.is_none() {
                        self.roots.schema_or_type = Some(field.pos);
                    }
                }
                Selection::InlineFragment(inline) => self.set(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if !self.seen.insert(name) {
                        continue;
                    }
                    match self.document.fragments.get(name) {
                        Some(fragment) => self.set(&fragment.node.selection_set.node),
                        None => self.roots.only_introspection = false,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Response, SimpleObject};

    use super::super::documents::{Schemas, run};
    use super::*;
    use crate::config::GraphqlMode;

    /// Exactly what graphql-js 16.11's `getIntrospectionQuery()` returns (codegen tools and
    /// GraphiQL send this or close to it): `ofType` eight levels deep.
    const INTROSPECTION_QUERY: &str = include_str!("testdata/introspection_query.graphql");

    #[derive(SimpleObject)]
    struct Home {
        greeting: String,
        banner_count: i32,
    }

    struct Query;

    #[Object]
    impl Query {
        async fn home(&self) -> Home {
            Home {
                greeting: "hi".into(),
                banner_count: 2,
            }
        }
        async fn viewer(&self, first: Option<i32>) -> i32 {
            first.unwrap_or_default()
        }
    }

    type TestSchemas = Schemas<Query, EmptyMutation, EmptySubscription>;

    /// Limits far below what the IntrospectionQuery needs.
    fn schemas(mode: GraphqlMode) -> TestSchemas {
        let config = GraphqlConfig {
            mode,
            max_depth: 3,
            max_complexity: 20,
            ..GraphqlConfig::default()
        };
        Schemas::new(
            || Schema::build(Query, EmptyMutation, EmptySubscription),
            &config,
        )
    }

    async fn execute(schemas: &TestSchemas, query: &str) -> Response {
        run(schemas, async_graphql::Request::new(query), None).await
    }

    fn text(response: &Response) -> String {
        serde_json::to_string(response).unwrap()
    }

    #[tokio::test]
    async fn production_refuses_schema_and_type_and_says_nothing_of_the_schema() {
        let production = schemas(GraphqlMode::Production);
        for query in [
            "{ __schema { types { name } } }",
            "{ __type(name: \"Home\") { fields { name } } }",
            INTROSPECTION_QUERY,
        ] {
            let response = execute(&production, query).await;
            assert!(!response.errors.is_empty(), "{query}: {}", text(&response));
            let shown = text(&response);
            assert!(!shown.contains("greeting"), "{shown}");
            assert!(!shown.contains("Home"), "{shown}");
        }
    }

    #[tokio::test]
    async fn a_misspelt_field_or_argument_names_no_other_in_production_only() {
        // Each mistake, and the names its error must not give away.
        let misspelt = [
            ("{ hom { greeting } }", ["home", "viewer"]),
            ("{ home { greting } }", ["greeting", "bannerCount"]),
            ("{ viewer(firs: 1) }", ["first", "home"]),
        ];
        let production = schemas(GraphqlMode::Production);
        for (query, hidden) in misspelt {
            let response = execute(&production, query).await;
            assert_eq!(response.errors.len(), 1, "{query}: {}", text(&response));
            let message = &response.errors[0].message;
            for named in hidden.iter().chain(&["mean"]) {
                assert!(!message.contains(named), "{query}: {message}");
            }
        }
        // The same mistakes in development get a suggestion: the test can see one.
        let development = schemas(GraphqlMode::Development);
        for (query, _) in misspelt {
            let response = execute(&development, query).await;
            assert!(
                response.errors[0].message.contains("Did you mean"),
                "{query}: {}",
                text(&response)
            );
        }
    }

    #[tokio::test]
    async fn development_answers_the_standard_introspection_query_past_the_limits() {
        let development = schemas(GraphqlMode::Development);
        let response = execute(&development, INTROSPECTION_QUERY).await;
        assert!(response.errors.is_empty(), "{}", text(&response));
        let data = response.data.into_json().unwrap();
        let types = data["__schema"]["types"].as_array().unwrap();
        let home = types.iter().find(|t| t["name"] == "Home").expect("Home");
        assert_eq!(home["fields"].as_array().unwrap().len(), 2, "{home}");
        assert_eq!(data["__schema"]["queryType"]["name"], "Query");
        // Other operations keep the limits: one level too deep is refused.
        let deep = execute(
            &development,
            "{ home { greeting } __schema { types { fields { type { name } } } } }",
        )
        .await;
        assert_eq!(deep.errors.len(), 1, "{}", text(&deep));
        assert!(
            deep.errors[0].message.contains("too deep"),
            "{}",
            text(&deep)
        );
    }

    #[test]
    fn only_operations_of_introspection_fields_alone_are_introspection() {
        let check = |query: &str| {
            let document = async_graphql::parser::parse_query(query).unwrap();
            roots(&document).only_introspection
        };
        assert!(check(INTROSPECTION_QUERY));
        assert!(check("{ __typename __type(name: \"Home\") { name } }"));
        assert!(check(
            "{ ...F ... on Query { __schema { types { name } } } } fragment F on Query { __typename ...F }"
        ));
        assert!(!check("{ __schema { types { name } } home { greeting } }"));
        assert!(!check(
            "{ ...F } fragment F on Query { __typename home { greeting } }"
        ));
        assert!(!check("{ ... on Query { home { greeting } } }"));
        assert!(!check(
            "query A { __typename } query B { home { greeting } }"
        ));
        assert!(!check("mutation { __typename }"));
        assert!(!check("{ ...Missing }"));
        let asks = |query: &str| {
            let document = async_graphql::parser::parse_query(query).unwrap();
            roots(&document).schema_or_type.is_some()
        };
        assert!(asks(
            "{ ... on Query { ...F } } fragment F on Query { __type(name: \"A\") { name } }"
        ));
        assert!(asks(
            "query A { home { greeting } } query B { __schema { types { name } } }"
        ));
        assert!(!asks("{ __typename home { __typename } }"));
    }
}
