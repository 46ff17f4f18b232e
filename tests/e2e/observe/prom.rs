//! A strict reader of Prometheus text (exposition format 0.0.4): every line must be a
//! comment, `# HELP`/`# TYPE`, or `name{label="value",...} number`; each sample's family
//! must have been declared by `# TYPE` first. Enough to prove `/metrics` parses.

use std::collections::{BTreeMap, HashSet};

pub struct Samples(Vec<(String, BTreeMap<String, String>, f64)>);

impl Samples {
    pub fn parse(text: &str) -> Samples {
        let mut typed = HashSet::new();
        let mut samples = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap();
                let kind = parts.next().unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "line {n}: bad type {line:?}"
                );
                assert!(
                    typed.insert(name.to_owned()),
                    "line {n}: {name} typed twice"
                );
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, labels, value) =
                parse_sample(line).unwrap_or_else(|e| panic!("line {n}: {e}: {line:?}"));
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(&name)
                .to_owned();
            assert!(typed.contains(&family), "line {n}: {name} has no # TYPE");
            samples.push((name, labels, value));
        }
        assert!(!samples.is_empty(), "no samples");
        Samples(samples)
    }

    /// The value of the sample `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
    }

    /// Every sample's name and labels, in page order.
    pub fn series(&self) -> impl Iterator<Item = (&str, &BTreeMap<String, String>)> {
        self.0
            .iter()
            .map(|(name, labels, _)| (name.as_str(), labels))
    }

    pub fn any_label_contains(&self, needle: &str) -> bool {
        self.0.iter().any(|(_, l, _)| {
            l.iter()
                .any(|(k, v)| k != "instance" && k != "le" && v.contains(needle))
        })
    }
}

fn parse_sample(line: &str) -> Result<(String, BTreeMap<String, String>, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let bytes = after.as_bytes();
        let mut i = 0;
        loop {
            match bytes.get(i).ok_or("unterminated labels")? {
                b'}' => break,
                b',' if !labels.is_empty() => i += 1,
                _ => {}
            }
            let eq = after[i..].find("=\"").ok_or("label without =\"")? + i;
            let key = &after[i..eq];
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad label name {key:?}"));
            }
            let mut value = String::new();
            i = eq + 2;
            loop {
                match bytes.get(i).ok_or("unterminated label value")? {
                    b'\\' => {
                        value.push(match bytes.get(i + 1) {
                            Some(b'n') => '\n',
                            Some(b) => *b as char,
                            None => return Err("dangling escape".into()),
                        });
                        i += 2;
                    }
                    b'"' => break,
                    _ => {
                        let ch = after[i..].chars().next().ok_or("bad UTF-8")?;
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            i += 1;
            if labels.insert(key.to_owned(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
        }
        rest = &after[i + 1..];
    }
    let value = rest.trim();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok((name.to_owned(), labels, value))
}
