//! Key paths (`upstreams.cart.timeout`, `routes[1].prefix`) as segments: read from the paths
//! serde, serde_ignored and the validation pass name, shown the one way a config problem
//! names its key, and found in the parsed file for the line and column of the key.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct KeyPath(pub(super) Vec<Segment>);

impl KeyPath {
    pub(super) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn child(&self, segment: Segment) -> KeyPath {
        let mut path = self.clone();
        path.0.push(segment);
        path
    }

    /// Whether `self` is `ancestor` or lies under it.
    pub(super) fn starts_with(&self, ancestor: &KeyPath) -> bool {
        self.0.starts_with(&ancestor.0)
    }

    /// Reads a key as the validation pass writes it: `auth.jwt[0].jwks_url`.
    pub(super) fn parse(text: &str) -> KeyPath {
        let mut segments = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (name, mut indices) = part.split_at(part.find('[').unwrap_or(part.len()));
            let mut parsed = Vec::new();
            while let Some(rest) = indices.strip_prefix('[') {
                let Some((index, after)) = rest.split_once(']') else {
                    break;
                };
                let Ok(index) = index.parse() else { break };
                parsed.push(Segment::Index(index));
                indices = after;
            }
            if !indices.is_empty() {
                // Not `name[n]...` after all: a key that contains brackets.
                segments.push(Segment::Key(part.to_owned()));
                continue;
            }
            if !name.is_empty() {
                segments.push(Segment::Key(name.to_owned()));
            }
            segments.extend(parsed);
        }
        KeyPath(segments)
    }

    /// Where serde_path_to_error says a value failed.
    pub(super) fn from_error(path: &serde_path_to_error::Path) -> KeyPath {
        use serde_path_to_error::Segment as S;
        KeyPath(
            path.iter()
                .filter_map(|segment| match segment {
                    S::Seq { index } => Some(Segment::Index(*index)),
                    S::Map { key } => Some(Segment::Key(key.clone())),
                    S::Enum { .. } | S::Unknown => None,
                })
                .collect(),
        )
    }

    /// A key serde_ignored saw no field for.
    pub(super) fn from_ignored(path: &serde_ignored::Path<'_>) -> KeyPath {
        use serde_ignored::Path as P;
        let mut segments = Vec::new();
        let mut node = path;
        loop {
            node = match node {
                P::Root => break,
                P::Seq { parent, index } => {
                    segments.push(Segment::Index(*index));
                    parent
                }
                P::Map { parent, key } => {
                    segments.push(Segment::Key(key.clone()));
                    parent
                }
                P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                    parent
                }
            };
        }
        segments.reverse();
        KeyPath(segments)
    }
}

/// `upstreams.cart.timeout`, `routes[0].prefix`.
impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Where a key is written: the spans of its key and of its value. `exact` is false when the
/// file does not have the key and these are its nearest ancestor's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Spans {
    pub(super) key: Range<usize>,
    pub(super) value: Range<usize>,
    pub(super) exact: bool,
}

/// Finds `path` in the parsed file. A key with dots in it (`list_sizes."Order.items"`) is
/// found from its dotted name, and an index into a table stays on it (`[auth.jwt]`, one
/// table, is entry 0 of the list it stands for).
pub(super) fn locate(root: &DeTable<'_>, path: &KeyPath) -> Option<Spans> {
    let mut found: Option<Spans> = None;
    let mut table = Some(root);
    let mut value: Option<&DeValue<'_>> = None;
    let mut rest = path.0.as_slice();
    while let Some((segment, after)) = rest.split_first() {
        if let Some(t) = table {
            if let Segment::Index(_) = segment {
                rest = after;
                continue;
            }
            let Some((taken, key, entry)) = dotted_entry(t, rest) else {
                return found.map(|s| Spans { exact: false, ..s });
            };
            found = Some(Spans {
                key: key.span(),
                value: entry.span(),
                exact: true,
            });
            rest = &rest[taken..];
            value = Some(entry.get_ref());
        } else {
            let (Some(DeValue::Array(items)), Segment::Index(i)) = (value, segment) else {
                return found.map(|s| Spans { exact: false, ..s });
            };
            let Some(item) = items.get(*i) else {
                return found.map(|s| Spans { exact: false, ..s });
            };
            found = Some(Spans {
                key: item.span(),
                value: item.span(),
                exact: true,
            });
            rest = after;
            value = Some(item.get_ref());
        }
        table = match value {
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        };
    }
    found
}

type Entry<'t, 'i> = (
    usize,
    &'t toml::Spanned<toml::de::DeString<'i>>,
    &'t toml::Spanned<DeValue<'i>>,
);

/// The entry of `table` the leading keys of `segments` name, and how many keys its name
/// took: `Order` then `Order.items`, ...
fn dotted_entry<'t, 'i>(table: &'t DeTable<'i>, segments: &[Segment]) -> Option<Entry<'t, 'i>> {
    let mut name = String::new();
    for (i, segment) in segments.iter().enumerate() {
        let Segment::Key(key) = segment else {
            return None;
        };
        if i > 0 {
            name.push('.');
        }
        name.push_str(key);
        if let Some((k, v)) = table.get_key_value(name.as_str()) {
            return Some((i + 1, k, v));
        }
    }
    None
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_they_are_shown() {
        for text in [
            "upstreams.cart.timeout",
            "routes[0].prefix",
            "auth.jwt[1].jwks_url",
            "graphql.list_sizes.Order.items",
            "a[1][2].b",
        ] {
            assert_eq!(KeyPath::parse(text).to_string(), text);
        }
        assert_eq!(
            KeyPath::parse("routes[0].prefix").0,
            [
                Segment::Key("routes".into()),
                Segment::Index(0),
                Segment::Key("prefix".into())
            ]
        );
    }

    #[test]
    fn keys_are_found_where_they_are_written() {
        let text = "[server]\nlisten = 5\n\n[[routes]]\nprefix = \"/a\"\n[[routes]]\nprefix = 7\n\
                    [graphql]\nlist_sizes = { \"Order.items\" = 0 }\n[auth.jwt]\nissuer = 1\n";
        let root = DeTable::parse(text).unwrap();
        let at = |key: &str| {
            let spans = locate(root.get_ref(), &KeyPath::parse(key)).unwrap();
            let (line, column) = line_column(text, spans.value.start);
            (line, column, spans.exact)
        };
        assert_eq!(at("server.listen"), (2, 10, true));
        assert_eq!(at("routes[1].prefix"), (7, 10, true));
        assert_eq!(at("graphql.list_sizes.Order.items"), (9, 32, true));
        assert_eq!(at("auth.jwt[0].issuer"), (11, 10, true));
        // Not in the file: its nearest ancestor, the `[server]` header.
        assert_eq!(at("server.drain_delay"), (1, 1, false));
        let key = locate(root.get_ref(), &KeyPath::parse("server.listen")).unwrap();
        assert_eq!(line_column(text, key.key.start), (2, 1));
        assert_eq!(locate(root.get_ref(), &KeyPath::parse("tls.cert")), None);
    }
}
