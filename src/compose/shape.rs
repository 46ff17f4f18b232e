//! Shaping one call's answer and putting it in the result: `select` a part of it, keep the
//! `allow`-listed fields (of the object, or of each object of a list), drop the `deny`-listed
//! ones, `rename`; then place it under its key (or merge it into the root), or `join` each of
//! its elements into the matching element of another call's list.

use serde_json::{Map, Value};

use crate::config::{CallConfig, JoinConfig};

/// `value` as `call` says to shape it.
pub(super) fn shape(value: Value, call: &CallConfig) -> Value {
    let mut value = match &call.select {
        Some(path) => path
            .split('.')
            .try_fold(value, |v, field| match v {
                Value::Object(mut map) => map.remove(field),
                _ => None,
            })
            .unwrap_or(Value::Null),
        None => value,
    };
    match &mut value {
        Value::Array(items) => {
            for item in items {
                fields(item, call);
            }
        }
        other => fields(other, call),
    }
    value
}

fn fields(value: &mut Value, call: &CallConfig) {
    let Value::Object(map) = value else { return };
    if !call.allow.is_empty() {
        map.retain(|k, _| call.allow.iter().any(|a| a == k));
    }
    for field in &call.deny {
        map.remove(field);
    }
    for (from, to) in &call.rename {
        if let Some(v) = map.remove(from) {
            map.insert(to.clone(), v);
        }
    }
}

/// Puts `value` under `key` in `root`; an empty key merges an object's fields into it.
pub(super) fn place(root: &mut Map<String, Value>, key: &str, value: Value) {
    match (key, value) {
        ("", Value::Object(fields)) => root.extend(fields),
        (key, value) => {
            root.insert(key.to_owned(), value);
        }
    }
}

/// Puts each element of `value` (a list) into the element of `root[join.into]` whose
/// `join.key` equals its `join.on`, as `join.as_field` (`null` where nothing matched).
pub(super) fn join(root: &mut Map<String, Value>, join: &JoinConfig, value: Value) {
    let Value::Array(mut found) = value else {
        return;
    };
    let Some(Value::Array(targets)) = root.get_mut(&join.into) else {
        return;
    };
    for target in targets {
        let Value::Object(target) = target else {
            continue;
        };
        let key = target.get(&join.key).cloned();
        let at = key.and_then(|key| {
            found
                .iter()
                .position(|f| f.get(&join.on).is_some_and(|v| *v == key))
        });
        let matched = at.map_or(Value::Null, |i| found.swap_remove(i));
        target.insert(join.as_field.clone(), matched);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(text: &str) -> CallConfig {
        toml::from_str(&format!(
            "name = \"c\"\nupstream = \"u\"\npath = \"/\"\n{text}"
        ))
        .unwrap()
    }

    #[test]
    fn select_allow_deny_and_rename() {
        let c = call(
            "select = \"data.items\"\nallow = [\"id\", \"name\", \"x\"]\ndeny = [\"x\"]\nrename = { name = \"title\" }",
        );
        let shaped = shape(
            json!({"data": {"items": [{"id": 1, "name": "a", "x": 0, "secret": 2}]}}),
            &c,
        );
        assert_eq!(shaped, json!([{"id": 1, "title": "a"}]));
    }

    #[test]
    fn answers_are_placed_merged_and_joined_by_key() {
        let mut root = Map::new();
        place(&mut root, "", json!({"id": "42"}));
        place(&mut root, "orders", json!([{"id": "o1"}, {"id": "o2"}]));
        let join: JoinConfig =
            toml::from_str("into = \"orders\"\non = \"orderId\"\nkey = \"id\"\nas = \"shipment\"")
                .unwrap();
        super::join(&mut root, &join, json!([{"orderId": "o2", "eta": "d"}]));
        assert_eq!(
            Value::Object(root),
            json!({"id": "42", "orders": [{"id": "o1", "shipment": null}, {"id": "o2", "shipment": {"orderId": "o2", "eta": "d"}}]})
        );
    }
}
