//! What a receiver learns from the bytes of a message besides its value: whether
//! they are already canonical, and where the members of the top-level object lie.
//!
//! A receiver needs the canonical bytes of what it received (a patch's hash is
//! the hash of the canonical patch; a snapshot keeps its canonical bytes; a root
//! snapshot's document must hash to the root). Encoding the parsed value again
//! gives them, at the cost of a second walk as long as the first. When the bytes
//! arrived canonical, which is what every conforming node publishes, they are
//! those canonical bytes already, and so are the pieces of them: a member's value
//! is the canonical encoding of that value, and the object with one member cut
//! out (and one comma) is the canonical encoding of the object without it, since
//! the remaining members stay sorted.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::Value;

/// A value parsed by [`super::parse_received`], with its canonical bytes when the
/// input was canonical.
#[derive(Debug, Clone, PartialEq)]
pub struct Received<'a> {
    /// The value, exactly as [`super::parse_strict`] returns it.
    pub value: Value,
    /// `Some` exactly when the input is the canonical encoding of `value`
    /// (`canonical::to_vec(&value) == input`).
    pub canonical: Option<CanonicalText<'a>>,
}

/// Input known to be the canonical encoding of the value parsed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalText<'a> {
    bytes: &'a [u8],
    /// The members of the top-level object in input order (so in canonical
    /// order); empty when the value is not an object.
    members: Vec<MemberSpan>,
}

/// Where one member of the top-level object lies in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSpan {
    /// The key, quotes included.
    pub(crate) key: Range<usize>,
    /// The value.
    pub(crate) value: Range<usize>,
}

impl<'a> CanonicalText<'a> {
    pub(super) fn new(bytes: &'a [u8], members: Vec<MemberSpan>) -> CanonicalText<'a> {
        CanonicalText { bytes, members }
    }

    /// The whole input, which is canonical.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The index of the top-level member named `key`. Canonical text spells a
    /// key that needs no escape as itself between quotes, and has no other
    /// spelling, so comparing the spelling is comparing the key.
    fn find(&self, key: &str) -> Option<usize> {
        self.members.iter().position(|m| {
            self.bytes[m.key.clone()]
                .strip_prefix(b"\"")
                .and_then(|k| k.strip_suffix(b"\""))
                == Some(key.as_bytes())
        })
    }

    /// The canonical bytes of the value of the top-level member `key` (a key
    /// without characters JSON escapes), if there is one.
    pub fn member_value(&self, key: &str) -> Option<&'a [u8]> {
        self.find(key)
            .map(|i| &self.bytes[self.members[i].value.clone()])
    }

    /// The canonical bytes of the top-level object without its member `key` (a
    /// key without characters JSON escapes); the whole input if there is none.
    pub fn without_member(&self, key: &str) -> Cow<'a, [u8]> {
        let Some(i) = self.find(key) else {
            return Cow::Borrowed(self.bytes);
        };
        // Cut the member with the comma before it, or, for the first member,
        // the comma after it, if any; the rest of the text stays as it is.
        let cut = if i > 0 {
            self.members[i - 1].value.end..self.members[i].value.end
        } else if let Some(next) = self.members.get(1) {
            self.members[0].key.start..next.key.start
        } else {
            self.members[0].key.start..self.members[0].value.end
        };
        let mut out = Vec::with_capacity(self.bytes.len() - cut.len());
        out.extend_from_slice(&self.bytes[..cut.start]);
        out.extend_from_slice(&self.bytes[cut.end..]);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::spelling::{Choices, spell};
    use super::super::tests::{arb_string, arb_value};
    use super::super::{Limits, parse_received};
    use crate::canonical;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    fn canonical_text(text: &str) -> bool {
        parse_received(text.as_bytes(), 16)
            .expect("valid JSON")
            .canonical
            .is_some()
    }

    #[test]
    fn tells_canonical_text_apart() {
        for yes in [
            "1",
            "-1",
            "0.5",
            "1e-7",
            "1.5e-7",
            "\"\\u001f\\n/\u{7f}\u{2028}é\"",
            r#"{"a":[1,{"b":null}],"c":"d"}"#,
            "{\"\u{1f600}\":1,\"\u{e000}\":2}",
            "[]",
            "{}",
        ] {
            assert!(canonical_text(yes), "{yes}");
        }
        for no in [
            " 1",
            "1 ",
            "[1, 2]",
            "-0",
            "1.0",
            "1e2",
            "1E-7",
            "0.50",
            "\"\\/\"",
            "\"\\u0041\"",
            "\"\\u001F\"",
            "\"\\u000a\"",
            "\"\\ud83d\\ude00\"",
            r#"{"b":1,"a":2}"#,
            "{\"\u{e000}\":1,\"\u{1f600}\":2}",
            "{\"a\":{\"c\":1,\"b\":2}}",
        ] {
            assert!(!canonical_text(no), "{no}");
        }
    }

