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
    let mut printer = Printer::new(args.document);
    let stop = shutdown::signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            event = watch.next() => match event {
                None => return Ok(()),
                Some(event) => match printer.event(event) {
                    Print::Line(record) => {
                        let text = output::record(&record, args.output)?;
                        output::line_in_runtime(text)?;
                    }
                    Print::Note(note) => output::note(&note),
                    Print::Nothing => {}
                },
            }
        }
    }
}

/// What one event prints.
#[derive(Debug, PartialEq)]
enum Print {
    /// A line on stdout.
    Line(Value),
    /// A note for the person watching, on stderr.
    Note(String),
    /// Nothing (an event this version does not know).
    Nothing,
}

/// Turns events into lines, remembering whether the next line must carry the
/// document although it has ops (it follows a lag).
#[derive(Debug)]
struct Printer {
    /// `--document`: the document on every line.
    every_document: bool,
    /// Changes were skipped since the last line.
    lagged: bool,
}

impl Printer {
    fn new(every_document: bool) -> Printer {
        Printer {
            every_document,
            lagged: false,
        }
    }

    fn event(&mut self, event: Event) -> Print {
        match event {
            Event::Change(change) => {
                let document = self.every_document || self.lagged;
                self.lagged = false;
                Print::Line(line(&change, document))
            }
            Event::Lagged(skipped) => {
                self.lagged = true;
                Print::Note(format!(
                    "watch fell behind: {skipped} changes skipped; \
                     the next line carries the whole document"
                ))
            }
            _ => Print::Nothing,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use serde_json::json;
    use tikaconf::RootConfig;

    use super::*;

    /// The baseline (no patch) and the change after it, with the document that
    /// change made.
    fn changes() -> (Change, Change) {
        let root = RootConfig::twitch("#watch").expect("root");
        let ops = json!([{"op": "add", "path": "/x", "value": 1}]);
        let patch = Patch::build(root.hash(), root.hash(), 0, ops, None).expect("patch");
        let baseline = Change {
            head: root.hash(),
            height: 0,
            document: Arc::new(root.value().clone()),
            patch: None,
            dropped: false,
            applied_at: Instant::now(),
        };
        let mut document = root.value().clone();
        document["x"] = json!(1);
        let change = Change {
            head: patch.hash,
            height: 1,
            document: Arc::new(document),
            patch: Some(Arc::new(patch)),
            dropped: false,
            applied_at: Instant::now(),
        };
        (baseline, change)
    }

    fn has_document(print: &Print) -> bool {
        match print {
            Print::Line(line) => line.get("document").is_some(),
            other => panic!("a line expected, not {other:?}"),
        }
    }

    #[test]
    fn ops_by_default_and_the_document_where_the_reader_needs_one() {
        let (baseline, change) = changes();
        let mut printer = Printer::new(false);
        let first = printer.event(Event::Change(baseline.clone()));
        assert!(has_document(&first), "no ops: the document");
        let Print::Line(first) = first else {
            unreachable!()
        };
        assert_eq!(first["ops"], Value::Null);
        let next = printer.event(Event::Change(change.clone()));
        assert!(!has_document(&next), "ops only");
        let Print::Line(next) = next else {
            unreachable!()
        };
        assert_eq!(
            next["ops"],
            json!([{"op": "add", "path": "/x", "value": 1}])
        );
        assert_eq!(next["height"], 1);

        // After a lag: a note with the count, then the document once.
        let Print::Note(note) = printer.event(Event::Lagged(7)) else {
            panic!("a note expected")
        };
        assert!(note.contains("7 changes skipped"), "{note}");
        assert!(has_document(&printer.event(Event::Change(change.clone()))));
        assert!(!has_document(&printer.event(Event::Change(change.clone()))));
        // A re-sync from a snapshot: no ops, so the document.
        assert!(has_document(
            &printer.event(Event::Change(baseline.clone()))
        ));

        let mut every = Printer::new(true);
        assert!(has_document(&every.event(Event::Change(baseline))));
        assert!(has_document(&every.event(Event::Change(change))));
    }
}
