//! Every message of the reject corpus is ignored, counted, and harmless.
//!
//! `testdata/wire/rejects/rejects.jsonl` holds messages a node must refuse (bad
//! bytes, bad JSON, bad shapes, bad hashes and heights, ops that fail, documents
//! over the caps, answers for another root, forged notices), each with the
//! `Rejection` label the follower and the storage engine must count it under (see
//! `testdata/wire/README.md`). A peer's bad message must never crash a node, move
//! its head, or stop the next valid patch, so for each message and each channel it
//! is meant for, a loaded follower and a loaded storage engine (at height 2) must:
//! count it under exactly the expected label, keep head, height and canonical
//! document, and still apply the next valid patch. The same corpus goes over a real
//! Redis in `crates/tikaconf/tests/bad_input.rs`.
//!
//! The last tests are patches that grow the document explosively with `copy` ops;
//! they run in a child process, because the failure they guard against is an
//! abort (stack overflow) or an allocation of gigabytes, not a panic.

#[allow(dead_code)] // shared with the fuzz targets; this test uses the store model
#[path = "../../../fuzz/src/lib.rs"]
mod checks;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tikaconf_proto::follower::{FollowerEvent, Step};
use tikaconf_proto::{
    Channels, Command, Follower, FollowerConfig, Hash, Limits, Patch, RootConfig, Snapshot,
    StorageEngine, Stored, canonical,
};

use checks::StoreModel;

use tikaconf_test::rejects::{self, corpus};

/// The live hashes a record's placeholders stand for.
#[derive(Debug, Clone)]
struct Live {
    root: RootConfig,
    head: Hash,
    prev: Hash,
    height: u64,
}

impl Live {
    fn random() -> Hash {
        Hash::of_canonical_bytes(b"a head on no chain")
    }

    /// The same values as text, for the shared corpus loader.
    fn text(&self) -> rejects::Live {
        rejects::Live {
            root: self.root.hash().to_hex(),
            root_config: String::from_utf8(self.root.to_canonical()).expect("canonical JSON"),
            head: self.head.to_hex(),
            prev: self.prev.to_hex(),
            height: self.height,
            other_root: RootConfig::twitch("#someone_else").unwrap().hash().to_hex(),
            random: Live::random().to_hex(),
            updates: |h| format!("updates:{h}"),
            update_requests: Channels::new(None).update_requests(),
        }
    }

    fn substitute(&self, bytes: &[u8]) -> Vec<u8> {
        self.text().substitute(bytes)
    }

    /// The channel a record's channel entry names.
    fn channel(&self, kind: &str) -> String {
        self.text().channel(kind)
    }
}

/// The chain every test starts from: a root, then two patches, stored.
struct Chain {
    root: RootConfig,
    patches: Vec<Arc<Patch>>,
    /// The next valid patch, on the head.
    next: Patch,
}

impl Chain {
    fn new() -> Chain {
        let root = RootConfig::twitch("#rejects").unwrap();
        let r = root.hash();
        let p1 = Patch::build(
            r,
            r,
            0,
            json!([{"op": "add", "path": "/commands", "value": {"!hi": "hello"}}]),
            None,
        )
        .unwrap();
        let p2 = Patch::build(
            r,
            p1.hash,
            1,
            json!([{"op": "add", "path": "/timers", "value": []}]),
            None,
        )
        .unwrap();
        let next = Patch::build(
            r,
            p2.hash,
            2,
            json!([{"op": "add", "path": "/ok", "value": true}]),
            None,
        )
        .unwrap();
        Chain {
            root,
            patches: vec![Arc::new(p1), Arc::new(p2)],
            next,
        }
    }

    fn live(&self) -> Live {
        Live {
            root: self.root.clone(),
            head: self.patches[1].hash,
            prev: self.patches[0].hash,
            height: 2,
        }
    }

    fn stored(&self, i: usize) -> Vec<u8> {
        Stored {
            root: self.root.hash(),
            head: self.patches[i].hash,
            height: self.patches[i].height,
        }
        .encode()
        .to_vec()
    }

