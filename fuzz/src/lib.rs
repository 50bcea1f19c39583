//! The properties the fuzz targets check, shared with the stable-Rust corpus replay.
//!
//! A fuzzer is only as good as what it asserts, and what it found is only worth
//! keeping if CI keeps checking it. So the checks live here, once: the cargo-fuzz
//! targets in `fuzz_targets/` call them on libFuzzer's inputs (nightly features,
//! run by hand), and `crates/tikaconf-proto/tests/fuzz_corpus.rs` includes this
//! very file with `#[path]` and replays every file of `fuzz/corpus/<target>/`
//! through the same functions under a plain `cargo test`. This file therefore uses
//! nothing but `tikaconf_proto`, `serde_json` and `std`.
//!
//! Each check panics (an assertion) when a property fails; "no panic ever" is
//! itself the first property, since a peer's bytes must never crash a node.
//!
//! - [`check_message`]: arbitrary `(channel, payload)` through `Message::decode`,
//!   `LoadRequest::decode`, a loaded `Follower` and a loaded `StorageEngine`
//!   (driven against an in-memory store model). Decoded messages re-encode to
//!   themselves; an ignored message changes no state; follower and storage agree
//!   on whether a patch on their common head applies, and on the resulting
//!   document.
//! - [`check_jcs`]: `parse_strict`, then `canonical::to_vec`, then `parse_strict`
//!   again round-trips; canonical form is idempotent; `encoded_len` is exact; depth
//!   caps are tight.
//! - [`check_patch`]: an arbitrary document and ops: `Ops::from_value` and `apply`
//!   never panic, a failed apply leaves the document unchanged, and
//!   a follower holding the document applies them as a patch exactly when they
//!   apply and the result is within the document caps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tikaconf_proto::follower::{ChangeCause, FollowerEvent, Step};
use tikaconf_proto::json as pjson;
use tikaconf_proto::message::encode_unknown;
use tikaconf_proto::patch::Ops;
use tikaconf_proto::storage::{HeadRef, PersistOutcome, StorageCommand};
use tikaconf_proto::{
    AddressedRequest, Channels, Command, Follower, FollowerConfig, Hash, Limits, LoadRequest,
    Message, Patch, RootConfig, StorageEngine, StoredHead, canonical,
};

/// The stack a tokio worker thread gets by default. Nodes run the state machines
/// on such threads, so the checks run there too: a recursion that fits in the
/// 8 MiB of a main thread but not in 2 MiB is a crash in production.
pub const NODE_STACK: usize = 2 << 20;

/// Runs `f` on a fresh thread with a node-sized stack, re-raising its panic.
pub fn on_node_stack(f: impl FnOnce() + Send + 'static) {
    let handle = std::thread::Builder::new()
        .stack_size(NODE_STACK)
        .spawn(f)
        .expect("spawning a checker thread");
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Small limits, so that size and depth caps are within a fuzzer's reach.
pub const SMALL_LIMITS: Limits = Limits {
    max_message_bytes: 700,
    max_depth: 6,
};

/// The byte that separates messages in a multi-message input: never part of
/// UTF-8, so never part of a valid message.
pub const SEPARATOR: u8 = 0xff;

/// The fixed world the message checks start from: the protocol document's root
/// (Twitch `#tikatoo`) and its first patch, the vectors of `docs/PROTOCOL.md`.
#[derive(Debug, Clone)]
pub struct World {
    pub root: RootConfig,
    pub patch1: Arc<Patch>,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        let root = RootConfig::twitch("#tikatoo").expect("a valid channel");
        let ops = json!([{"op": "add", "path": "/commands", "value": {"!hello": "Hello, chat!"}}]);
        let patch1 = Patch::build(root.hash(), root.hash(), 0, ops, None).expect("patch1 builds");
        World {
            root,
            patch1: Arc::new(patch1),
        }
    }

    pub fn channels(&self) -> Channels {
        Channels::new(None)
    }

    /// A follower loaded at the root, then moved to `patch1` by the patch itself.
    pub fn follower(&self, limits: Limits, now: Instant) -> Follower {
        let ch = self.channels();
        let mut f = Follower::by_root(
            self.root.clone(),
            ch.clone(),
            limits,
            FollowerConfig::default(),
        );
        f.handle_connected(now, &mut Step::default());
        let on_root = ch.updates(&self.root.hash());
        let snap = tikaconf_proto::Snapshot::of_root(&self.root);
        f.handle_message(now, on_root.as_bytes(), &snap.encoded, &mut Step::default());
        f.handle_message(
            now,
            on_root.as_bytes(),
            &self.patch1.encoded,
            &mut Step::default(),
        );
        let cur = f.current().expect("loaded");
        assert_eq!(
            cur.head, self.patch1.hash,
            "the world's follower is at patch1"
        );
        f
    }

    /// A storage engine (and its store) holding the root at `patch1`, durably.
    pub fn engine(&self, limits: Limits) -> (StorageEngine, StoreModel) {
        let ch = self.channels();
        let mut e = StorageEngine::new(ch.clone(), limits);
        let mut store = StoreModel::default();
        let mut out = Vec::new();
        e.handle_connected(&mut out);
        let _ = e.handle_message(
            ch.update_requests().as_bytes(),
            &self.root.to_canonical(),
            &mut out,
        );
        store.drive(&mut e, out);
        let mut out = Vec::new();
        let _ = e.handle_message(
            ch.updates(&self.root.hash()).as_bytes(),
            &self.patch1.encoded,
            &mut out,
        );
        store.drive(&mut e, out);
        assert_eq!(
            store.heads.get(&self.root.hash()).map(|h| h.head),
            Some(self.patch1.hash),
            "the world's store is at patch1"
        );
        (e, store)
    }
}

