//! Replays the fuzzers' corpora on stable Rust, so what fuzzing found stays checked.
//!
//! The fuzz targets (`fuzz/`, cargo-fuzz, nightly features) only run by hand;
//! the inputs they found interesting are kept, minimized, in
//! `fuzz/corpus/<target>/`, next to hand-made seeds in `fuzz/seeds/<target>/`.
//! This test feeds every one of those files through the very same checks the
//! targets run (`fuzz/src/lib.rs`, included below by path, so there is one copy
//! of the properties), on a thread with a node's 2 MiB stack. A plain
//! `cargo test` therefore re-checks every input any fuzzing session kept.
//!
//! The seeds are made by `write_seeds` (ignored; run it after changing the
//! protocol's vectors: `cargo test -p tikaconf-proto --test fuzz_corpus --
//! --ignored write_seeds`) from `testdata/jcs`, `testdata/json-patch-tests` and
//! the vectors of `docs/PROTOCOL.md`.

#[allow(dead_code)] // the fuzz targets use all of it; this test most of it
#[path = "../../../fuzz/src/lib.rs"]
mod checks;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tikaconf_proto::{Patch, Snapshot, Stored, canonical, message::encode_unknown};

use checks::{SEPARATOR, World};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file of `fuzz/seeds/<target>` and `fuzz/corpus/<target>`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for kind in ["seeds", "corpus"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `check` on every input of `target` on a node-sized stack; fails naming
/// every input that panicked.
fn replay(target: &str, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no seeds or corpus for fuzz target {target}"
    );
    let mut failures = Vec::new();
    for path in &files {
        let data = fs::read(path).expect("reading a corpus file");
        let outcome = std::panic::catch_unwind(|| {
            checks::on_node_stack(move || check(&data));
        });
        if outcome.is_err() {
            failures.push(path.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs of {target} fail their checks:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn message_corpus() {
    replay("message", checks::check_message);
}

#[test]
fn jcs_corpus() {
    replay("jcs", checks::check_jcs);
}

#[test]
fn patch_corpus() {
    replay("patch", checks::check_patch);
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The records of the JSON Patch community suite, read leniently (two disabled
/// records have duplicate members, which is their point).
fn patch_records() -> Vec<Value> {
    let mut out = Vec::new();
    for file in ["tests.json", "spec_tests.json"] {
        let text = fs::read(testdata().join("json-patch-tests").join(file)).expect("suite file");
        let records: Vec<Value> = serde_json::from_slice(&text).expect("suite is JSON");
        out.extend(records);
    }
    out
}

/// One message of a multi-message input: a channel byte, then the payload.
fn item(channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![channel];
    v.extend_from_slice(payload);
    v
}

fn multi(selector: u8, items: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![selector | 0x40];
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            v.push(SEPARATOR);
        }
        v.extend_from_slice(it);
    }
    v
}

/// Writes `fuzz/seeds/<target>/`. Ignored: run by hand when the vectors change.
#[test]
#[ignore = "writes fuzz/seeds; run by hand: cargo test -p tikaconf-proto --test fuzz_corpus -- --ignored write_seeds"]
fn write_seeds() {
    let mut seeds: Vec<(&str, String, Vec<u8>)> = Vec::new();

    // jcs: the RFC 8785 inputs and outputs, every JSON line of the protocol
    // vectors, and the documents and patches of the JSON Patch suite.
    for sub in ["input", "output"] {
        let dir = testdata().join("jcs").join(sub);
        for entry in fs::read_dir(&dir).expect("testdata/jcs") {
            let path = entry.unwrap().path();
            let name = format!("jcs-{sub}-{}", path.file_name().unwrap().to_string_lossy());
            seeds.push(("jcs", name, fs::read(&path).unwrap()));
        }
    }
    let world = World::new();
    let r = world.root.hash();
    let p1 = world.patch1.clone();
    let mut doc1 = world.root.value().clone();
    p1.ops.apply(&mut doc1).expect("patch1 applies");
    let snapshot1 = Snapshot::new(r, p1.hash, 1, doc1.clone());
    let stored1 = Stored {
        root: r,
        head: p1.hash,
        height: 1,
    };
    for (name, bytes) in [
        ("root_config", world.root.to_canonical()),
        ("patch1", p1.encoded.to_vec()),
        ("snapshot1", snapshot1.encoded.to_vec()),
        ("stored1", stored1.encode().to_vec()),
        ("unknown", encode_unknown(r).to_vec()),
        (
            "numbers_in",
            br#"{"b":1.0,"a":[1e2,-0.0,0.5,1E-7,9007199254740992]}"#.to_vec(),
        ),
        ("numbers_edge", br#"[9007199254740992,-9007199254740992,9007199254740993,1e300,2.2250738585072014e-308,333333333.33333329,"\ud83d\ude00","\u0000",{"a":1,"\u0061":2}]"#.to_vec()),
    ] {
        seeds.push(("jcs", format!("vector-{name}"), bytes));
    }
    for (i, record) in patch_records().iter().enumerate() {
        for key in ["doc", "patch"] {
            if let Some(v) = record.get(key) {
                seeds.push((
                    "jcs",
                    format!("patchsuite-{i:03}-{key}"),
                    serde_json::to_vec_pretty(v).unwrap(),
                ));
            }
        }
        // patch: every suite record as is ({"doc","patch",...}).
        seeds.push((
            "patch",
            format!("patchsuite-{i:03}"),
            serde_json::to_vec(record).unwrap(),
        ));
    }
    let ops1 = p1.ops.to_value();
    seeds.push((
        "patch",
        "vector-patch1".into(),
        canonical::to_vec(&json!([world.root.value(), ops1])),
    ));
    for (name, doc, ops) in [
        (
            "move-to-root-then-fail",
            json!({"a": {"b": 1}}),
            json!([{"op": "move", "from": "/a", "path": ""}, {"op": "test", "path": "/zz", "value": 1}]),
        ),
        (
            "copy-chain",
            json!({"a": {}}),
            json!([{"op": "copy", "from": "/a", "path": "/a/a"}, {"op": "copy", "from": "/a", "path": "/a/a/a/a"}]),
        ),
        (
            "test-equal-doubles",
            json!({"a": 1, "b": [2.5, 100]}),
            json!([{"op": "test", "path": "/a", "value": 1.0}, {"op": "test", "path": "/b", "value": [2.5, 1e2]}]),
        ),
        (
            "escapes",
            json!({"a/b": {"m~n": [1, 2]}}),
            json!([{"op": "remove", "path": "/a~1b/m~0n/1"}, {"op": "add", "path": "/a~1b/m~0n/-", "value": 3}]),
        ),
    ] {
        seeds.push((
            "patch",
            format!("hand-{name}"),
            canonical::to_vec(&json!([doc, ops])),
        ));
    }

    // message: the world is the follower and storage at patch1 (see checks::World).
    let ch = world.channels();
    let build = |parent: &Patch, ops: Value| {
        Patch::build(r, parent.hash, parent.height, ops, None).expect("builds")
    };
    let p2 = build(
        &p1,
        json!([{"op": "add", "path": "/commands/!bye", "value": "See you"}]),
    );
    let p3 = build(
        &p2,
        json!([{"op": "remove", "path": "/commands/!hello"}, {"op": "add", "path": "/timers", "value": [1, 2.5, null, true]}]),
    );
    let failing = build(&p1, json!([{"op": "remove", "path": "/missing"}]));
    let mut meta = serde_json::Map::new();
    meta.insert("author".into(), json!("fuzz"));
    let with_meta = Patch::build(
        r,
        p1.hash,
        1,
        json!([{"op": "test", "path": "/commands/!hello", "value": "Hello, chat!"}]),
        Some(meta),
    )
    .unwrap();
    let stored2 = Stored {
        root: r,
        head: p2.hash,
        height: 2,
    };
    let forged_stored = Stored {
        root: r,
        head: failing.hash,
        height: 5,
    };
    let other_root = tikaconf_proto::RootConfig::twitch("#other").unwrap();
    let singles: Vec<(&str, u8, Vec<u8>)> = vec![
        ("snapshot1-on-root", 0, snapshot1.encoded.to_vec()),
        (
            "root-snapshot-on-root",
            0,
            Snapshot::of_root(&world.root).encoded.to_vec(),
        ),
        ("stored1-on-root", 0, stored1.encode().to_vec()),
        ("stored2-on-root", 0, stored2.encode().to_vec()),
        ("forged-stored-on-root", 0, forged_stored.encode().to_vec()),
        ("unknown-on-root", 0, encode_unknown(r).to_vec()),
        ("patch1-stale-on-root", 0, p1.encoded.to_vec()),
        ("patch2-on-head", 1, p2.encoded.to_vec()),
        ("failing-on-head", 1, failing.encoded.to_vec()),
        ("meta-on-head", 1, with_meta.encoded.to_vec()),
        ("patch3-on-head", 1, p3.encoded.to_vec()),
        ("request-by-hash", 2, r.to_hex().into_bytes()),
        ("request-register", 2, world.root.to_canonical()),
        ("request-other", 2, other_root.to_canonical()),
        ("patch2-other-namespace", 4, p2.encoded.to_vec()),
        ("patch2-uppercase-channel", 6, p2.encoded.to_vec()),
        ("garbage-type", 0, br#"{"type":"mystery"}"#.to_vec()),
        (
            "duplicate-type",
            1,
            br#"{"type":"patch","type":"patch"}"#.to_vec(),
        ),
    ];
    for (name, channel, payload) in singles {
        seeds.push(("message", name.to_string(), item(channel, &payload)));
        seeds.push((
            "message",
            format!("{name}-small"),
            item(channel | 0x80, &payload),
        ));
    }
    let on_root_explicit = [ch.updates(&r).as_bytes(), b"\n", &stored2.encode()].concat();
    seeds.push((
        "message",
        "explicit-channel".into(),
        item(7, &on_root_explicit),
    ));
    seeds.push((
        "message",
        "chain-p2-p3-stored".into(),
        multi(
            0,
            &[
                item(1, &p2.encoded),
                item(1, &p3.encoded),
                item(0, &stored2.encode()),
            ],
        ),
    ));
    seeds.push((
        "message",
        "fork-then-snapshot-after-grace".into(),
        multi(
            0,
            &[
                item(1, &p2.encoded),
                item(0x20, &snapshot1.encoded),
                item(0x20, &snapshot1.encoded),
                item(2, &r.to_hex().into_bytes()),
            ],
        ),
    ));

    for target in ["jcs", "patch", "message"] {
        let dir = fuzz_dir().join("seeds").join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
    }
    for (target, name, bytes) in &seeds {
        let path = fuzz_dir().join("seeds").join(target).join(name);
        fs::write(&path, bytes).unwrap();
    }
    println!("wrote {} seeds", seeds.len());
}
