use std::collections::HashMap;

use serde::Deserialize;

use super::Text;
use crate::upstream::{UpstreamErrorKind, decode_json};

#[derive(Debug, Deserialize)]
struct Named {
    name: Text,
    #[serde(default)]
    tags: Vec<Text>,
}

fn decode(json: &str) -> Named {
    decode_json("users", json.as_bytes()).expect("decodes")
}

/// `a` and `b` are slices of one copy of `json` (not copies of their own): they lie as far
/// apart as they stand in it.
fn one_copy(json: &str, a: &Text, b: &Text) -> bool {
    let at = |t: &Text| json.find(&format!("\"{t}\"")).expect("in the answer") as isize;
    b.as_ptr() as isize - a.as_ptr() as isize == at(b) - at(a)
}

#[test]
fn a_string_without_escapes_is_a_slice_of_the_answer_and_json_as_it_is() {
    let json = r#"{"name":"Ada Lovelace","tags":["x","Zoë ☃",""]}"#;
    let named = decode(json);
    assert_eq!(named.name, "Ada Lovelace");
    assert_eq!(named.tags, ["x", "Zoë ☃", ""]);
    assert!(named.name.is_json_plain());
    assert!(named.tags.iter().all(Text::is_json_plain));
    assert!(
        one_copy(json, &named.name, &named.tags[1]),
        "copied one by one"
    );
    assert!(one_copy(json, &named.tags[0], &named.tags[2]));
}

#[test]
fn a_string_with_escapes_is_unescaped_into_a_string_of_its_own() {
    let json = r#"{"name":"say \"hi\"\n\u00e9\\","tags":["x"]}"#;
    let named = decode(json);
    assert_eq!(named.name, "say \"hi\"\né\\");
    assert!(!named.name.is_json_plain(), "must be escaped when written");
    assert!(named.tags[0].is_json_plain());
}

#[test]
fn outside_decode_json_a_text_is_a_copy_never_marked_plain() {
    decode(r#"{"name":"first"}"#);
    // The answer decoded before is no longer the one texts share from.
    let named: Named = serde_json::from_str(r#"{"name":"second"}"#).expect("decodes");
    assert_eq!(named.name, "second");
    assert!(!named.name.is_json_plain());
}

#[test]
fn a_body_that_is_not_utf8_is_a_bad_response() {
    let err = decode_json::<Named>("users", b"{\"name\":\"\xff\"}").expect_err("not UTF-8");
    assert_eq!(err.kind, UpstreamErrorKind::BadResponse);
    assert!(err.detail.contains("UTF-8"), "{}", err.detail);
}

#[test]
fn texts_compare_hash_and_print_as_their_strings() {
    let named = decode(r#"{"name":"p1","tags":["p2"]}"#);
    let mut map = HashMap::new();
    map.insert(named.name.clone(), 1);
    map.insert(Text::from("p2".to_owned()), 2);
    assert_eq!(map.get("p1"), Some(&1));
    assert_eq!(map.get(named.tags[0].as_str()), Some(&2));
    assert_eq!(format!("{} {:?}", named.name, named.name), "p1 \"p1\"");
    assert_eq!(
        serde_json::to_string(&named.tags).expect("serializes"),
        r#"["p2"]"#
    );
    assert_eq!(String::from(named.name), "p1");
}
