//! Keeps `docs/PROTOCOL.md` honest: every test vector written in its "Test
//! vectors" section is recomputed here from the code and must match byte for byte.
//!
//! The vectors are found by stable markers: inside that section, a line of the
//! form `<label>: <value>` (e.g. `root_hash: 2632...`), where the labels are the
//! keys of [`expected`]. A label that is missing, doubled or wrong fails the test,
//! so the document can never drift from what the code computes. Run with
//! `--nocapture` to print the current values when the wire format changes on
//! purpose.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use tikaconf_proto::message::{encode_unknown, sign_canonical, signed_bytes};
use tikaconf_proto::storage::presence::{Presence, StoreId};
use tikaconf_proto::{
    AddressedRequest, Channels, Hash, Have, Limits, LoadRequest, Message, Patch, Patches,
    ReplyToken, RootConfig, SigningKey, Snapshot, Stored, TrustSet, canonical, json,
};

/// The sections holding vectors (each ends at the next `## ` heading): the
/// vectors section, and the signatures section's own vectors.
const SECTIONS: [&str; 2] = ["## Test vectors", "## Signatures"];

/// The seed of the signature vectors' Ed25519 key.
const SIG_SEED: [u8; 32] = [1; 32];

/// Input of the number-normalization vector.
const NUMBERS_IN: &str = r#"{"b":1.0,"a":[1e2,-0.0,0.5,1E-7,9007199254740992]}"#;

/// The reply token of the vectors: what a client draws from 128 random bits.
fn reply_token() -> ReplyToken {
    ReplyToken::from_random(0x5eed_0000_0000_0000_0000_0000_0000_0001)
}

/// The store id the presence vectors use.
fn store_id() -> StoreId {
    StoreId::new("5eed0000000000000000000000000001").expect("a store id")
}

fn utf8(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("canonical JSON is UTF-8")
}

/// Every vector the document must carry, computed from the code.
fn expected() -> BTreeMap<&'static str, String> {
    let root = RootConfig::twitch("#tikatoo").expect("valid channel");
    let r = root.hash();
    let ops = json!([{"op": "add", "path": "/commands", "value": {"!hello": "Hello, chat!"}}]);
    let patch = Patch::build(r, r, 0, ops.clone(), None).expect("valid patch");
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
    // v1.3: a second patch, and the catch-up of a requester that has the first.
    let ops2 = json!([{"op": "add", "path": "/commands/!bye", "value": "Bye, chat!"}]);
    let patch2 = Patch::build(r, patch.hash, patch.height, ops2, None).expect("valid patch");
    let have1 = Have {
        head: patch.hash,
        height: patch.height,
    };
    let catch_up = Patches::new(r, vec![std::sync::Arc::new(patch2.clone())]).expect("one patch");

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

    // Signatures (v1.2): the patch signed with the test key, no namespace; and
    // `unknown` signed for the reply channel of the vectors' token.
    let key = SigningKey::from_seed(SIG_SEED);
    let patch_signed_bytes = signed_bytes(None, "patch", &patch.hash, None);
    let reply_channel = Channels::new(None).replies(&reply_token());
    let unknown_hash = Hash::of_canonical_bytes(&encode_unknown(r));
    let unknown_signed_bytes = signed_bytes(None, "unknown", &unknown_hash, Some(&reply_channel));
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();

    // The first seven labels are the ones `tikaconf vectors` prints, in its order,
    // so that its output can be compared with the document line for line.
    BTreeMap::from([
        ("twitch_channel", "#tikatoo".to_owned()),
        ("root_config", utf8(&root.to_canonical())),
        ("root_hash", r.to_hex()),
        ("patch1_ops", utf8(&canonical::to_vec(&ops))),
        ("patch1", utf8(&patch.encoded)),
        ("patch1_hash", patch.hash.to_hex()),
        ("document1", utf8(&canonical::to_vec(&snapshot.config))),
        ("patch1_channel", format!("updates:{r}")),
        ("load_request_hash", utf8(&LoadRequest::ByHash(r).encode())),
        (
            "load_request_register",
            utf8(&LoadRequest::Register(root.clone()).encode()),
        ),
        (
            "load_request_reply",
            utf8(&LoadRequest::ByHash(r).encode_addressed(Some(&reply_token()), None)),
        ),
        ("reply_channel", Channels::new(None).replies(&reply_token())),
        ("patch2", utf8(&patch2.encoded)),
        ("patch2_hash", patch2.hash.to_hex()),
        (
            "load_request_have",
            utf8(&LoadRequest::ByHash(r).encode_addressed(Some(&reply_token()), Some(have1))),
        ),
        ("patches2", utf8(&catch_up.encoded)),
        ("snapshot1", utf8(&snapshot.encoded)),
        ("stored1", utf8(&stored.encode())),
        (
            "registered",
            utf8(
                &Stored {
                    root: r,
                    head: r,
                    height: 0,
                }
                .encode(),
            ),
        ),
        ("unknown", utf8(&encode_unknown(r))),
        ("storage_hello", utf8(&Presence::Hello(store_id()).encode())),
        ("storage_here", utf8(&Presence::Here(store_id()).encode())),
        (
            "empty_object_hash",
            Hash::of_canonical_bytes(b"{}").to_hex(),
        ),
        ("numbers_in", NUMBERS_IN.to_owned()),
        ("numbers_out", normalized(NUMBERS_IN)),
        ("sig_test_seed", hex(&SIG_SEED)),
        ("sig_test_public_key", key.public_key().to_hex()),
        ("patch1_signed_bytes", utf8(&patch_signed_bytes)),
        (
            "patch1_signature",
            key.sign_bytes(&patch_signed_bytes).sig_hex(),
        ),
        (
            "patch1_signed",
            utf8(&sign_canonical(&key, None, "patch", &patch.encoded, None)),
        ),
        ("unknown_reply_signed_bytes", utf8(&unknown_signed_bytes)),
        (
            "unknown_reply_signature",
            key.sign_bytes(&unknown_signed_bytes).sig_hex(),
        ),
    ])
}

