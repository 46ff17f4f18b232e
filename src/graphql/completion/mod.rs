//! Field errors handled as the GraphQL spec says ("Handling Field Errors"): a failed field is
//! `null` in `data`, and a failed non-null field makes its nearest nullable parent `null`
//! (`data` itself when there is none). async-graphql 7.2 does neither: a field whose resolver
//! fails is left out of its parent's object (`do_resolve_container` records the error and
//! inserts nothing), an object whose every field failed becomes `null` whatever its type
//! says, and nothing propagates. So the response is completed after execution, from the
//! errors' paths and the field types of the schema's SDL, read once at startup.
//!
//! Only a response with errors is walked, and only along its errors' paths: the success path
//! costs one `is_empty`. What this module does not do: decide what is critical (that is the
//! schema's nullability, in each BFF), or say why a field failed (`graphql::error`, the
//! `UpstreamError` mapping).

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, Field, OperationType, Selection,
    SelectionSet, Type,
};
use async_graphql::{Name, PathSegment, Value};

use super::sdl::SchemaTypes;

/// Fragments nested deeper than this are not searched (validation refuses cycles; this only
/// bounds the walk).
const MAX_FRAGMENT_NESTING: usize = 32;

/// The schema's field types, by type and field name, and its root types.
#[derive(Debug, Default)]
pub struct Completion {
    fields: HashMap<String, HashMap<String, Type>>,
    /// Query, mutation and subscription root type names.
    roots: [Option<String>; 3],
}

/// One segment of an error's path, typed.
struct Step<'d> {
    /// May this position be `null`?
    nullable: bool,
    /// For a field: the selections of its parent (each with the type they select on), which
    /// give the order of the parent's keys.
    parent: Vec<(&'d str, &'d SelectionSet)>,
}

impl Completion {
    /// The field types of the schema whose SDL is `sdl`. A schema that does not parse gives a
    /// completion that leaves every response as it is.
    pub fn new(sdl: &str) -> Self {
        let mut completion = Completion {
            fields: HashMap::new(),
            roots: [
                Some("Query".into()),
                Some("Mutation".into()),
                Some("Subscription".into()),
            ],
        };
        let Some(read) = SchemaTypes::read(sdl) else {
            return Self::default();
        };
        completion.roots = read.roots;
        for (name, fields) in read.types {
            let fields = fields
                .into_iter()
                .map(|f| (f.name.node.to_string(), f.ty.node))
                .collect();
            completion.fields.insert(name, fields);
        }
        completion
    }

    /// Completes `response`, the execution of `operation` (a name, or the document's only
    /// operation) in `document`: every failed field `null`, every failed non-null field's
    /// nearest nullable parent `null`. An error whose path the document and schema do not
    /// type (introspection, a path async-graphql did not set) is left as it is.
    pub fn complete(
        &self,
        response: &mut async_graphql::Response,
        document: &ExecutableDocument,
        operation: Option<&str>,
    ) {
        if response.errors.is_empty() {
            return;
        }
        let Some(root) = self.root(document, operation) else {
            return;
        };
        // First every failed field is null, so an object async-graphql made `null` because
        // all its fields failed is an object again before anything is propagated into it.
        let mut to_null: Vec<&[PathSegment]> = Vec::new();
        let mut data_null = false;
        for error in &response.errors {
            let path = error.path.as_slice();
            let Some(steps) = self.steps(document, root, path) else {
                continue;
            };
            if let Some(slot) = slot(&mut response.data, path, &steps, document, true) {
                *slot = Value::Null;
            }
            match steps.iter().rposition(|step| step.nullable) {
                Some(at) if at + 1 == steps.len() => {}
                Some(at) => to_null.push(&path[..=at]),
                None => data_null = true,
            }
        }
        // Then each failed non-null field nulls its nearest nullable parent.
        if data_null {
            response.data = Value::Null;
            return;
        }
        for path in to_null {
            let steps = self.steps(document, root, path);
            if let Some(steps) = steps
                && let Some(slot) = slot(&mut response.data, path, &steps, document, false)
            {
                *slot = Value::Null;
            }
        }
    }