/// An in-memory store with the compare-and-set rule of `tikaconf-store`, and what
/// the engine published.
#[derive(Debug, Default, Clone)]
pub struct StoreModel {
    pub heads: BTreeMap<Hash, StoredHead>,
    pub published: Vec<(String, Vec<u8>)>,
    /// The model's clock: starts at the first flush, and jumps to the engine's
    /// next deadline whenever nothing else is left to do.
    pub clock: Option<std::time::Instant>,
}

impl StoreModel {
    /// Carries out `commands` and everything they lead to, flushing the engine
    /// whenever it has nothing else to do, until it settles.
    pub fn drive(&mut self, engine: &mut StorageEngine, commands: Vec<StorageCommand>) {
        let mut queue = commands;
        for _ in 0..10_000 {
            if queue.is_empty() {
                let now = *self.clock.get_or_insert_with(std::time::Instant::now);
                engine.flush(now, &mut queue);
                if queue.is_empty() {
                    match engine.next_timeout() {
                        Some(deadline) => self.clock = Some(deadline.max(now)),
                        None => return,
                    }
                }
            }
            let mut next = Vec::new();
            for command in std::mem::take(&mut queue) {
                self.execute(engine, command, &mut next);
            }
            queue = next;
        }
        panic!("the storage engine never settles");
    }

    fn execute(
        &mut self,
        engine: &mut StorageEngine,
        command: StorageCommand,
        out: &mut Vec<StorageCommand>,
    ) {
        match command {
            StorageCommand::Bus(Command::Publish { channel, payload }) => {
                self.published.push((channel, payload.to_vec()));
            }
            StorageCommand::Bus(_) => {}
            // Only a presence message from another store stops a node; the
            // harness gives its engine no store id.
            StorageCommand::Stop(reason) => panic!("the engine stopped: {reason:?}"),
            StorageCommand::Load(root) => {
                let head = self.heads.get(&root).cloned();
                engine.handle_loaded(root, Ok(head), out);
            }
            StorageCommand::Register(head) => {
                let root = head.root;
                let held = self.heads.entry(root).or_insert(head).clone();
                engine.handle_loaded(root, Ok(Some(held)), out);
            }
            StorageCommand::CheckHeads(roots) => {
                let heads = roots
                    .iter()
                    .map(|r| self.heads.get(r).map(HeadRef::from))
                    .collect();
                engine.handle_heads(roots, Ok(heads), out);
            }
            StorageCommand::Persist { batch, commits } => {
                let outcomes = commits
                    .into_iter()
                    .map(|c| {
                        let current = self.heads.get(&c.new.root);
                        match current {
                            Some(cur) if cur.head == c.new.head => PersistOutcome::AlreadyStored,
                            Some(cur) if cur.head == c.expected_head => {
                                check_stored_head(&c.new);
                                self.heads.insert(c.new.root, c.new);
                                PersistOutcome::Applied
                            }
                            other => PersistOutcome::Stale {
                                current: other.cloned(),
                            },
                        }
                    })
                    .collect();
                engine.handle_persisted(batch, Ok(outcomes), out);
            }
        }
    }
}

