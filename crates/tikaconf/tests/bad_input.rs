//! The reject corpus over a real Redis: every bad message is ignored, counted, and
//! harmless to a running follower and storage node.
//!
//! `crates/tikaconf-proto/tests/wire_rejects.rs` checks each message of
//! `testdata/wire/rejects/rejects.jsonl` against the state machines directly. This
//! checks what a deployment sees: the messages published with a raw connection on
//! every channel they are meant for (the live head's `updates:<head>`, the root's
//! `updates:<root>`, `update_requests`, and a few channels that only look like
//! tikaconf's), heard by a `Config` and a `StorageNode` through Redis exactly as a
//! peer's would be. Each node must count each message it hears under the corpus's
//! label (`Config::stats`, `StorageNode::status().stats`), keep its head, height and
//! document, and still take the next valid patch. A follower only hears the head's
//! and the root's channels; storage hears `updates:*` and `update_requests`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tikaconf::proto::{Channels, canonical};
use tikaconf::{Hash, RootConfig};

use tikaconf_test::rejects::{self, corpus};

/// The live values the corpus's placeholders stand for.
struct Live {
    root: RootConfig,
    head: Hash,
    prev: Hash,
    height: u64,
}

impl Live {
    /// The same values as text, for the shared corpus loader.
    fn text(&self) -> rejects::Live {
        rejects::Live {
            root: self.root.hash().to_hex(),
            root_config: String::from_utf8(self.root.to_canonical()).expect("canonical JSON"),
            head: self.head.to_hex(),
            prev: self.prev.to_hex(),
            height: self.height,
            other_root: RootConfig::twitch("#someone_else").unwrap().hash().to_hex(),
            random: Hash::of_canonical_bytes(b"a head on no chain").to_hex(),
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

fn sum(m: &BTreeMap<&'static str, u64>) -> u64 {
    m.values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reject_is_ignored_counted_and_harmless_over_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#rejects").unwrap();
    let client = client(&redis).await;
    let config = client.follow(root.clone()).await.unwrap();
    let prev = config
        .submit(json!([{"op": "add", "path": "/commands", "value": {"!hi": "hello"}}]))
        .await
        .unwrap();
    let head = config
        .submit(json!([{"op": "add", "path": "/timers", "value": []}]))
        .await
        .unwrap();
    let live = Live {
        root: root.clone(),
        head,
        prev,
        height: 2,
    };
    let doc_before = canonical::to_vec(&config.document());
    let follower_before = config.stats();
    let storage_before = storage.status().stats;

    // Publish everything; tally what each node should count.
    let head_channel = live.channel("head");
    let root_channel = live.channel("root");
    let mut want_f: BTreeMap<&'static str, u64> = follower_before.ignored.clone();
    let mut want_s: BTreeMap<&'static str, u64> = storage_before.ignored.clone();
    let (mut f_stale, mut s_stale, mut s_unknown) = (0u64, 0u64, 0u64);
    let mut raw = raw(&redis).await;
    let mut published = 0;
    for rec in corpus() {
        let payload = live.substitute(&rec.payload);
        for kind in &rec.channels {
            let channel = live.channel(kind);
            let _: i64 = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload.as_slice())
                .query_async(&mut raw)
                .await
                .unwrap_or_else(|e| panic!("publishing {} on {channel}: {e}", rec.name));
            published += 1;
            let follower_hears = channel == head_channel || channel == root_channel;
            if let (true, Some(expect)) = (follower_hears, &rec.follower) {
                match expect.as_str() {
                    "stale" => f_stale += 1,
                    "resync" | "none" => {}
                    label => *want_f.entry(label_of(label)).or_default() += 1,
                }
            }
            let storage_hears = channel.starts_with("updates:") || channel == "update_requests";
            if let (true, Some(expect)) = (storage_hears, &rec.storage) {
                match expect.as_str() {
                    "stale" => s_stale += 1,
                    "unknown_root" => s_unknown += 1,
                    "none" => {}
                    label => *want_s.entry(label_of(label)).or_default() += 1,
                }
            }
        }
    }
    assert!(published >= 100, "{published} messages published");

    // Both nodes get through all of it (the storage node's counters are the last to
    // move: it hears the most).
    // Every counter it must move, not only the ignored ones: the stale and
    // unknown-root messages may be the last it reads.
    let counted = tikaconf_test::wait_until(Duration::from_secs(30), || {
        let s = storage.status().stats;
        sum(&s.ignored) >= sum(&want_s)
            && s.stale >= storage_before.stale + s_stale
            && s.unknown_root >= storage_before.unknown_root + s_unknown
    })
    .await;
    let s = storage.status().stats;
    assert!(
        counted,
        "storage counted {:?} (stale {}, unknown roots {}), want {want_s:?}",
        s.ignored, s.stale, s.unknown_root
    );
    let mut f = config.stats();
    for _ in 0..200 {
        if sum(&f.ignored) >= sum(&want_f) && f.stale >= follower_before.stale + f_stale {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        f = config.stats();
    }
    assert_eq!(f.ignored, want_f, "follower: ignored by label");
    assert_eq!(f.stale, follower_before.stale + f_stale, "follower: stale");
    assert_eq!(
        f.applied, follower_before.applied,
        "follower: applied nothing"
    );
    assert_eq!(s.ignored, want_s, "storage: ignored by label");
    assert_eq!(s.stale, storage_before.stale + s_stale, "storage: stale");
    assert_eq!(
        s.unknown_root,
        storage_before.unknown_root + s_unknown,
        "storage: unknown roots"
    );
    assert_eq!(
        s.applied, storage_before.applied,
        "storage: applied nothing"
    );

    // Nothing moved: not the follower, and not what storage holds (a new client
    // loads it by hash).
    assert_eq!(config.head(), head);
    assert_eq!(config.height(), 2);
    assert_eq!(canonical::to_vec(&config.document()), doc_before);
    let other = common::client(&redis).await;
    let fresh = other.follow(root.hash()).await.unwrap();
    assert_eq!(fresh.head(), head, "storage still holds the head");
    assert_eq!(canonical::to_vec(&fresh.document()), doc_before);

    // And the next valid patch goes through, everywhere.
    let next = config
        .submit(json!([{"op": "add", "path": "/ok", "value": true}]))
        .await
        .expect("the next valid patch is stored");
    assert_eq!(config.head(), next);
    assert_eq!(config.document()["ok"], true);
    wait_for_head(&fresh, next).await.unwrap();
    storage.shutdown().await;
}

fn label_of(label: &str) -> &'static str {
    [
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
    ]
    .into_iter()
    .find(|l| *l == label)
    .unwrap_or_else(|| panic!("not a rejection label: {label}"))
}

/// `isolated` with a name no test has: the child runs 0 tests and exits 0,
/// which on cdbe9c4 passed.
#[test]
#[should_panic(expected = "ran no test named")]
fn isolated_fails_when_its_name_matches_no_test() {
    isolated("no_such_test", Duration::from_secs(60), || {});
}

/// Runs `body` in a child process (this test binary, filtered to `test`, told by
/// an environment variable to run the body) and fails if it dies or overruns
/// `deadline`: the failure guarded against is an abort of the whole process.
fn isolated(test: &str, deadline: Duration, body: impl FnOnce()) {
    const VAR: &str = "TIKACONF_ISOLATED_TEST";
    // Printed by the child once the body returned: a filter that matched no
    // test (a typo, a renamed test) runs nothing and exits 0, which must fail.
    const RAN: &str = "isolated body ran: ";
    if std::env::var(VAR).as_deref() == Ok(test) {
        body();
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
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            assert!(
                status.success(),
                "{test}: the process running the nodes died ({status}):\n{tail}"
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
            panic!("{test}: no outcome within {deadline:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One 33 KB patch whose `copy` ops double the document's depth 14 times (to
/// 16,383 levels). A node that applied it in full recursed that deep on a tokio
/// worker's 2 MiB stack and aborted (the storage node and every follower at once);
/// it must refuse it instead, and take the next patch.
#[test]
fn a_copy_bomb_does_not_take_the_fleet_down() {
    isolated(
        "a_copy_bomb_does_not_take_the_fleet_down",
        Duration::from_secs(60),
        || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(copy_bomb_scenario());
        },
    );
}

async fn copy_bomb_scenario() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#bomb").unwrap();
    let client = client(&redis).await;
    let config = client.follow(root.clone()).await.unwrap();
    let head = config
        .submit(json!([{"op": "add", "path": "/a", "value": {}}]))
        .await
        .unwrap();
    let mut ops = Vec::new();
    let mut depth = 0usize; // the innermost {} is at "/a" + "/a" * depth
    for _ in 0..14 {
        let path = format!("/a{}", "/a".repeat(depth + 1));
        ops.push(json!({"op": "copy", "from": "/a", "path": path}));
        depth = 2 * depth + 1;
    }
    let bomb =
        tikaconf::proto::Patch::build(root.hash(), head, 1, Value::Array(ops), None).unwrap();
    let mut raw = raw(&redis).await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg(format!("updates:{head}"))
        .arg(bomb.encoded.as_ref())
        .query_async(&mut raw)
        .await
        .unwrap();
    let counted = tikaconf_test::wait_until(Duration::from_secs(20), || {
        sum(&storage.status().stats.ignored) == 1
    })
    .await;
    assert!(counted, "storage: {:?}", storage.status().stats);
    assert_eq!(config.head(), head);
    let next = config
        .submit(json!([{"op": "add", "path": "/ok", "value": true}]))
        .await
        .expect("the next valid patch is stored");
    assert_eq!(config.head(), next);
    storage.shutdown().await;
}