    /// A follower that loaded the root, applied both patches, and heard storage
    /// confirm them, as a follower of a running deployment is.
    fn follower(&self, now: Instant) -> Follower {
        let ch = Channels::new(None);
        let on_root = ch.updates(&self.root.hash());
        let mut f = Follower::by_root(
            self.root.clone(),
            ch.clone(),
            Limits::default(),
            FollowerConfig::default(),
        );
        f.handle_connected(now, &mut Step::default());
        f.handle_message(
            now,
            on_root.as_bytes(),
            &Snapshot::of_root(&self.root).encoded,
            &mut Step::default(),
        );
        let mut parent = self.root.hash();
        for (i, p) in self.patches.iter().enumerate() {
            f.handle_message(
                now,
                ch.updates(&parent).as_bytes(),
                &p.encoded,
                &mut Step::default(),
            );
            f.handle_message(
                now,
                on_root.as_bytes(),
                &self.stored(i),
                &mut Step::default(),
            );
            parent = p.hash;
        }
        assert_eq!(f.current().map(|c| c.head), Some(parent));
        assert_eq!(f.stats().applied, 2);
        f
    }

    /// A storage engine and its store, holding both patches durably.
    fn engine(&self) -> (StorageEngine, StoreModel) {
        let ch = Channels::new(None);
        let mut e = StorageEngine::new(ch.clone(), Limits::default());
        let mut store = StoreModel::default();
        let mut out = Vec::new();
        e.handle_connected(&mut out);
        e.handle_message(
            ch.update_requests().as_bytes(),
            &self.root.to_canonical(),
            &mut out,
        )
        .unwrap();
        store.drive(&mut e, out);
        let mut parent = self.root.hash();
        for p in &self.patches {
            let mut out = Vec::new();
            e.handle_message(ch.updates(&parent).as_bytes(), &p.encoded, &mut out)
                .unwrap();
            store.drive(&mut e, out);
            parent = p.hash;
        }
        assert_eq!(store.heads[&self.root.hash()].head, parent);
        assert_eq!(e.stats().applied, 2);
        (e, store)
    }
}

/// What a follower shows of its state: head, height and canonical document.
fn follower_state(f: &Follower) -> (Hash, u64, Vec<u8>) {
    let c = f.current().expect("loaded");
    (c.head, c.height, canonical::to_vec(&c.doc))
}

