//! A storage node checks the chains its store keeps when it starts (issue
//! 14): a patch rewritten in the store's file, behind the node's back, is
//! found, named (root, height, hash, why), logged and counted.
//!
//! The tampering is real: the redb file is opened with redb itself after the
//! node stopped, and one entry of its `patches` table rewritten, as damage or
//! someone with the file would.

use std::path::Path;
use std::time::Duration;

use redb::ReadableTable;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;
use tikaconf::memory::Broker;
use tikaconf::metrics::{CHAIN_BREAKS, CHAIN_PATCHES_VERIFIED};
use tikaconf::proto::chain::Break;
use tikaconf::store::{FILE_NAME, RedbStore};
use tikaconf::testing::{PATIENCE, fast_options};
use tikaconf::verify::VerifySummary;
use tikaconf::{Client, Hash, RootConfig, StorageNode, StorageOptions};

/// redb's `patches` table, as `tikaconf-store` lays it out (PROTOCOL.md,
/// "Storage layout"): `(root, height) -> patch bytes`.
const PATCHES: redb::TableDefinition<([u8; 32], u64), &[u8]> =
    redb::TableDefinition::new("patches");

/// Runs a storage node over the store in `dir` until its start-up check
/// ends, and returns what it found.
async fn start_and_verify(broker: &Broker, dir: &Path) -> VerifySummary {
    let store = RedbStore::open(dir).expect("open");
    let node = StorageNode::spawn(broker.connect(), store, StorageOptions::default());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let summary = loop {
        if let Some(summary) = node.status().verified {
            break summary;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the start-up check did not end"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    node.shutdown().await;
    summary
}

/// Rewrites the stored patch at `height` of `root` with `edit`.
fn tamper(dir: &Path, root: Hash, height: u64, edit: impl FnOnce(String) -> String) {
    let db = redb::Database::open(dir.join(FILE_NAME)).expect("open the file");
    let txn = db.begin_write().expect("write");
    {
        let mut patches = txn.open_table(PATCHES).expect("patches table");
        let key = (*root.as_bytes(), height);
        let stored = patches
            .get(key)
            .expect("read")
            .map(|v| String::from_utf8(v.value().to_vec()).expect("utf-8"))
            .expect("the patch is in the table");
        let edited = edit(stored.clone());
        assert_ne!(edited, stored, "the edit changed nothing");
        patches.insert(key, edited.as_bytes()).expect("rewrite");
    }
    txn.commit().expect("commit");
}

fn counter(recorder: &DebuggingRecorder, name: &str, reason: Option<&str>) -> u64 {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            let key = key.key();
            key.name() == name && key.labels().all(|l| Some(l.value()) == reason)
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn a_patch_rewritten_in_the_redb_file_is_found_at_start_up_and_named() {
    // A recorder of this test's thread: the node registers its series on it.
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::new();

    // First life: four patches, then a clean stop.
    let store = RedbStore::open(dir.path()).expect("open");
    let node = StorageNode::spawn(
        broker.connect(),
        store,
        StorageOptions {
            verify_for: Some(Duration::ZERO),
            ..StorageOptions::default()
        },
    );
    node.ready().await;
    let client = Client::with_bus(broker.connect(), fast_options());
    let config = client
        .follow(RootConfig::twitch("#verifytamper").expect("root"))
        .await
        .expect("follow");
    let root = config.root();
    let mut heads = vec![root];
    for i in 1..=4 {
        heads.push(
            config
                .submit(json!([{"op": "add", "path": format!("/v{i}"), "value": i}]))
                .await
                .expect("committed"),
        );
    }
    drop(config);
    drop(client);
    node.shutdown().await;

    // An untouched store verifies.
    let summary = start_and_verify(&broker, dir.path()).await;
    assert_eq!(summary.broken, 0, "{summary:?}");
    assert_eq!((summary.roots, summary.patches), (1, 4));
    assert!(!summary.budget_ran_out);
    assert_eq!(counter(&recorder, CHAIN_PATCHES_VERIFIED, None), 4);

    // The patch at height 2 says 20 where it said 2: still a valid patch,
    // which applies, but no longer the one height 3 names.
    tamper(dir.path(), root, 2, |p| {
        p.replace("\"value\":2", "\"value\":20")
    });
    let summary = start_and_verify(&broker, dir.path()).await;
    assert_eq!(summary.broken, 1, "{summary:?}");
    let (at, broken) = &summary.breaks[0];
    assert_eq!(*at, root);
    assert_eq!(broken.height, 2);
    let Break::Altered { expected, found } = broken.reason else {
        panic!("expected the patch at height 2 named as altered: {broken:?}");
    };
    assert_eq!(expected, heads[2]);
    assert_eq!(broken.hash, Some(found));
    assert_ne!(found, heads[2]);
    assert_eq!(counter(&recorder, CHAIN_BREAKS, Some("altered")), 1);

    // Put back, the chain holds again; bytes that are no patch at all, at
    // the head, are named as such.
    tamper(dir.path(), root, 2, |p| {
        p.replace("\"value\":20", "\"value\":2")
    });
    tamper(dir.path(), root, 4, |p| p.replacen('{', "[", 1));
    let summary = start_and_verify(&broker, dir.path()).await;
    assert_eq!(summary.broken, 1, "{summary:?}");
    let (_, broken) = &summary.breaks[0];
    assert_eq!((broken.height, broken.hash), (4, None));
    assert_eq!(broken.reason.label(), "undecodable");
    assert_eq!(counter(&recorder, CHAIN_BREAKS, Some("undecodable")), 1);
}

/// redb keeps most heads as patches on an earlier snapshot (issue 14, item
/// 6): a patch under such a head rewritten in the file makes the head
/// impossible to rebuild. The start-up check names that root as broken
/// (`unloadable`, with the store's reason: root and height) and goes on with
/// the others, which still verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_cannot_be_rebuilt_is_named_and_the_others_still_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::new();
    let store = RedbStore::open(dir.path()).expect("open");
    let node = StorageNode::spawn(broker.connect(), store, StorageOptions::default());
    node.ready().await;
    let client = Client::with_bus(broker.connect(), fast_options());
    let mut roots = Vec::new();
    for channel in ["#replayed_a", "#replayed_b"] {
        let config = client
            .follow(RootConfig::twitch(channel).expect("root"))
            .await
            .expect("follow");
        // A document large enough that the small patches after it are kept
        // as patches, not snapshots.
        config
            .submit(json!([{"op": "add", "path": "/big", "value": "x".repeat(20_000)}]))
            .await
            .expect("committed");
        for i in 1..=4 {
            config
                .submit(json!([{"op": "add", "path": format!("/v{i}"), "value": i}]))
                .await
                .expect("committed");
        }
        roots.push(config.root());
    }
    drop(client);
    node.shutdown().await;

    tamper(dir.path(), roots[0], 4, |p| {
        p.replace("\"value\":3", "\"value\":30")
    });
    let summary = start_and_verify(&broker, dir.path()).await;
    assert_eq!(summary.roots, 2, "both roots checked: {summary:?}");
    assert_eq!(summary.broken, 1, "{summary:?}");
    let (at, broken) = &summary.breaks[0];
    assert_eq!(*at, roots[0]);
    assert_eq!(broken.reason.label(), "unloadable");
    let why = broken.reason.to_string();
    assert!(
        why.contains(&roots[0].to_string()) && why.contains("height 4"),
        "{why}"
    );
}
