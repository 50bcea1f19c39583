//! Strict JSON parsing: what a node accepts as a JSON value.
//!
//! Every node hashes the canonical (RFC 8785) encoding of what it parsed, so two
//! nodes must never read the same bytes as different values, and two spellings of
//! one value must become the same [`serde_json::Value`]. A lenient parser breaks
//! both: one that keeps the last of two duplicate keys and one that keeps the
//! first read `{"a":1,"a":2}` differently, and a parser that keeps `1.0` apart from
//! `1` gives the same number two hashes. So this module has its own small parser
//! rather than `serde_json::from_slice`, and its rules are part of the protocol:
//!
//! - The input is UTF-8 (no byte order mark) holding exactly one JSON value
//!   (RFC 8259 grammar); whitespace around it is allowed, anything else after it
//!   is a [`JsonError::Syntax`] error. Lone surrogate escapes (`"\ud800"`) are
//!   syntax errors too, since they cannot become a Rust string.
//! - An object with two members whose keys are equal *after unescaping*
//!   (`{"a":1,"\u0061":2}`) is rejected with [`JsonError::DuplicateKey`]. This is
//!   detected while reading the text, never after a conversion that could have
//!   dropped one of them.
//! - Nesting depth counts arrays and objects: a scalar is depth 0, `[]` is depth 1,
//!   `[[]]` depth 2. Deeper than `max_depth` is [`JsonError::TooDeep`]. A
//!   `max_depth` above [`Limits::MAX_DEPTH_CEILING`](crate::Limits::MAX_DEPTH_CEILING)
//!   counts as the ceiling, which also bounds this module's recursion.
//! - Numbers are IEEE-754 doubles, as in RFC 8785 (and JavaScript). Every number
//!   must be a double that is either non-integral or an integer within ±2^53
//!   (the integers a double holds exactly); anything else is
//!   [`JsonError::NumberOutOfRange`]. In detail: a literal without fraction or
//!   exponent is an integer and must satisfy |v| <= 2^53 *exactly*
//!   (`9007199254740993` is rejected even though it rounds to a double that would
//!   pass); any other literal is rounded to the nearest double (correctly, by the
//!   standard library, not best-effort as serde_json's default is), and rejected if
//!   that double is infinite or is integral with |v| > 2^53 (`1e300`). An integral
//!   double within range becomes an integer [`serde_json::Number`], so `1.0`, `1e0`
//!   and `1` are the same value, `-0.0` is `0`, and `1e2` is `100`; a non-integral
//!   double (`1.5`) stays a float. Equal doubles therefore always give equal
//!   values, which is what `==` (and the patch `test` operation) relies on.
//!
//! [`normalize`] applies the same rules to a value built in-process (for example
//! with `serde_json::json!`), so that what a node builds and what it receives are
//! held to one standard.

mod members;
mod number;
mod parser;
mod received;
#[cfg(test)]
mod reference;
#[cfg(test)]
pub(crate) mod spelling;
mod string;

use serde_json::{Map, Number, Value};

use crate::Limits;
use parser::Parser;

pub use received::{CanonicalText, Received};

/// 2^53: the largest magnitude up to which every integer is exactly a double.
const MAX_SAFE: u64 = 1 << 53;

/// Why bytes (or a value) are not protocol JSON.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The input is not UTF-8.
    #[error("input is not valid UTF-8")]
    InvalidUtf8,
    /// The input is not one well-formed JSON value; the text says what and where.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// An object has this key (unescaped) twice.
    #[error("duplicate object key {0:?}")]
    DuplicateKey(String),
    /// A number that is not a double, or an integer beyond ±2^53 (the literal).
    #[error("number out of range: {0} (integers must be within ±2^53)")]
    NumberOutOfRange(String),
    /// Arrays and objects nest deeper than allowed.
    #[error("JSON nests deeper than {max} levels")]
    TooDeep {
        /// The cap that was exceeded.
        max: usize,
    },
}

/// Parses `bytes` as exactly one JSON value under the protocol's rules (see the
/// module documentation), returning it with its numbers normalized.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    parse_received(bytes, max_depth).map(|received| received.value)
}

