//! Writing results to stdout without panicking, in the format asked for.
//!
//! `println!` panics when stdout is a closed pipe (`tikaconf watch ROOT | head -1`);
//! a command should instead end with an ordinary failure, so every result line
//! goes through here. The `-o` formats are rendered here too, so that `get` and
//! `watch` mean the same by `json` and `pretty`.
//!
//! Which output a command gives is one decision, [`Style::of`]: `--json` for
//! scripts that want one JSON value (a JSON line per change for `watch`);
//! otherwise text for people when stdout is a terminal, and the plain output
//! each verb has always had (a head on one line, JSON lines) when it is not,
//! so that existing pipelines see no change.

use std::io::Write;

use serde_json::Value;
use tikaconf::proto::canonical;

use crate::cli::{Global, RecordFormat, ValueFormat};
use crate::failure::Failure;

/// Who reads stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A script that asked for JSON (`--json`).
    Json,
    /// A person: stdout is a terminal.
    Human,
    /// A pipe or a file: each verb's plain output.
    Plain,
}

impl Style {
    pub fn of(global: &Global) -> Style {
        use std::io::IsTerminal;
        if global.json {
            Style::Json
        } else if std::io::stdout().is_terminal() {
            Style::Human
        } else {
            Style::Plain
        }
    }
}

/// `value` as one line of canonical JSON, the form every `--json` output takes.
pub fn json(value: &Value) -> Result<(), Failure> {
    line(canonical::to_vec(value))
}

/// Writes `text` and a newline to stdout, and flushes, so that a reader sees each
/// line as soon as it is written.
pub fn line(text: impl AsRef<[u8]>) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| Failure::other(e).context("cannot write to stdout"))
}

/// [`line`] from a task of the async runtime, for a command that keeps running
/// (`watch`): when the reader of stdout is slow, the write blocks, and it must
/// not hold one of the runtime's worker threads meanwhile, which the library's
/// tasks (the hub following the root) may be waiting on. So on the multi-thread
/// runtime the worker hands its other tasks to a new thread first
/// (`block_in_place`); elsewhere, where that is not possible, it writes as
/// [`line`] does.
pub fn line_in_runtime(text: impl AsRef<[u8]>) -> Result<(), Failure> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| line(text)),
        _ => line(text),
    }
}

/// Writes a note for the person watching to stderr: not a result, so never on
/// stdout, where it would break a reader of JSON lines. A closed stderr is no
/// reason to stop, so a failed write is ignored.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "tikaconf: {text}");
}

/// `value` as `get -o FORMAT` prints it (without the final newline).
pub fn value(value: &Value, format: ValueFormat) -> Result<Vec<u8>, Failure> {
    match (format, value) {
        (ValueFormat::Raw, Value::String(s)) => Ok(s.as_bytes().to_vec()),
        (ValueFormat::Raw | ValueFormat::Json, _) => Ok(canonical::to_vec(value)),
        (ValueFormat::Pretty, _) => pretty(value),
    }
}

/// `record` as `watch -o FORMAT` prints it (without the final newline).
pub fn record(record: &Value, format: RecordFormat) -> Result<Vec<u8>, Failure> {
    match format {
        RecordFormat::Json => Ok(canonical::to_vec(record)),
        RecordFormat::Pretty => pretty(record),
    }
}

/// Indented JSON. Keys come out sorted, as in the canonical form, so that the two
/// formats list an object's members in the same order.
fn pretty(value: &Value) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| Failure::other(e).context("cannot print the value as JSON"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_format_prints_as_documented() {
        let text = |v: &Value, f| String::from_utf8(value(v, f).unwrap()).unwrap();
        let object = json!({"b": 1, "a": "x\"y"});
        assert_eq!(text(&object, ValueFormat::Json), r#"{"a":"x\"y","b":1}"#);
        assert_eq!(text(&object, ValueFormat::Raw), r#"{"a":"x\"y","b":1}"#);
        assert_eq!(
            text(&object, ValueFormat::Pretty),
            "{\n  \"a\": \"x\\\"y\",\n  \"b\": 1\n}"
        );
        let string = json!("two\nlines \"quoted\"");
        assert_eq!(text(&string, ValueFormat::Raw), "two\nlines \"quoted\"");
        assert_eq!(
            text(&string, ValueFormat::Json),
            r#""two\nlines \"quoted\"""#
        );
        assert_eq!(text(&json!(null), ValueFormat::Raw), "null");
        assert_eq!(text(&json!(12), ValueFormat::Raw), "12");
    }
}
