//! Plain answers written as JSON while they are resolved, never built as a value tree. A
//! plain object answered as async-graphql's value is a map per object (each key hashed and
//! inserted), a copy of each string, then the whole tree written out and dropped: about a
//! quarter of the mobile home query's instructions. When the endpoint writes the answer
//! itself (`json::write_response`) and the document allows it, a plain value is written
//! here, straight into bytes, which stand in its place in async-graphql's answer as a binary
//! value the writer copies in as it is (`Prewritten` keeps them: only those very bytes are
//! copied, never another binary value).
//!
//! What the document must allow: async-graphql merges a key selected twice
//! (`me { id } me { name }`) by merging the maps of its answers, which it cannot do with
//! bytes, and a JSON object must not hold a key twice. So this runs only for a document
//! whose every selection set, its fragments spread, names each key once (`keys_unique`):
//! what clients send. A value that cannot be written (a failed field: its error needs its
//! path, and `completion` may need to reach inside) is answered as a value tree instead.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{ContextSelectionSet, Name, Positioned, Value};
use bytes::Bytes;

use super::{PlainObject, applying};
use crate::graphql::json;

/// A plain value is answered as a value tree instead: a field failed, or its object cannot
/// write it.
#[derive(Debug)]
pub struct Unwritten;

/// What a field of a plain object is written with: the field's own selection.
pub struct Writing<'n, 'c> {
    pub(super) ctx: &'n ContextSelectionSet<'c>,
    pub(super) field: &'n Positioned<Field>,
}

impl Writing<'_, '_> {
    /// `value` written with this field's selection.
    pub fn object<T: PlainObject>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), Unwritten> {
        write_object(self.ctx, &self.field.node.selection_set, value, out)
    }
}

/// A value's JSON, as the answer writer writes it (`json::write_value`).
pub fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), Unwritten> {
    json::write_value(out, value, &[]).map_err(|_| Unwritten)
}

/// The plain answers of one request written as JSON, for the answer writer to copy in. Request
/// data: a plain value finds it there when it may be written.
#[derive(Clone, Default)]
pub struct Prewritten(Arc<Mutex<Vec<Bytes>>>);

impl Prewritten {
    /// Keeps `json` and gives the value that stands for it in the answer.
    pub(super) fn keep(&self, json: Vec<u8>) -> Value {
        let bytes = Bytes::from(json);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(bytes.clone());
        Value::Binary(bytes)
    }

