//! Test support: writes a value in one of its many JSON spellings.
//!
//! Every spelling parses back to the same value; only the canonical one (no
//! whitespace, canonical escapes and numbers, keys in RFC 8785 order) is
//! byte-for-byte what `canonical::to_vec` writes. Each deviation is taken with a
//! chosen probability, so a test sees canonical text, text with one deviation
//! deep inside, and text with many.

use std::fmt::Write;

use serde_json::{Number, Value};

use crate::canonical;

/// The random choices a spelling makes: bytes from proptest, used in turn.
#[derive(Debug)]
pub(crate) struct Choices {
    bytes: Vec<u8>,
    next: usize,
    /// Deviate from the canonical spelling about once in `rate` chances; never
    /// when 0.
    rate: u8,
}

impl Choices {
    pub(crate) fn new(bytes: Vec<u8>, rate: u8) -> Choices {
        Choices {
            bytes,
            next: 0,
            rate,
        }
    }

    fn byte(&mut self) -> u8 {
        let b = self
            .bytes
            .get(self.next % self.bytes.len().max(1))
            .copied()
            .unwrap_or(0);
        self.next += 1;
        // Vary with the position too, so a short list still gives varied choices.
        b.wrapping_add((self.next as u8).wrapping_mul(37))
    }

    fn pick(&mut self, n: u8) -> u8 {
        self.byte() % n
    }

    fn deviate(&mut self) -> bool {
        self.rate != 0 && self.byte().is_multiple_of(self.rate)
    }
}

/// `value` spelled with `choices`.
pub(crate) fn spell(value: &Value, choices: &mut Choices) -> String {
    let mut out = String::new();
    spell_value(value, choices, &mut out);
    out
}

fn whitespace(c: &mut Choices, out: &mut String) {
    if c.deviate() {
        out.push([' ', '\t', '\n', '\r'][usize::from(c.pick(4))]);
    }
}

fn spell_value(value: &Value, c: &mut Choices, out: &mut String) {
    whitespace(c, out);
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => spell_number(n, c, out),
        Value::String(s) => spell_string(s, c, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    whitespace(c, out);
                    out.push(',');
                }
                spell_value(item, c, out);
            }
            whitespace(c, out);
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            members.sort_by(|a, b| canonical::key_order(a.0, b.0));
            if c.deviate() {
                match c.pick(3) {
                    0 => members.reverse(),
                    1 => members.sort_by(|a, b| a.0.cmp(b.0)), // byte order
                    _ if !members.is_empty() => members.rotate_left(1),
                    _ => {}
                }
            }
            out.push('{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    whitespace(c, out);
                    out.push(',');
                }
                whitespace(c, out);
                spell_string(key, c, out);
                whitespace(c, out);
                out.push(':');
                spell_value(item, c, out);
            }
            whitespace(c, out);
            out.push('}');
        }
    }
    whitespace(c, out);
}

fn spell_number(n: &Number, c: &mut Choices, out: &mut String) {
    if let Some(i) = n.as_i64() {
        if !c.deviate() {
            let _ = write!(out, "{i}");
            return;
        }
        let _ = match c.pick(6) {
            0 => write!(out, "{i}.0"),
            1 => write!(out, "{i}e0"),
            2 => write!(out, "{i}E+0"),
            3 if i != 0 => write!(out, "{i}0e-1"),
            4 if i == 0 => write!(out, "-0"),
            _ => write!(out, "{i}.000e-0"),
        };
    } else {
        let f = n.as_f64().unwrap_or(0.5);
        if !c.deviate() {
            out.push_str(ryu_js::Buffer::new().format_finite(f));
            return;
        }
        // Rust writes the shortest digits that round-trip, as ECMAScript does,
        // but in other shapes (`1.5e0`, `0.0000001`).
        let _ = match c.pick(3) {
            0 => write!(out, "{f:e}"),
            1 => write!(out, "{f:E}"),
            _ => write!(out, "{f}"),
        };
    }
}

fn spell_string(s: &str, c: &mut Choices, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        let deviate = c.deviate();
        match ch {
            '"' | '\\' if !deviate => {
                out.push('\\');
                out.push(ch);
            }
            '\u{8}' if !deviate => out.push_str("\\b"),
            '\u{c}' if !deviate => out.push_str("\\f"),
            '\n' if !deviate => out.push_str("\\n"),
            '\r' if !deviate => out.push_str("\\r"),
            '\t' if !deviate => out.push_str("\\t"),
            '\0'..='\u{1f}' if !deviate => {
                let _ = write!(out, "\\u{:04x}", u32::from(ch));
            }
            '/' if deviate && c.pick(2) == 0 => out.push_str("\\/"),
            _ if !deviate => out.push(ch),
            _ => {
                let upper = c.pick(2) == 0;
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    let _ = if upper {
                        write!(out, "\\u{unit:04X}")
                    } else {
                        write!(out, "\\u{unit:04x}")
                    };
                }
            }
        }
    }
    out.push('"');
}
