//! Plain data objects resolved in one pass. async-graphql resolves every field of an object
//! as a boxed future of its own, collects them into a list, polls them, and merges each
//! result into the object's map by hashing its key twice. For an object that only holds data
//! (a price, a product card, a banner) that is nearly all the cost of its answer: the mobile
//! home, whose ~110 fields are all answered here but for its own seven, went from 822,631 to
//! 727,863 instructions per query (`bench/profile.py home-plain --callgrind`). A type that
//! implements `PlainObject` and is returned as `Plain<T>` (or a list of them as
//! `PlainList<T>`) has its selection walked here instead:
//! fields, aliases, `__typename` and fragments, written straight into one map. Its schema
//! type is the derived one (`#[derive(SimpleObject)]` still registers it), so the SDL and
//! validation do not change; `@skip` and `@include` were applied before execution began.
//! The fields of such an object never fail (but for `Fallible` ones, which hold their
//! error) and run no guard and no extension's per-field hook: a type with a guarded field
//! (`RequireScope`) stays an ordinary object. Each field the type registers must be named by
//! its `PlainObject` (one it forgets is an error naming it, not a missing key). When the
//! endpoint writes the answer itself, a plain value is not even built as a map: it is
//! written as JSON as it resolves (`written`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;

use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::raw_entry_v1::RawEntryMut;
use async_graphql::indexmap::map::{Entry, RawEntryApiV1};
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, Name, ObjectType, OutputType, PathSegment, Positioned, ServerError,
    ServerResult, Value,
};

mod fields;
mod written;

pub(super) use written::keys_unique;
pub use written::{Prewritten, Unwritten, Writing};

/// An object whose fields are data it already holds. `field` answers one field by its
/// GraphQL name (`None` for a name the type does not have); a field holding another plain
/// object answers with `nested.object(..)` (`PlainField` does that for each kind of value,
/// and `plain_object!` writes the whole impl for a struct).
pub trait PlainObject: ObjectType {
    fn field(&self, name: &str, nested: &Nested<'_, '_>) -> Option<Value>;

    /// Writes the JSON of the field `name`, the value `field` answers (`written`): with
    /// `PlainField::write` for each kind of value (`plain_object!` writes it). The default
    /// writes nothing, and the object is answered by `field` instead.
    fn write_field(
        &self,
        name: &str,
        nested: &Writing<'_, '_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Unwritten> {
        let _ = (name, nested, out);
        Err(Unwritten)
    }
}

impl<T: PlainObject + ?Sized> PlainObject for &T {
    fn field(&self, name: &str, nested: &Nested<'_, '_>) -> Option<Value> {
        T::field(self, name, nested)
    }

    fn write_field(
        &self,
        name: &str,
        nested: &Writing<'_, '_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Unwritten> {
        T::write_field(self, name, nested, out)
    }
}

/// A field's value in a plain object: a scalar, a list, an optional value, or another plain
/// object (answered with the field's selection). `write` writes the JSON of what `plain`
/// answers, exactly as the answer writer would write that value (`fields` has the impls).
pub trait PlainField {
    fn plain(&self, nested: &Nested<'_, '_>) -> Value;

    fn write(&self, nested: &Writing<'_, '_>, out: &mut Vec<u8>) -> Result<(), Unwritten>;
}

/// A wrapper's schema type is the type it wraps: the same name, nullability and registration.
macro_rules! schema_type_of {
    ($inner:ty) => {
        fn type_name() -> Cow<'static, str> {
            <$inner>::type_name()
        }

        fn qualified_type_name() -> String {
            <$inner>::qualified_type_name()
        }

        fn create_type_info(registry: &mut Registry) -> String {
            <$inner>::create_type_info(registry)
        }
    };
}

/// A field's value that may have failed (a backend call's, say): `Ok` answers as `T` does;
/// `Err` answers `null`, its error at the field's path, and `completion` then does what the
/// field's nullability says, as for any failed field.
#[derive(Clone)]
pub struct Fallible<T>(pub Result<T, async_graphql::Error>);

impl<T: OutputType> OutputType for Fallible<T> {
    schema_type_of!(T);

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match &self.0 {
            Ok(value) => value.resolve(ctx, field).await,
            Err(e) => Err(ctx.set_error_path(e.clone().into_server_error(field.pos))),
        }
    }
}

/// `PlainObject` for a struct whose GraphQL fields are its own fields, by name:
/// `plain_object!(Money { "amount" => amount, "currency" => currency });` (the names are
/// the schema's, as `#[derive(SimpleObject)]` registers them).
#[macro_export]
macro_rules! plain_object {
    ($ty:ty { $($name:literal => $field:ident),* $(,)? }) => {
        impl $crate::graphql::PlainObject for $ty {
            fn field(
                &self,
                name: &str,
                nested: &$crate::graphql::Nested<'_, '_>,
            ) -> ::core::option::Option<$crate::graphql::PlainValue> {
                match name {
                    $($name => ::core::option::Option::Some(
                        $crate::graphql::PlainField::plain(&self.$field, nested)
                    ),)*
                    _ => ::core::option::Option::None,
                }
            }

            fn write_field(
                &self,
                name: &str,
                nested: &$crate::graphql::Writing<'_, '_>,
                out: &mut ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), $crate::graphql::Unwritten> {
                match name {
                    $($name => $crate::graphql::PlainField::write(&self.$field, nested, out),)*
                    _ => ::core::result::Result::Err($crate::graphql::Unwritten),
                }
            }
        }
    };
}