/// What storage persists is a snapshot message of exactly that head, which any
/// node can decode (with the relaxed limits storage reads its own data with).
fn check_stored_head(h: &StoredHead) {
    let relaxed = Limits {
        max_message_bytes: usize::MAX,
        max_depth: Limits::MAX_DEPTH_CEILING,
    };
    match Message::decode(&h.snapshot, &relaxed) {
        Ok(Message::Snapshot(s)) => {
            assert_eq!((s.root, s.head, s.height), (h.root, h.head, h.height));
        }
        other => panic!("storage persisted a snapshot that does not decode: {other:?}"),
    }
}

/// Decoding is stable: whatever decodes re-encodes to canonical bytes that decode
/// to the very same message, and a patch's hash is the hash of those bytes.
fn check_decoded(payload: &[u8], limits: &Limits) {
    let Ok(message) = Message::decode(payload, limits) else {
        return;
    };
    let unlimited = Limits {
        max_message_bytes: usize::MAX,
        max_depth: Limits::MAX_DEPTH_CEILING,
    };
    let encoded: Vec<u8> = match &message {
        Message::Patch(p) => {
            assert_eq!(p.hash, Hash::of_canonical_bytes(&p.encoded));
            assert!(p.height >= 1 && (p.height == 1) == (p.parent == p.root));
            p.encoded.to_vec()
        }
        Message::Snapshot(s) => {
            if s.height == 0 {
                assert_eq!(s.head, s.root);
                assert_eq!(Hash::of_value(&s.config), s.root);
            } else {
                assert_ne!(s.head, s.root);
            }
            s.encoded.to_vec()
        }
        Message::Stored(s) => s.encode().to_vec(),
        Message::Unknown { root } => encode_unknown(*root).to_vec(),
        Message::Patches(p) => {
            for patch in &p.patches {
                assert_eq!(patch.hash, Hash::of_canonical_bytes(&patch.encoded));
            }
            p.encoded.to_vec()
        }
    };
    let reparsed = pjson::parse_strict(&encoded, Limits::MAX_DEPTH_CEILING)
        .expect("an encoded message is strict JSON");
    assert_eq!(
        canonical::to_vec(&reparsed),
        encoded,
        "messages are encoded canonically"
    );
    assert_eq!(
        Message::decode(&encoded, &unlimited).as_ref(),
        Ok(&message),
        "a decoded message re-encodes to itself"
    );
}

fn check_request(payload: &[u8], limits: &Limits) {
    let Ok(addressed) = AddressedRequest::decode(payload, limits) else {
        return;
    };
    let encoded = addressed.encode();
    assert_eq!(
        AddressedRequest::decode(&encoded, limits).as_ref(),
        Ok(&addressed),
        "a decoded load request re-encodes to itself"
    );
    if let LoadRequest::Register(root) = &addressed.request {
        assert_eq!(addressed.request.root(), root.hash());
        assert_eq!(Hash::of_value(root.value()), root.hash());
    }
}

/// Runs a whole message-target input. Layout: byte 0 is a selector; bit 7 picks
/// [`SMALL_LIMITS`]; bit 6 makes the rest a list of messages separated by
/// [`SEPARATOR`], each starting with its own channel byte; otherwise the selector's
/// low bits are the channel and the rest is one payload. See [`channel_for`].
pub fn check_message(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let limits = if selector & 0x80 != 0 {
        SMALL_LIMITS
    } else {
        Limits::default()
    };
    let items: Vec<(u8, &[u8])> = if selector & 0x40 != 0 {
        rest.split(|b| *b == SEPARATOR)
            .take(16)
            .filter_map(|item| item.split_first().map(|(c, p)| (*c, p)))
            .collect()
    } else {
        vec![(selector, rest)]
    };
    let world = World::new();
    let mut now = Instant::now();
    let mut follower = world.follower(limits, now);
    let (mut engine, mut store) = world.engine(limits);
    for (channel_byte, payload) in items {
        if channel_byte & 0x20 != 0 {
            now += Duration::from_millis(1500);
            follower.handle_timeout(now, &mut Step::default());
        }
        let (channel, payload) = channel_for(&world, &follower, channel_byte, payload);
        check_decoded(payload, &limits);
        check_request(payload, &limits);
        feed(
            &world,
            &mut follower,
            (&mut engine, &mut store),
            now,
            &channel,
            payload,
            &limits,
        );
    }
}