    /// The root type and selections of the operation that ran.
    fn root<'d>(
        &'d self,
        document: &'d ExecutableDocument,
        name: Option<&str>,
    ) -> Option<(&'d str, &'d SelectionSet)> {
        let operation = match (&document.operations, name) {
            (DocumentOperations::Single(op), _) => op,
            (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name)?,
            (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next()?,
            (DocumentOperations::Multiple(_), None) => return None,
        };
        let root = match operation.node.ty {
            OperationType::Query => &self.roots[0],
            OperationType::Mutation => &self.roots[1],
            OperationType::Subscription => &self.roots[2],
        };
        Some((root.as_deref()?, &operation.node.selection_set.node))
    }

    /// Each position along `path` typed: whether it may be null, and for a field, its
    /// parent's selections. `None` when a segment does not match the document or schema.
    fn steps<'d>(
        &'d self,
        document: &'d ExecutableDocument,
        root: (&'d str, &'d SelectionSet),
        path: &[PathSegment],
    ) -> Option<Vec<Step<'d>>> {
        if path.is_empty() {
            return None;
        }
        let mut steps = Vec::with_capacity(path.len());
        // Where the next field is selected: every selection of the same response key in the
        // parent, each on the type it selects on (fragments on other object types of an
        // interface may select it under other fields, with the same shape).
        let mut scope = vec![root];
        // The type at the current position, once a field is found.
        let mut current: Option<&'d Type> = None;
        for segment in path {
            match segment {
                PathSegment::Field(key) => {
                    if let Some(ty) = current {
                        // A field of a list, or of a scalar: not a path execution makes.
                        if !matches!(ty.base, BaseType::Named(_)) {
                            return None;
                        }
                    }
                    let mut found = Vec::new();
                    for (ty, set) in &scope {
                        select(document, ty, set, key, 0, &mut found);
                    }
                    let mut next_scope = Vec::with_capacity(found.len());
                    let mut field_type = None;
                    for (parent, field) in found {
                        let Some(ty) = self
                            .fields
                            .get(parent)
                            .and_then(|fields| fields.get(field.name.node.as_str()))
                        else {
                            continue;
                        };
                        field_type.get_or_insert(ty);
                        next_scope.push((named(ty), &field.selection_set.node));
                    }
                    let ty = field_type?;
                    steps.push(Step {
                        nullable: ty.nullable,
                        parent: std::mem::replace(&mut scope, next_scope),
                    });
                    current = Some(ty);
                }
                PathSegment::Index(_) => {
                    let BaseType::List(item) = &current?.base else {
                        return None;
                    };
                    steps.push(Step {
                        nullable: item.nullable,
                        parent: Vec::new(),
                    });
                    current = Some(item);
                }
            }
        }
        Some(steps)
    }
}

/// The named type under a type's lists and non-nulls.
fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(item) => named(item),
    }
}

/// Every field of `set` (fragments included) whose response key is `key`, with the type
/// it is selected on.
fn select<'d>(
    document: &'d ExecutableDocument,
    ty: &'d str,
    set: &'d SelectionSet,
    key: &str,
    nesting: usize,
    found: &mut Vec<(&'d str, &'d Field)>,
) {
    if nesting > MAX_FRAGMENT_NESTING {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                if field.node.response_key().node == key {
                    found.push((ty, &field.node));
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    let fragment = &fragment.node;
                    let on = fragment.type_condition.node.on.node.as_str();
                    select(
                        document,
                        on,
                        &fragment.selection_set.node,
                        key,
                        nesting + 1,
                        found,
                    );
                }
            }
            Selection::InlineFragment(inline) => {
                let inline = &inline.node;
                let on = inline
                    .type_condition
                    .as_ref()
                    .map_or(ty, |condition| condition.node.on.node.as_str());
                select(
                    document,
                    on,
                    &inline.selection_set.node,
                    key,
                    nesting + 1,
                    found,
                );
            }
        }
    }
}

/// The response keys `parent` selects, in document order (first occurrence).
fn keys_in_order<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    nesting: usize,
    keys: &mut Vec<&'d str>,
) {
    if nesting > MAX_FRAGMENT_NESTING {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let key = field.node.response_key().node.as_str();
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    keys_in_order(
                        document,
                        &fragment.node.selection_set.node,
                        nesting + 1,
                        keys,
                    );
                }
            }
            Selection::InlineFragment(inline) => {
                keys_in_order(document, &inline.node.selection_set.node, nesting + 1, keys);
            }
        }
    }
}

/// The value at `path` in `data`. With `restore`, a field missing from its object is added
/// (in the order the document selects it) and an object async-graphql made `null` because
/// all its fields failed is an object again; without, a path that ends early (a parent
/// already `null`) gives `None`.
fn slot<'v>(
    data: &'v mut Value,
    path: &[PathSegment],
    steps: &[Step<'_>],
    document: &ExecutableDocument,
    restore: bool,
) -> Option<&'v mut Value> {
    let mut at = data;
    for (segment, step) in path.iter().zip(steps) {
        at = match segment {
            PathSegment::Field(key) => {
                if restore && matches!(at, Value::Null) {
                    *at = Value::Object(Default::default());
                }
                let Value::Object(object) = at else {
                    return None;
                };
                if !object.contains_key(key.as_str()) {
                    if !restore {
                        return None;
                    }
                    object.insert(Name::new(key), Value::Null);
                    let mut order = Vec::new();
                    for (_, set) in &step.parent {
                        keys_in_order(document, set, 0, &mut order);
                    }
                    let rank = |key: &Name| {
                        order
                            .iter()
                            .position(|k| *k == key.as_str())
                            .unwrap_or(usize::MAX)
                    };
                    object.sort_by(|a, _, b, _| rank(a).cmp(&rank(b)));
                }
                object.get_mut(key.as_str())?
            }
            PathSegment::Index(index) => {
                let Value::List(items) = at else {
                    return None;
                };
                items.get_mut(*index)?
            }
        };
    }
    Some(at)
}

#[cfg(test)]
mod tests;
