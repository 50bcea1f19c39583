//! Reading strings.
//!
//! Most of a configuration's bytes are string contents without a single escape,
//! so the reader looks for the end of such a run eight bytes at a time and
//! copies the run whole; only escapes are handled one by one. Escapes are also
//! where a string's spelling can differ from its canonical one (`\/`, `\u0041`,
//! `\u001F`), so that is checked here too.

use super::JsonError;
use super::parser::Parser;

impl Parser<'_> {
    /// Reads the string at the cursor (which is on its opening quote).
    pub(super) fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // opening quote
        let mut start = self.pos;
        let mut end = plain_run_end(self.bytes, start);
        if self.bytes.get(end) == Some(&b'"') {
            // No escape: the common case, one copy.
            let s = self.slice(start, end)?.to_owned();
            self.pos = end + 1;
            return Ok(s);
        }
        let mut out = String::with_capacity(end - start + 16);
        loop {
            self.pos = end;
            match self.peek() {
                None => return Err(self.syntax("unterminated string")),
                Some(b'"') => {
                    out.push_str(self.slice(start, end)?);
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(self.slice(start, end)?);
                    self.pos += 1;
                    out.push(self.escape()?);
                    start = self.pos;
                }
                Some(_) => return Err(self.syntax("unescaped control character in string")),
            }
            end = plain_run_end(self.bytes, start);
        }
    }

    /// Reads the escape after a backslash, pairing UTF-16 surrogates.
    fn escape(&mut self) -> Result<char, JsonError> {
        let c = match self.next_byte() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'/') => {
                // RFC 8785 writes `/` as itself.
                self.canonical = false;
                '/'
            }
            Some(b'u') => {
                let digits = self.pos;
                let unit = self.hex4()?;
                self.canonical &= is_canonical_unicode_escape(unit, &self.bytes[digits..self.pos]);
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
}

/// Whether `\u` + `digits` (which spell `unit`) is how RFC 8785 writes that
/// character: only control characters without a short escape (`\n` and the
/// like) take the `\u00xx` form, in lower case.
fn is_canonical_unicode_escape(unit: u32, digits: &[u8]) -> bool {
    unit < 0x20
        && !matches!(unit, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)
        && !digits.iter().any(u8::is_ascii_uppercase)
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Marks (high bit) bytes of `word` that are `"`, `\` or below 0x20, the bytes
/// that end a run of plain string contents. A marked byte may also be followed
/// by spurious marks (borrows propagate upwards), but the lowest marked byte is
/// always a real one, and no real one goes unmarked; that is all the caller uses.
fn special_bytes(word: u64) -> u64 {
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGH_BITS;
    let quotes = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslashes = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    let controls = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
    quotes | backslashes | controls
}

/// The index of the first byte from `from` on that is `"`, `\` or a control
/// character, or `bytes.len()` if there is none.
pub(super) fn plain_run_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Little-endian, so the lowest set bit belongs to the first byte.
        let marks = special_bytes(u64::from_le_bytes(word));
        if marks != 0 {
            return i + (marks.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_run_end(bytes: &[u8], from: usize) -> usize {
        bytes[from..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .map_or(bytes.len(), |p| from + p)
    }

    #[test]
    fn finds_the_first_special_byte() {
        assert_eq!(plain_run_end(b"", 0), 0);
        assert_eq!(plain_run_end(b"abc", 0), 3);
        assert_eq!(plain_run_end(b"abcdefghij\"", 0), 10);
        assert_eq!(plain_run_end(b"abcdefgh\\", 2), 8);
        assert_eq!(plain_run_end(b"ab\x1fcdefgh", 0), 2);
        assert_eq!(plain_run_end(b"\x00\x01\"", 0), 0);
        assert_eq!(
            plain_run_end("é\u{7f}\u{2028}xxxxxxxx\u{0}".as_bytes(), 0),
            14
        );
    }

    #[test]
    fn knows_canonical_unicode_escapes() {
        assert!(is_canonical_unicode_escape(0x1f, b"001f"));
        assert!(is_canonical_unicode_escape(0x00, b"0000"));
        assert!(!is_canonical_unicode_escape(0x1f, b"001F"));
        assert!(!is_canonical_unicode_escape(0x0a, b"000a"));
        assert!(!is_canonical_unicode_escape(0x41, b"0041"));
        assert!(!is_canonical_unicode_escape(0x7f, b"007f"));
    }

    proptest! {
        #[test]
        fn run_end_matches_a_byte_by_byte_scan(
            bytes in prop::collection::vec(
                prop_oneof![1 => Just(b'"'), 1 => Just(b'\\'), 1 => 0u8..0x20, 12 => 0x20u8..=0xff],
                0..40,
            ),
            from in 0usize..40,
        ) {
            let from = from.min(bytes.len());
            prop_assert_eq!(plain_run_end(&bytes, from), naive_run_end(&bytes, from));
        }
    }
}
