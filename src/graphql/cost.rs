//! What an operation costs to run, estimated before it runs, from the schema: every field
//! selected costs one, and a field's selections cost as many times as the field returns
//! items. A field with a `first`, `last` or `limit` argument returns that many (its value,
//! a variable's, or the argument's default); its lists inside (a connection's `edges` and
//! `nodes`) are sized by it. Any other list field returns `list_sizes["Type.field"]` items, or
//! `default_list_size`. Every fragment spread counts in full (each fragment is measured once
//! per request and type context), so twenty aliases of `search(first: 50) { nodes {
//! reviews(first: 10) { id } } }` cost what they make the backends do, about 12,000, not the
//! ~100 a field count says.

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Value as ConstValue, Variables};

use super::sdl::SchemaTypes;
use crate::config::GraphqlConfig;

/// The arguments that say how many items a field returns.
const SIZE_ARGUMENTS: [&str; 3] = ["first", "last", "limit"];

/// One field as the cost model sees it.
#[derive(Debug)]
struct FieldShape {
    /// The named type it returns (lists and non-null stripped).
    ty: String,
    list: bool,
    has_size_argument: bool,
    /// The largest default of its size arguments.
    size_default: Option<u64>,
    /// Items it returns when it has no size argument: its `list_sizes` entry, else the
    /// default (resolved once, with the schema).
    list_size: u64,
}

/// Maps looked up once or twice per field of every costed request, by type and field name:
/// hashed with foldhash (keyed per process) rather than SipHash.
type ByName<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// The schema's types and fields, and the sizes lists are assumed to have.
#[derive(Debug, Default)]
pub struct CostModel {
    types: ByName<ByName<FieldShape>>,
    roots: [Option<String>; 3],
    default_list_size: u64,
}

impl CostModel {
    /// The model of the schema whose SDL is `sdl`, with `config`'s list sizes. A schema that
    /// does not parse gives a model that counts every field once.
    pub fn new(sdl: &str, config: &GraphqlConfig) -> Self {
        let mut model = CostModel {
            default_list_size: config.default_list_size,
            roots: [
                Some("Query".into()),
                Some("Mutation".into()),
                Some("Subscription".into()),
            ],
            ..Self::default()
        };
        let Some(read) = SchemaTypes::read(sdl) else {
            return model;
        };
        model.roots = read.roots;
        for (name, fields) in read.types {
            let shapes = fields
                .into_iter()
                .map(|f| {
                    let field = f.name.node.to_string();
                    let list_size = config
                        .list_sizes
                        .get(&format!("{name}.{field}"))
                        .copied()
                        .unwrap_or(config.default_list_size);
                    (field, shape(&f, list_size))
                })
                .collect();
            model.types.insert(name, shapes);
        }
        model
    }

    /// The estimated cost of the operation `document` runs (the named one, or its only one),
    /// with `variables`. At least one.
    pub fn cost(
        &self,
        document: &ExecutableDocument,
        operation: Option<&str>,
        variables: &Variables,
    ) -> u64 {
        let chosen = document
            .operations
            .iter()
            .find(|(name, _)| operation.is_none() || name.map(|n| n.as_str()) == operation);
        let Some((_, op)) = chosen else {
            return 1;
        };
        let root = match op.node.ty {
            OperationType::Query => &self.roots[0],
            OperationType::Mutation => &self.roots[1],
            OperationType::Subscription => &self.roots[2],
        };
        let mut walk = Walk {
            model: self,
            document,
            variables,
            fragments: HashMap::default(),
        };
        let parent = root.as_deref().unwrap_or("");
        walk.set(&op.node.selection_set.node, parent, false).max(1)
    }

    fn field(&self, parent: &str, name: &str) -> Option<&FieldShape> {
        self.types.get(parent)?.get(name)
    }
}

fn shape(field: &async_graphql::parser::types::FieldDefinition, list_size: u64) -> FieldShape {
    let mut ty = &field.ty.node;
    let mut list = false;
    let named = loop {
        match &ty.base {
            BaseType::Named(name) => break name.to_string(),
            BaseType::List(inner) => {
                list = true;
                ty = inner;
            }
        }
    };
    let mut size_default: Option<u64> = None;
    let mut has_size_argument = false;
    for argument in &field.arguments {
        let name = argument.node.name.node.as_str();
        if SIZE_ARGUMENTS.contains(&name) {
            has_size_argument = true;
            if let Some(ConstValue::Number(n)) =
                argument.node.default_value.as_ref().map(|d| &d.node)
                && let Some(n) = n.as_u64()
            {
                size_default = size_default.max(Some(n));
            }
        }
    }
    FieldShape {
        ty: named,
        list,
        has_size_argument,
        size_default,
        list_size,
    }
}

struct Walk<'a> {
    model: &'a CostModel,
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    /// Cost per fragment, type context and sizedness: each measured once.
    fragments: HashMap<(&'a Name, bool), u64, foldhash::fast::RandomState>,
}