/// Feeds `payload` on `channel` to a fresh follower and checks `expect`.
fn follower_case(
    chain: &Chain,
    name: &str,
    channel: &str,
    payload: &[u8],
    expect: &str,
    why: Option<&str>,
) {
    let now = Instant::now();
    let mut f = chain.follower(now);
    let before = follower_state(&f);
    let stats_before = f.stats().clone();
    let mut step = Step::default();
    f.handle_message(now, channel.as_bytes(), payload, &mut step);
    let ctx = format!("{name} on {channel} (follower)");
    let ignored: Vec<_> = step
        .events
        .iter()
        .filter_map(|e| match e {
            FollowerEvent::Ignored { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    let stats = f.stats().clone();
    match expect {
        "stale" | "resync" | "none" => {
            assert!(ignored.is_empty(), "{ctx}: ignored {ignored:?}");
            assert_eq!(stats.ignored, stats_before.ignored, "{ctx}");
            let stale = u64::from(expect == "stale");
            assert_eq!(
                stats.stale,
                stats_before.stale + stale,
                "{ctx}: stale count"
            );
            let requested = step.commands.iter().any(
                |c| matches!(c, Command::Publish { channel, .. } if channel == "update_requests"),
            );
            if expect == "resync" {
                assert!(
                    requested,
                    "{ctx}: expected a load request, got {:?}",
                    step.commands
                );
            }
        }
        label => {
            assert_eq!(
                ignored.len(),
                1,
                "{ctx}: expected {label}, got {:?}",
                step.events
            );
            assert_eq!(ignored[0].label(), label, "{ctx}: {}", ignored[0]);
            if let Some(why) = why {
                let text = ignored[0].to_string();
                assert!(text.contains(why), "{ctx}: {text:?} does not say {why:?}");
            }
            let mut want = stats_before.ignored.clone();
            *want.entry(ignored[0].label()).or_default() += 1;
            assert_eq!(stats.ignored, want, "{ctx}: counted once, under its label");
            assert_eq!(stats.stale, stats_before.stale, "{ctx}");
        }
    }
    assert_eq!(
        stats.applied, stats_before.applied,
        "{ctx}: applied nothing"
    );
    assert_eq!(follower_state(&f), before, "{ctx}: state changed");
    assert!(
        !step
            .events
            .iter()
            .any(|e| matches!(e, FollowerEvent::Changed { .. })),
        "{ctx}: reported a change"
    );
    // The next valid patch still applies.
    let head_channel = Channels::new(None).updates(&before.0);
    f.handle_message(
        now,
        head_channel.as_bytes(),
        &chain.next.encoded,
        &mut Step::default(),
    );
    assert_eq!(
        f.current().map(|c| c.head),
        Some(chain.next.hash),
        "{ctx}: next patch"
    );
    assert_eq!(f.current().unwrap().doc["ok"], true, "{ctx}");
}

/// Feeds `payload` on `channel` to a fresh storage engine and checks `expect`.
fn storage_case(
    chain: &Chain,
    name: &str,
    channel: &str,
    payload: &[u8],
    expect: &str,
    why: Option<&str>,
) {
    let (mut e, mut store) = chain.engine();
    let ctx = format!("{name} on {channel} (storage)");
    let root = chain.root.hash();
    let heads_before = store.heads.clone();
    let published_before = store.published.len();
    let stats_before = e.stats().clone();
    let mut out = Vec::new();
    let result = e.handle_message(channel.as_bytes(), payload, &mut out);
    store.drive(&mut e, out);
    let stats = e.stats().clone();
    let mut want = stats_before.clone();
    match expect {
        "stale" => want.stale += 1,
        "unknown_root" => want.unknown_root += 1,
        "none" => {}
        label => {
            *want.ignored.entry(static_label(label)).or_default() += 1;
            if let Err(reason) = &result {
                assert_eq!(reason.label(), label, "{ctx}: {reason}");
                if let Some(why) = why {
                    let text = reason.to_string();
                    assert!(text.contains(why), "{ctx}: {text:?} does not say {why:?}");
                }
            } else {
                // Only rules checked against the stored document surface inside
                // the engine rather than as the message's error.
                assert!(
                    matches!(
                        label,
                        "wrong_height"
                            | "ops_failed"
                            | "document_too_deep"
                            | "document_too_large"
                            | "patch_too_costly"
                    ),
                    "{ctx}: expected the message to be refused as {label}"
                );
            }
        }
    }
    // Only the counters the expectation names move (load requests are not counted
    // in the messages' totals, nor the store reads they cause: forged notices and
    // patches may make storage re-read a root or check its head).
    want.load_requests = stats.load_requests;
    want.reloads = stats.reloads;
    want.heads_checked = stats.heads_checked;
    assert_eq!(stats, want, "{ctx}: counters");
    assert_eq!(store.heads, heads_before, "{ctx}: the store changed");
    assert_eq!(
        store.published.len(),
        published_before,
        "{ctx}: published {:?}",
        &store.published[published_before..]
    );
    // The next valid patch still applies, and is stored.
    let mut out = Vec::new();
    let head = heads_before[&root].head;
    e.handle_message(
        Channels::new(None).updates(&head).as_bytes(),
        &chain.next.encoded,
        &mut out,
    )
    .unwrap();
    store.drive(&mut e, out);
    assert_eq!(
        store.heads[&root].head, chain.next.hash,
        "{ctx}: next patch"
    );
}

fn static_label(label: &str) -> &'static str {
    const LABELS: &[&str] = &[
        "malformed",
        "foreign_channel",
        "channel_mismatch",
        "root_mismatch",
        "wrong_height",
        "ops_failed",
        "document_too_large",
        "document_too_deep",
        "patch_too_costly",
        "root_config_too_large",
        "wrong_channel_kind",
        "unsigned",
        "untrusted_key",
        "bad_signature",
    ];
    LABELS
        .iter()
        .find(|l| **l == label)
        .copied()
        .unwrap_or_else(|| panic!("not a rejection label: {label}"))
}

#[test]
fn each_reject_is_ignored_counted_and_harmless() {
    let chain = Chain::new();
    let live = chain.live();
    let mut cases = 0;
    for rec in corpus() {
        let payload = live.substitute(&rec.payload);
        for kind in &rec.channels {
            let channel = live.channel(kind);
            if let (Some(expect), false) = (&rec.follower, kind == "update_requests") {
                follower_case(
                    &chain,
                    &rec.name,
                    &channel,
                    &payload,
                    expect,
                    rec.why.as_deref(),
                );
                cases += 1;
            }
            if let Some(expect) = &rec.storage {
                // `why` quotes the follower's reason; storage's is the same text
                // when the label is.
                let why = rec
                    .why
                    .as_deref()
                    .filter(|_| rec.follower.is_none() || rec.follower == rec.storage);
                storage_case(&chain, &rec.name, &channel, &payload, expect, why);
                cases += 1;
            }
        }
    }
    assert!(cases >= 100, "{cases} cases");
}

/// All of them, one after another, to one follower and one engine: the totals add
/// up, nothing moved, and the next valid patch applies.
#[test]
fn all_rejects_in_a_row() {
    let chain = Chain::new();
    let live = chain.live();
    let now = Instant::now();
    let mut f = chain.follower(now);
    let (mut e, mut store) = chain.engine();
    let before = follower_state(&f);
    let heads_before = store.heads.clone();
    let (f0, e0) = (f.stats().clone(), e.stats().clone());
    let mut want_f: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut want_e: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut f_stale, mut e_stale, mut e_unknown) = (0, 0, 0);
    for rec in corpus() {
        let payload = live.substitute(&rec.payload);
        for kind in &rec.channels {
            let channel = live.channel(kind);
            if let (Some(expect), false) = (&rec.follower, kind == "update_requests") {
                f.handle_message(now, channel.as_bytes(), &payload, &mut Step::default());
                match expect.as_str() {
                    "stale" => f_stale += 1,
                    "resync" | "none" => {}
                    label => *want_f.entry(static_label(label)).or_default() += 1,
                }
            }
            if let Some(expect) = &rec.storage {
                let mut out = Vec::new();
                let _ = e.handle_message(channel.as_bytes(), &payload, &mut out);
                store.drive(&mut e, out);
                match expect.as_str() {
                    "stale" => e_stale += 1,
                    "unknown_root" => e_unknown += 1,
                    "none" => {}
                    label => *want_e.entry(static_label(label)).or_default() += 1,
                }
            }
        }
    }
    assert_eq!(follower_state(&f), before);
    assert_eq!(f.stats().ignored, want_f);
    assert_eq!(f.stats().stale, f0.stale + f_stale);
    assert_eq!(f.stats().applied, f0.applied);
    assert_eq!(store.heads, heads_before);
    assert_eq!(e.stats().ignored, want_e);
    assert_eq!(e.stats().stale, e0.stale + e_stale);
    assert_eq!(e.stats().unknown_root, e0.unknown_root + e_unknown);
    assert_eq!(e.stats().applied, e0.applied);

    let head = Channels::new(None).updates(&before.0);
    f.handle_message(
        now,
        head.as_bytes(),
        &chain.next.encoded,
        &mut Step::default(),
    );
    assert_eq!(f.current().unwrap().head, chain.next.hash);
    let mut out = Vec::new();
    e.handle_message(head.as_bytes(), &chain.next.encoded, &mut out)
        .unwrap();
    store.drive(&mut e, out);
    assert_eq!(store.heads[&chain.root.hash()].head, chain.next.hash);
}

/// The corpus covers every rejection label, for both roles.
#[test]
fn corpus_covers_every_label() {
    let records = corpus();
    for label in [
        "malformed",
        "foreign_channel",
        "channel_mismatch",
        "root_mismatch",
        "wrong_height",
        "ops_failed",
        "document_too_large",
        "document_too_deep",
        "patch_too_costly",
        "wrong_channel_kind",
    ] {
        assert!(
            records.iter().any(|r| r.follower.as_deref() == Some(label)),
            "no follower record for {label}"
        );
        if label != "root_mismatch" {
            assert!(
                records.iter().any(|r| r.storage.as_deref() == Some(label)),
                "no storage record for {label}"
            );
        }
    }
    // Followers never hear load requests.
    assert!(
        records
            .iter()
            .any(|r| r.storage.as_deref() == Some("root_config_too_large")),
        "no storage record for root_config_too_large"
    );
    let mut names: Vec<_> = records.iter().map(|r| r.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), records.len(), "record names are unique");
}

