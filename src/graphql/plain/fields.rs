//! `PlainField` for each kind of value a plain object's field holds: as a value tree
//! (`plain`) and as the JSON of that value (`write`).

use async_graphql::Value;

use super::written::{self, Unwritten, Writing};
use super::{Fallible, Nested, Place, PlainField, PlainObject};
use crate::graphql::json;
use crate::upstream::Text;

impl<T: PlainObject> PlainField for T {
    fn plain(&self, nested: &Nested<'_, '_>) -> Value {
        nested.object(self)
    }

    fn write(&self, nested: &Writing<'_, '_>, out: &mut Vec<u8>) -> Result<(), Unwritten> {
        nested.object(self, out)
    }
}

impl PlainField for String {
    fn plain(&self, _: &Nested<'_, '_>) -> Value {
        Value::String(self.clone())
    }

    fn write(&self, _: &Writing<'_, '_>, out: &mut Vec<u8>) -> Result<(), Unwritten> {
        json::write_str(out, self);
        Ok(())
    }
}

impl PlainField for Text {
    fn plain(&self, _: &Nested<'_, '_>) -> Value {
        Value::String(self.as_str().to_owned())
    }

    fn write(&self, _: &Writing<'_, '_>, out: &mut Vec<u8>) -> Result<(), Unwritten> {
        json::write_text(out, self);
        Ok(())
    }
}

macro_rules! plain_numbers {
    ($($number:ty),*) => {$(
        impl PlainField for $number {
            fn plain(&self, _: &Nested<'_, '_>) -> Value {
                Value::from(*self)
            }

            /// The value `plain` answers, written by the answer writer's own rule (a float
            /// that is not finite is `null` there too).
            fn write(&self, _: &Writing<'_, '_>, out: &mut Vec<u8>) -> Result<(), Unwritten> {
                written::write_value(&Value::from(*self), out)
            }
        }
    )*};
}

plain_numbers!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

impl PlainField for bool {
    fn plain(&self, _: &Nested<'_, '_>) -> Value {
        Value::Boolean(*self)
    }

    fn write(&self, _: &Writing<'_, '_>, out: &mut Vec<u8>) -> Result<(), Unwritten> {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
        Ok(())
    }
}

impl<T: PlainField> PlainField for Option<T> {
    fn plain(&self, nested: &Nested<'_, '_>) -> Value {
        self.as_ref().map_or(Value::Null, |v| v.plain(nested))
    }

    fn write(&self, nested: &Writing<'_, '_>, out: &mut Vec<u8>) -> Result<(), Unwritten> {
        match self {
            Some(value) => value.write(nested, out),
            None => {
                out.extend_from_slice(b"null");
                Ok(())
            }
        }
    }
}

impl<T: PlainField> PlainField for Vec<T> {
    fn plain(&self, nested: &Nested<'_, '_>) -> Value {
        let item =
            |(index, v): (usize, &T)| v.plain(&nested.at(&Place::Index(nested.place, index)));
        Value::List(self.iter().enumerate().map(item).collect())
    }

    fn write(&self, nested: &Writing<'_, '_>, out: &mut Vec<u8>) -> Result<(), Unwritten> {
        out.push(b'[');
        for (at, item) in self.iter().enumerate() {
            if at > 0 {
                out.push(b',');
            }
            item.write(nested, out)?;
        }
        out.push(b']');
        Ok(())
    }
}

impl<T: PlainField> PlainField for Fallible<T> {
    fn plain(&self, nested: &Nested<'_, '_>) -> Value {
        match &self.0 {
            Ok(value) => value.plain(nested),
            Err(e) => {
                nested.fail(e);
                Value::Null
            }
        }
    }

    /// A failed field is not written: its error needs its path, and the object is answered
    /// as a value tree instead.
    fn write(&self, nested: &Writing<'_, '_>, out: &mut Vec<u8>) -> Result<(), Unwritten> {
        match &self.0 {
            Ok(value) => value.write(nested, out),
            Err(_) => Err(Unwritten),
        }
    }
}

/// A `Text` is a GraphQL `String` (so that a field of a derived object may hold one).
impl async_graphql::OutputType for Text {
    fn type_name() -> std::borrow::Cow<'static, str> {
        <String as async_graphql::OutputType>::type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        <String as async_graphql::OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        _: &async_graphql::ContextSelectionSet<'_>,
        _: &async_graphql::Positioned<async_graphql::parser::types::Field>,
    ) -> async_graphql::ServerResult<Value> {
        Ok(Value::String(self.as_str().to_owned()))
    }
}
