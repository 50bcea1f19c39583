//! The parser as it was before the single-pass rewrite (one character at a
//! time, a tree search per member, no canonicity tracking), kept verbatim as a
//! test oracle: the new parser must return exactly what this one returns, the
//! same value or the same error with the same message, on any input.

use serde_json::{Map, Number, Value};

use super::{JsonError, MAX_SAFE, check_depth, number_from_f64};
use crate::Limits;

/// Parses `bytes` as exactly one JSON value under the protocol's rules (see the
/// module documentation), returning it with its numbers normalized.
pub(super) fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::InvalidUtf8)?;
    if text.starts_with('\u{feff}') {
        return Err(JsonError::Syntax("byte order mark at byte 0".into()));
    }
    let mut parser = Parser {
        text,
        bytes,
        pos: 0,
        max_depth: max_depth.min(Limits::MAX_DEPTH_CEILING),
    };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != bytes.len() {
        return Err(parser.syntax("trailing characters after the value"));
    }
    Ok(value)
}

/// A recursive-descent parser over text already known to be UTF-8. It only ever
/// stops on ASCII bytes, so every slice it takes lies on character boundaries.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn syntax(&self, what: &str) -> JsonError {
        JsonError::Syntax(format!("{what} at byte {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn slice(&self, start: usize, end: usize) -> Result<&str, JsonError> {
        self.text
            .get(start..end)
            .ok_or_else(|| self.syntax("internal error: slice off a character boundary"))
    }

    /// Parses the value at the cursor; `depth` is the nesting of its container.
    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
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

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        check_depth(depth, self.max_depth)?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.next_byte() {
                Some(b',') => {}
                Some(b']') => return Ok(Value::Array(items)),
                _ => return Err(self.syntax("expected ',' or ']' in array")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        check_depth(depth, self.max_depth)?;
        self.pos += 1; // '{'
        let mut map = Map::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a string key in object"));
            }
            let key = self.string()?;
            self.skip_whitespace();
            if self.next_byte() != Some(b':') {
                return Err(self.syntax("expected ':' after object key"));
            }
            self.skip_whitespace();
            let value = self.value(depth)?;
            if map.contains_key(&key) {
                return Err(JsonError::DuplicateKey(key));
            }
            map.insert(key, value);
            self.skip_whitespace();
            match self.next_byte() {
                Some(b',') => {}
                Some(b'}') => return Ok(Value::Object(map)),
                _ => return Err(self.syntax("expected ',' or '}' in object")),
            }
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        let mut start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.syntax("unterminated string")),
                Some(b'"') => {
                    out.push_str(self.slice(start, self.pos)?);
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(self.slice(start, self.pos)?);
                    self.pos += 1;
                    out.push(self.escape()?);
                    start = self.pos;
                }
                Some(0x00..=0x1f) => {
                    return Err(self.syntax("unescaped control character in string"));
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Reads the escape after a backslash, pairing UTF-16 surrogates.
    fn escape(&mut self) -> Result<char, JsonError> {
        let c = match self.next_byte() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xd800..=0xdbff => {
                        if self.next_byte() != Some(b'\\') || self.next_byte() != Some(b'u') {
                            return Err(self.syntax("unpaired surrogate in string"));
                        }
                        let low = self.hex4()?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err(self.syntax("unpaired surrogate in string"));
                        }
                        0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                    }
                    0xdc00..=0xdfff => return Err(self.syntax("unpaired surrogate in string")),
                    _ => unit,
                };
                return char::from_u32(code).ok_or_else(|| self.syntax("invalid \\u escape"));
            }
            _ => return Err(self.syntax("invalid escape in string")),
        };
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut unit = 0;
        for _ in 0..4 {
            let digit = self
                .next_byte()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.syntax("expected 4 hex digits after \\u"))?;
            unit = unit * 16 + digit;
        }
        Ok(unit)
    }

    fn digits(&mut self) -> Result<(), JsonError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.syntax("expected a digit"));
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        Ok(())
    }

    fn number(&mut self) -> Result<Number, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(self.syntax("expected a digit")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
        }
        let literal = self.slice(start, self.pos)?;
        let out_of_range = || JsonError::NumberOutOfRange(literal.to_owned());
        if integer {
            // No leading zeros, so more than 16 digits means |v| >= 10^16 > 2^53.
            if literal.trim_start_matches('-').len() > 16 {
                return Err(out_of_range());
            }
            let v: i64 = literal.parse().map_err(|_| out_of_range())?;
            if v.unsigned_abs() > MAX_SAFE {
                return Err(out_of_range());
            }
            return Ok(Number::from(v));
        }
        // The grammar above is a subset of what `f64::from_str` accepts, and that
        // parse is correctly rounded.
        let f: f64 = literal.parse().map_err(|_| out_of_range())?;
        number_from_f64(f, literal)
    }
}
