//! `Text`: a string of a backend's JSON answer, kept as a slice of one shared copy of the
//! answer.
//!
//! Decoded into `String`s, the mobile home's eight answers made 97 allocations and copies a
//! query (a quarter of its allocations; under load, the first touch of a block the allocator
//! hands out is where the gateway waits on memory most), and each string was scanned again
//! for characters to escape when the answer was written. `decode_json` copies the answer
//! once into a reference-counted string; a `Text` decoded from a string the answer holds
//! without escapes is a slice of it (one reference count), and is known to need no escaping
//! when written back as JSON: a JSON string without a backslash holds no `"` and no control
//! character (serde_json refuses a raw one), which is all the answer writer escapes. A
//! string that held escapes is unescaped into one of its own, as a `String` was. UTF-8 is
//! checked once for the whole answer.
//!
//! A `Text` keeps its whole answer alive: right for what a request decodes and drops; a
//! value kept past the request (a few fields of a large answer) is better copied out
//! (`String::from`).

use std::borrow::Borrow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// A string read from a backend (or made from one); derefs to `str`. Cheap to clone.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    /// Bytes `start..start + len` of an answer, as they stood in it (JSON as it is).
    Shared {
        answer: Arc<str>,
        start: u32,
        len: u32,
    },
    Own(Box<str>),
}

impl Text {
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Shared { answer, start, len } => &answer[range(*start, *len)],
            Repr::Own(s) => s,
        }
    }

    /// Its bytes (sliced without the checks of a `str`'s character boundaries).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Shared { answer, start, len } => &answer.as_bytes()[range(*start, *len)],
            Repr::Own(s) => s.as_bytes(),
        }
    }

    /// Its length in bytes (without slicing the answer).
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Shared { len, .. } => *len as usize,
            Repr::Own(s) => s.len(),
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the string, between quotes, is already a JSON string (nothing in it to escape).
    /// `false` says only that it was not checked.
    pub fn is_json_plain(&self) -> bool {
        matches!(self.0, Repr::Shared { .. })
    }

    /// A string of the answer being decoded: its bytes shared when it lies within them.
    fn from_answer(s: &str) -> Text {
        ANSWER.with(|answer| {
            if let Some(answer) = &*answer.borrow() {
                let offset = (s.as_ptr() as usize).wrapping_sub(answer.as_ptr() as usize);
                if offset <= answer.len()
                    && s.len() <= answer.len() - offset
                    && let (Ok(start), Ok(len)) = (u32::try_from(offset), u32::try_from(s.len()))
                {
                    return Text(Repr::Shared {
                        answer: answer.clone(),
                        start,
                        len,
                    });
                }
            }
            Text::from(s)
        })
    }
}

/// The bytes `start..start + len` of an answer.
#[inline]
fn range(start: u32, len: u32) -> std::ops::Range<usize> {
    let start = start as usize;
    start..start + len as usize
}

impl Default for Text {
    fn default() -> Self {
        Text(Repr::Own(Box::default()))
    }
}

thread_local! {
    /// The answer `decode_json` is decoding on this thread, for `Text`s to share.
    static ANSWER: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// `decode` run on `answer`, the `Text`s it decodes sharing it (the answer before restored
/// after, so that a decoding inside another's is harmless).
pub(super) fn sharing<R>(answer: &str, decode: impl FnOnce(&str) -> R) -> R {
    struct Restore(Option<Arc<str>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let before = self.0.take();
            let _ = ANSWER.try_with(|answer| *answer.borrow_mut() = before);
        }
    }
    let answer: Arc<str> = Arc::from(answer);
    let _restore = Restore(ANSWER.with(|a| a.replace(Some(answer.clone()))));
    decode(&answer)
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Repr::Own(s.into_boxed_str()))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(Repr::Own(s.into()))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        match text.0 {
            Repr::Own(s) => s.into_string(),
            Repr::Shared { .. } => text.as_str().to_owned(),
        }
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// As its `str` hashes (`Borrow<str>`: a map keyed by `Text` is looked up by `&str`).
impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    /// Borrowed: the string stood in the input without escapes.
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text, E> {
        Ok(Text::from_answer(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
        Ok(Text::from(s))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Text, E> {
        Ok(Text::from(s))
    }
}

#[cfg(test)]
mod tests;
