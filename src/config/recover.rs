//! Reading a config so that every mistake in it shows in one run. serde stops at the first
//! value it cannot read, so each failed value is noted, taken out of the tree, and the tree
//! read again, until it reads (at most `MAX_ROUNDS` times). A required key taken out is
//! "missing" the next round: that is not reported (its real mistake was), its table is taken
//! out instead. Keys that no field takes are noted by serde_ignored on the way. Nothing here
//! knows a config key: it works on any type serde reads.
//!
//! Taking an entry out of a list moves the entries after it, so a later round's paths are
//! mapped back to the file's own (`Removed::original`) before they are reported.

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::keypath::{KeyPath, Segment};

/// More rounds than any real file has mistakes; a bound all the same.
const MAX_ROUNDS: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MistakeKind {
    /// A key no field takes: shown at the key.
    Unknown,
    /// A value of the wrong type or form: shown at the value.
    Invalid,
    /// A required key that is absent: shown at its table.
    Missing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Mistake {
    /// The key as the file has it.
    pub(super) path: KeyPath,
    pub(super) kind: MistakeKind,
    pub(super) message: String,
}

pub(super) struct Recovered<T> {
    /// What the tree reads as once the mistakes are taken out; `None` when one of them was a
    /// required key of the root, which nothing can stand in for.
    pub(super) value: Option<T>,
    pub(super) mistakes: Vec<Mistake>,
    pub(super) removed: Removed,
}

/// What was taken out of the tree, by the file's paths.
#[derive(Debug, Default)]
pub(super) struct Removed(Vec<KeyPath>);

impl Removed {
    /// The file's path of `working`, a path in the tree as it is after the removals.
    pub(super) fn original(&self, working: &KeyPath) -> KeyPath {
        let mut path = KeyPath::default();
        for segment in &working.0 {
            let segment = match segment {
                Segment::Index(i) => Segment::Index(self.original_index(&path, *i)),
                key => key.clone(),
            };
            path.0.push(segment);
        }
        path
    }

    /// Whether `path` was taken out, lies in something taken out, or holds something that was.
    pub(super) fn touches(&self, path: &KeyPath) -> bool {
        self.0
            .iter()
            .any(|r| path.starts_with(r) || r.starts_with(path))
    }

    /// The index in the file of entry `i` of the list at `list` (a file path).
    fn original_index(&self, list: &KeyPath, i: usize) -> usize {
        let gone: Vec<usize> = self
            .0
            .iter()
            .filter_map(|r| match r.0.split_last() {
                Some((Segment::Index(g), parent)) if parent == list.0.as_slice() => Some(*g),
                _ => None,
            })
            .collect();
        (0..).filter(|n| !gone.contains(n)).nth(i).unwrap_or(i)
    }
}

/// Reads `tree` as a `T`, collecting every mistake on the way.
pub(super) fn read_all<T: DeserializeOwned>(mut tree: DeTable<'_>) -> Recovered<T> {
    let mut out = Recovered {
        value: None,
        mistakes: Vec::new(),
        removed: Removed::default(),
    };
    for _ in 0..MAX_ROUNDS {
        let (result, ignored) = read::<T>(&tree);
        for working in ignored {
            let path = out.removed.original(&working);
            out.note(path, MistakeKind::Unknown, "unknown key".into());
        }
        let error = match result {
            Ok(value) => {
                out.value = Some(value);
                return out;
            }
            Err(error) => error,
        };
        let working = KeyPath::from_error(error.path());
        let message = error.into_inner().message().to_owned();
        match missing_field(&message) {
            Some(field) => {
                let missing = out
                    .removed
                    .original(&working.child(Segment::Key(field.to_owned())));
                if !out.removed.0.contains(&missing) {
                    out.note(missing, MistakeKind::Missing, "is required".into());
                }
            }
            None => {
                let path = out.removed.original(&working);
                out.note(path, MistakeKind::Invalid, plain(&message));
            }
        }
        let original = out.removed.original(&working);
        if working.is_root() || !remove(&mut tree, &working.0) {
            return out;
        }
        out.removed.0.push(original);
    }
    out
}

impl<T> Recovered<T> {
    /// Notes a mistake once (every round meets the unknown keys again).
    fn note(&mut self, path: KeyPath, kind: MistakeKind, message: String) {
        let mistake = Mistake {
            path,
            kind,
            message,
        };
        if !self.mistakes.contains(&mistake) {
            self.mistakes.push(mistake);
        }
    }
}

type Attempt<T> = Result<T, serde_path_to_error::Error<toml::de::Error>>;

/// One round: the value or the first error with its path, and the keys no field took.
fn read<T: DeserializeOwned>(tree: &DeTable<'_>) -> (Attempt<T>, Vec<KeyPath>) {
    let mut ignored = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| ignored.push(KeyPath::from_ignored(&path));
    let document = toml::de::Deserializer::from(Spanned::new(0..0, tree.clone()));
    let result =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(document, &mut note));
    (result, ignored)
}

