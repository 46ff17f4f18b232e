//! What an id is, once for the code and the document. Ids are opaque to the gateway (the
//! backends decide which exist) but bounded: 1 to `MAX_ID_LEN` characters (Unicode scalar
//! values, as JSON Schema's `maxLength` counts them, not bytes), none of them a control
//! character (C0, DEL, C1), whitespace (Unicode `White_Space`), or one of `,` (it separates
//! the ids of `?ids=`), `/`, `\` and `;` (a path refuses or splits them); and not `.` or `..`
//! (a path resolves those away). Nothing is trimmed: `?ids=p1, p2` is refused, not
//! corrected, so that what the document allows is exactly what is served.
//!
//! `PATTERN` says the same for `schemas/partner.openapi.json`, in the syntax both ECMA-262
//! and Python's `re` read alike: explicit `\uXXXX` ranges, and `(?![\s\S])` for the end of the
//! string (Python's `$` also matches before a final newline).

use manifold::error::Problem;
use serde_json::{Value, json};

/// Longest id, in characters.
pub const MAX_ID_LEN: usize = 64;

/// Most ids one `?ids=` may list, repeats counted.
pub const MAX_BATCH: usize = 100;

/// `check` as a JSON Schema `pattern`; the length is `minLength`/`maxLength`'s.
pub const PATTERN: &str = concat!(
    r"^(?!\.\.?(?![\s\S]))",
    r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000,/;\\]+",
    r"(?![\s\S])"
);

/// The rule in words, for problem details and the document.
pub const RULE: &str = "1 to 64 characters without whitespace, control characters, \
                        `,`, `/`, `;` or `\\`, and not `.` or `..`";

/// The JSON Schema of one id.
pub fn schema() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_LEN,
        "pattern": PATTERN,
        "description": format!("An id: {RULE}.")
    })
}

/// Whether `c` may not be part of an id.
fn refused(c: char) -> bool {
    c.is_control() || c.is_whitespace() || matches!(c, ',' | '/' | ';' | '\\')
}

/// Refuses an id that breaks the rule.
pub fn check(id: &str) -> Result<(), Problem> {
    let length = id.chars().count();
    if length == 0 || length > MAX_ID_LEN || id.chars().any(refused) || id == "." || id == ".." {
        return Err(Problem::bad_request(format!("an id is {RULE}")));
    }
    Ok(())
}

