//! `tikaconf watch`: every change of a configuration as one JSON line, until Ctrl-C.
//!
//! One line per change, in canonical JSON, so that the output is easy to pipe
//! into `jq` or a log: `{"document":DOC,"dropped":B,"head":H,"height":N,"ops":OPS}`.
//! The first line is the state when watching starts (`ops` null), so a reader
//! knows the watch is live and has a baseline; `ops` is also null after a re-sync
//! from a snapshot, when there is no single patch to show.

use futures_util::StreamExt;
use serde_json::{Map, Value};
use tikaconf::proto::{Limits, Patch, canonical, json};
use tikaconf::{Change, Event, Hash};

use crate::cli::Global;
use crate::failure::Failure;
use crate::{output, session, shutdown};

pub async fn run(global: &Global, root: &str) -> Result<(), Failure> {
    let config = session::follow(global, root).await?;
    // The library's watch: the current state first, then each change once.
    let mut watch = config.watch();
    let stop = shutdown::signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            event = watch.next() => match event {
                None => return Ok(()),
                Some(Event::Change(Change { head, height, document, patch, dropped, .. })) => {
                    output::line(line(head, height, &document, patch.as_deref(), dropped))?;
                }
                Some(Event::Lagged(skipped)) => {
                    tracing::warn!(skipped, "fell behind the changes; the next line is current");
                }
                Some(_) => {}
            }
        }
    }
}

fn line(
    head: Hash,
    height: u64,
    document: &Value,
    patch: Option<&Patch>,
    dropped: bool,
) -> Vec<u8> {
    let mut map = Map::new();
    map.insert("head".into(), Value::String(head.to_hex()));
    map.insert("height".into(), Value::from(height));
    map.insert("ops".into(), patch.map_or(Value::Null, ops));
    map.insert("dropped".into(), Value::Bool(dropped));
    map.insert("document".into(), document.clone());
    canonical::to_vec(&Value::Object(map))
}

/// The patch's ops as they were published. [`Patch`] keeps its ops parsed; the
/// canonical bytes it was hashed from hold them as JSON.
fn ops(patch: &Patch) -> Value {
    match json::parse_strict(&patch.encoded, Limits::MAX_DEPTH_CEILING) {
        Ok(Value::Object(mut m)) => m.remove("ops").unwrap_or(Value::Null),
        _ => Value::Null,
    }
}