// ---------------------------------------------------------------------------
// Copy bombs: small patches whose `copy` ops grow the document exponentially.

/// `isolated` with a name no test has: the child runs 0 tests and exits 0,
/// which on cdbe9c4 passed.
#[test]
#[should_panic(expected = "ran no test named")]
fn isolated_fails_when_its_name_matches_no_test() {
    isolated("no_such_test", Duration::from_secs(60), || {});
}

/// Runs `body` in a child process (this test binary, filtered to the calling
/// test, with an environment variable telling it to run the body) and fails if the
/// child crashes or takes longer than `deadline`. A stack overflow aborts the whole
/// process and an allocation of gigabytes can take the machine with it, so these
/// cannot run in the test process itself.
fn isolated(test: &str, deadline: Duration, body: impl FnOnce() + Send + 'static) {
    const VAR: &str = "TIKACONF_ISOLATED_TEST";
    // Printed by the child once the body returned: a filter that matched no
    // test (a typo, a renamed test) runs nothing and exits 0, which must fail.
    const RAN: &str = "isolated body ran: ";
    if std::env::var(VAR).as_deref() == Ok(test) {
        checks::on_node_stack(body);
        println!("{RAN}{test}");
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(VAR, test)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let tail: String = stderr
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                status.success(),
                "{test}: the node process died ({status}) after {:?}:\n{tail}",
                started.elapsed()
            );
            assert!(
                stdout.contains(&format!("{RAN}{test}\n")),
                "{test}: the child ran no test named {test:?} (or its body did not finish):\n{stdout}"
            );
            return;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{test}: still applying one small patch after {deadline:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `copy` the chain under `/a` into its own deepest object, `doublings` times:
/// the nesting depth doubles with every op, while the message grows by a path.
fn depth_bomb(chain: &Chain, doublings: u32) -> Patch {
    let live = chain.live();
    let mut ops = vec![json!({"op": "add", "path": "/a", "value": {}})];
    let mut depth = 0usize; // the innermost {} is at "/a" + "/a" * depth
    for _ in 0..doublings {
        ops.push(
            json!({"op": "copy", "from": "/a", "path": format!("/a{}", "/a".repeat(depth + 1))}),
        );
        depth = 2 * depth + 1;
    }
    Patch::build(
        live.root.hash(),
        live.head,
        live.height,
        Value::Array(ops),
        None,
    )
    .unwrap()
}

/// `copy` the whole document to a new member, `doublings` times: the document
/// doubles in size with every op of some 40 bytes.
fn size_bomb(chain: &Chain, doublings: u32) -> Patch {
    let live = chain.live();
    let ops: Vec<Value> = (0..doublings)
        .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
        .collect();
    Patch::build(
        live.root.hash(),
        live.head,
        live.height,
        Value::Array(ops),
        None,
    )
    .unwrap()
}

/// Feeds `patch` on the head's channel to a follower and a storage engine, and
/// checks both refuse it as one of `labels` and keep their state.
fn refused_by_both(chain: &Chain, patch: &Patch, labels: &[&str]) {
    let now = Instant::now();
    let head = Channels::new(None).updates(&chain.live().head);
    let mut f = chain.follower(now);
    let before = follower_state(&f);
    let mut step = Step::default();
    f.handle_message(now, head.as_bytes(), &patch.encoded, &mut step);
    let reason = step.events.iter().find_map(|e| match e {
        FollowerEvent::Ignored { reason } => Some(reason.label()),
        _ => None,
    });
    assert!(
        reason.is_some_and(|r| labels.contains(&r)),
        "follower: expected one of {labels:?}, got {reason:?}"
    );
    assert_eq!(follower_state(&f), before);
    let (mut e, mut store) = chain.engine();
    let heads = store.heads.clone();
    let mut out = Vec::new();
    let _ = e.handle_message(head.as_bytes(), &patch.encoded, &mut out);
    store.drive(&mut e, out);
    assert_eq!(store.heads, heads);
    let counted: u64 = labels.iter().filter_map(|l| e.stats().ignored.get(l)).sum();
    assert_eq!(counted, 1, "storage: {:?}", e.stats().ignored);
}

/// 14 doublings: a 33 KB message asking for a 16,383-deep document. Applied in
/// full before the caps were checked, the recursive clones in `json_patch::copy`
/// overflowed a tokio worker's 2 MiB stack and aborted every node that heard it.
#[test]
fn copy_bomb_depth_does_not_crash_a_node() {
    isolated(
        "copy_bomb_depth_does_not_crash_a_node",
        Duration::from_secs(60),
        || {
            let chain = Chain::new();
            let patch = depth_bomb(&chain, 14);
            assert!(patch.encoded.len() < 40_000);
            refused_by_both(
                &chain,
                &patch,
                &[
                    "document_too_deep",
                    "document_too_large",
                    "patch_too_costly",
                ],
            );
        },
    );
}

/// 20 doublings in a 900-byte message: applied in full before the size cap was
/// checked, a document of some 100 MB, 1.5 GB of heap and seconds of CPU per node
/// (each further op doubles both; 25 ops exhaust any node's memory). With the caps
/// held after every op it is refused at once: the document would pass the 1 MiB
/// cap after about 14 doublings, and since issue 11 the work budget (each copy
/// is charged the size it copies) refuses it after about 11.
#[test]
fn copy_bomb_size_is_refused_cheaply() {
    isolated(
        "copy_bomb_size_is_refused_cheaply",
        Duration::from_secs(10),
        || {
            let chain = Chain::new();
            let patch = size_bomb(&chain, 20);
            assert!(patch.encoded.len() < 1_000);
            refused_by_both(
                &chain,
                &patch,
                &[
                    "document_too_large",
                    "document_too_deep",
                    "patch_too_costly",
                ],
            );
        },
    );
}

// ---------------------------------------------------------------------------
// A forged snapshot is accepted (snapshots are storage's word), but storage's
// genuine answers must win it back.

/// Anyone who may publish on `updates:<root>` can send a snapshot at a made-up
/// height, and the follower adopts it (rule 3). It used to count the adopted
/// snapshot as confirmed, so every genuine snapshot from storage afterwards was
/// below its "confirmed" height and ignored as stale (rule 6), and every `stored`
/// notice only prompted another request whose answer was ignored again: the
/// follower kept the forged document for good. Storage's repeated word must bring
/// it back, as for any other head storage never stored.
#[test]
fn a_forged_snapshot_does_not_stick() {
    let chain = Chain::new();
    let live = chain.live();
    let r = chain.root.hash();
    let on_root = Channels::new(None).updates(&r);
    let mut now = Instant::now();
    let mut f = chain.follower(now);
    let genuine_doc = f.current().unwrap().doc.clone();
    let genuine = Snapshot::new(r, live.head, live.height, (*genuine_doc).clone());
    let forged = Snapshot::new(r, Live::random(), 1_000, json!({"owned": true}));
    f.handle_message(
        now,
        on_root.as_bytes(),
        &forged.encoded,
        &mut Step::default(),
    );
    assert_eq!(
        f.current().unwrap().height,
        1_000,
        "adopted, as the protocol says"
    );

    // Storage keeps answering every request with its genuine head, and keeps
    // confirming it, for a minute of simulated time.
    for _ in 0..20 {
        now += Duration::from_secs(3);
        let mut step = Step::default();
        f.handle_timeout(now, &mut step);
        let asked = step
            .commands
            .iter()
            .any(|c| matches!(c, Command::Publish { channel, .. } if channel == "update_requests"));
        if asked {
            f.handle_message(
                now,
                on_root.as_bytes(),
                &genuine.encoded,
                &mut Step::default(),
            );
        }
        f.handle_message(
            now,
            on_root.as_bytes(),
            &chain.stored(1),
            &mut Step::default(),
        );
        f.handle_message(
            now,
            on_root.as_bytes(),
            &genuine.encoded,
            &mut Step::default(),
        );
        if f.current().unwrap().head == live.head {
            break;
        }
    }
    let current = f.current().unwrap();
    assert_eq!(
        (current.head, current.height),
        (live.head, live.height),
        "still on the forged document {} after a minute of storage's answers",
        current.doc
    );
}