/// The ids of `?ids=a,b`, each once, in the order first asked: 1 to `MAX_BATCH` of them
/// counting repeats (the document's `maxItems`), each checked.
pub fn list(raw: Option<&str>) -> Result<Vec<&str>, Problem> {
    let raw = raw.ok_or_else(|| Problem::bad_request("query parameter ids is required"))?;
    if raw.is_empty() {
        return Err(Problem::bad_request("query parameter ids lists no id"));
    }
    let mut ids: Vec<&str> = Vec::new();
    for (n, id) in raw.split(',').enumerate() {
        if n == MAX_BATCH {
            return Err(Problem::bad_request(format!(
                "at most {MAX_BATCH} ids per request, repeats counted"
            )));
        }
        check(id)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    //! The code's check against the document's pattern as the two regex engines that read
    //! it (Python's `re`, Node's ECMA-262 `RegExp`): a table of ids, and every character.

    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;

    /// Ids on both sides of every clause of the rule.
    fn table() -> Vec<String> {
        let mut ids: Vec<String> = [
            "p1",
            "o-42-1",
            "42",
            "a.b",
            "...",
            ".a",
            "a.",
            "-",
            "_",
            "~",
            "é",
            "日本",
            "😀",
            "a%2Fb",
            "a:b",
            "a?b",
            "a#b",
            "a+b",
            "a\u{200B}b",
            "a\u{FEFF}b",
            "a\u{FFFF}b",
            "\u{10FFFF}",
            "",
            ".",
            "..",
            " ",
            "p1 ",
            " p1",
            "p 1",
            "p1\n",
            "p1\r\n",
            "\np1",
            "a\tb",
            "a\u{0}b",
            "a\u{7F}b",
            "a\u{80}b",
            "a\u{85}b",
            "a\u{9F}b",
            "a\u{A0}b",
            "a\u{1680}b",
            "a\u{2000}b",
            "a\u{200A}b",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{202F}b",
            "a\u{205F}b",
            "a\u{3000}b",
            "a,b",
            "a/b",
            "a;b",
            "a\\b",
        ]
        .map(str::to_owned)
        .into();
        ids.push("x".repeat(MAX_ID_LEN));
        ids.push("x".repeat(MAX_ID_LEN + 1));
        ids.push("é".repeat(MAX_ID_LEN)); // 128 bytes, 64 characters
        ids.push("😀".repeat(MAX_ID_LEN)); // 256 bytes, 128 UTF-16 units
        ids.push("😀".repeat(MAX_ID_LEN + 1));
        ids
    }

    /// Reads `{"pattern", "min", "max", "ids"}`, prints for each id whether the schema takes
    /// it, then every code point (surrogates aside) that `"a" + c` fails the pattern for.
    const PYTHON: &str = r#"
import json, re, sys
spec = json.load(sys.stdin)
p = re.compile(spec["pattern"])
print(json.dumps([bool(p.search(i)) and spec["min"] <= len(i) <= spec["max"] for i in spec["ids"]]))
print(json.dumps([c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and not p.search("a" + chr(c))]))
"#;

    const NODE: &str = r#"
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const spec = JSON.parse(input);
  const p = new RegExp(spec.pattern, "u");
  const q = new RegExp(spec.pattern);
  const ok = (s) => p.test(s) && q.test(s);
  console.log(JSON.stringify(spec.ids.map((i) => ok(i) && spec.min <= [...i].length && [...i].length <= spec.max)));
  const refused = [];
  for (let c = 0; c < 0x110000; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    if (!ok("a" + String.fromCodePoint(c))) refused.push(c);
  }
  console.log(JSON.stringify(refused));
});
"#;

    /// The two lines the script printed, or `None` (with the reason printed) when the program
    /// is missing; under `CI` a missing program fails the test.
    fn run(program: &str, args: &[&str], input: &str) -> Option<(Vec<bool>, Vec<u32>)> {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) if std::env::var_os("CI").is_none() => {
                println!("skipping the {program} check: cannot run {program}: {e}");
                return None;
            }
            Err(e) => panic!("CI: cannot run {program}: {e}"),
        };
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write");
        drop(stdin);
        let output = child.wait_with_output().expect("ran");
        assert!(output.status.success(), "{program} failed");
        let text = String::from_utf8(output.stdout).expect("utf-8");
        let mut lines = text.lines();
        let verdicts = serde_json::from_str(lines.next().expect("verdicts")).expect("json");
        let refused = serde_json::from_str(lines.next().expect("refused")).expect("json");
        Some((verdicts, refused))
    }

    #[test]
    fn the_code_and_the_documents_pattern_agree_in_python_and_ecma_262() {
        let ids = table();
        let input =
            json!({ "pattern": PATTERN, "min": 1, "max": MAX_ID_LEN, "ids": ids }).to_string();
        let expected: Vec<bool> = ids.iter().map(|id| check(id).is_ok()).collect();
        let refused: Vec<u32> = (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|&c| refused(c))
            .map(u32::from)
            .collect();
        // The rule as the module's doc states it, checked on the code itself.
        assert!(refused.contains(&0x85) && refused.contains(&0x3000) && refused.contains(&0x2C));
        assert!(!refused.contains(&0x200B) && !refused.contains(&u32::from('.')));
        let engines = [("python3", vec!["-c", PYTHON]), ("node", vec!["-e", NODE])];
        for (program, args) in engines {
            let Some((verdicts, engine_refused)) = run(program, &args, &input) else {
                continue;
            };
            for ((id, code), engine) in ids.iter().zip(&expected).zip(&verdicts) {
                assert_eq!(code, engine, "{program} and the code disagree on {id:?}");
            }
            assert_eq!(
                engine_refused, refused,
                "{program}: the refused characters differ"
            );
        }
    }

    #[test]
    fn id_lists_count_repeats_and_trim_nothing() {
        assert_eq!(list(Some("p1,p2,p1")).unwrap(), ["p1", "p2"]);
        let hundred = vec!["p1"; MAX_BATCH].join(",");
        assert_eq!(list(Some(&hundred)).unwrap(), ["p1"]);
        let over = format!("{hundred},p1");
        assert!(
            list(Some(&over))
                .unwrap_err()
                .detail
                .contains("repeats counted")
        );
        for bad in [
            "",
            ",",
            "p1,",
            ",p1",
            "p1,,p2",
            "p1, p2",
            " p1",
            "p1,p\u{7}2",
            "p1,.",
        ] {
            assert_eq!(list(Some(bad)).unwrap_err().status, 400, "{bad:?}");
        }
        assert!(list(None).is_err());
        assert!(list(Some(&"x".repeat(MAX_ID_LEN + 1))).is_err());
        assert_eq!(list(Some(&"é".repeat(MAX_ID_LEN))).unwrap().len(), 1);
    }
}
