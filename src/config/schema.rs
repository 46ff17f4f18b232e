//! The config's JSON Schema, generated from the config types: their doc comments become
//! descriptions, and serde's names, enums and defaults are kept. `--print-config-schema`
//! prints it; `schemas/config.schema.json` is the checked-in copy editors read (Taplo / Even
//! Better TOML follow a `#:schema ../schemas/config.schema.json` first line).
//!
//! Types whose serde impls are hand-written describe themselves next to their parser
//! (`units`, `secret`); `Cidr`'s description is here, beside the generator.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::transform::{Transform, transform_subschemas};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

use super::{Cidr, Config};

/// The JSON Schema (draft 7, which editors' TOML plugins understand) of a config file.
pub fn json_schema() -> Value {
    let schema = SchemaSettings::draft07()
        .with_transform(TomlShapes)
        .into_generator()
        .into_root_schema_for::<Config>();
    schema.to_value()
}

/// What a TOML config can and cannot say, applied to every subschema: a table has only the
/// keys its type names (the loader refuses any other), and there is no `null` in TOML, so an
/// optional key is one that is absent, never one that is null. A section's default is left
/// to its keys, each of which states its own.
#[derive(Clone)]
struct TomlShapes;

impl Transform for TomlShapes {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(object) = schema.as_object_mut() else {
            return;
        };
        if object.contains_key("properties") && !object.contains_key("additionalProperties") {
            object.insert("additionalProperties".into(), false.into());
        }
        let section_default = object
            .get("default")
            .is_some_and(|d| d.is_null() || d.as_object().is_some_and(|o| !o.is_empty()));
        if section_default {
            object.remove("default");
        }
        // `"type": ["string", "null"]` -> `"type": "string"`.
        if let Some(Value::Array(types)) = object.get_mut("type") {
            types.retain(|t| t != "null");
            if let [only] = types.as_slice() {
                let only = only.clone();
                object.insert("type".into(), only);
            }
        }
        // `"anyOf": [T, {"type": "null"}]` -> T (a reference keeps its siblings apart, as
        // draft 7 ignores the siblings of `$ref`).
        if let Some(Value::Array(choices)) = object.get_mut("anyOf") {
            choices.retain(|c| c.get("type").is_none_or(|t| t != "null"));
            if let [only] = choices.as_slice() {
                let only = only.clone();
                object.remove("anyOf");
                match only {
                    Value::Object(only) if !only.contains_key("$ref") => object.extend(only),
                    reference => drop(object.insert("allOf".into(), Value::Array(vec![reference]))),
                }
            }
        }
    }
}

/// An address block is written as text: `"10.0.0.0/8"`, `"2001:db8::/32"`, or one address.
impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An address block, \"10.0.0.0/8\" or \"2001:db8::/32\"; a bare address is a /32 or /128.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Value, json_schema};

    /// `schemas/config.schema.json` is generated from the config types; regenerate it with
    /// `UPDATE_SCHEMAS=1 cargo test -p manifold`. Compared as JSON, not as text: key order
    /// depends on whether some crate in the build enables serde_json's `preserve_order`.
    #[test]
    fn checked_in_config_schema_matches_the_types() {
        let schema = json_schema();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/config.schema.json");
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            let mut text = serde_json::to_string_pretty(&schema).expect("serialize");
            text.push('\n');
            std::fs::write(path, text).expect("write schema");
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        let on_disk: Value = serde_json::from_str(&on_disk).unwrap_or(Value::Null);
        assert!(
            on_disk == schema,
            "schemas/config.schema.json differs from the config types; \
             run UPDATE_SCHEMAS=1 cargo test -p manifold"
        );
    }

    /// What editors show comes from the types: descriptions from doc comments, serde's
    /// names for enums, the duration format, defaults, and no key the loader would refuse.
    #[test]
    fn the_schema_describes_keys_formats_and_defaults() {
        let schema = json_schema();
        let defs = &schema["definitions"];
        let server = &defs["ServerConfig"];
        assert_eq!(schema["required"], serde_json::json!(["server"]));
        assert_eq!(server["additionalProperties"], false);
        assert!(
            server["properties"]["request_timeout"]["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Total budget of one client request")),
            "{server}"
        );
        assert_eq!(server["properties"]["request_timeout"]["default"], "3s");
        assert_eq!(defs["Duration"]["type"], "string");
        assert!(defs["Duration"]["pattern"].is_string());
        assert_eq!(
            defs["GraphqlMode"]["oneOf"][0]["const"], "production",
            "{}",
            defs["GraphqlMode"]
        );
        let redis_url = &defs["CacheConfig"]["properties"]["redis_url"];
        assert!(
            redis_url.to_string().contains("SecretUrl"),
            "a secret URL is a string of its own: {redis_url}"
        );
        assert!(!schema.to_string().contains("\"null\""), "TOML has no null");
    }
}