/// The field serde's "missing field `name`" is about.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// serde's "invalid type: integer `5`, expected a duration" as "expected a duration, got
/// integer `5`": what was wanted first, as an operator reads it.
fn plain(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, expected)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            return format!("expected {expected}, got {got}");
        }
    }
    message.to_owned()
}

/// Takes the value at `path` out of `table`; false when there is none.
fn remove(table: &mut DeTable<'_>, path: &[Segment]) -> bool {
    match path {
        [] => false,
        [Segment::Key(key)] => table.remove(key.as_str()).is_some(),
        [Segment::Key(key), rest @ ..] => table
            .get_mut(key.as_str())
            .is_some_and(|value| remove_in(value.get_mut(), rest)),
        // An index into a table: the one table `[auth.jwt]`, read as a list of one.
        [Segment::Index(_), rest @ ..] => remove(table, rest),
    }
}

fn remove_in(value: &mut DeValue<'_>, path: &[Segment]) -> bool {
    match (value, path) {
        (DeValue::Table(table), _) => remove(table, path),
        (DeValue::Array(items), [Segment::Index(i)]) if *i < items.len() => {
            let all = std::mem::replace(items, DeArray::new());
            *items = all
                .into_iter()
                .enumerate()
                .filter(|(j, _)| j != i)
                .map(|(_, item)| item)
                .collect();
            true
        }
        (DeValue::Array(items), [Segment::Index(i), rest @ ..]) => items
            .get_mut(*i)
            .is_some_and(|item| remove_in(item.get_mut(), rest)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        #[serde(default)]
        size: u32,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        id: u32,
        #[serde(default)]
        note: String,
    }

    fn mistakes(text: &str) -> (bool, Vec<String>) {
        let tree = DeTable::parse(text).unwrap().into_inner();
        let out = read_all::<Doc>(tree);
        let shown = out
            .mistakes
            .iter()
            .map(|m| format!("{:?} {}: {}", m.kind, m.path, m.message))
            .collect();
        (out.value.is_some(), shown)
    }

    #[test]
    fn every_mistake_is_found_and_entries_keep_their_file_index() {
        let (read, shown) = mistakes(
            "name = \"a\"\nsize = \"big\"\ncolour = 1\n\
             [[items]]\nid = \"one\"\n[[items]]\nid = 2\nnote = 3\n[[items]]\nid = -1\nextra = 1\n",
        );
        assert!(read);
        assert_eq!(
            shown,
            [
                "Unknown colour: unknown key",
                "Invalid items[0].id: expected u32, got string \"one\"",
                "Invalid items[1].note: expected a string, got integer `3`",
                "Unknown items[2].extra: unknown key",
                "Invalid items[2].id: expected u32, got integer `-1`",
                "Invalid size: expected u32, got string \"big\"",
            ]
        );
    }

    #[test]
    fn a_missing_key_is_reported_once_and_only_when_really_missing() {
        let (read, shown) = mistakes("size = 1\n[[items]]\nnote = \"x\"\n");
        assert!(!read, "the root's required key cannot be stood in for");
        assert_eq!(
            shown,
            [
                "Missing items[0].id: is required",
                "Missing name: is required"
            ]
        );
    }

    #[test]
    fn serde_messages_say_what_was_expected_first() {
        assert_eq!(
            plain("invalid type: integer `5`, expected a duration like \"800ms\""),
            "expected a duration like \"800ms\", got integer `5`"
        );
        assert_eq!(plain("unknown variant `x`"), "unknown variant `x`");
        assert_eq!(missing_field("missing field `url`"), Some("url"));
    }
}
