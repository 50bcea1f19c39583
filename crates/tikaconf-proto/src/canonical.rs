//! RFC 8785 (JCS) canonical encoding.
//!
//! Hashes name configurations and patches, so every node must turn one value into
//! the very same bytes. RFC 8785 fixes those bytes: no whitespace; object members
//! sorted by the UTF-16 code units of their keys (what JavaScript's sort does, which
//! differs from Rust's `str` order once keys mix astral characters with
//! U+E000..U+FFFF); strings escaped only where JSON requires it (`"`, `\` and
//! control characters, with the short forms `\b \f \n \r \t` and lowercase
//! `\u00xx` for the rest, everything else as literal UTF-8); and numbers written
//! as ECMAScript's `Number.prototype.toString` writes the double (the `ryu-js`
//! crate), so `100` is `100`, `1e21` is `1e+21` and `0.1` is `0.1`.
//!
//! The encoder expects a value that went through [`crate::json`] (numbers
//! normalized, integers within ±2^53). It still never panics on any other
//! `serde_json::Value`: an integer beyond 2^53 is written as the nearest double,
//! as JavaScript would.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// The canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(value));
    write(value, &mut out);
    out
}

/// Appends the canonical bytes of `value` to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            out.extend_from_slice(ryu_js::Buffer::new().format(as_f64(n)).as_bytes())
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            if needs_utf16_sort(map) {
                let mut members: Vec<_> = map.iter().collect();
                members.sort_by(|a, b| utf16_cmp(a.0, b.0));
                write_members(members.into_iter(), out);
            } else {
                write_members(map.iter(), out);
            }
            out.push(b'}');
        }
    }
}

/// The exact length of [`to_vec`]'s output, computed without building it (used to
/// enforce document size caps before encoding).
pub fn encoded_len(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => ryu_js::Buffer::new().format(as_f64(n)).len(),
        Value::String(s) => string_len(s),
        Value::Array(items) => {
            2 + items.len().saturating_sub(1) + items.iter().map(encoded_len).sum::<usize>()
        }
        Value::Object(map) => {
            // Braces, commas between members, and a colon per member.
            2 + map.len().saturating_sub(1)
                + map
                    .iter()
                    .map(|(k, v)| string_len(k) + 1 + encoded_len(v))
                    .sum::<usize>()
        }
    }
}

fn write_members<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    for (i, (key, value)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write(value, out);
    }
}

/// A `Map` iterates in UTF-8 byte order, which is code point order. UTF-16 order
/// differs only where a key holds an astral character (encoded as surrogates, which
/// sort below U+E000..U+FFFF), and astral characters are exactly the ones whose
/// UTF-8 lead byte is 0xF0 or above; without one, the map's order is already right.
fn needs_utf16_sort(map: &Map<String, Value>) -> bool {
    map.keys().any(|k| k.bytes().any(|b| b >= 0xf0))
}

fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The order RFC 8785 sorts member keys in (by UTF-16 code units), which is
/// byte order unless a key holds an astral character (see [`needs_utf16_sort`]).
pub(crate) fn key_order(a: &str, b: &str) -> Ordering {
    let astral = |k: &str| k.bytes().any(|b| b >= 0xf0);
    if astral(a) || astral(b) {
        utf16_cmp(a, b)
    } else {
        a.cmp(b)
    }
}

/// Every `Number` is an `f64` unless serde_json's arbitrary_precision feature is on,
/// which the protocol does not use; 0 keeps this total without a panic.
fn as_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(0.0)
}

