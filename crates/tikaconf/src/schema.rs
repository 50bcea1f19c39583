//! [`Schema`]: a JSON Schema that a writer checks every document it would
//! publish against.
//!
//! Why a writer's check and not a rule of the protocol: a patch's validity
//! must be a pure function of the bytes every node sees (the parent, the ops,
//! the limits), or two nodes holding different schemas (say, mid-deploy of a
//! new one) would disagree about which patch is the head, and the chain would
//! fork. A schema is the application's policy, which changes with its code; it
//! belongs where the application's code runs, before anything is published.
//! Readers stay tolerant of what they do not expect ([`crate::Live`] keeps its
//! last good value), and writers that share a schema cannot put a document on
//! the bus that breaks them. docs/PROTOCOL.md says the same.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// How many violations a [`SchemaViolation`] lists; the rest are counted.
const LISTED: usize = 8;

/// A compiled JSON Schema (draft 2020-12 unless the schema's `$schema` says
/// otherwise). Cheap to clone: the compiled validator is shared.
///
/// Remote references are not fetched: a schema is self-contained, so that a
/// write never waits on (or is steered by) a web server.
///
/// ```
/// use serde_json::json;
/// use tikaconf::Schema;
///
/// let schema = Schema::new(&json!({
///     "type": "object",
///     "properties": {"commands": {"additionalProperties": {"type": "string"}}}
/// }))
/// .unwrap();
/// assert!(schema.check(&json!({"commands": {"!hi": "hello"}})).is_ok());
/// let err = schema.check(&json!({"commands": {"!hi": 5}})).unwrap_err();
/// assert_eq!(err.violations[0].pointer, "/commands/!hi");
/// ```
///
/// A schema derived from the type the readers deserialize, with `schemars`:
///
/// ```
/// # #[derive(serde::Deserialize, schemars::JsonSchema)]
/// # struct Bot { commands: std::collections::BTreeMap<String, String> }
/// let schema = tikaconf::Schema::new(&serde_json::to_value(schemars::schema_for!(Bot)).unwrap())
///     .unwrap();
/// # assert!(schema.check(&serde_json::json!({"commands": {}})).is_ok());
/// ```
#[derive(Clone)]
pub struct Schema {
    validator: Arc<jsonschema::Validator>,
    source: Arc<Value>,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Schema {
    /// Compiles `schema`. Fails if it is not a valid JSON Schema, or refers
    /// to another document (`$ref` outside itself).
    pub fn new(schema: &Value) -> Result<Schema, InvalidSchema> {
        let validator = jsonschema::validator_for(schema).map_err(|e| InvalidSchema {
            message: e.to_string(),
        })?;
        Ok(Schema {
            validator: Arc::new(validator),
            source: Arc::new(schema.clone()),
        })
    }

    /// Parses and compiles a schema from JSON text (a schema file's contents).
    pub fn from_json(text: &str) -> Result<Schema, InvalidSchema> {
        let schema: Value = serde_json::from_str(text).map_err(|e| InvalidSchema {
            message: format!("not JSON: {e}"),
        })?;
        Schema::new(&schema)
    }

    /// The schema as it was given.
    pub fn as_value(&self) -> &Value {
        &self.source
    }

    /// Checks `document`: every place where it does not match, up to eight
    /// listed (the rest counted).
    pub fn check(&self, document: &Value) -> Result<(), SchemaViolation> {
        let mut violations = Vec::new();
        let mut unlisted = 0;
        for error in self.validator.iter_errors(document) {
            if violations.len() < LISTED {
                violations.push(Violation {
                    pointer: error.instance_path().to_string(),
                    message: error.to_string(),
                });
            } else {
                unlisted += 1;
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(SchemaViolation {
                violations,
                unlisted,
            })
        }
    }
}

/// A schema that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a usable JSON Schema: {message}")]
pub struct InvalidSchema {
    /// What the schema compiler said.
    pub message: String,
}

/// Where a document does not match a [`Schema`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SchemaViolation {
    /// The first violations found (at most eight).
    pub violations: Vec<Violation>,
    /// How many more there are.
    pub unlisted: usize,
}

/// One place where a document does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The JSON Pointer of the offending value (`""` for the whole document).
    pub pointer: String,
    /// Why, in the schema compiler's words.
    pub message: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the document would not match the schema: ")?;
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let at = if v.pointer.is_empty() {
                "/"
            } else {
                &v.pointer
            };
            write!(f, "at {at}: {}", v.message)?;
        }
        if self.unlisted > 0 {
            write!(f, "; and {} more", self.unlisted)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_every_violation_up_to_eight_and_counts_the_rest() {
        let schema = Schema::new(&json!({"additionalProperties": {"type": "string"}})).unwrap();
        let doc: Value = (0..10).map(|i| (format!("k{i}"), json!(i))).collect();
        let err = schema.check(&doc).unwrap_err();
        assert_eq!(err.violations.len(), 8);
        assert_eq!(err.unlisted, 2);
        assert!(err.violations[0].pointer.starts_with("/k"), "{err}");
        assert!(err.to_string().ends_with("and 2 more"), "{err}");
    }

    #[test]
    fn a_malformed_or_remote_schema_is_refused() {
        assert!(Schema::new(&json!({"type": 5})).is_err());
        assert!(Schema::from_json("{").is_err());
        let remote = json!({"$ref": "https://example.invalid/schema.json"});
        assert!(Schema::new(&remote).is_err(), "nothing is fetched");
    }
}
