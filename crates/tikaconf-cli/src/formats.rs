//! Documents as JSON, TOML or YAML text, for `import` and `export`.
//!
//! Whatever the format, what comes in must be a document the protocol takes:
//! parsed TOML and YAML are converted to JSON explicitly (never silently: a
//! YAML `.nan` or a non-string key is an error, not a `null` or a dropped
//! member) and then held to the protocol's JSON rules (numbers within
//! ±2^53, nesting depth), as a JSON file is. What goes out in TOML must fit
//! TOML: a table at the top, and no null anywhere; the error names the first
//! place that breaks it.

use std::path::Path;

use serde_json::{Map, Number, Value};
use tikaconf::proto::{Limits, json};

use crate::cli::DocFormat;
use crate::failure::Failure;

/// The format `path`'s extension names, if any.
pub fn from_extension(path: &Path) -> Option<DocFormat> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "json" => Some(DocFormat::Json),
        "toml" => Some(DocFormat::Toml),
        "yaml" | "yml" => Some(DocFormat::Yaml),
        _ => None,
    }
}

/// Parses `text` as a document in `format`; bad input (exit 2) if it is not.
pub fn parse(text: &[u8], format: DocFormat) -> Result<Value, Failure> {
    let value = match format {
        DocFormat::Json => return strict(text),
        DocFormat::Toml => {
            let text = std::str::from_utf8(text).map_err(Failure::bad_input)?;
            let table: toml::Table = toml::from_str(text).map_err(Failure::bad_input)?;
            from_toml(toml::Value::Table(table), "")?
        }
        DocFormat::Yaml => {
            let value: yaml_serde::Value =
                yaml_serde::from_slice(text).map_err(Failure::bad_input)?;
            from_yaml(value, "")?
        }
    };
    // The protocol's rules, as for a JSON file. serde_json writes integers
    // exactly (the canonical form would round one beyond 2^53 to a double,
    // which the rules then could not see).
    strict(&serde_json::to_vec(&value).map_err(Failure::other)?)
}

fn strict(bytes: &[u8]) -> Result<Value, Failure> {
    json::parse_strict(bytes, Limits::default().max_depth).map_err(Failure::bad_input)
}

fn not_json(at: &str, what: &str) -> Failure {
    let at = if at.is_empty() { "the top" } else { at };
    Failure::bad_input(anyhow::anyhow!("{what} at {at} has no JSON equivalent"))
}

/// `at` and a member or index, as a JSON Pointer.
fn child(at: &str, key: &str) -> String {
    format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn float(f: f64, at: &str) -> Result<Value, Failure> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| not_json(at, &format!("the number {f}")))
}

/// TOML to JSON: a datetime becomes its RFC 3339 text.
fn from_toml(value: toml::Value, at: &str) -> Result<Value, Failure> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => float(f, at)?,
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| from_toml(v, &child(at, &i.to_string())))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(k, v)| {
                    let v = from_toml(v, &child(at, &k))?;
                    Ok((k, v))
                })
                .collect::<Result<Map<_, _>, Failure>>()?,
        ),
    })
}

/// YAML to JSON: keys must be strings; a tag is dropped, keeping its value.
fn from_yaml(value: yaml_serde::Value, at: &str) -> Result<Value, Failure> {
    use yaml_serde::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                float(n.as_f64().unwrap_or(f64::NAN), at)?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| from_yaml(v, &child(at, &i.to_string())))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut map = Map::new();
            for (k, v) in mapping {
                let Y::String(k) = k else {
                    return Err(not_json(at, "a key that is not a string"));
                };
                let v = from_yaml(v, &child(at, &k))?;
                map.insert(k, v);
            }
            Value::Object(map)
        }
        Y::Tagged(tagged) => from_yaml(tagged.value, at)?,
    })
}

/// `document` as text in `format`, ending in a newline.
pub fn render(document: &Value, format: DocFormat) -> Result<String, Failure> {
    match format {
        DocFormat::Json => serde_json::to_string_pretty(document)
            .map(|s| s + "\n")
            .map_err(Failure::other),
        DocFormat::Toml => {
            if !document.is_object() {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "TOML cannot hold this document: a TOML document is a table, and this one is {}",
                    kind(document)
                )));
            }
            if let Some(at) = first_null(document, "") {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "TOML cannot hold this document: it has no null, and there is one at {at:?} \
                     (export it as JSON or YAML)"
                )));
            }
            toml::to_string_pretty(document)
                .map_err(|e| Failure::bad_input(e).context("TOML cannot hold this document"))
        }
        DocFormat::Yaml => yaml_serde::to_string(document).map_err(Failure::other),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The JSON Pointer of the first null in `value`, depth first.
fn first_null(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::Null => Some(at.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_null(v, &child(at, &i.to_string()))),
        Value::Object(map) => map.iter().find_map(|(k, v)| first_null(v, &child(at, k))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc() -> Value {
        json!({
            "connection": {"platform": "twitch", "channel": "#tikatoo"},
            "commands": {"!hi": "hello", "!a/b": "c"},
            "volume": 11,
            "ratio": 0.5,
            "on": true,
            "list": [1, "two", {"three": [3]}],
        })
    }

    #[test]
    fn every_format_round_trips() {
        for format in [DocFormat::Json, DocFormat::Toml, DocFormat::Yaml] {
            let text = render(&doc(), format).unwrap();
            assert_eq!(parse(text.as_bytes(), format).unwrap(), doc(), "{format:?}");
        }
    }

    #[test]
    fn toml_refuses_null_and_non_tables_saying_where() {
        let mut with_null = doc();
        with_null["commands"]["!a/b"] = Value::Null;
        let e = render(&with_null, DocFormat::Toml).unwrap_err();
        assert!(
            format!("{:#}", e.error).contains("/commands/!a~1b"),
            "{:#}",
            e.error
        );
        let e = render(&json!([1]), DocFormat::Toml).unwrap_err();
        assert!(
            format!("{:#}", e.error).contains("an array"),
            "{:#}",
            e.error
        );
        // YAML and JSON hold both.
        assert!(render(&with_null, DocFormat::Yaml).is_ok());
    }

    #[test]
    fn what_json_cannot_hold_is_refused_not_changed() {
        assert!(parse(b"x: .nan\n", DocFormat::Yaml).is_err());
        assert!(parse(b"1: one\n", DocFormat::Yaml).is_err());
        assert!(parse(b"x = nan\n", DocFormat::Toml).is_err());
        // Beyond the protocol's integers.
        assert!(parse(b"x = 9007199254740993\n", DocFormat::Toml).is_err());
        assert_eq!(
            parse(b"when = 1979-05-27T07:32:00Z\n", DocFormat::Toml).unwrap(),
            json!({"when": "1979-05-27T07:32:00Z"})
        );
        assert_eq!(
            parse(b"a: !custom 5\n", DocFormat::Yaml).unwrap(),
            json!({"a": 5})
        );
    }
}
