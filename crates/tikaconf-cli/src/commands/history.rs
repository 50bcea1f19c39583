//! `tikaconf log`, `show`, `diff` and `rollback`: a configuration's past, read
//! from the history the server's store keeps (`GET /v1/configs/{root}/history`,
//! `.../at/{hash}`, `.../diff`) and an older version restored by a new patch
//! on the head (`POST .../rollback`, conditional on the head read first).
//!
//! Over `--server` only: the history lives in a storage node's store, which
//! only the HTTP API of `tikaconf serve` exposes (Redis carries no request
//! for it), so over Redis these verbs say so and exit 2, as `ls` does.

use serde_json::Value;
use tikaconf::Hash;
use tikaconf::proto::canonical;
use tikaconf::proto::patch::Ops;

use crate::cli::{Global, LogArgs};
use crate::commands::write::{Outcome, report};
use crate::failure::Failure;
use crate::output::{self, Style};
use crate::remote::http::{Http, HttpTarget};
use crate::session;

/// The largest page the API gives.
const MAX_PAGE: usize = 1000;

/// `log ROOT [--limit N] [--before H]`: newest first.
pub async fn log(global: &Global, args: &LogArgs) -> Result<(), Failure> {
    if args.limit == Some(0) {
        return Err(Failure::bad_input(anyhow::anyhow!("--limit is at least 1")));
    }
    let target = open(global, &args.root, "log").await?;
    let style = Style::of(global);
    let mut left = args.limit.unwrap_or(usize::MAX);
    let mut before = args.before;
    let mut shown = 0usize;
    let mut retention = String::new();
    if style == Style::Human {
        output::line(format!(
            "{:<12}  {:>6}  {:<20}  {:<20}  {:<28}  CHANGES",
            "VERSION", "HEIGHT", "TIME", "AUTHOR", "MESSAGE"
        ))?;
    }
    while left > 0 {
        let page = target.history(before, left.min(MAX_PAGE)).await?;
        retention = text(&page, "retention");
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        for entry in entries.iter().take(left) {
            match style {
                Style::Json => output::json(entry)?,
                Style::Plain => output::line(plain(entry))?,
                Style::Human => output::line(human(entry))?,
            }
            shown += 1;
            left -= 1;
        }
        match page["next"].as_u64() {
            Some(next) if !entries.is_empty() => before = Some(next),
            _ => break,
        }
    }
    if style == Style::Human && shown == 0 {
        output::line(format!(
            "(no history: the server's store keeps {retention} patches per root)"
        ))?;
    }
    Ok(())
}

/// `show ROOT HASH`: the patch that made a version, and its document.
pub async fn show(global: &Global, root: &str, version: Hash) -> Result<(), Failure> {
    let target = open(global, root, "show").await?;
    let at = target.at(version).await?;
    match Style::of(global) {
        Style::Json => output::json(&at),
        Style::Plain => output::line(canonical::to_vec(&at["document"])),
        Style::Human => {
            output::line(format!(
                "version   {} (height {})",
                text(&at, "hash"),
                at["height"]
            ))?;
            let patch = &at["patch"];
            if patch.is_object() {
                for (label, key) in [
                    ("parent", "parent"),
                    ("author", "author"),
                    ("time", "time"),
                    ("message", "message"),
                    ("restores", "rollback_of"),
                ] {
                    if let Some(value) = patch[key].as_str() {
                        output::line(format!("{label:<8}  {value}"))?;
                    }
                }
                output::line("ops:")?;
                for op in patch["ops"].as_array().into_iter().flatten() {
                    output::line(format!("  {}", op_line(op)))?;
                }
            } else if at["height"] != 0 {
                output::line("(the patch itself is no longer kept)")?;
            }
            output::line("document:")?;
            let pretty = serde_json::to_string_pretty(&at["document"]).map_err(Failure::other)?;
            output::line(pretty)
        }
    }
}

/// `diff ROOT FROM TO`: the RFC 6902 ops from one version to another.
pub async fn diff(global: &Global, root: &str, from: Hash, to: Hash) -> Result<(), Failure> {
    let target = open(global, root, "diff").await?;
    let diff = target.diff(from, to).await?;
    match Style::of(global) {
        Style::Json => output::json(&diff),
        Style::Plain => output::line(canonical::to_vec(&diff["ops"])),
        Style::Human => {
            let ops = diff["ops"].as_array().cloned().unwrap_or_default();
            if ops.is_empty() {
                return output::line("no differences");
            }
            let before = target.at(from).await?["document"].clone();
            let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            for line in coloured(&before, &ops, colour) {
                output::line(line)?;
            }
            Ok(())
        }
    }
}

/// `rollback ROOT HASH`: a new patch, on the head read now, whose result is
/// the document at HASH; exit 4 if another write comes first.
pub async fn rollback(global: &Global, root: &str, version: Hash) -> Result<(), Failure> {
    let target = open(global, root, "rollback").await?;
    let base = target.read().await?;
    let written = target.rollback(version, base.head).await?;
    report(
        global,
        &Outcome {
            root: target.root(),
            head: written.head,
            height: written.height,
            changed: written.head != base.head,
        },
    )
}

/// The configuration on `--server`, or exit 2 without one.
pub(crate) async fn open(global: &Global, root: &str, verb: &str) -> Result<HttpTarget, Failure> {
    let root = session::parse_root(root)?;
    let Some(url) = &global.server else {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "`{verb}` needs --server URL (or TIKACONF_SERVER): history is kept in a storage \
             node's store, which only the HTTP API of `tikaconf serve` exposes (Redis carries \
             no request for it)"
        )));
    };
    Http::new(global, url)?.open(root).await
}

