//! Memoised JSON: the serialised bytes of deterministic entities (a user, a product, a seeded
//! order, ...) kept in small bounded caches, and the helpers that assemble list answers from
//! those fragments with exactly the bytes serde writes for the whole list.
//!
//! Why: the benchmark runs these backends on the gateway's machine, where generating and
//! serialising kilobytes of wire-fat JSON on every request made them cost as much CPU as the
//! gateway they stand in front of. An entity is a pure function of its id, so it is generated
//! and serialised once (per cache lifetime) and then served as shared bytes.
//!
//! Only pure functions of their key go in a [`Memo`]. Mutable data (carts changed by POST,
//! orders created by POST) is served from where it is kept, so a fragment can never be stale.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use crate::shell::lock;

/// Bookkeeping per entry on top of its JSON (key, map slot, queue slot, allocation), a rough
/// figure so that budgets hold for small fragments too.
const ENTRY_OVERHEAD: usize = 64;

/// A map from a key to serialised JSON, bounded in bytes. When over budget, the oldest
/// insertions make room: a benchmark's hot set (64 users and what they touch) stays, and a
/// sweep over every id costs at most the budget.
pub(crate) struct Memo<K> {
    budget: usize,
    entries: Mutex<Entries<K>>,
}

struct Entries<K> {
    by_key: HashMap<K, Bytes>,
    /// Keys in insertion order, oldest first: the next to go.
    order: VecDeque<K>,
    /// What the entries weigh: their JSON plus [`ENTRY_OVERHEAD`] each.
    bytes: usize,
}

impl<K: Eq + Hash + Clone> Memo<K> {
    /// A memo holding at most about `budget` bytes.
    pub(crate) fn new(budget: usize) -> Self {
        Memo {
            budget,
            entries: Mutex::new(Entries {
                by_key: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
        }
    }

    /// The JSON of `key`, built and serialised by `build` on a miss. `build` runs outside the
    /// lock, so concurrent misses of one key may both build it; they produce the same bytes.
    pub(crate) fn json<T: Serialize>(&self, key: K, build: impl FnOnce() -> T) -> Bytes {
        self.bytes(key, || to_json(&build()))
    }

    /// The bytes of `key`, made by `build` on a miss (outside the lock, as `json`).
    pub(crate) fn bytes(&self, key: K, build: impl FnOnce() -> Bytes) -> Bytes {
        if let Some(hit) = lock(&self.entries).by_key.get(&key) {
            return hit.clone();
        }
        let made = build();
        lock(&self.entries).insert(key, made.clone(), self.budget);
        made
    }
}

impl<K: Eq + Hash + Clone> Entries<K> {
    fn insert(&mut self, key: K, value: Bytes, budget: usize) {
        let weight = value.len() + ENTRY_OVERHEAD;
        if weight > budget || self.by_key.contains_key(&key) {
            return;
        }
        while self.bytes + weight > budget {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.by_key.remove(&oldest) {
                self.bytes -= gone.len() + ENTRY_OVERHEAD;
            }
        }
        self.order.push_back(key.clone());
        self.by_key.insert(key, value);
        self.bytes += weight;
    }
}

/// What `axum::Json(value)` would send, as bytes that fit their length (serialising grows a
/// buffer by doubling; a cached fragment should not keep the slack).
pub(crate) fn to_json<T: Serialize>(value: &T) -> Bytes {
    // Serialising these plain structs (string keys, no maps with non-string keys) cannot fail.
    let mut json = serde_json::to_vec(value).unwrap_or_default();
    json.shrink_to_fit();
    Bytes::from(json)
}

/// `{"items":[...]}` around `fragments`: serde's bytes for `data::Items` of those entities.
pub(crate) fn items(fragments: &[Bytes]) -> Bytes {
    let mut out = list_start(fragments);
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// `{"items":[...],"nextCursor":...}`: serde's bytes for `data::Page`.
pub(crate) fn page(fragments: &[Bytes], next_cursor: Option<&str>) -> Bytes {
    let mut out = list_start(fragments);
    out.extend_from_slice(b"],\"nextCursor\":");
    // A string (escaped as serde escapes it) or `null`; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &next_cursor);
    out.push(b'}');
    Bytes::from(out)
}

/// `{"items":[` and the fragments joined by commas, with room for a short tail.
fn list_start(fragments: &[Bytes]) -> Vec<u8> {
    let len: usize = fragments.iter().map(|f| f.len() + 1).sum();
    let mut out = Vec::with_capacity(len + 48);
    out.extend_from_slice(b"{\"items\":[");
    for (i, fragment) in fragments.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(fragment);
    }
    out
}

/// A JSON answer from ready bytes: the same head as `axum::Json` (`content-type:
/// application/json`), without serialising anything.
pub(crate) struct JsonBytes(pub(crate) Bytes);

impl IntoResponse for JsonBytes {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Items, Page};

    #[derive(Serialize)]
    struct Thing {
        id: String,
        weight: f64,
    }

    fn thing(n: u32) -> Thing {
        Thing {
            id: format!("t\"{n}\\"),
            weight: f64::from(n) / 3.0,
        }
    }

    #[test]
    fn lists_assemble_to_serdes_bytes() {
        for count in [0, 1, 2, 7] {
            let fragments: Vec<Bytes> = (0..count).map(|n| to_json(&thing(n))).collect();
            let all = || (0..count).map(thing).collect::<Vec<_>>();
            let expected = serde_json::to_vec(&Items { items: all() }).unwrap();
            assert_eq!(items(&fragments), expected);
            for next_cursor in [None, Some("p7".to_owned()), Some("a\"b\u{1}".to_owned())] {
                let assembled = page(&fragments, next_cursor.as_deref());
                let expected = serde_json::to_vec(&Page {
                    items: all(),
                    next_cursor,
                })
                .unwrap();
                assert_eq!(assembled, expected);
            }
        }
    }

    #[test]
    fn memo_serves_what_it_built_and_stays_bounded() {
        // Room for three things, whichever three.
        let weight = (0..4)
            .map(|n| to_json(&thing(n)).len() + ENTRY_OVERHEAD)
            .max()
            .unwrap();
        let memo = Memo::new(3 * weight);
        let mut built = 0;
        for round in 0..2 {
            for n in 0..3 {
                let json = memo.json(n, || {
                    built += 1;
                    thing(n)
                });
                assert_eq!(
                    json,
                    serde_json::to_vec(&thing(n)).unwrap(),
                    "round {round}"
                );
            }
        }
        assert_eq!(built, 3, "the second round is served from memory");
        memo.json(3, || thing(3));
        let entries = lock(&memo.entries);
        assert_eq!(entries.by_key.len(), 3);
        assert!(!entries.by_key.contains_key(&0), "the oldest made room");
        assert_eq!(entries.order.len(), 3);
        assert!(entries.bytes <= 3 * weight);
        drop(entries);

        let tiny = Memo::new(8);
        let json = tiny.json(1, || thing(1));
        assert_eq!(json, serde_json::to_vec(&thing(1)).unwrap());
        assert!(lock(&tiny.entries).by_key.is_empty(), "too big to keep");
    }
}
