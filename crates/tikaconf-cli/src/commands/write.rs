//! `tikaconf set`, `tikaconf rm` and `tikaconf patch`: durable writes.
//!
//! Both end in the same way: the patch is published against the current head (or,
//! with `--if-head HASH`, only if the current head is HASH: the library's
//! `Config::submit_on`) and the command waits until storage has stored it, then
//! prints the new head. Input is checked before connecting (strict JSON,
//! well-formed JSON Pointers and ops), so a typo fails fast with exit code 2
//! whether or not a deployment is reachable; whether the ops *apply* can only be
//! known against the current document.

use std::io::Read;
use std::path::Path;

use serde_json::{Value, json};
use tikaconf::proto::patch::Ops;
use tikaconf::proto::{Limits, json};
use tikaconf::{Hash, WriteError};

use crate::cli::Global;
use crate::failure::Failure;
use crate::{output, pointer, session};

/// `set ROOT POINTER JSON`: one `add` op, which creates or replaces an object
/// member (or inserts into an array, per RFC 6902).
pub async fn set(
    global: &Global,
    root: &str,
    at: &str,
    value: &str,
    if_head: Option<Hash>,
) -> Result<(), Failure> {
    pointer::check(at)?;
    let value = parse(value.as_bytes()).map_err(|f| f.context("JSON value"))?;
    let ops = json!([{"op": "add", "path": at, "value": value}]);
    submit(global, root, ops, if_head).await
}

/// `rm ROOT POINTER`: one `remove` op. `""` is refused before connecting:
/// RFC 6902 has no removal of the document itself.
pub async fn rm(
    global: &Global,
    root: &str,
    at: &str,
    if_head: Option<Hash>,
) -> Result<(), Failure> {
    pointer::check(at)?;
    if at.is_empty() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "rm needs a pointer inside the document: \"\" would remove the document itself"
        )));
    }
    submit(global, root, json!([{"op": "remove", "path": at}]), if_head).await
}

/// `patch ROOT FILE|-`: an RFC 6902 patch document (a JSON array of ops).
pub async fn patch(
    global: &Global,
    root: &str,
    file: &Path,
    if_head: Option<Hash>,
) -> Result<(), Failure> {
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
    submit(global, root, ops, if_head).await
}

async fn submit(
    global: &Global,
    root: &str,
    ops: Value,
    if_head: Option<Hash>,
) -> Result<(), Failure> {
    Ops::from_value(&ops).map_err(|e| Failure::bad_input(e).context("invalid patch"))?;
    let config = session::follow(global, root).await?;
    let written = match if_head {
        Some(parent) => config.submit_on(parent, ops).await,
        None => config.submit(ops).await,
    };
    let head = written.map_err(|e| {
        let context = match (&e, if_head) {
            // The library's error does not carry the head it found; this node's
            // head is it, or a newer one, and either is what a retry needs.
            (WriteError::HeadMoved, Some(expected)) => format!(
                "not written: the current head is {} (height {}), not --if-head {expected}",
                config.head(),
                config.height()
            ),
            (WriteError::Conflict { .. }, _) => "another write won".to_owned(),
            (WriteError::Rejected(_), _) => "the patch does not apply".to_owned(),
            (WriteError::Timeout { .. }, _) => "outcome unknown".to_owned(),
            _ => "write failed".to_owned(),
        };
        Failure::from(e).context(context)
    })?;
    output::line(head.to_hex())
}

fn parse(bytes: &[u8]) -> Result<Value, Failure> {
    json::parse_strict(bytes, Limits::default().max_depth).map_err(Failure::bad_input)
}