fn text(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// `HASH\tHEIGHT\tTIME\tAUTHOR\tMESSAGE\tCHANGES`, `-` for what is absent
/// (tabs and newlines inside a message become spaces).
fn plain(entry: &Value) -> String {
    let field = |key| text(entry, key).replace(['\t', '\n', '\r'], " ");
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        field("hash"),
        entry["height"],
        field("time"),
        field("author"),
        field("message"),
        summary(entry)
    )
}

/// Aligned columns, the hash shortened, the message cut to its first line.
fn human(entry: &Value) -> String {
    let hash = text(entry, "hash");
    let short = hash.get(..12).unwrap_or(&hash);
    let message = text(entry, "message");
    let first = message.lines().next().unwrap_or("");
    // A rollback says which version it restores, unless its message does.
    let message = match entry["rollback_of"]
        .as_str()
        .map(|of| of.get(..12).unwrap_or(of))
    {
        Some(of) if !first.contains(of) => format!("{first} [restores {of}]"),
        _ => first.to_owned(),
    };
    format!(
        "{short:<12}  {:>6}  {:<20}  {:<20}  {message:<28}  {}",
        // A number, not the JSON value: `Value`'s Display ignores the width.
        entry["height"].as_u64().unwrap_or(0),
        text(entry, "time"),
        text(entry, "author"),
        summary(entry)
    )
}

/// The ops in one line: the first two as `op path`, then how many more.
fn summary(entry: &Value) -> String {
    if let Some(error) = entry["error"].as_str() {
        return format!("(damaged: {error})");
    }
    let ops = entry["ops"].as_array().cloned().unwrap_or_default();
    if ops.is_empty() {
        return "(no ops)".to_owned();
    }
    let mut words: Vec<String> = ops.iter().take(2).map(short_op).collect::<Vec<_>>();
    if ops.len() > 2 {
        let last = words.pop().unwrap_or_default();
        words.push(format!("{last} (+{} more)", ops.len() - 2));
    }
    words.join(", ")
}

fn short_op(op: &Value) -> String {
    let name = op["op"].as_str().unwrap_or("?");
    let path = op["path"].as_str().unwrap_or("?");
    match op["from"].as_str() {
        Some(from) => format!("{name} {from} -> {path}"),
        None => format!("{name} {path}"),
    }
}

/// One op in full, for `show`.
fn op_line(op: &Value) -> String {
    match op.get("value") {
        Some(value) => format!(
            "{} = {}",
            short_op(op),
            String::from_utf8_lossy(&canonical::to_vec(value))
        ),
        None => short_op(op),
    }
}

/// The ops as people read a diff: `- path: old` (red) and `+ path: new`
/// (green) per changed path, moves and copies as a line of their own. The
/// old values come from applying the ops one by one to `before`.
fn coloured(before: &Value, ops: &[Value], colour: bool) -> Vec<String> {
    let paint = |code: &str, text: String| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    };
    let show = |v: &Value| String::from_utf8_lossy(&canonical::to_vec(v)).into_owned();
    let mut document = before.clone();
    let mut lines = Vec::new();
    for op in ops {
        let path = op["path"].as_str().unwrap_or("");
        let old = document.pointer(path).cloned();
        match op["op"].as_str().unwrap_or("") {
            "add" if old.is_none() || path.ends_with("/-") => {
                lines.push(paint("32", format!("+ {path}: {}", show(&op["value"]))));
            }
            "add" | "replace" => {
                if let Some(old) = &old {
                    lines.push(paint("31", format!("- {path}: {}", show(old))));
                }
                lines.push(paint("32", format!("+ {path}: {}", show(&op["value"]))));
            }
            "remove" => {
                let old = old.as_ref().map(show).unwrap_or_default();
                lines.push(paint("31", format!("- {path}: {old}")));
            }
            "test" => {}
            _ => lines.push(format!("  {}", short_op(op))),
        }
        let applied = Ops::from_value(&Value::Array(vec![op.clone()]))
            .ok()
            .and_then(|one| one.apply_owned(document.clone()).ok());
        if let Some(next) = applied {
            document = next;
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_summary_names_two_ops_and_counts_the_rest() {
        let entry = json!({"ops": [
            {"op": "add", "path": "/commands/!hi", "value": 1},
            {"op": "replace", "path": "/volume", "value": 2},
            {"op": "remove", "path": "/a"},
            {"op": "move", "from": "/b", "path": "/c"},
        ]});
        assert_eq!(
            summary(&entry),
            "add /commands/!hi, replace /volume (+2 more)"
        );
        assert_eq!(summary(&json!({"ops": []})), "(no ops)");
        assert_eq!(
            summary(&json!({"ops": [{"op": "move", "from": "/b", "path": "/c"}]})),
            "move /b -> /c"
        );
    }

    #[test]
    fn the_coloured_view_shows_old_and_new_values() {
        let before = json!({"volume": 1, "gone": "x", "list": [1]});
        let ops = [
            json!({"op": "replace", "path": "/volume", "value": 2}),
            json!({"op": "remove", "path": "/gone"}),
            json!({"op": "add", "path": "/new", "value": {"a": true}}),
            json!({"op": "add", "path": "/list/-", "value": 2}),
        ];
        assert_eq!(
            coloured(&before, &ops, false),
            [
                "- /volume: 1",
                "+ /volume: 2",
                "- /gone: \"x\"",
                "+ /new: {\"a\":true}",
                "+ /list/-: 2",
            ]
        );
        let painted = coloured(&before, &ops[..1], true);
        assert_eq!(painted[0], "\x1b[31m- /volume: 1\x1b[0m");
        assert_eq!(painted[1], "\x1b[32m+ /volume: 2\x1b[0m");
    }
}
