//! `tikaconf set`, `tikaconf rm` and `tikaconf patch`: durable writes.
//!
//! They end in the same way, as `edit` and `import` do ([`commit`] and
//! [`report`]): the patch is published against the current head (or, with
//! `--if-head HASH`, only if the current head is HASH: the library's
//! `Config::submit_on`, or `If-Match` over HTTP) and the command waits until
//! storage has stored it, then prints the new head. Input is checked before connecting (strict JSON,
//! well-formed JSON Pointers and ops), so a typo fails fast with exit code 2
//! whether or not a deployment is reachable; whether the ops *apply* can only be
//! known against the current document.

use std::path::Path;

use serde_json::{Value, json};
use tikaconf::Hash;
use tikaconf::proto::patch::Ops;
use tikaconf::proto::{Limits, json};

use crate::cli::Global;
use crate::failure::Failure;
use crate::remote::{self, Remote, Target};
use crate::{input, output, pointer, session};

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
    let (bytes, name) = input::read(file)?;
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
    let root = session::parse_root(root)?;
    let target = Remote::connect(global).await?.open(root).await?;
    let outcome = commit(&target, ops, if_head).await?;
    report(global, &outcome)
}

/// What a write verb did.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub root: Hash,
    pub head: Hash,
    pub height: u64,
    /// False when there was nothing to change (no ops): nothing was published.
    pub changed: bool,
}

/// Publishes `ops` on `target` (on `if_head` only, when given) and waits for
/// storage to store it. No ops publish nothing, over either transport: no new
/// version for nothing (as the HTTP API answers a write that changes nothing).
pub async fn commit(
    target: &Target,
    ops: Value,
    if_head: Option<Hash>,
) -> Result<Outcome, Failure> {
    if ops.as_array().is_some_and(Vec::is_empty) {
        let now = target.read().await?;
        if let Some(expected) = if_head
            && expected != now.head
        {
            return Err(remote::stale(expected, now.head, Some(now.height)));
        }
        return Ok(Outcome {
            root: target.root(),
            head: now.head,
            height: now.height,
            changed: false,
        });
    }
    let written = target.write(ops, if_head).await?;
    Ok(Outcome {
        root: target.root(),
        head: written.head,
        height: written.height,
        changed: true,
    })
}

/// Prints a write's outcome: the new head alone (plain), a sentence (a
/// terminal), or `{"changed","head","height","root"}` (`--json`).
pub fn report(global: &Global, outcome: &Outcome) -> Result<(), Failure> {
    let Outcome {
        root,
        head,
        height,
        changed,
    } = *outcome;
    match (output::Style::of(global), changed) {
        (output::Style::Json, _) => output::json(&json!({
            "root": root.to_hex(),
            "head": head.to_hex(),
            "height": height,
            "changed": changed,
        })),
        (output::Style::Human, true) => {
            output::line(format!("committed: head {head} (height {height})"))
        }
        (output::Style::Human, false) => output::line(format!(
            "nothing to change: nothing was published; the head is still {head} (height {height})"
        )),
        (output::Style::Plain, changed) => {
            if !changed {
                output::note("nothing to change: nothing was published");
            }
            output::line(head.to_hex())
        }
    }
}

pub fn parse(bytes: &[u8]) -> Result<Value, Failure> {
    json::parse_strict(bytes, Limits::default().max_depth).map_err(Failure::bad_input)
}