/// The channel a message goes to, by the low 3 bits of `byte`: 0 the root's
/// channel, 1 the follower's head's, 2 `update_requests`, 3 patch1's channel,
/// 4 another namespace, 5 the channel of a hash nobody has, 6 the root's hash in
/// upper case (not a hash), 7 the payload up to its first newline.
pub fn channel_for<'a>(
    world: &World,
    follower: &Follower,
    byte: u8,
    payload: &'a [u8],
) -> (Vec<u8>, &'a [u8]) {
    let ch = world.channels();
    let root = world.root.hash();
    let name = match byte & 7 {
        0 => ch.updates(&root),
        1 => ch.updates(&follower.current().map_or(root, |c| c.head)),
        2 => ch.update_requests(),
        3 => ch.updates(&world.patch1.hash),
        4 => Channels::new(Some("other")).updates(&root),
        5 => ch.updates(&Hash::of_canonical_bytes(payload)),
        6 => format!("updates:{}", root.to_hex().to_ascii_uppercase()),
        _ => {
            let cut = payload
                .iter()
                .position(|b| *b == b'\n')
                .unwrap_or(payload.len());
            let rest = payload.get(cut + 1..).unwrap_or_default();
            return (payload[..cut].to_vec(), rest);
        }
    };
    (name.into_bytes(), payload)
}

/// Feeds one message to the follower and the storage engine and checks what
/// they did with it.
fn feed(
    world: &World,
    follower: &mut Follower,
    (engine, store): (&mut StorageEngine, &mut StoreModel),
    now: Instant,
    channel: &[u8],
    payload: &[u8],
    limits: &Limits,
) {
    let root = world.root.hash();
    let before = follower.current().cloned().expect("the follower is loaded");
    let ignored_before: u64 = follower.stats().ignored.values().sum();
    let applied_before = follower.stats().applied;
    let mut step = Step::default();
    follower.handle_message(now, channel, payload, &mut step);
    let after = follower.current().cloned().expect("still loaded");
    let ignored_events = step
        .events
        .iter()
        .filter(|e| matches!(e, FollowerEvent::Ignored { .. }))
        .count() as u64;
    let ignored_after: u64 = follower.stats().ignored.values().sum();
    assert_eq!(
        ignored_after - ignored_before,
        ignored_events,
        "every ignored message is counted once"
    );
    if ignored_events > 0 {
        assert_eq!(after, before, "an ignored message changes nothing");
    }
    let mut follower_applied = None;
    for event in &step.events {
        if let FollowerEvent::Changed {
            current,
            cause: ChangeCause::Patch(p),
        } = event
        {
            assert_eq!(current.height, before.height + 1);
            assert_eq!(current.head, p.hash);
            let mut expected = (*before.doc).clone();
            p.ops
                .apply(&mut expected)
                .expect("an applied patch's ops apply");
            assert_eq!(*current.doc, expected, "the document is the ops' result");
            assert!(pjson::depth(&current.doc) < limits.max_depth);
            assert!(canonical::encoded_len(&current.doc) <= limits.max_document_bytes());
            follower_applied = Some(p.clone());
        }
    }
    assert_eq!(
        follower.stats().applied - applied_before,
        u64::from(follower_applied.is_some())
    );
    if let Some(FollowerEvent::Changed { current, .. }) = step
        .events
        .iter()
        .rev()
        .find(|e| matches!(e, FollowerEvent::Changed { .. }))
    {
        assert_eq!(
            Some(current),
            follower.current(),
            "the last change is current"
        );
    }

    // Storage, from the same message.
    let stored_before = store.heads.get(&root).cloned();
    let heads_before = store.heads.clone();
    let engine_ignored_before: u64 = engine.stats().ignored.values().sum();
    let mut out = Vec::new();
    let result = engine.handle_message(channel, payload, &mut out);
    let engine_ignored_after: u64 = engine.stats().ignored.values().sum();
    if result.is_err() {
        assert_eq!(engine_ignored_after, engine_ignored_before + 1);
        assert!(out.is_empty(), "an ignored message makes no command");
    }
    store.drive(engine, out);
    if result.is_err() {
        assert_eq!(
            store.heads, heads_before,
            "an ignored message stores nothing"
        );
    }
    let stored_after = store.heads.get(&root).cloned();

    // Agreement on a patch both sides hold the parent of: both apply it, to the
    // same document, or neither does.
    let common_parent = stored_before.as_ref().map(|s| s.head) == Some(before.head);
    let on_head_channel = channel == world.channels().updates(&before.head).as_bytes();
    if let (true, true, Ok(Message::Patch(p))) = (
        common_parent,
        on_head_channel,
        Message::decode(payload, limits),
    ) {
        let storage_moved = stored_after.as_ref().map(|s| s.head) == Some(p.hash);
        let follower_moved = follower_applied.as_ref().is_some_and(|a| a.hash == p.hash);
        assert_eq!(
            follower_moved, storage_moved,
            "follower and storage disagree on patch {}",
            p.hash
        );
        if let (true, Some(stored)) = (storage_moved, stored_after) {
            let Ok(Message::Snapshot(s)) = Message::decode(&stored.snapshot, &Limits::default())
            else {
                panic!("the stored snapshot decodes");
            };
            assert_eq!(
                s.config, *after.doc,
                "storage stored the follower's document"
            );
        }
    }
}

