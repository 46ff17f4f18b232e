//! `?fields=a,b`: sparse fieldsets, as many real APIs offer them (JSON:API's sparse
//! fieldsets, Google's partial responses). A service lists its entity's members in the order
//! it writes them; a client names the ones it reads, and `id` (the first member) always
//! comes, since a client matches a batch's items to its ids by it.

use serde::Serialize;

use crate::error::ApiError;

/// Which of a service's members an answer holds, one bit each (at most 16 members).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FieldSet(u16);

impl FieldSet {
    /// Every member (no `?fields=`).
    pub(crate) const ALL: FieldSet = FieldSet(u16::MAX);

    /// `?fields=id,title,price` of an entity whose members are `names` (`names[0]` is its
    /// id); `None` is every member; an unknown name is a 400 naming the known ones.
    pub(crate) fn parse(fields: Option<&str>, names: &[&str]) -> Result<FieldSet, ApiError> {
        debug_assert!(names.len() <= 16, "at most 16 members");
        let Some(fields) = fields else {
            return Ok(FieldSet::ALL);
        };
        let mut bits = 1;
        for name in fields.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let i = names.iter().position(|f| *f == name).ok_or_else(|| {
                ApiError::bad(format!(
                    "fields: unknown field `{name}`; expected some of {}",
                    names.join(", ")
                ))
            })?;
            bits |= 1 << i;
        }
        Ok(FieldSet(bits))
    }

    /// `entity`'s members in this set, in its own order (`names` as given to `parse`).
    pub(crate) fn project<T: Serialize>(
        self,
        names: &[&str],
        entity: &T,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut members = match serde_json::to_value(entity) {
            Ok(serde_json::Value::Object(members)) => members,
            _ => serde_json::Map::new(),
        };
        members.retain(|name, _| {
            names
                .iter()
                .position(|f| f == name)
                .is_some_and(|i| self.0 & (1 << i) != 0)
        });
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Thing {
        id: u32,
        name: &'static str,
        long: &'static str,
    }

    const NAMES: [&str; 3] = ["id", "name", "long"];

    #[test]
    fn a_set_keeps_the_members_named_and_the_id() {
        let thing = Thing {
            id: 7,
            name: "seven",
            long: "a long text",
        };
        let narrow = FieldSet::parse(Some("name"), &NAMES).unwrap();
        assert_eq!(
            serde_json::Value::Object(narrow.project(&NAMES, &thing)),
            serde_json::json!({"id": 7, "name": "seven"})
        );
        let all = FieldSet::parse(None, &NAMES).unwrap();
        assert_eq!(all.project(&NAMES, &thing).len(), 3);
        let unknown = FieldSet::parse(Some("name,colour"), &NAMES).unwrap_err();
        assert!(format!("{unknown:?}").contains("colour"), "{unknown:?}");
    }
}
