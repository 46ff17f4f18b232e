//! `MANIFOLD_*` environment variables overriding config keys, applied to the parsed file
//! before it is read: `MANIFOLD_UPSTREAMS__CART__TIMEOUT=1s` sets `upstreams.cart.timeout`.

use std::borrow::Cow;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::keypath::{KeyPath, Segment};

/// Sets `SERVER__LISTEN` (already without the prefix) in the tree and returns the path it
/// set. The value is read as a TOML value when it is one (`10`, `true`, `["a"]`), else as a
/// string.
pub(super) fn apply_override<'i>(
    tree: &mut DeTable<'i>,
    key: &str,
    raw: &'i str,
) -> Result<KeyPath, String> {
    let segments: Vec<String> = key.split("__").map(|s| s.to_ascii_lowercase()).collect();
    if segments.iter().any(String::is_empty) {
        return Err("empty path segment (use `__` between keys)".into());
    }
    let value =
        DeValue::parse(raw).map_or(DeValue::String(Cow::Borrowed(raw)), Spanned::into_inner);
    let value = Spanned::new(0..0, value);
    let name = |segment: &str| Spanned::new(0..0, Cow::Owned(segment.to_owned()));
    let (last, parents) = segments.split_last().ok_or("empty key")?;
    let mut path = KeyPath::default();
    let mut node = tree;
    let mut parents = parents.iter();
    while let Some(segment) = parents.next() {
        path = path.child(Segment::Key(segment.clone()));
        let entry = node
            .entry(name(segment))
            .or_insert_with(|| Spanned::new(0..0, DeValue::Table(DeTable::new())));
        node = match entry.get_mut() {
            DeValue::Table(t) => t,
            DeValue::Array(items) => {
                // `ROUTES__0__PREFIX`: one field of an entry of an array of tables.
                let rest: Vec<&String> = parents.chain([last]).collect();
                let [index, field] = rest[..] else {
                    return Err(format!(
                        "arrays can be overridden one field deep: {segment}__<index>__<field>"
                    ));
                };
                let i: usize = index
                    .parse()
                    .map_err(|_| format!("`{index}` is not an index into `{segment}`"))?;
                let Some(DeValue::Table(t)) = items.get_mut(i).map(Spanned::get_mut) else {
                    return Err(format!("`{segment}` has no table at index {i}"));
                };
                t.insert(name(field), value);
                return Ok(path
                    .child(Segment::Index(i))
                    .child(Segment::Key(field.clone())));
            }
            _ => return Err(format!("`{segment}` is not a table")),
        };
    }
    node.insert(name(last), value);
    Ok(path.child(Segment::Key(last.clone())))
}