/// The JCS target: `parse_strict` → `canonical::to_vec` → `parse_strict` round
/// trips, and the canonical form is a fixed point.
pub fn check_jcs(data: &[u8]) {
    let Ok(value) = pjson::parse_strict(data, 64) else {
        return;
    };
    let depth = pjson::depth(&value);
    assert!(depth <= 64);
    // The cap is tight: the value parses at its own depth and not one below.
    assert_eq!(pjson::parse_strict(data, depth).as_ref(), Ok(&value));
    if depth > 0 {
        assert!(matches!(
            pjson::parse_strict(data, depth - 1),
            Err(pjson::JsonError::TooDeep { .. })
        ));
    }
    assert_eq!(
        pjson::normalize(value.clone(), 64).as_ref(),
        Ok(&value),
        "parsed values are normalized"
    );
    let encoded = canonical::to_vec(&value);
    assert_eq!(canonical::encoded_len(&value), encoded.len());
    let again = pjson::parse_strict(&encoded, 64).expect("canonical output parses strictly");
    assert_eq!(again, value, "parse ∘ canonical is the identity");
    assert_eq!(
        canonical::to_vec(&again),
        encoded,
        "canonical form is idempotent"
    );
    assert_eq!(Hash::of_value(&value), Hash::of_canonical_bytes(&encoded));
    // Another parser agrees it is JSON, and reads back the same value, except
    // that non-integral numbers may be off by an ulp: serde_json's default float
    // parser is not correctly rounded (it reads `1057069057069.1001` as the double
    // that prints `1057069057069.1`, and `920404120201211.9` as an integer), which
    // is why the protocol has its own parser.
    let theirs: Value = serde_json::from_slice(&encoded).expect("serde_json reads canonical JSON");
    assert!(
        nearly_equal(&value, &theirs),
        "serde_json reads the canonical bytes as another value: {theirs}"
    );
    // Every accepted number is within ±2^53.
    let mut stack = vec![&value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Number(n) => assert!(n.as_f64().is_some_and(|f| f.abs() <= 9007199254740992.0)),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
}

/// Equal, with integers exact and other numbers within a relative 1e-15.
fn nearly_equal(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_f64()) {
            (Some(i), _) => b.as_i64() == Some(i) || b.as_f64() == Some(i as f64),
            (None, Some(y)) => {
                let x = a.as_f64().unwrap_or(f64::NAN);
                (x - y).abs() <= x.abs() * 1e-15 || (x - y).abs() < 1e-300
            }
            (None, None) => false,
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| nearly_equal(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && nearly_equal(va, vb))
        }
        (a, b) => a == b,
    }
}

/// Limits small enough for the patch target to reach the resulting-document caps.
const PATCH_LIMITS: Limits = Limits {
    max_message_bytes: 4096,
    max_depth: 8,
};

