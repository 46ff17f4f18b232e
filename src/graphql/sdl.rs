//! A schema's SDL read once into what the estimates after execution and before it need: the
//! root type of each operation type, and the fields of every object and interface type. The
//! cost model and the null completion each keep what they need of it.

use async_graphql::Name;
use async_graphql::parser::types::{FieldDefinition, TypeKind, TypeSystemDefinition};

/// The types of a schema, as its SDL declares them.
pub(super) struct SchemaTypes {
    /// Query, mutation and subscription root type names.
    pub roots: [Option<String>; 3],
    /// Every object and interface type with its fields.
    pub types: Vec<(String, Vec<FieldDefinition>)>,
}

impl SchemaTypes {
    /// `None` when `sdl` does not parse.
    pub fn read(sdl: &str) -> Option<Self> {
        let document = async_graphql::parser::parse_schema(sdl).ok()?;
        let mut read = SchemaTypes {
            roots: [
                Some("Query".into()),
                Some("Mutation".into()),
                Some("Subscription".into()),
            ],
            types: Vec::new(),
        };
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    let schema = schema.node;
                    let name =
                        |n: Option<async_graphql::Positioned<Name>>| n.map(|n| n.node.to_string());
                    read.roots = [
                        name(schema.query),
                        name(schema.mutation),
                        name(schema.subscription),
                    ];
                }
                TypeSystemDefinition::Type(ty) => {
                    let ty = ty.node;
                    let fields = match ty.kind {
                        TypeKind::Object(o) => o.fields,
                        TypeKind::Interface(i) => i.fields,
                        _ => continue,
                    };
                    let fields = fields.into_iter().map(|f| f.node).collect();
                    read.types.push((ty.name.node.to_string(), fields));
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        Some(read)
    }
}
