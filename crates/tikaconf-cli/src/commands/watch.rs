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
//!
//! On a terminal (unless `-o` or `--json` says otherwise) each line is text
//! for people instead: height, short head, the ops in a few words. Over
//! `--server` the lines come from the API's event stream, which is
//! reconnected with `Last-Event-ID` when it drops (a note on stderr says so).

use serde_json::{Map, Value};
use tikaconf::proto::canonical;

use crate::cli::{Global, RecordFormat, WatchArgs};
use crate::failure::Failure;
use crate::output::{self, Style};
use crate::remote::{Remote, Update, WatchEvent};
use crate::{session, shutdown};

/// How the lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// `-o json`, `--json`, and the default when stdout is not a terminal.
    Record(RecordFormat),
    /// One line of text per change, the default on a terminal.
    Text,
}

/// `watch ROOT [--document] [-o FORMAT]`.
pub async fn run(global: &Global, args: &WatchArgs) -> Result<(), Failure> {
    let look = match (Style::of(global), args.output) {
        (Style::Json, _) => Look::Record(RecordFormat::Json),
        (_, Some(format)) => Look::Record(format),
        (Style::Human, None) => Look::Text,
        (Style::Plain, None) => Look::Record(RecordFormat::Json),
    };
    let root = session::parse_root(&args.root)?;
    let target = Remote::connect(global).await?.open(root).await?;
    // The current state first, then each change once.
    let mut watch = target.watch().await?;
    let mut printer = Printer::new(args.document);
    let stop = shutdown::signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            event = watch.next() => match event {
                None => return Ok(()),
                Some(event) => match printer.event(event?) {
                    Print::Line(record) => {
                        let text = match look {
                            Look::Record(format) => output::record(&record, format)?,
                            Look::Text => text(&record).into_bytes(),
                        };
                        output::line_in_runtime(text)?;
                    }
                    Print::Note(note) => output::note(&note),
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

    fn event(&mut self, event: WatchEvent) -> Print {
        match event {
            WatchEvent::Update(update) => {
                let document = self.every_document || self.lagged;
                self.lagged = false;
                Print::Line(line(&update, document))
            }
            WatchEvent::Lagged(skipped) => {
                self.lagged = true;
                Print::Note(format!(
                    "watch fell behind: {skipped} changes skipped; \
                     the next line carries the whole document"
                ))
            }
            WatchEvent::Note(note) => Print::Note(note),
        }
    }
}

/// The line for one update: the document when asked for or when there are no
/// ops to print.
fn line(update: &Update, document: bool) -> Value {
    let ops = update.ops.clone().unwrap_or(Value::Null);
    let mut map = Map::new();
    map.insert("head".into(), Value::String(update.head.to_hex()));
    map.insert("height".into(), Value::from(update.height));
    map.insert("dropped".into(), Value::Bool(update.dropped));
    if document || ops.is_null() {
        map.insert("document".into(), (*update.document).clone());
    }
    map.insert("ops".into(), ops);
    Value::Object(map)
}

/// A line for people: height, a short head, what changed (`add /x 1;
/// remove /y`), and the document, indented, when the line has one.
fn text(record: &Value) -> String {
    let head = record["head"].as_str().unwrap_or_default();
    let short = head.get(..12).unwrap_or(head);
    let mut text = format!("height {}  head {short}", record["height"]);
    if record["dropped"] == Value::Bool(true) {
        text.push_str("  (dropped patches storage never stored)");
    }
    if let Some(ops) = record["ops"].as_array() {
        let ops: Vec<String> = ops.iter().map(op).collect();
        text.push_str("  ");
        text.push_str(&ops.join("; "));
    }
    if let Some(document) = record.get("document") {
        let pretty = serde_json::to_string_pretty(document).unwrap_or_default();
        text.push_str("  document:\n");
        text.push_str(&pretty);
    }
    text
}

/// One RFC 6902 op in a few words.
fn op(op: &Value) -> String {
    let s = |k: &str| op.get(k).and_then(Value::as_str).unwrap_or_default();
    let value = || {
        op.get("value")
            .map(|v| String::from_utf8_lossy(&canonical::to_vec(v)).into_owned())
            .unwrap_or_default()
    };
    match s("op") {
        "remove" => format!("remove {}", s("path")),
        "move" | "copy" => format!("{} {} -> {}", s("op"), s("from"), s("path")),
        name => format!("{name} {} {}", s("path"), value()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use tikaconf::RootConfig;

    use super::*;

    /// The baseline (no ops) and the change after it, with the document that
    /// change made.
    fn updates() -> (Update, Update) {
        let root = RootConfig::twitch("#watch").expect("root");
        let baseline = Update {
            head: root.hash(),
            height: 0,
            document: Arc::new(root.value().clone()),
            ops: None,
            dropped: false,
        };
        let mut document = root.value().clone();
        document["x"] = json!(1);
        let change = Update {
            head: tikaconf::Hash::of_canonical_bytes(b"{}"),
            height: 1,
            document: Arc::new(document),
            ops: Some(json!([{"op": "add", "path": "/x", "value": 1}])),
            dropped: false,
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
        let (baseline, change) = updates();
        let update = |u: &Update| WatchEvent::Update(u.clone());
        let mut printer = Printer::new(false);
        let first = printer.event(update(&baseline));
        assert!(has_document(&first), "no ops: the document");
        let Print::Line(first) = first else {
            unreachable!()
        };
        assert_eq!(first["ops"], Value::Null);
        let next = printer.event(update(&change));
        assert!(!has_document(&next), "ops only");
        let Print::Line(next) = next else {
            unreachable!()
        };
        assert_eq!(
            next["ops"],
            json!([{"op": "add", "path": "/x", "value": 1}])
        );
        assert_eq!(next["height"], 1);
        assert_eq!(
            text(&next),
            format!("height 1  head {}  add /x 1", &change.head.to_hex()[..12])
        );

        // After a lag: a note with the count, then the document once.
        let Print::Note(note) = printer.event(WatchEvent::Lagged(7)) else {
            panic!("a note expected")
        };
        assert!(note.contains("7 changes skipped"), "{note}");
        assert!(has_document(&printer.event(update(&change))));
        assert!(!has_document(&printer.event(update(&change))));
        // A re-sync from a snapshot: no ops, so the document.
        assert!(has_document(&printer.event(update(&baseline))));

        let mut every = Printer::new(true);
        assert!(has_document(&every.event(update(&baseline))));
        assert!(has_document(&every.event(update(&change))));
    }

    #[test]
    fn ops_in_a_few_words() {
        assert_eq!(op(&json!({"op": "remove", "path": "/a"})), "remove /a");
        assert_eq!(
            op(&json!({"op": "move", "from": "/a", "path": "/b"})),
            "move /a -> /b"
        );
        assert_eq!(
            op(&json!({"op": "replace", "path": "/a", "value": {"b": "c"}})),
            r#"replace /a {"b":"c"}"#
        );
    }
}