/// What a plain field answers: async-graphql's value (named here for `plain_object!`).
pub type PlainValue = Value;

/// What a field of a plain object is answered with: the field's own selection, and where it
/// is in the answer (for an error's path).
pub struct Nested<'n, 'c> {
    ctx: &'n ContextSelectionSet<'c>,
    field: &'n Positioned<Field>,
    place: &'n Place<'n>,
    keys: &'n Keys,
}

/// Where a value is, below the field that returned the plain object or list: followed only
/// when a field failed.
#[derive(Clone, Copy)]
enum Place<'a> {
    /// The field that returned the plain object or list (its path is the context's).
    Top,
    Index(&'a Place<'a>, usize),
    Key(&'a Place<'a>, &'a str),
}

impl<'n, 'c> Nested<'n, 'c> {
    /// `value` answered with this field's selection.
    pub fn object<T: PlainObject>(&self, value: &T) -> Value {
        let set = &self.field.node.selection_set;
        answer(self.ctx, set, self.place, self.keys, value)
    }

    /// The same field, at another place (an item of its list).
    fn at<'m>(&'m self, place: &'m Place<'m>) -> Nested<'m, 'c> {
        Nested {
            ctx: self.ctx,
            field: self.field,
            place,
            keys: self.keys,
        }
    }

    /// Records `error` as this field's, at its place in the answer: the context's path (to
    /// the field that returned the plain value), then the keys and indexes below it.
    fn fail(&self, error: &async_graphql::Error) {
        fn push(place: &Place<'_>, path: &mut Vec<PathSegment>) {
            match place {
                Place::Top => {}
                Place::Index(parent, index) => {
                    push(parent, path);
                    path.push(PathSegment::Index(*index));
                }
                Place::Key(parent, key) => {
                    push(parent, path);
                    path.push(PathSegment::Field((*key).to_owned()));
                }
            }
        }
        let error = error.clone().into_server_error(self.field.pos);
        let mut error = self.ctx.set_error_path(error);
        push(self.place, &mut error.path);
        self.ctx.add_error(error);
    }
}

/// A plain object as a field's value (`async fn me(..) -> Plain<Me>`).
pub struct Plain<T>(pub T);

/// A list of plain objects as a field's value (`[T!]!`).
pub struct PlainList<T>(pub Vec<T>);

impl<T: PlainObject> OutputType for Plain<T> {
    schema_type_of!(T);

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let write = |out: &mut Vec<u8>| written::write_object(ctx, ctx.item, &self.0, out);
        if let Some(written) = written::prewrite(ctx, 256, write) {
            return Ok(written);
        }
        Ok(answer(
            ctx,
            ctx.item,
            &Place::Top,
            &Keys::default(),
            &self.0,
        ))
    }
}

impl<T: PlainObject> OutputType for PlainList<T> {
    schema_type_of!(Vec<T>);

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let write = |out: &mut Vec<u8>| written::write_list(ctx, ctx.item, &self.0, out);
        if let Some(written) = written::prewrite(ctx, 256 * self.0.len().max(1), write) {
            return Ok(written);
        }
        let keys = Keys::default();
        let item = |(index, v): (usize, &T)| {
            answer(ctx, ctx.item, &Place::Index(&Place::Top, index), &keys, v)
        };
        Ok(Value::List(self.0.iter().enumerate().map(item).collect()))
    }
}

/// `value`'s answer to `set`: one map, keys in the order the selection names them.
fn answer<T: PlainObject>(
    ctx: &ContextSelectionSet<'_>,
    set: &Positioned<SelectionSet>,
    place: &Place<'_>,
    keys: &Keys,
    value: &T,
) -> Value {
    let mut map = IndexMap::with_capacity_and_hasher(set.node.items.len(), keys.hasher.clone());
    collect(ctx, set, place, keys, value, &mut map);
    Value::Object(map)
}

