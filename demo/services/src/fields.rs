//! `?fields=a,b`: sparse fieldsets, as many real APIs offer them (JSON:API's sparse
//! fieldsets, Google's partial responses). A service lists its entity's members in the order
//! it writes them; a client names the ones it reads, and `id` (the first member) always
//! comes, since a client matches a batch's items to its ids by it. An object member, or a
//! list of objects, a service declares narrowable can be asked for by its keys:
//! `images.thumb` is the `images` member with its `thumb` key alone (a list of thumbnails
//! need not receive five more sizes), `items.quantity` an order's lines with their quantity
//! alone (a count of the items need not receive their titles and prices).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::memo;

/// An entity's members, in the order it writes them (`names[0]` is its id), and the object
/// (or list of objects) members a client may narrow to some of their keys (at most 4, of at
/// most 16 keys each).
pub(crate) struct Members {
    pub(crate) names: &'static [&'static str],
    pub(crate) narrowable: &'static [(&'static str, &'static [&'static str])],
}

/// Which of a service's members an answer holds, one bit each (at most 16 members), and of
/// each narrowable member the keys it keeps (16 bits each; none set is the whole member).
/// The query of a read that takes `?fields=` and nothing else.
#[derive(Deserialize)]
pub(crate) struct Projection {
    /// `name,avatar`: only these members (and the id).
    pub(crate) fields: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FieldSet {
    members: u16,
    keys: u64,
}

impl FieldSet {
    /// Every member, whole (no `?fields=`).
    pub(crate) const ALL: FieldSet = FieldSet {
        members: u16::MAX,
        keys: 0,
    };

    /// `?fields=id,title,images.thumb` of an entity with `members`; `None` is every member;
    /// an unknown name is a 400 naming the known ones. A member named whole and by a key is
    /// whole.
    pub(crate) fn parse(fields: Option<&str>, members: &Members) -> Result<FieldSet, ApiError> {
        debug_assert!(members.names.len() <= 16 && members.narrowable.len() <= 4);
        let Some(fields) = fields else {
            return Ok(FieldSet::ALL);
        };
        let mut set = FieldSet {
            members: 1,
            keys: 0,
        };
        let mut whole = 1u16;
        for name in fields.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let (member, key) = match name.split_once('.') {
                Some((member, key)) => (member, Some(key)),
                None => (name, None),
            };
            let i = position(members.names, member).ok_or_else(|| unknown(name, members.names))?;
            set.members |= 1 << i;
            let Some(key) = key else {
                whole |= 1 << i;
                continue;
            };
            let Some(j) = members.narrowable.iter().position(|(n, _)| *n == member) else {
                return Err(ApiError::bad(format!(
                    "fields: `{name}`: `{member}` cannot be narrowed"
                )));
            };
            let keys = members.narrowable[j].1;
            let k = position(keys, key).ok_or_else(|| unknown(name, keys))?;
            set.keys |= 1 << (16 * j + k);
        }
        // A member asked for whole keeps every key.
        for (j, (member, _)) in members.narrowable.iter().enumerate() {
            if position(members.names, member).is_some_and(|i| whole & (1 << i) != 0) {
                set.keys &= !(0xFFFF << (16 * j));
            }
        }
        Ok(set)
    }

    /// `entity`'s JSON in this set: serde's own bytes for every member, else the projection.
    pub(crate) fn json<T: Serialize>(self, members: &Members, entity: &T) -> Bytes {
        if self == FieldSet::ALL {
            memo::to_json(entity)
        } else {
            memo::to_json(&self.project(members, entity))
        }
    }