/// The patch target: input is `{"doc": D, "patch": OPS, ...}` (a JSON Patch test
/// suite record) or `[D, OPS]`.
pub fn check_patch(data: &[u8]) {
    let Ok(input) = pjson::parse_strict(data, Limits::MAX_DEPTH_CEILING) else {
        return;
    };
    let (doc, ops_value) = match input {
        Value::Object(mut m) => match (m.remove("doc"), m.remove("patch")) {
            (Some(d), Some(p)) => (d, p),
            _ => return,
        },
        Value::Array(mut a) if a.len() == 2 => {
            let ops = a.pop().unwrap_or_default();
            (a.pop().unwrap_or_default(), ops)
        }
        _ => return,
    };
    let Ok(ops) = Ops::from_value(&ops_value) else {
        return;
    };
    assert_eq!(
        Ops::from_value(&ops.to_value()).as_ref(),
        Ok(&ops),
        "ops re-read from their JSON are the same ops"
    );
    let mut result = doc.clone();
    let applied = ops.apply(&mut result);
    match &applied {
        Err(_) => assert_eq!(result, doc, "a failed patch leaves the document unchanged"),
        Ok(()) => {
            let mut twice = doc.clone();
            assert_eq!(
                ops.apply(&mut twice),
                Ok(()),
                "application is deterministic"
            );
            assert_eq!(twice, result, "application is deterministic");
        }
    }
    check_patch_in_context(doc, &ops, applied.is_ok().then_some(&result));
}

/// The same ops as a patch message, applied in context by a follower holding `doc`
/// (loaded from a snapshot, as storage would send it): it applies them exactly when
/// [`Ops::apply`] does and the result is within the document caps, and otherwise
/// ignores the patch with the matching reason and keeps its document.
fn check_patch_in_context(doc: Value, ops: &Ops, result: Option<&Value>) {
    let ch = Channels::new(None);
    let root = Hash::of_canonical_bytes(b"patch target root");
    let head = Hash::of_canonical_bytes(b"patch target head");
    let now = Instant::now();
    let mut f = Follower::by_hash(root, ch.clone(), PATCH_LIMITS, FollowerConfig::default());
    f.handle_connected(now, &mut Step::default());
    let snapshot = tikaconf_proto::Snapshot::new(root, head, 1, doc.clone());
    f.handle_message(
        now,
        ch.updates(&root).as_bytes(),
        &snapshot.encoded,
        &mut Step::default(),
    );
    if f.current().is_none_or(|c| c.head != head) {
        return; // the document does not fit in a snapshot under these limits
    }
    let Ok(patch) = Patch::build(root, head, 1, ops.to_value(), None) else {
        return;
    };
    let mut step = Step::default();
    f.handle_message(now, ch.updates(&head).as_bytes(), &patch.encoded, &mut step);
    let current = f.current().expect("still loaded");
    let reason = step.events.iter().find_map(|e| match e {
        FollowerEvent::Ignored { reason } => Some(reason.label()),
        _ => None,
    });
    match reason {
        None => {
            assert_eq!(
                current.head, patch.hash,
                "a patch that is not ignored applies"
            );
            assert_eq!(Some(&*current.doc), result, "in context as out of it");
            assert!(pjson::depth(&current.doc) < PATCH_LIMITS.max_depth);
            assert!(canonical::encoded_len(&current.doc) <= PATCH_LIMITS.max_document_bytes());
        }
        Some(label) => {
            assert_eq!(current.head, head, "an ignored patch moves nothing");
            assert_eq!(*current.doc, doc, "an ignored patch changes nothing");
            match (label, result) {
                ("malformed", _) => {} // the message itself is over the limits
                ("ops_failed", r) => assert!(r.is_none(), "ops failed in context only"),
                ("document_too_deep", Some(r)) => {
                    assert!(pjson::depth(r) >= PATCH_LIMITS.max_depth)
                }
                ("document_too_large", Some(r)) => {
                    assert!(canonical::encoded_len(r) > PATCH_LIMITS.max_document_bytes())
                }
                (other, r) => panic!(
                    "unexpected rejection {other} (ops applied: {})",
                    r.is_some()
                ),
            }
        }
    }
}