impl<'a> Walk<'a> {
    /// The cost of `set` on `parent`; `sized` when an enclosing field's size argument
    /// already counts the items of the lists inside.
    fn set(&mut self, set: &'a SelectionSet, parent: &str, sized: bool) -> u64 {
        let mut total = 0u64;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    let shape = self.model.field(parent, name);
                    let child = shape.map_or("", |s| s.ty.as_str());
                    let (times, inner_sized) = match shape {
                        Some(s) if s.has_size_argument => (self.size(field, s), true),
                        Some(s) if s.list && !sized => (s.list_size, false),
                        _ => (1, sized && shape.is_some_and(|s| s.list)),
                    };
                    let below = self.set(&field.selection_set.node, child, inner_sized);
                    1u64.saturating_add(times.saturating_mul(below))
                }
                Selection::InlineFragment(inline) => {
                    let inline = &inline.node;
                    let on = inline
                        .type_condition
                        .as_ref()
                        .map_or(parent, |c| c.node.on.node.as_str());
                    let on = on.to_owned();
                    self.set(&inline.selection_set.node, &on, sized)
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(&spread.node.fragment_name.node, sized)
                }
            };
            total = total.saturating_add(cost);
        }
        total
    }

    fn fragment(&mut self, name: &'a Name, sized: bool) -> u64 {
        if let Some(cost) = self.fragments.get(&(name, sized)) {
            return *cost;
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return 0;
        };
        // A cycle (refused by validation) counts nothing the second time round.
        self.fragments.insert((name, sized), 0);
        let on = fragment.node.type_condition.node.on.node.to_string();
        let cost = self.set(&fragment.node.selection_set.node, &on, sized);
        self.fragments.insert((name, sized), cost);
        cost
    }

    /// Items a sized field returns: its size argument's value, a variable's, or the default.
    fn size(&self, field: &async_graphql::parser::types::Field, shape: &FieldShape) -> u64 {
        for (name, value) in &field.arguments {
            if !SIZE_ARGUMENTS.contains(&name.node.as_str()) {
                continue;
            }
            // A literal, or a variable's value; anything else falls back to the default.
            let resolved = value
                .node
                .clone()
                .into_const_with(|v| self.variables.get(&v).cloned().ok_or(()));
            if let Ok(ConstValue::Number(n)) = resolved
                && let Some(n) = n.as_u64()
            {
                return n;
            }
        }
        shape.size_default.unwrap_or(self.model.default_list_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    const SDL: &str = "
        type Query {
            search(query: String!, first: Int! = 20): ProductConnection!
            product(id: ID!): Product
            banners: [Banner!]
            tags: [String!]!
        }
        type ProductConnection { edges: [ProductEdge!]! nodes: [Product!]! total: Int! }
        type ProductEdge { node: Product! cursor: String! }
        type Product { id: ID! title: String! reviews(first: Int! = 10): [Review!] related: [Product!]! }
        type Review { id: ID! stars: Int! }
        type Banner { id: ID! title: String! }
        schema { query: Query }
    ";

    fn model() -> CostModel {
        let config = GraphqlConfig {
            default_list_size: 10,
            list_sizes: [("Product.related".to_owned(), 4)].into(),
            ..GraphqlConfig::default()
        };
        CostModel::new(SDL, &config)
    }

    fn cost(query: &str) -> u64 {
        model().cost(&parse_query(query).unwrap(), None, &Variables::default())
    }

    #[test]
    fn plain_fields_cost_one_each() {
        assert_eq!(cost("{ product(id: \"p1\") { id title } }"), 3);
        assert_eq!(cost("{ __typename }"), 1);
    }

    #[test]
    fn lists_multiply_what_they_select() {
        // A list without a size: the default size (10), or the configured one (4).
        assert_eq!(cost("{ banners { id title } }"), 1 + 10 * 2);
        assert_eq!(cost("{ product(id: \"p\") { related { id } } }"), 1 + 1 + 4);
        // A size argument, given or defaulted; a connection's lists are sized by it.
        assert_eq!(
            cost("{ search(query: \"x\", first: 50) { nodes { id } } }"),
            1 + 50 * 2
        );
        assert_eq!(
            cost("{ search(query: \"x\") { edges { node { id } } } }"),
            1 + 20 * 3
        );
        // A scalar list costs its field.
        assert_eq!(cost("{ tags }"), 1);
    }

    #[test]
    fn nested_lists_multiply_and_variables_count() {
        let nested = "{ search(query: \"x\", first: 50) { nodes { reviews(first: 10) { id } } } }";
        assert_eq!(cost(nested), 1 + 50 * (1 + (1 + 10)));
        let document =
            parse_query("query Q($n: Int!) { search(query: \"x\", first: $n) { nodes { id } } }")
                .unwrap();
        let variables = Variables::from_json(serde_json::json!({ "n": 7 }));
        assert_eq!(model().cost(&document, None, &variables), 1 + 7 * 2);
    }

    #[test]
    fn aliases_and_every_fragment_spread_count() {
        let one = "search(query: \"x\", first: 50) { nodes { reviews(first: 10) { id } } }";
        let aliases: String = (0..20).map(|i| format!("a{i}: {one} ")).collect();
        assert_eq!(cost(&format!("{{ {aliases} }}")), 20 * 601);
        let spread = "{ ...P ...P } fragment P on Query { banners { id } }";
        assert_eq!(cost(spread), 2 * (1 + 10));
        let inline = "{ search(query: \"x\", first: 5) { nodes { ... on Product { id title } } } }";
        assert_eq!(cost(inline), 1 + 5 * 3);
    }

    #[test]
    fn the_named_operation_is_the_one_costed() {
        let document = parse_query("query A { __typename } query B { banners { id } }").unwrap();
        let vars = Variables::default();
        assert_eq!(model().cost(&document, Some("A"), &vars), 1);
        assert_eq!(model().cost(&document, Some("B"), &vars), 11);
    }
}
