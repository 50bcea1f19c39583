//! Keeps `docs/PROTOCOL.md` honest: every test vector written in its "Test
//! vectors" section is recomputed here from the code and must match byte for byte.
//!
//! The vectors are found by stable markers: inside that section, a line of the
//! form `<label>: <value>` (e.g. `root hash: 3f...`), where the labels are the
//! keys of [`expected`]. A label that is missing, doubled or wrong fails the test,
//! so the document can never drift from what the code computes. Run with
//! `--nocapture` to print the current values when the wire format changes on
//! purpose.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use tikaconf_proto::message::encode_unknown;
use tikaconf_proto::{
    Hash, Limits, LoadRequest, Message, Patch, RootConfig, Snapshot, Stored, canonical, json,
};

/// Where the vectors section starts, and the heading level that ends it.
const SECTION: &str = "## Test vectors";

fn utf8(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("canonical JSON is UTF-8")
}

/// Every vector the document must carry, computed from the code.
fn expected() -> BTreeMap<&'static str, String> {
    let root = RootConfig::twitch("#tikatoo").expect("valid channel");
    let r = root.hash();
    let ops = json!([{"op": "add", "path": "/commands", "value": {"!hello": "Hello, chat!"}}]);
    let patch = Patch::build(r, r, 0, ops, None).expect("valid patch");
    let limits = Limits::default();
    let doc = patch
        .apply_to(r, 0, root.value(), &limits)
        .expect("patch applies to the root");
    let snapshot = Snapshot::new(r, patch.hash, patch.height, doc);
    let stored = Stored {
        root: r,
        head: patch.hash,
        height: patch.height,
    };

    // The patch as received must decode to the same hash (the hash is over the
    // whole canonical object).
    match Message::decode(&patch.encoded, &limits) {
        Ok(Message::Patch(p)) => assert_eq!(p.hash, patch.hash),
        other => panic!("patch does not decode: {other:?}"),
    }
    assert_eq!(patch.hash, Hash::of_canonical_bytes(&patch.encoded));
    assert_eq!(root.to_canonical(), canonical::to_vec(root.value()));

    let normalized = |text: &str| {
        let v = json::parse_strict(text.as_bytes(), limits.max_depth).expect("valid JSON");
        utf8(&canonical::to_vec(&v))
    };

    BTreeMap::from([
        ("root config", utf8(&root.to_canonical())),
        ("root hash", r.to_hex()),
        (
            "load request (hash)",
            utf8(&LoadRequest::ByHash(r).encode()),
        ),
        (
            "load request (register)",
            utf8(&LoadRequest::Register(root.clone()).encode()),
        ),
        ("patch", utf8(&patch.encoded)),
        ("patch hash", patch.hash.to_hex()),
        ("patch channel", format!("updates:{r}")),
        ("snapshot", utf8(&snapshot.encoded)),
        ("stored", utf8(&stored.encode())),
        ("unknown", utf8(&encode_unknown(r))),
        (
            "empty object hash",
            Hash::of_canonical_bytes(b"{}").to_hex(),
        ),
        (
            "numbers in",
            r#"{"b":1.0,"a":[1e2,-0.0,0.5,1E-7,9007199254740992]}"#.to_owned(),
        ),
        (
            "numbers out",
            normalized(r#"{"b":1.0,"a":[1e2,-0.0,0.5,1E-7,9007199254740992]}"#),
        ),
    ])
}

/// The `label: value` lines of the vectors section.
fn written(doc: &str) -> BTreeMap<String, Vec<String>> {
    let start = doc
        .find(SECTION)
        .unwrap_or_else(|| panic!("docs/PROTOCOL.md has no {SECTION:?} section"));
    let section = &doc[start + SECTION.len()..];
    let end = section.find("\n## ").unwrap_or(section.len());
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in section[..end].lines() {
        if let Some((label, value)) = line.split_once(": ") {
            out.entry(label.trim().to_owned())
                .or_default()
                .push(value.trim().to_owned());
        }
    }
    out
}

#[test]
fn protocol_doc_vectors_match_the_code() {
    let expected = expected();
    for (label, value) in &expected {
        println!("{label}: {value}");
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let written = written(&doc);
    let mut problems = Vec::new();
    for (label, value) in expected {
        match written.get(label).map(Vec::as_slice) {
            Some([got]) if *got == value => {}
            Some([got]) => problems.push(format!("{label}:\n  doc:  {got}\n  code: {value}")),
            Some(many) => problems.push(format!("{label}: written {} times", many.len())),
            None => problems.push(format!("{label}: missing (code says {value})")),
        }
    }
    assert!(
        problems.is_empty(),
        "docs/PROTOCOL.md test vectors differ from the code:\n{}",
        problems.join("\n")
    );
}

/// The vectors themselves obey the protocol: each message decodes, and the patch's
/// hash is the SHA-256 of exactly the bytes written.
#[test]
fn written_vectors_decode() {
    let e = expected();
    let limits = Limits::default();
    for label in ["patch", "snapshot", "stored", "unknown"] {
        assert!(
            Message::decode(e[label].as_bytes(), &limits).is_ok(),
            "{label} does not decode"
        );
    }
    assert_eq!(
        Hash::of_canonical_bytes(e["patch"].as_bytes()).to_hex(),
        e["patch hash"]
    );
    assert_eq!(
        Hash::of_canonical_bytes(e["root config"].as_bytes()).to_hex(),
        e["root hash"]
    );
    for label in ["load request (hash)", "load request (register)"] {
        let req = LoadRequest::decode(e[label].as_bytes(), &limits).expect(label);
        assert_eq!(req.root().to_hex(), e["root hash"]);
    }
}
