//! `tikaconf set` and `tikaconf patch`: durable writes.
//!
//! Both end in the same way: the patch is published against the current head and
//! the command waits until storage has stored it, then prints the new head. Input
//! is checked before connecting (strict JSON, well-formed JSON Pointers and ops),
//! so a typo fails fast with exit code 2 whether or not a deployment is reachable;
//! whether the ops *apply* can only be known against the current document.

use std::io::Read;
use std::path::Path;

use serde_json::{Value, json};
use tikaconf::WriteError;
use tikaconf::proto::patch::Ops;
use tikaconf::proto::{Limits, json};

use crate::cli::Global;
use crate::failure::Failure;
use crate::{output, session};

/// `set ROOT POINTER JSON`: one `add` op, which creates or replaces an object
/// member (or inserts into an array, per RFC 6902).
pub async fn set(global: &Global, root: &str, pointer: &str, value: &str) -> Result<(), Failure> {
    check_pointer(pointer)?;
    let value = parse(value.as_bytes()).map_err(|f| f.context("JSON value"))?;
    let ops = json!([{"op": "add", "path": pointer, "value": value}]);
    submit(global, root, ops).await
}

/// `patch ROOT FILE|-`: an RFC 6902 patch document (a JSON array of ops).
pub async fn patch(global: &Global, root: &str, file: &Path) -> Result<(), Failure> {
    let (bytes, name) = if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::other(e).context("cannot read stdin"))?;
        (bytes, "stdin".to_owned())
    } else {
        let bytes = std::fs::read(file).map_err(|e| {
            Failure::bad_input(e).context(format!("cannot read {}", file.display()))
        })?;
        (bytes, file.display().to_string())
    };
    let ops = parse(&bytes).map_err(|f| f.context(format!("patch document from {name}")))?;
    submit(global, root, ops).await
}

async fn submit(global: &Global, root: &str, ops: Value) -> Result<(), Failure> {
    Ops::from_value(&ops).map_err(|e| Failure::bad_input(e).context("invalid patch"))?;
    let config = session::follow(global, root).await?;
    let head = config.submit(ops).await.map_err(|e| {
        let context = match &e {
            WriteError::Conflict { .. } => "another write won",
            WriteError::Rejected(_) => "the patch does not apply",
            WriteError::Timeout { .. } => "outcome unknown",
            _ => "write failed",
        };
        Failure::from(e).context(context)
    })?;
    output::line(head.to_hex())
}

fn parse(bytes: &[u8]) -> Result<Value, Failure> {
    json::parse_strict(bytes, Limits::default().max_depth).map_err(Failure::bad_input)
}

/// Checks RFC 6901 syntax: `""`, or `/`-separated tokens where `~` is only ever
/// `~0` or `~1`.
fn check_pointer(pointer: &str) -> Result<(), Failure> {
    let bad = |why: &str| {
        Failure::bad_input(anyhow::anyhow!(
            "bad JSON Pointer {pointer:?}: {why} (example: /commands/!hello)"
        ))
    };
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(bad("it must be empty or start with '/'"));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(bad("'~' must be followed by 0 or 1"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_follow_rfc_6901() {
        for good in [
            "",
            "/",
            "/a",
            "/a/b",
            "/a~1b",
            "/~0",
            "/commands/!hello",
            "/0",
        ] {
            assert!(check_pointer(good).is_ok(), "{good}");
        }
        for bad in ["a", "a/b", "/~", "/~2", "/a~"] {
            assert!(check_pointer(bad).is_err(), "{bad}");
        }
    }
}