    #[test]
    fn cuts_members_out() {
        let text = br#"{"a":1,"b":[2],"c":{"d":3}}"#;
        let received = parse_received(text, 8).unwrap();
        let c = received.canonical.unwrap();
        assert_eq!(c.member_value("b"), Some(&b"[2]"[..]));
        assert_eq!(c.member_value("x"), None);
        assert_eq!(&*c.without_member("a"), br#"{"b":[2],"c":{"d":3}}"#);
        assert_eq!(&*c.without_member("b"), br#"{"a":1,"c":{"d":3}}"#);
        assert_eq!(&*c.without_member("c"), br#"{"a":1,"b":[2]}"#);
        assert_eq!(&*c.without_member("x"), text);
        let one = parse_received(br#"{"a":1}"#, 8).unwrap().canonical.unwrap();
        assert_eq!(&*one.without_member("a"), b"{}");
        let scalar = parse_received(b"1", 8).unwrap().canonical.unwrap();
        assert_eq!(scalar.member_value("a"), None);
        assert_eq!(&*scalar.without_member("a"), b"1");
    }

    /// What the pieces of canonical text must be: the encodings of the pieces.
    fn check_pieces(text: &CanonicalText<'_>, map: &Map<String, Value>) {
        for (key, value) in map {
            // Lookups are by keys that need no escape.
            if key.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
                continue;
            }
            assert_eq!(text.member_value(key), Some(&canonical::to_vec(value)[..]));
            let mut rest = map.clone();
            rest.remove(key);
            assert_eq!(
                &*text.without_member(key),
                &canonical::to_vec(&Value::Object(rest))[..]
            );
        }
    }

    use super::CanonicalText;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The detector says canonical exactly when encoding the parsed value
        /// gives the input back, over spellings from canonical to far from it.
        #[test]
        fn detector_agrees_with_encoding(
            v in arb_value(),
            choices in prop::collection::vec(any::<u8>(), 1..64),
            rate in prop_oneof![Just(0u8), 1u8..40],
        ) {
            let text = spell(&v, &mut Choices::new(choices, rate));
            let received = parse_received(text.as_bytes(), Limits::MAX_DEPTH_CEILING);
            prop_assert!(received.is_ok(), "{text:?}: {received:?}");
            let received = received.unwrap();
            prop_assert_eq!(&received.value, &v, "{:?}", text);
            let encoded = canonical::to_vec(&received.value);
            prop_assert_eq!(
                received.canonical.is_some(),
                encoded == text.as_bytes(),
                "{:?}",
                text
            );
            if rate == 0 {
                prop_assert!(received.canonical.is_some(), "{:?}", text);
            }
            if let (Some(c), Value::Object(map)) = (&received.canonical, &received.value) {
                prop_assert_eq!(c.bytes(), text.as_bytes());
                check_pieces(c, map);
            }
        }

        /// The same for objects at the top, where members are cut out.
        #[test]
        fn pieces_of_canonical_objects_are_canonical(
            map in prop::collection::btree_map(arb_string(), arb_value(), 0..6),
            extra in prop::option::of(arb_value()),
            choices in prop::collection::vec(any::<u8>(), 1..64),
            rate in prop_oneof![3 => Just(0u8), 1 => 1u8..40],
        ) {
            let mut map: Map<String, Value> = map.into_iter().collect();
            if let Some(sig) = extra {
                map.insert("sig".into(), json!({"key": sig}));
            }
            let v = Value::Object(map.clone());
            let text = spell(&v, &mut Choices::new(choices, rate));
            let received = parse_received(text.as_bytes(), Limits::MAX_DEPTH_CEILING).unwrap();
            prop_assert_eq!(&received.value, &v);
            let is_canonical = canonical::to_vec(&v) == text.as_bytes();
            prop_assert_eq!(received.canonical.is_some(), is_canonical, "{:?}", text);
            if let Some(c) = &received.canonical {
                check_pieces(c, &map);
            }
        }
    }
}
