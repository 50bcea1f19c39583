//! Replays third-party conformance vectors against the protocol's JSON code.
//!
//! Our canonical encoder and patch engine are only as trustworthy as the cases they
//! were checked against, and cases we write ourselves share our blind spots. So this
//! runs the RFC 8785 vectors of the RFC's co-author (`testdata/jcs/`) and the JSON
//! Patch community suite (`testdata/json-patch-tests/`), both copied unchanged;
//! see the README next to each for source and licence. Where a vector conflicts
//! with a deliberate protocol rule, the record is named below with the reason and
//! our behaviour is asserted instead; nothing is skipped silently.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tikaconf_proto::canonical;
use tikaconf_proto::json::{self, JsonError};
use tikaconf_proto::patch::Ops;

const MAX_DEPTH: usize = 64;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn jcs_vectors() {
    let dir = testdata().join("jcs");
    let mut names: Vec<String> = fs::read_dir(dir.join("input"))
        .expect("testdata/jcs/input")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "arrays",
            "french",
            "structures",
            "unicode",
            "values",
            "weird"
        ]
        .map(|n| format!("{n}.json"))
    );
    for name in &names {
        let input = read(&dir.join("input").join(name));
        let expected = read(&dir.join("output").join(name));
        let value = if name == "values.json" {
            values_vector(&input)
        } else {
            json::parse_strict(&input, MAX_DEPTH)
                .unwrap_or_else(|e| panic!("jcs/input/{name}: {e}"))
        };
        let got = canonical::to_vec(&value);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "jcs/output/{name}"
        );
        assert_eq!(got, expected, "jcs/output/{name} (bytes)");
        assert_eq!(
            canonical::encoded_len(&value),
            expected.len(),
            "jcs {name}: encoded_len"
        );

        // The hex rendering names the same bytes.
        let hex_name = name.replace(".json", ".txt");
        let hex = String::from_utf8(read(&dir.join("outhex").join(&hex_name))).unwrap();
        let from_hex: Vec<u8> = hex
            .split_whitespace()
            .map(|pair| u8::from_str_radix(pair, 16).unwrap())
            .collect();
        assert_eq!(from_hex, expected, "jcs/outhex/{hex_name}");

        // Canonical output is a fixed point (values.json's 1e+30 aside, see below).
        if name != "values.json" {
            let again = json::parse_strict(&got, MAX_DEPTH).unwrap();
            assert_eq!(
                canonical::to_vec(&again),
                got,
                "jcs {name}: not a fixed point"
            );
        }
    }
}

/// `jcs/input/values.json` holds `1E30`, an integral double beyond 2^53, which the
/// protocol deliberately rejects (integers must be within ±2^53, so that every
/// integer a node accepts is exact in every language's JSON). We assert that
/// rejection, for the input and for the expected output (`1e+30`), then check the
/// encoder against the vector anyway: the input is parsed strictly with `1E30`
/// swapped for a placeholder, and the double 1e30 is put back into the value
/// directly (the encoder takes any `Value`).
fn values_vector(input: &[u8]) -> Value {
    assert_eq!(
        json::parse_strict(input, MAX_DEPTH),
        Err(JsonError::NumberOutOfRange("1E30".into()))
    );
    let expected = read(&testdata().join("jcs/output/values.json"));
    assert_eq!(
        json::parse_strict(&expected, MAX_DEPTH),
        Err(JsonError::NumberOutOfRange("1e+30".into()))
    );
    let text = String::from_utf8(input.to_vec()).unwrap();
    assert_eq!(text.matches("1E30").count(), 1);
    let mut value = json::parse_strict(text.replace("1E30", "0.5").as_bytes(), MAX_DEPTH).unwrap();
    let slot = value
        .pointer_mut("/numbers/1")
        .expect("values.json numbers[1]");
    assert_eq!(*slot, serde_json::json!(0.5));
    *slot = serde_json::json!(1e30);
    value
}