/// The escape RFC 8785 prescribes for a byte, if it needs one (`None` for control
/// characters without a short form, which take `\u00xx`).
fn short_escape(b: u8) -> Option<&'static [u8]> {
    Some(match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        0x08 => b"\\b",
        0x0c => b"\\f",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        _ => return None,
    })
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'"' && b != b'\\' && b >= 0x20 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match short_escape(b) {
            Some(escape) => out.extend_from_slice(escape),
            None => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0x0f)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_strict;
    use crate::json::tests::{arb_string, arb_value};
    use proptest::prelude::*;
    use serde_json::json;

    fn canon(v: &Value) -> String {
        String::from_utf8(to_vec(v)).unwrap()
    }

    #[test]
    fn writes_scalars() {
        assert_eq!(canon(&json!(null)), "null");
        assert_eq!(canon(&json!(true)), "true");
        assert_eq!(canon(&json!(false)), "false");
        assert_eq!(canon(&json!(0)), "0");
        assert_eq!(canon(&json!(-7)), "-7");
        assert_eq!(canon(&json!(9007199254740992u64)), "9007199254740992");
        assert_eq!(canon(&json!(1.5)), "1.5");
        assert_eq!(canon(&json!(0.1)), "0.1");
        assert_eq!(canon(&json!(1e21)), "1e+21");
        assert_eq!(canon(&json!(1e-7)), "1e-7");
        assert_eq!(canon(&json!(-0.0)), "0");
        assert_eq!(
            canon(&json!(123456789012345680000.0)),
            "123456789012345680000"
        );
    }

    #[test]
    fn escapes_strings_per_rfc8785() {
        assert_eq!(
            canon(&json!(
                "\"\\/\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}é\u{2028}\u{1f600}"
            )),
            "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}é\u{2028}\u{1f600}\""
        );
        assert_eq!(canon(&json!("\u{1b}")), "\"\\u001b\"");
    }

    #[test]
    fn sorts_keys_by_utf16() {
        // U+E000 sorts after an astral character in UTF-16 (0xE000 > 0xD83D) but
        // before it in UTF-8 / code point order.
        let v = json!({"\u{e000}": 1, "\u{1f600}": 2, "b": 3, "a": {"z": 1, "y": 2}, "": 0});
        assert_eq!(
            canon(&v),
            "{\"\":0,\"a\":{\"y\":2,\"z\":1},\"b\":3,\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
        assert_eq!(encoded_len(&v), to_vec(&v).len());
    }

    #[test]
    fn writes_containers_without_whitespace() {
        let v = json!({"a": [1, [], {}, "x"], "b": {}});
        assert_eq!(canon(&v), r#"{"a":[1,[],{},"x"],"b":{}}"#);
        assert_eq!(encoded_len(&v), 26);
        assert_eq!(canon(&json!([])), "[]");
        assert_eq!(encoded_len(&json!([])), 2);
        assert_eq!(encoded_len(&json!({})), 2);
    }

    #[test]
    fn does_not_panic_on_unnormalized_values() {
        assert_eq!(canon(&json!(u64::MAX)), "18446744073709552000");
        assert_eq!(canon(&json!(i64::MIN)), "-9223372036854776000");
        assert_eq!(canon(&json!(1.0)), "1");
    }

    proptest! {
        #[test]
        fn canonical_round_trips(v in arb_value()) {
            let bytes = to_vec(&v);
            prop_assert_eq!(bytes.len(), encoded_len(&v));
            let parsed = parse_strict(&bytes, 8);
            prop_assert!(parsed.is_ok(), "{:?}", parsed);
            let parsed = parsed.unwrap();
            prop_assert_eq!(to_vec(&parsed), bytes);
            prop_assert_eq!(parsed, v);
        }

        #[test]
        fn keys_come_out_in_utf16_order(keys in prop::collection::btree_set(arb_string(), 0..8)) {
            let v = Value::Object(keys.iter().map(|k| (k.clone(), Value::Null)).collect());
            let mut sorted: Vec<&String> = keys.iter().collect();
            sorted.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            let mut expected = b"{".to_vec();
            for (i, k) in sorted.into_iter().enumerate() {
                if i > 0 {
                    expected.push(b',');
                }
                expected.extend(to_vec(&Value::String(k.clone())));
                expected.extend_from_slice(b":null");
            }
            expected.push(b'}');
            prop_assert_eq!(to_vec(&v), expected);
        }

        #[test]
        fn strings_round_trip(s in arb_string()) {
            let v = Value::String(s);
            prop_assert_eq!(parse_strict(&to_vec(&v), 0), Ok(v));
        }

        #[test]
        fn doubles_match_ecmascript_shape(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let text = String::from_utf8(to_vec(&json!(f))).unwrap();
            prop_assert_eq!(text.parse::<f64>().ok(), Some(if f == 0.0 { 0.0 } else { f }));
            prop_assert!(!text.contains("e+0") && !text.ends_with(".0"), "{}", text);
        }
    }
}
