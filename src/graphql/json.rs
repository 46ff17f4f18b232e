//! A GraphQL answer written as JSON without serde's machinery for its `data`: the same
//! bytes `serde_json::to_writer` writes (the tests compare them). Through serde, a value
//! tree is a `Serializer` call per value and per key, and each string is escaped a byte at a
//! time in fragments: 5.7% of the mobile home query's instructions (its answer is ~200 short
//! strings). Here a value is one `match`, and a string is copied whole unless it holds a
//! byte JSON must escape, looked for eight bytes at a time: 4.2%. What is rare (errors,
//! extensions, binary values, fractional numbers) still goes through serde. A plain
//! object's answer already written as JSON (`plain::Prewritten`) is copied in as it is.

use async_graphql::{Response, Value};

use super::plain::Prewritten;
use crate::upstream::Text;

/// Appends `response` to `out` exactly as `serde_json::to_writer` would, the answers kept
/// in `prewritten` copied in where they stand.
pub(super) fn write_response(
    out: &mut Vec<u8>,
    response: &Response,
    prewritten: Option<&Prewritten>,
) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"data\":");
    match prewritten {
        Some(prewritten) => prewritten.with_kept(|kept| write_value(out, &response.data, kept))?,
        None => write_value(out, &response.data, &[])?,
    }
    if !response.extensions.is_empty() {
        out.extend_from_slice(b",\"extensions\":");
        serde_json::to_writer(&mut *out, &response.extensions)?;
    }
    if !response.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        serde_json::to_writer(&mut *out, &response.errors)?;
    }
    out.push(b'}');
    Ok(())
}

/// `value` as serde writes it, or for a binary value that is one of `kept` (the same bytes,
/// not an equal copy), its bytes as they are.
pub(super) fn write_value(
    out: &mut Vec<u8>,
    value: &Value,
    kept: &[bytes::Bytes],
) -> serde_json::Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(true) => out.extend_from_slice(b"true"),
        Value::Boolean(false) => out.extend_from_slice(b"false"),
        Value::String(s) => write_str(out, s),
        Value::Enum(name) => write_str(out, name),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            } else {
                serde_json::to_writer(&mut *out, n)?;
            }
        }
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, kept)?;
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            out.push(b'{');
            for (i, (name, field)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, name);
                out.push(b':');
                write_value(out, field, kept)?;
            }
            out.push(b'}');
        }
        Value::Binary(bytes) if kept.iter().any(|k| is_same(k, bytes)) => {
            out.extend_from_slice(bytes);
        }
        Value::Binary(_) => serde_json::to_writer(&mut *out, value)?,
    }
    Ok(())
}

/// Whether `a` and `b` are the same bytes in memory (one a clone of the other).
fn is_same(a: &bytes::Bytes, b: &bytes::Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

/// `s` as a JSON string, escaped as serde_json escapes: `"`, `\` and the control
/// characters below U+0020 (short forms where JSON has them, else `\u00xx`); nothing else.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_quoted(out, s.as_bytes(), false);
}

/// `text` as a JSON string: as `write_str` writes it, and without looking at its bytes when
/// it was read from a JSON answer as it stands (`Text::is_json_plain`).
pub(super) fn write_text(out: &mut Vec<u8>, text: &Text) {
    write_quoted(out, text.as_bytes(), text.is_json_plain());
}

/// `bytes` between quotes, escaped unless they are `plain` (known to need no escaping) or
/// found so.
#[inline]
fn write_quoted(out: &mut Vec<u8>, bytes: &[u8], plain: bool) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if plain || is_clean(bytes) {
        out.extend_from_slice(bytes);
    } else {
        write_escaped(out, bytes);
    }
    out.push(b'"');
}

/// No byte of `bytes` needs escaping, checked a word at a time: the last (short) word is
/// the string's last eight bytes again, or for a string shorter than a word, its bytes
/// padded with spaces.
fn is_clean(bytes: &[u8]) -> bool {
    let word = |eight: &[u8]| u64::from_le_bytes(eight.try_into().expect("eight bytes"));
    let mut words = bytes.chunks_exact(8);
    if words.any(|eight| needs_escape(word(eight))) {
        return false;
    }
    match bytes.len() {
        0 => true,
        n if n % 8 == 0 => true,
        n if n > 8 => !needs_escape(word(&bytes[n - 8..])),
        n => {
            let mut padded = [b' '; 8];
            padded[..n].copy_from_slice(bytes);
            !needs_escape(u64::from_le_bytes(padded))
        }
    }
}

fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let short = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0..0x20 => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..at]);
        out.extend_from_slice(&[b'\\', short]);
        if short == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let hex = [
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ];
            out.extend_from_slice(&hex);
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether any of the eight bytes in `word` is `"`, `\` or below 0x20 (each test is the
/// classic "has a byte less than n" on the word, exact for whether any byte matches).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let control = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    control | quote | backslash != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::indexmap::IndexMap;
    use async_graphql::{Name, Number, ServerError};

    fn same_as_serde(response: &Response) {
        let mut ours = Vec::new();
        write_response(&mut ours, response, None).unwrap();
        let theirs = serde_json::to_vec(response).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    fn object(fields: Vec<(&str, Value)>) -> Value {
        let map: IndexMap<Name, Value> =
            fields.into_iter().map(|(k, v)| (Name::new(k), v)).collect();
        Value::Object(map)
    }

    #[test]
    fn every_string_is_escaped_as_serde_escapes_it() {
        // Each byte below 0x80 in strings shorter and longer than a word, at every offset
        // (in the first word, a middle one, the last and short one).
        for byte in 0u8..0x80 {
            let c = char::from(byte);
            for before in 0..18 {
                for after in 0..10 {
                    let text = format!("{}{c}{}", "a".repeat(before), "b".repeat(after));
                    same_as_serde(&Response::new(Value::String(text)));
                }
            }
        }
        for text in [
            "",
            "plain",
            "exactly8",
            "sixteen bytes!!!",
            "Grüße, 世界 🎉 \u{7f}",
            "\"quoted\" and \\slashed\\ / not",
            "tab\tnew\nline\r\u{0}\u{1f}\u{8}\u{c}",
        ] {
            same_as_serde(&Response::new(Value::String(text.into())));
        }
    }

    /// A text decoded from a backend's JSON answer is written as serde writes its string,
    /// whether it shared the answer's bytes (written as it stood) or was unescaped.
    #[test]
    fn a_text_from_an_answer_is_written_as_serde_writes_its_string() {
        #[derive(serde::Deserialize)]
        struct One {
            s: Text,
        }
        let mut shared = 0;
        let mut texts = vec![
            "".to_owned(),
            "plain".to_owned(),
            "Grüße, 世界 🎉 \u{7f}".to_owned(),
            "\"quoted\" and \\slashed\\ / not".to_owned(),
            "tab\tnew\nline\r\u{0}\u{1f}".to_owned(),
        ];
        texts.extend((0u8..0x80).map(|byte| format!("ab{}cd", char::from(byte))));
        for text in texts {
            let answer = serde_json::to_vec(&serde_json::json!({ "s": text })).unwrap();
            let one: One = crate::upstream::decode_json("catalog", &answer).unwrap();
            assert_eq!(one.s, text.as_str());
            shared += usize::from(one.s.is_json_plain());
            let mut ours = Vec::new();
            write_text(&mut ours, &one.s);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                serde_json::to_string(&text).unwrap()
            );
        }
        // Every text without a byte to escape was written as it stood in the answer.
        assert_eq!(shared, 3 + 128 - 34);
    }

    #[test]
    fn every_kind_of_value_is_written_as_serde_writes_it() {
        let numbers = [
            Value::Number(Number::from(0u64)),
            Value::Number(Number::from(u64::MAX)),
            Value::Number(Number::from(i64::MIN)),
            Value::Number(Number::from(-7i64)),
            Value::Number(Number::from_f64(1.5).unwrap()),
            Value::Number(Number::from_f64(-0.1).unwrap()),
            Value::Number(Number::from_f64(1e300).unwrap()),
        ];
        let data = object(vec![
            ("null", Value::Null),
            ("yes", Value::Boolean(true)),
            ("no", Value::Boolean(false)),
            ("status", Value::Enum(Name::new("SHIPPED"))),
            ("numbers", Value::List(numbers.to_vec())),
            ("empty list", Value::List(vec![])),
            ("empty object", object(vec![])),
            ("bytes", Value::Binary(vec![0, 1, 255].into())),
            (
                "nested \"key\"",
                Value::List(vec![object(vec![(
                    "inner",
                    Value::List(vec![Value::String("x\ny".into()), Value::Null]),
                )])]),
            ),
        ]);
        same_as_serde(&Response::new(data.clone()));

        // With errors and extensions beside the data, and with neither data nor errors.
        let mut failed = Response::new(data).extension("cost", Value::from(3));
        failed
            .errors
            .push(ServerError::new("backend \"x\" failed", None));
        same_as_serde(&failed);
        same_as_serde(&Response::new(Value::Null));
        same_as_serde(&Response::from_errors(vec![ServerError::new("no", None)]));
    }

    /// Only the very bytes kept are copied in as JSON: a binary value with the same content
    /// (a scalar's, say) is written as serde writes it.
    #[test]
    fn only_kept_bytes_are_copied_in() {
        let kept = bytes::Bytes::from_static(br#"{"a":1}"#);
        let data = object(vec![
            ("written", Value::Binary(kept.clone())),
            (
                "other",
                Value::Binary(bytes::Bytes::from(br#"{"a":1}"#.to_vec())),
            ),
        ]);
        let mut out = Vec::new();
        write_value(&mut out, &data, &[kept]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"written":{"a":1},"other":[123,34,97,34,58,49,125]}"#
        );
    }
}