/// The `label: value` lines of the vector sections, read from fenced code
/// blocks only (the prose around them has colons too).
fn written(doc: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for heading in SECTIONS {
        let start = doc
            .find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("docs/PROTOCOL.md has no {heading:?} section"));
        let section = &doc[start + heading.len() + 2..];
        let end = section.find("\n## ").unwrap_or(section.len());
        let mut in_block = false;
        for line in section[..end].lines() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if let Some((label, value)) = line.split_once(": ").filter(|_| in_block) {
                out.entry(label.trim().to_owned())
                    .or_default()
                    .push(value.trim().to_owned());
            }
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
    for label in [
        "patch1",
        "patch2",
        "snapshot1",
        "stored1",
        "registered",
        "unknown",
        "patches2",
    ] {
        assert!(
            Message::decode(e[label].as_bytes(), &limits).is_ok(),
            "{label} does not decode"
        );
    }
    assert_eq!(
        Hash::of_canonical_bytes(e["patch1"].as_bytes()).to_hex(),
        e["patch1_hash"]
    );
    assert_eq!(
        Hash::of_canonical_bytes(e["root_config"].as_bytes()).to_hex(),
        e["root_hash"]
    );
    for label in ["load_request_hash", "load_request_register"] {
        let req = LoadRequest::decode(e[label].as_bytes(), &limits).expect(label);
        assert_eq!(req.root().to_hex(), e["root_hash"]);
    }
    let addressed = AddressedRequest::decode(e["load_request_reply"].as_bytes(), &limits).unwrap();
    assert_eq!(addressed.request.root().to_hex(), e["root_hash"]);
    assert_eq!(
        Channels::new(None).replies(&addressed.reply_to.unwrap()),
        e["reply_channel"]
    );
    // v1.3: the request naming patch1 as its head, and the answer of a storage
    // node at patch2: patch2 alone, ending at its hash.
    let having = AddressedRequest::decode(e["load_request_have"].as_bytes(), &limits).unwrap();
    let have = having.have.expect("the request names a head");
    assert_eq!(
        (have.head.to_hex(), have.height),
        (e["patch1_hash"].clone(), 1)
    );
    match Message::decode(e["patches2"].as_bytes(), &limits) {
        Ok(Message::Patches(batch)) => {
            assert_eq!(batch.head.to_hex(), e["patch2_hash"]);
            assert_eq!(batch.patches[0].parent.to_hex(), e["patch1_hash"]);
            assert_eq!(batch.patches[0].encoded, e["patch2"].as_bytes());
        }
        other => panic!("patches2 does not decode as patches: {other:?}"),
    }

    // The signed patch verifies with the test key, to the patch's own hash.
    let trust = TrustSet::new([SigningKey::from_seed(SIG_SEED).public_key()]);
    let (message, sig) = Message::decode_signed(e["patch1_signed"].as_bytes(), &limits).unwrap();
    let channel = format!("updates:{}", e["root_hash"]);
    assert_eq!(
        message.verify(sig.as_ref(), &trust, None, channel.as_bytes()),
        Ok(())
    );
    assert_eq!(message.signed_hash().to_hex(), e["patch1_hash"]);
    assert_eq!(sig.unwrap().sig_hex(), e["patch1_signature"]);
}
