//! `tikaconf watch`: every change of a configuration as one JSON line, until Ctrl-C.
//!
//! One line per change, in canonical JSON by default, so that the output is easy
//! to pipe into `jq` or a log: `{"dropped":B,"head":H,"height":N,"ops":OPS}`.
//! Ops rather than documents, as `etcdctl watch` and `nats kv watch` print the
//! change and not the whole store: a document can be large and a change small.
//!
//! But ops alone only help a reader that knows what they apply to, so a line
//! carries the whole `document` wherever the reader would otherwise have
//! nothing to apply the next ops to: the first line (the state when watching
//! starts), a re-sync from a snapshot (`ops` null: there is no single patch to
//! show), and the first line after the watch fell behind (its ops apply to a
//! state the reader never saw; the skipped count goes to stderr). `--document`
//! puts it on every line; with it, the lines are the ones this command printed
//! before ops became the default.

use futures_util::StreamExt;
use serde_json::{Map, Value};
use tikaconf::proto::{Limits, Patch, json};
use tikaconf::{Change, Event};

use crate::cli::{Global, WatchArgs};
use crate::failure::Failure;
use crate::{output, session, shutdown};

/// `watch ROOT [--document] [-o FORMAT]`.
pub async fn run(global: &Global, args: &WatchArgs) -> Result<(), Failure> {
    let config = session::follow(global, &args.root).await?;
    // The library's watch: the current state first, then each change once.
    let mut watch = config.watch();
    let stop = shutdown::signal();
    tokio::pin!(stop);
    // Whether the next line must carry the document although it has ops.
    let mut lagged = false;
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            event = watch.next() => match event {
                None => return Ok(()),
                Some(Event::Change(change)) => {
                    let document = args.document || lagged;
                    output::line(output::record(&line(&change, document), args.output)?)?;
                    lagged = false;
                }
                Some(Event::Lagged(skipped)) => {
                    output::note(&format!(
                        "watch fell behind: {skipped} changes skipped; \
                         the next line carries the whole document"
                    ));
                    lagged = true;
                }
                Some(_) => {}
            }
        }
    }
}

/// The line for one change: the document when asked for or when there are no
/// ops to print.
fn line(change: &Change, document: bool) -> Value {
    let ops = change.patch.as_deref().map_or(Value::Null, ops);
    let mut map = Map::new();
    map.insert("head".into(), Value::String(change.head.to_hex()));
    map.insert("height".into(), Value::from(change.height));
    map.insert("dropped".into(), Value::Bool(change.dropped));
    if document || ops.is_null() {
        map.insert("document".into(), (*change.document).clone());
    }
    map.insert("ops".into(), ops);
    Value::Object(map)
}

/// The patch's ops as they were published. [`Patch`] keeps its ops parsed; the
/// canonical bytes it was hashed from hold them as JSON.
fn ops(patch: &Patch) -> Value {
    match json::parse_strict(&patch.encoded, Limits::MAX_DEPTH_CEILING) {
        Ok(Value::Object(mut m)) => m.remove("ops").unwrap_or(Value::Null),
        _ => Value::Null,
    }
}