fn collect<T: PlainObject>(
    ctx: &ContextSelectionSet<'_>,
    set: &Positioned<SelectionSet>,
    place: &Place<'_>,
    keys: &Keys,
    value: &T,
    map: &mut IndexMap<Name, Value>,
) {
    let hashes = keys.of(&set.node);
    for (selection, &hash) in set.node.items.iter().zip(hashes.iter()) {
        let set = match &selection.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                let key = &field.node.response_key().node;
                let answer = if name == "__typename" {
                    Some(Value::String(value.introspection_type_name().into_owned()))
                } else {
                    let place = Place::Key(place, key.as_str());
                    value.field(
                        name,
                        &Nested {
                            ctx,
                            field,
                            place: &place,
                            keys,
                        },
                    )
                };
                let answer = answer.unwrap_or_else(|| {
                    // Validation rejects such a document; reaching here is a defect.
                    let message = format!(
                        r#"Cannot query field "{name}" on type "{}"."#,
                        T::type_name()
                    );
                    ctx.add_error(ServerError::new(message, Some(field.pos)));
                    Value::Null
                });
                Keys::put(map, hash, key, answer);
                continue;
            }
            fragment => match applying(ctx, fragment, value) {
                Some(set) => set,
                None => continue,
            },
        };
        collect(ctx, set, place, keys, value, map);
    }
}

/// The maps of one plain value's answer share one hasher, and each key of a selection set
/// is hashed once, not once per object: a list of objects answers the same keys for every
/// item, and SipHash (the maps' hasher, async-graphql's type) over each of them was 3% of
/// the mobile home's instructions.
#[derive(Default)]
struct Keys {
    hasher: RandomState,
    /// By selection set (its address in the document), its items' keys' hashes in order
    /// (0 for a fragment).
    sets: RefCell<Vec<(usize, Rc<[u64]>)>>,
}

impl Keys {
    /// The hashes of `set`'s keys, by item.
    fn of(&self, set: &SelectionSet) -> Rc<[u64]> {
        let at = std::ptr::from_ref(set).addr();
        let mut sets = self.sets.borrow_mut();
        if let Some((_, hashes)) = sets.iter().find(|(s, _)| *s == at) {
            return hashes.clone();
        }
        let hash = |selection: &Positioned<Selection>| match &selection.node {
            Selection::Field(field) => self.hasher.hash_one(&field.node.response_key().node),
            _ => 0,
        };
        let hashes: Rc<[u64]> = set.items.iter().map(hash).collect();
        sets.push((at, hashes.clone()));
        hashes
    }

    /// `merge` into a map made with this hasher, `hash` being `key`'s.
    fn put(map: &mut IndexMap<Name, Value>, hash: u64, key: &Name, value: Value) {
        match map.raw_entry_mut_v1().from_hash(hash, |k| k == key) {
            RawEntryMut::Vacant(entry) => {
                entry.insert_hashed_nocheck(hash, key.clone(), value);
            }
            RawEntryMut::Occupied(_) => merge(map, key.clone(), value),
        }
    }
}

/// The selections of `fragment` (spread or inline) when it applies to `value`; `None` when
/// it does not, or for a field.
fn applying<'a, T: PlainObject>(
    ctx: &'a ContextSelectionSet<'_>,
    fragment: &'a Selection,
    value: &T,
) -> Option<&'a Positioned<SelectionSet>> {
    let (on, set) = match fragment {
        Selection::Field(_) => return None,
        Selection::FragmentSpread(spread) => {
            let fragment = ctx
                .query_env
                .fragments
                .get(&spread.node.fragment_name.node)?;
            let on = &fragment.node.type_condition.node.on.node;
            (Some(on), &fragment.node.selection_set)
        }
        Selection::InlineFragment(fragment) => {
            let on = fragment.node.type_condition.as_ref();
            (on.map(|c| &c.node.on.node), &fragment.node.selection_set)
        }
    };
    applies(ctx, value, on).then_some(set)
}

/// Whether a fragment on `on` applies to `value`'s type (or an interface it implements).
fn applies<T: PlainObject>(ctx: &ContextSelectionSet<'_>, value: &T, on: Option<&Name>) -> bool {
    let Some(on) = on else { return true };
    let name = value.introspection_type_name();
    name == on.as_str()
        || ctx
            .schema_env
            .registry
            .implements
            .get(name.as_ref())
            .is_some_and(|interfaces| interfaces.contains(on.as_str()))
}

/// A key selected twice (`price { amount } price { currency }`) answers once, its
/// selections merged, as the spec's field collection does.
fn merge(map: &mut IndexMap<Name, Value>, key: Name, value: Value) {
    match map.entry(key) {
        Entry::Vacant(entry) => {
            entry.insert(value);
        }
        Entry::Occupied(mut entry) => match (entry.get_mut(), value) {
            (Value::Object(into), Value::Object(from)) => merge_maps(into, from),
            (Value::List(into), Value::List(from)) => {
                for (into, from) in into.iter_mut().zip(from) {
                    if let (Value::Object(into), Value::Object(from)) = (into, from) {
                        merge_maps(into, from);
                    }
                }
            }
            _ => {}
        },
    }
}

fn merge_maps(into: &mut IndexMap<Name, Value>, from: IndexMap<Name, Value>) {
    for (key, value) in from {
        merge(into, key, value);
    }
}

#[cfg(test)]
mod tests;