/// Records whose `disabled` flag we look past, with what our rules make of them.
/// Both contain an op object with two `"op"` members; upstream disables them
/// because parsers that keep one duplicate turn them into valid patches. Our
/// strict parser rejects the record text with `DuplicateKey("op")`, which is the
/// error the record asks for.
const DUPLICATE_OP_RECORDS: &[(&str, &str)] = &[
    ("tests.json", "duplicate ops"),
    ("spec_tests.json", "A.13 Invalid JSON Patch Document"),
];

/// Splits the text of a top-level JSON array into the texts of its elements, so
/// each record goes through `parse_strict` on its own original bytes (the files as
/// a whole hold duplicate keys, in the records above).
fn split_top_level_array(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut records = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth == 2 {
                    start = Some(i);
                }
            }
            b']' | b'}' => {
                if depth == 2 {
                    let s = start.take().expect("record start");
                    records.push(&text[s..=i]);
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unbalanced test file");
    records
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    records: usize,
    disabled: usize,
    expected: usize,
    error: usize,
    /// Disabled records that our parser rejects for a duplicate `"op"` key.
    duplicate_op_rejected: usize,
}

fn replay(file: &str, failures: &mut Vec<String>) -> Counts {
    let text = String::from_utf8(read(&testdata().join("json-patch-tests").join(file))).unwrap();
    let mut counts = Counts::default();
    for (index, record_text) in split_top_level_array(&text).into_iter().enumerate() {
        counts.records += 1;
        let name = |comment: &str| format!("{file} #{index} ({comment})");
        let record = match json::parse_strict(record_text.as_bytes(), MAX_DEPTH) {
            Ok(record) => record,
            Err(e) => {
                // Only the duplicate-op records may fail to parse, and only that way.
                let known = DUPLICATE_OP_RECORDS.iter().any(|(f, c)| {
                    *f == file && record_text.contains(&format!("\"comment\": \"{c}\""))
                });
                if known && e == JsonError::DuplicateKey("op".into()) {
                    counts.duplicate_op_rejected += 1;
                } else {
                    failures.push(format!("{file} #{index}: record does not parse: {e}"));
                }
                counts.disabled += 1;
                continue;
            }
        };
        let comment = record.get("comment").and_then(Value::as_str).unwrap_or("");
        // The other disabled records ("Toplevel scalar values OK?", "Whole
        // document") are skipped as upstream asks.
        if record.get("disabled") == Some(&Value::Bool(true)) {
            counts.disabled += 1;
            continue;
        }
        let (Some(doc), Some(patch)) = (record.get("doc"), record.get("patch")) else {
            failures.push(format!("{}: no doc or patch", name(comment)));
            continue;
        };
        let mut result = doc.clone();
        let outcome = Ops::from_value(patch).and_then(|ops| ops.apply(&mut result));
        if let Some(expected) = record.get("expected") {
            counts.expected += 1;
            match outcome {
                Err(e) => failures.push(format!("{}: failed: {e}", name(comment))),
                Ok(()) if canonical::to_vec(&result) != canonical::to_vec(expected) => failures
                    .push(format!(
                        "{}: got {result}, expected {expected}",
                        name(comment)
                    )),
                Ok(()) => {}
            }
        } else if let Some(error) = record.get("error") {
            counts.error += 1;
            if outcome.is_ok() {
                failures.push(format!(
                    "{}: succeeded, expected error {error}",
                    name(comment)
                ));
            }
            if canonical::to_vec(&result) != canonical::to_vec(doc) {
                failures.push(format!(
                    "{}: document changed by a failed patch",
                    name(comment)
                ));
            }
        } else if let Err(e) = outcome {
            failures.push(format!("{}: failed: {e}", name(comment)));
        }
    }
    counts
}

#[test]
fn json_patch_vectors() {
    let mut failures = Vec::new();
    let tests = replay("tests.json", &mut failures);
    let spec = replay("spec_tests.json", &mut failures);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The counts the README states, so a truncated or edited file cannot pass quietly.
    assert_eq!(
        tests,
        Counts {
            records: 95,
            disabled: 3,
            expected: 62,
            error: 30,
            duplicate_op_rejected: 1,
        }
    );
    assert_eq!(
        spec,
        Counts {
            records: 17,
            disabled: 1,
            expected: 12,
            error: 4,
            duplicate_op_rejected: 1,
        }
    );
}