    /// `write` given the bytes kept.
    pub(in crate::graphql) fn with_kept<R>(&self, write: impl FnOnce(&[Bytes]) -> R) -> R {
        write(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The value standing for what `write` writes, when the request's plain answers are written
/// (`Prewritten` is in its data) and `write` writes all of it.
pub(super) fn prewrite(
    ctx: &ContextSelectionSet<'_>,
    capacity: usize,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), Unwritten>,
) -> Option<Value> {
    let prewritten = ctx.data_opt::<Prewritten>()?;
    let mut out = Vec::with_capacity(capacity);
    write(&mut out).ok()?;
    Some(prewritten.keep(out))
}

/// `items`' answers to `set` as a JSON list.
pub(super) fn write_list<T: PlainObject>(
    ctx: &ContextSelectionSet<'_>,
    set: &Positioned<SelectionSet>,
    items: &[T],
    out: &mut Vec<u8>,
) -> Result<(), Unwritten> {
    out.push(b'[');
    for (at, item) in items.iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        write_object(ctx, set, item, out)?;
    }
    out.push(b']');
    Ok(())
}

/// `value`'s answer to `set` as a JSON object, keys in the order the selection names them.
pub(super) fn write_object<T: PlainObject>(
    ctx: &ContextSelectionSet<'_>,
    set: &Positioned<SelectionSet>,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), Unwritten> {
    out.push(b'{');
    let mut first = true;
    write_members(ctx, set, value, out, &mut first)?;
    out.push(b'}');
    Ok(())
}

fn write_members<T: PlainObject>(
    ctx: &ContextSelectionSet<'_>,
    set: &Positioned<SelectionSet>,
    value: &T,
    out: &mut Vec<u8>,
    first: &mut bool,
) -> Result<(), Unwritten> {
    for selection in &set.node.items {
        let set = match &selection.node {
            Selection::Field(field) => {
                if !std::mem::take(first) {
                    out.push(b',');
                }
                write_key(out, &field.node.response_key().node);
                let name = field.node.name.node.as_str();
                if name == "__typename" {
                    json::write_str(out, &value.introspection_type_name());
                } else {
                    value.write_field(name, &Writing { ctx, field }, out)?;
                }
                continue;
            }
            fragment => match applying(ctx, fragment, value) {
                Some(set) => set,
                None => continue,
            },
        };
        write_members(ctx, set, value, out, first)?;
    }
    Ok(())
}

/// A response key and its colon. A key is a GraphQL name from the document (a field's or an
/// alias, `[_A-Za-z][_0-9A-Za-z]*` by the grammar), which JSON never escapes: written
/// without the string writer's check, which was most of the cost of each key.
fn write_key(out: &mut Vec<u8>, key: &str) {
    debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    out.reserve(key.len() + 3);
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Fragments spread deeper than this, or more keys than this in all, and the document is
/// not looked at further (answered as value trees): validation refuses cycles, and the
/// bounds (`bounds`) refuse bombs before this runs; this only bounds the walk.
const MAX_SPREAD_DEPTH: usize = 32;
const MAX_KEYS: usize = 10_000;

/// Whether every selection set of `document` (operations and fragments), its fragments
/// spread, names each response key once.
pub(in crate::graphql) fn keys_unique(document: &ExecutableDocument) -> bool {
    let mut budget = MAX_KEYS;
    let operations = document
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set);
    let fragments = document.fragments.values().map(|f| &f.node.selection_set);
    operations
        .chain(fragments)
        .all(|set| set_unique(document, &set.node, &mut budget))
}

/// `set` names each key once, and so does each field's selection in it (those in fragments
/// spread are checked where the fragment is defined).
fn set_unique(document: &ExecutableDocument, set: &SelectionSet, budget: &mut usize) -> bool {
    let mut keys: Vec<&Name> = Vec::with_capacity(set.items.len());
    if !collect_keys(document, set, &mut keys, 0, budget) {
        return false;
    }
    keys.sort_unstable();
    if keys.windows(2).any(|pair| pair[0] == pair[1]) {
        return false;
    }
    fields_unique(document, set, budget)
}

fn fields_unique(document: &ExecutableDocument, set: &SelectionSet, budget: &mut usize) -> bool {
    set.items.iter().all(|selection| match &selection.node {
        Selection::Field(field) => set_unique(document, &field.node.selection_set.node, budget),
        Selection::InlineFragment(fragment) => {
            fields_unique(document, &fragment.node.selection_set.node, budget)
        }
        Selection::FragmentSpread(_) => true,
    })
}

/// The response keys `set` names, fragments spread; false past the bounds.
fn collect_keys<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    keys: &mut Vec<&'d Name>,
    depth: usize,
    budget: &mut usize,
) -> bool {
    if depth > MAX_SPREAD_DEPTH {
        return false;
    }
    set.items.iter().all(|selection| match &selection.node {
        Selection::Field(field) => match budget.checked_sub(1) {
            Some(left) => {
                *budget = left;
                keys.push(&field.node.response_key().node);
                true
            }
            None => false,
        },
        Selection::InlineFragment(fragment) => collect_keys(
            document,
            &fragment.node.selection_set.node,
            keys,
            depth + 1,
            budget,
        ),
        Selection::FragmentSpread(spread) => {
            match document.fragments.get(&spread.node.fragment_name.node) {
                Some(fragment) => collect_keys(
                    document,
                    &fragment.node.selection_set.node,
                    keys,
                    depth + 1,
                    budget,
                ),
                None => false,
            }
        }
    })
}
