//! Decodes one patch or snapshot message carrying a document of a given size,
//! for instruction counts under callgrind (which, unlike wall time on a shared
//! machine, are stable from run to run):
//!
//! ```text
//! cargo build --release -p tikaconf-proto --example decode_profile
//! valgrind --tool=callgrind --toggle-collect='*decode_profile*decode_n*' \
//!     target/release/examples/decode_profile patch 10240
//! ```
//!
//! `--toggle-collect` counts only the decoding, not building the message. The
//! document has the shape of `benches/proto.rs`'s: a map of ~100-byte commands.
//! A third argument `serde_json` parses the same bytes with
//! `serde_json::from_slice` instead, the floor `benches/proto.rs` also shows.

use std::hint::black_box;

use serde_json::{Value, json};
use tikaconf_proto::{Hash, Limits, Message, Patch, RootConfig, Snapshot};

#[path = "../benches/support/document.rs"]
mod support;
use support::document;

/// Kept out of line so that callgrind can be told to count only this.
#[inline(never)]
fn decode_n(bytes: &[u8], limits: &Limits) {
    black_box(Message::decode(black_box(bytes), limits).expect("decodes"));
}

/// The same for serde_json's plain parse of the bytes.
#[inline(never)]
fn decode_n_serde_json(bytes: &[u8]) {
    black_box(serde_json::from_slice::<Value>(black_box(bytes)).expect("parses"));
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "patch".into());
    let size: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10 * 1024);
    let parser = args.next().unwrap_or_else(|| "tikaconf".into());
    let root = RootConfig::twitch("#bench").expect("valid channel");
    let doc = document(size);
    let bytes = match kind.as_str() {
        "patch" => {
            let ops = json!([{"op": "add", "path": "/commands", "value": doc["commands"]}]);
            Patch::build(root.hash(), root.hash(), 0, ops, None)
                .expect("patch builds")
                .encoded
        }
        "snapshot" => {
            let head = Hash::of_canonical_bytes(b"a head");
            Snapshot::new(root.hash(), head, 7, doc).encoded
        }
        other => panic!("kind is patch or snapshot, not {other:?}"),
    };
    eprintln!("{kind}: {} bytes, parsed by {parser}", bytes.len());
    match parser.as_str() {
        "tikaconf" => decode_n(&bytes, &Limits::default()),
        "serde_json" => decode_n_serde_json(&bytes),
        other => panic!("parser is tikaconf or serde_json, not {other:?}"),
    }
}