/// [`parse_strict`], telling also whether `bytes` are the canonical encoding of
/// the value, in which case they can be hashed and kept as they are (see
/// [`CanonicalText`]). Finding that out costs no second pass: the parser notes it
/// while reading.
pub fn parse_received(bytes: &[u8], max_depth: usize) -> Result<Received<'_>, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::InvalidUtf8)?;
    if text.starts_with('\u{feff}') {
        return Err(JsonError::Syntax("byte order mark at byte 0".into()));
    }
    let mut parser = Parser::new(text, max_depth.min(Limits::MAX_DEPTH_CEILING));
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != bytes.len() {
        return Err(parser.syntax("trailing characters after the value"));
    }
    let canonical = parser
        .canonical
        .then(|| CanonicalText::new(bytes, std::mem::take(&mut parser.top_level)));
    Ok(Received { value, canonical })
}

/// Holds a value built in-process to the same rules as [`parse_strict`]: numbers
/// normalized (`1.0` becomes `1`), integers beyond ±2^53 and nesting deeper than
/// `max_depth` rejected. (A `Map` cannot hold duplicate keys, and a Rust string
/// cannot hold a lone surrogate, so those rules hold already.)
pub fn normalize(value: Value, max_depth: usize) -> Result<Value, JsonError> {
    normalize_at(value, 0, max_depth.min(Limits::MAX_DEPTH_CEILING))
}

