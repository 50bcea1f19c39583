//! The recursive-descent parser behind [`super::parse_strict`].
//!
//! It reads the text once and, in that one pass, builds the normalized
//! [`Value`], enforces every rule of the protocol's JSON (see the parent
//! module), and notes whether the text is spelled exactly as RFC 8785 would
//! write the value it holds. That last bit is what lets a receiver hash and
//! keep the bytes it got instead of encoding the value again: our own nodes
//! only ever publish canonical bytes, so the answer is almost always yes.
//!
//! Strings and numbers are read in [`super::string`] and [`super::number`],
//! objects' members are collected in [`super::members`].

use serde_json::Value;

use super::JsonError;
use super::members::Members;
use super::received::MemberSpan;

/// The parser's state: a cursor over text already known to be UTF-8. It only
/// ever stops on ASCII bytes, so every slice it takes lies on character
/// boundaries.
pub(super) struct Parser<'a> {
    pub(super) text: &'a str,
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
    max_depth: usize,
    /// Stays true while everything read so far is spelled as the canonical
    /// encoding of what it holds (no whitespace, canonical escapes and numbers,
    /// members in RFC 8785 order).
    pub(super) canonical: bool,
    /// Members of the objects being read, innermost last. One stack serves
    /// every level, so reading an object allocates only its map.
    pub(super) members: Members,
    /// Items of the arrays being read, innermost last, for the same reason.
    items: Vec<Value>,
    /// Where the members of the top-level object lie, if it is one.
    pub(super) top_level: Vec<MemberSpan>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str, max_depth: usize) -> Parser<'a> {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            max_depth,
            canonical: true,
            members: Members::default(),
            items: Vec::new(),
            top_level: Vec::new(),
        }
    }

    pub(super) fn syntax(&self, what: &str) -> JsonError {
        JsonError::Syntax(format!("{what} at byte {}", self.pos))
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub(super) fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    /// Skips whitespace, which canonical text never has.
    pub(super) fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
            self.canonical = false;
        }
    }

    pub(super) fn slice(&self, start: usize, end: usize) -> Result<&'a str, JsonError> {
        self.text
            .get(start..end)
            .ok_or_else(|| self.syntax("internal error: slice off a character boundary"))
    }

    /// Parses the value at the cursor; `depth` is the nesting of its container.
    pub(super) fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            None => Err(self.syntax("unexpected end of input")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(_) => Err(self.syntax("expected a JSON value")),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        if self
            .bytes
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(word.as_bytes()))
        {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.syntax("expected a JSON value"))
        }
    }

    fn check_depth(&self, depth: usize) -> Result<(), JsonError> {
        super::check_depth(depth, self.max_depth)
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.check_depth(depth)?;
        self.pos += 1; // '['
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(Vec::new()));
        }
        let base = self.items.len();
        loop {
            self.skip_whitespace();
            let item = self.value(depth)?;
            self.items.push(item);
            self.skip_whitespace();
            match self.next_byte() {
                Some(b',') => {}
                // Draining an exact-size range allocates the array once.
                Some(b']') => return Ok(Value::Array(self.items.drain(base..).collect())),
                _ => return Err(self.syntax("expected ',' or ']' in array")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.check_depth(depth)?;
        self.pos += 1; // '{'
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(serde_json::Map::new()));
        }
        let mut object = self.members.open();
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a string key in object"));
            }
            let key_start = self.pos;
            let key = self.string()?;
            let key_end = self.pos;
            self.skip_whitespace();
            if self.next_byte() != Some(b':') {
                return Err(self.syntax("expected ':' after object key"));
            }
            self.skip_whitespace();
            let value_start = self.pos;
            let value = self.value(depth)?;
            if depth == 1 {
                self.top_level.push(MemberSpan {
                    key: key_start..key_end,
                    value: value_start..self.pos,
                });
            }
            let in_order = self.members.add(&mut object, key, value)?;
            self.canonical &= in_order;
            self.skip_whitespace();
            match self.next_byte() {
                Some(b',') => {}
                Some(b'}') => return Ok(Value::Object(self.members.close(object))),
                _ => return Err(self.syntax("expected ',' or '}' in object")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::spelling::{Choices, spell};
    use super::super::tests::arb_value;
    use super::super::{parse_strict, reference};
    use proptest::prelude::*;

    /// The same answer as the parser this one replaced, error messages included.
    fn same_as_reference(bytes: &[u8]) -> Result<(), TestCaseError> {
        for depth in [0, 3, 8, 200] {
            prop_assert_eq!(
                parse_strict(bytes, depth),
                reference::parse_strict(bytes, depth),
                "{:?} at depth {}",
                String::from_utf8_lossy(bytes),
                depth
            );
        }
        Ok(())
    }

    /// Keys that collide after unescaping, sort differently in UTF-8 and UTF-16,
    /// or both, in any order: duplicate detection and ordering in every mode.
    fn arb_object_text() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "a",
            "b",
            "\\u0061",
            "\u{e9}",
            "\\u00e9",
            "\u{1f600}",
            "\\ud83d\\ude00",
            "\u{e000}",
            "",
        ]);
        let value = prop::sample::select(vec!["1", "[]", "{\"a\":1,\"a\":2}", "{\"b\":[1.0]}"]);
        prop::collection::vec((key, value), 0..6).prop_map(|members| {
            let members: Vec<String> = members
                .into_iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", members.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn agrees_on_spelled_values(
            v in arb_value(),
            choices in prop::collection::vec(any::<u8>(), 1..64),
            rate in prop_oneof![Just(0u8), 1u8..40],
        ) {
            same_as_reference(spell(&v, &mut Choices::new(choices, rate)).as_bytes())?;
        }

        #[test]
        fn agrees_on_damaged_text(
            v in arb_value(),
            choices in prop::collection::vec(any::<u8>(), 1..64),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"{}[]\":,\\ 0-.eEu1\x01\xff".to_vec()),
            how in 0u8..3,
        ) {
            let mut bytes = spell(&v, &mut Choices::new(choices, 5)).into_bytes();
            let i = at.index(bytes.len() + 1);
            match how {
                0 => bytes.truncate(i),
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => bytes[i] = byte,
                _ => bytes.push(byte),
            }
            same_as_reference(&bytes)?;
        }

        #[test]
        fn agrees_on_objects_with_colliding_keys(text in arb_object_text()) {
            same_as_reference(text.as_bytes())?;
        }

        #[test]
        fn agrees_on_json_like_text(s in "[\\[\\]{}\",:0-9eE.+\\-tfnrule\\\\ ]{0,40}") {
            same_as_reference(s.as_bytes())?;
        }

        #[test]
        fn agrees_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            same_as_reference(&bytes)?;
        }
    }
}