    /// `entity`'s members in this set, in its own order, narrowed ones (each object of a
    /// narrowed list) with their keys asked for alone (`members` as given to `parse`).
    pub(crate) fn project<T: Serialize>(self, members: &Members, entity: &T) -> Map<String, Value> {
        let mut out = match serde_json::to_value(entity) {
            Ok(Value::Object(out)) => out,
            _ => Map::new(),
        };
        out.retain(|name, _| {
            position(members.names, name).is_some_and(|i| self.members & (1 << i) != 0)
        });
        for (j, (member, keys)) in members.narrowable.iter().enumerate() {
            let bits = (self.keys >> (16 * j)) & 0xFFFF;
            if bits == 0 {
                continue; // whole
            }
            let narrow = |object: &mut Map<String, Value>| {
                object.retain(|key, _| position(keys, key).is_some_and(|k| bits & (1 << k) != 0));
            };
            match out.get_mut(*member) {
                Some(Value::Object(object)) => narrow(object),
                Some(Value::Array(list)) => list
                    .iter_mut()
                    .filter_map(Value::as_object_mut)
                    .for_each(narrow),
                _ => {}
            }
        }
        out
    }
}

fn position(names: &[&str], name: &str) -> Option<usize> {
    names.iter().position(|n| *n == name)
}

/// The 400 for `fields=...,{name}` when `known` are the names it could have been.
fn unknown(name: &str, known: &[&str]) -> ApiError {
    ApiError::bad(format!(
        "fields: unknown field `{name}`; expected some of {}",
        known.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize)]
    struct Thing {
        id: u32,
        name: &'static str,
        long: &'static str,
        sizes: Sizes,
        lines: Vec<Sizes>,
    }

    #[derive(Serialize)]
    struct Sizes {
        small: u32,
        large: u32,
    }

    const MEMBERS: Members = Members {
        names: &["id", "name", "long", "sizes", "lines"],
        narrowable: &[
            ("sizes", &["small", "large"]),
            ("lines", &["small", "large"]),
        ],
    };

    fn thing() -> Thing {
        Thing {
            id: 7,
            name: "seven",
            long: "a long text",
            sizes: Sizes { small: 1, large: 9 },
            lines: vec![Sizes { small: 2, large: 8 }, Sizes { small: 3, large: 7 }],
        }
    }

    fn projected(fields: Option<&str>) -> Value {
        let set = FieldSet::parse(fields, &MEMBERS).unwrap();
        Value::Object(set.project(&MEMBERS, &thing()))
    }

    #[test]
    fn a_set_keeps_the_members_named_and_the_id() {
        assert_eq!(projected(Some("name")), json!({"id": 7, "name": "seven"}));
        assert_eq!(projected(None).as_object().unwrap().len(), 5);
        let unknown = FieldSet::parse(Some("name,colour"), &MEMBERS).unwrap_err();
        assert!(format!("{unknown:?}").contains("colour"), "{unknown:?}");
    }

    #[test]
    fn a_narrowable_member_keeps_the_keys_named_unless_it_is_also_named_whole() {
        assert_eq!(
            projected(Some("sizes.small")),
            json!({"id": 7, "sizes": {"small": 1}})
        );
        assert_eq!(
            projected(Some("sizes.large,sizes.small")),
            json!({"id": 7, "sizes": {"small": 1, "large": 9}})
        );
        assert_eq!(
            projected(Some("sizes.small,sizes")),
            json!({"id": 7, "sizes": {"small": 1, "large": 9}})
        );
        // A list of objects: each keeps the keys named.
        assert_eq!(
            projected(Some("lines.large")),
            json!({"id": 7, "lines": [{"large": 8}, {"large": 7}]})
        );
        assert_eq!(
            projected(Some("lines,lines.large"))["lines"],
            json!([{"small": 2, "large": 8}, {"small": 3, "large": 7}])
        );
        // Narrowed views are distinct sets (the services key their memos by them).
        let small = FieldSet::parse(Some("sizes.small"), &MEMBERS).unwrap();
        let whole = FieldSet::parse(Some("sizes"), &MEMBERS).unwrap();
        assert_ne!(small, whole);
        for bad in ["sizes.huge", "name.first", "colour.red"] {
            let error = format!("{:?}", FieldSet::parse(Some(bad), &MEMBERS).unwrap_err());
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }
}