fn normalize_at(value: Value, depth: usize, max_depth: usize) -> Result<Value, JsonError> {
    match value {
        Value::Number(n) => normalize_number(&n).map(Value::Number),
        Value::Array(items) => {
            check_depth(depth + 1, max_depth)?;
            items
                .into_iter()
                .map(|item| normalize_at(item, depth + 1, max_depth))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Value::Object(map) => {
            check_depth(depth + 1, max_depth)?;
            map.into_iter()
                .map(|(k, v)| Ok((k, normalize_at(v, depth + 1, max_depth)?)))
                .collect::<Result<Map<_, _>, _>>()
                .map(Value::Object)
        }
        scalar => Ok(scalar),
    }
}

fn normalize_number(n: &Number) -> Result<Number, JsonError> {
    if let Some(u) = n.as_u64() {
        return if u <= MAX_SAFE {
            Ok(Number::from(u))
        } else {
            Err(JsonError::NumberOutOfRange(n.to_string()))
        };
    }
    if let Some(i) = n.as_i64() {
        return if i.unsigned_abs() <= MAX_SAFE {
            Ok(Number::from(i))
        } else {
            Err(JsonError::NumberOutOfRange(n.to_string()))
        };
    }
    match n.as_f64() {
        Some(f) => number_from_f64(f, &n.to_string()),
        // Only reachable with serde_json's arbitrary_precision feature, which the
        // protocol does not use; refuse rather than guess.
        None => Err(JsonError::NumberOutOfRange(n.to_string())),
    }
}

/// The one place that decides how a double becomes a [`Number`]; `literal` is only
/// for the error message.
fn number_from_f64(f: f64, literal: &str) -> Result<Number, JsonError> {
    let out_of_range = || JsonError::NumberOutOfRange(literal.to_owned());
    if !f.is_finite() {
        return Err(out_of_range());
    }
    if f.fract() == 0.0 {
        if f.abs() <= MAX_SAFE as f64 {
            // Exact: an integral double within ±2^53 fits an i64 (and -0.0 becomes 0).
            Ok(Number::from(f as i64))
        } else {
            Err(out_of_range())
        }
    } else {
        Number::from_f64(f).ok_or_else(out_of_range)
    }
}

fn check_depth(depth: usize, max: usize) -> Result<(), JsonError> {
    if depth > max {
        Err(JsonError::TooDeep { max })
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(s: &str) -> Result<Value, JsonError> {
        parse_strict(s.as_bytes(), 64)
    }

    /// Arbitrary protocol JSON (already normalized): strings with non-ASCII,
    /// control and astral characters, integers within ±2^53, non-integral doubles,
    /// nested at most 5 deep.
    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from),
            any::<f64>()
                .prop_filter("non-integral finite", |f| f.is_finite() && f.fract() != 0.0)
                .prop_map(Value::from),
            arb_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(arb_string(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    pub(crate) fn arb_string() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            any::<char>(),
            (0u8..0x20).prop_map(char::from),
            prop::sample::select(vec!['"', '\\', '/', 'a', 'é', '\u{7f}', '\u{2028}']),
            prop::sample::select(vec!['\u{e000}', '\u{ffff}', '\u{10000}', '\u{1f600}']),
        ];
        prop::collection::vec(c, 0..8).prop_map(String::from_iter)
    }

    #[test]
    fn parses_scalars_and_containers() {
        assert_eq!(parse(" null "), Ok(Value::Null));
        assert_eq!(parse("true"), Ok(json!(true)));
        assert_eq!(parse("\"a\\u00e9\\n\""), Ok(json!("aé\n")));
        assert_eq!(
            parse("[1, {\"b\": [false]}]"),
            Ok(json!([1, {"b": [false]}]))
        );
        assert_eq!(parse("\"\\ud83d\\ude00\""), Ok(json!("\u{1f600}")));
        assert_eq!(parse("\"\\/\\b\\f\\r\\t\""), Ok(json!("/\u{8}\u{c}\r\t")));
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            " ",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "[1 2]",
            "01",
            "1.",
            ".5",
            "+1",
            "-",
            "1e",
            "1 2",
            "{a:1}",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\u{1}\"",
            "\"\\x\"",
            "NaN",
            "Infinity",
            "[",
            "{\"a\"}",
            "\"abc",
            "\u{feff}1",
            "1 //",
        ] {
            assert!(
                matches!(parse(bad), Err(JsonError::Syntax(_))),
                "{bad:?} gave {:?}",
                parse(bad)
            );
        }
        assert_eq!(parse_strict(b"\"\xff\"", 64), Err(JsonError::InvalidUtf8));
    }

    #[test]
    fn rejects_duplicate_keys() {
        assert_eq!(
            parse(r#"{"a":1,"a":2}"#),
            Err(JsonError::DuplicateKey("a".into()))
        );
        assert_eq!(
            parse(r#"{"a":1,"\u0061":2}"#),
            Err(JsonError::DuplicateKey("a".into()))
        );
        assert_eq!(
            parse(r#"[{"x":{"é":1,"\u00e9":1}}]"#),
            Err(JsonError::DuplicateKey("é".into()))
        );
        assert!(parse(r#"{"a":{"a":1}}"#).is_ok());
    }

    #[test]
    fn caps_depth() {
        assert_eq!(parse_strict(b"1", 0), Ok(json!(1)));
        assert_eq!(parse_strict(b"[]", 0), Err(JsonError::TooDeep { max: 0 }));
        assert_eq!(parse_strict(b"[]", 1), Ok(json!([])));
        assert_eq!(parse_strict(b"[{}]", 1), Err(JsonError::TooDeep { max: 1 }));
        assert_eq!(parse_strict(b"{\"a\":[1]}", 2), Ok(json!({"a": [1]})));
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_strict(deep(64).as_bytes(), 64).is_ok());
        assert_eq!(
            parse_strict(deep(65).as_bytes(), 64),
            Err(JsonError::TooDeep { max: 64 })
        );
        assert!(parse_strict(deep(128).as_bytes(), 128).is_ok());
        // Caps above the ceiling count as the ceiling, so recursion stays bounded.
        assert_eq!(
            parse_strict(deep(100_000).as_bytes(), usize::MAX),
            Err(JsonError::TooDeep { max: 128 })
        );
        assert_eq!(
            normalize(json!([[1]]), 1),
            Err(JsonError::TooDeep { max: 1 })
        );
        assert_eq!(normalize(json!([[1]]), 2), Ok(json!([[1]])));
        assert_eq!(
            normalize(json!({"a": {}}), 1),
            Err(JsonError::TooDeep { max: 1 })
        );
    }

    #[test]
    fn normalizes_numbers() {
        let is_int = |s: &str, want: i64| {
            let v = parse(s).unwrap();
            assert_eq!(v, json!(want), "{s}");
            assert!(v.is_i64(), "{s} should be an integer");
        };
        is_int("1.0", 1);
        is_int("-0.0", 0);
        is_int("-0", 0);
        is_int("1e2", 100);
        is_int("1E+2", 100);
        is_int("100e-2", 1);
        is_int("1e-400", 0);
        is_int("9007199254740992", 1 << 53);
        is_int("-9007199254740992", -(1 << 53));
        is_int("9007199254740992.0", 1 << 53);
        assert_eq!(parse("1.5"), Ok(json!(1.5)));
        assert!(parse("1.5").unwrap().is_f64());
        assert_eq!(parse("-2.5e-3"), Ok(json!(-0.0025)));
        // Correctly rounded, unlike serde_json's default best-effort parser.
        assert_eq!(
            parse("333333333.33333329"),
            Ok(json!(333_333_333.333_333_3_f64))
        );
        assert_eq!(
            parse("1.7976931348623157e308"),
            Err(JsonError::NumberOutOfRange("1.7976931348623157e308".into()))
        );
        assert_eq!(
            parse("2.2250738585072014e-308"),
            Ok(json!(2.2250738585072014e-308))
        );
    }

    #[test]
    fn rejects_out_of_range_numbers() {
        for bad in [
            "9007199254740993",
            "-9007199254740993",
            "18446744073709551615",
            "18446744073709551616",
            "100000000000000000000000000000",
            "1e300",
            "-1e300",
            "1e400",
            "9007199254740994.0",
            "[1, 1e16]",
        ] {
            assert!(
                matches!(parse(bad), Err(JsonError::NumberOutOfRange(_))),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        assert!(matches!(
            normalize(json!(u64::MAX), 8),
            Err(JsonError::NumberOutOfRange(_))
        ));
        assert!(matches!(
            normalize(json!(i64::MIN), 8),
            Err(JsonError::NumberOutOfRange(_))
        ));
        assert!(matches!(
            normalize(json!([1e300]), 8),
            Err(JsonError::NumberOutOfRange(_))
        ));
        assert_eq!(
            normalize(json!(9007199254740992u64), 8),
            Ok(json!(9007199254740992u64))
        );
    }

    #[test]
    fn normalize_matches_parse() {
        let built = json!({"a": 1.0, "b": [-0.0, 1e2, 1.5], "c": {"d": "x"}});
        let parsed = parse(r#"{"a":1,"b":[0,100,1.5],"c":{"d":"x"}}"#).unwrap();
        assert_eq!(normalize(built, 8), Ok(parsed));
    }

    proptest! {
        #[test]
        fn nesting_counts_the_text_as_depth_counts_the_value(v in arb_value()) {
            let text = crate::canonical::to_vec(&v);
            prop_assert_eq!(nesting(&text), depth(&v));
        }

        #[test]
        fn parses_what_serde_json_writes(v in arb_value()) {
            let compact = serde_json::to_string(&v).unwrap();
            prop_assert_eq!(parse_strict(compact.as_bytes(), 8), Ok(v.clone()));
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            prop_assert_eq!(parse_strict(pretty.as_bytes(), 8), Ok(v.clone()));
            prop_assert_eq!(normalize(v.clone(), 8), Ok(v));
        }

        #[test]
        fn integral_doubles_become_integers(i in -(1i64 << 53)..=(1i64 << 53)) {
            let text = format!("{i}.0");
            prop_assert_eq!(parse(&text), Ok(json!(i)));
            prop_assert_eq!(normalize(json!(i as f64), 8), Ok(json!(i)));
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_strict(&bytes, 4);
        }

        #[test]
        fn never_panics_on_json_like_text(s in "[\\[\\]{}\",:0-9eE.+\\-tfnrule\\\\ ]{0,40}") {
            let _ = parse_strict(s.as_bytes(), 4);
        }
    }
}

/// Nesting depth of the JSON text `text`, counted as [`depth`] counts it, from
/// its brackets alone (those outside strings), without parsing it. For text
/// known to be JSON (a message already decoded, in its canonical form); on
/// anything else the count means nothing.
pub fn nesting(text: &[u8]) -> usize {
    let (mut level, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                level += 1;
                deepest = deepest.max(level);
            }
            b']' | b'}' => level = level.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Nesting depth of `value`: 0 for a scalar, 1 for `[]` or `{}`, and one more per
/// level of arrays and objects inside, as [`parse_strict`] counts it.
pub fn depth(value: &Value) -> usize {
    // An explicit stack: a document built by patches is not bounded by the parser's
    // recursion limit until this very check has run.
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(d + 1);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(d + 1);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => deepest = deepest.max(d),
        }
    }
    deepest
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&serde_json::json!(1)), 0);
        assert_eq!(depth(&serde_json::json!([])), 1);
        assert_eq!(depth(&serde_json::json!({"a": [1, {"b": []}]})), 4);
    }
}
