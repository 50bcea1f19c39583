//! Bytes a redb store writes per commit of a small change to a document of a
//! given size, and what a load then costs (issue 14, item 6). Before 796b773
//! every commit wrote the whole new snapshot (in the write-ahead log's record
//! and in the database), so a 200 B change to a 1 MiB document cost over a
//! megabyte; since, a store that keeps history writes the patch, and a
//! snapshot only every 32 patches or once the patches outweigh the document
//! (`none` writes every snapshot, as before), and a load replays the patches
//! since the last snapshot.
//!
//! One root gets a document of `SIZE` bytes, then `COMMITS` real patches, each
//! setting one of 50 members to a new 200-byte string, one commit per batch
//! (a storage node under a light load), under the given retention. What the
//! process hands the kernel (`wchar` of `/proc/self/io`: every
//! `write`/`pwrite`, the log's and redb's) is divided by the number of
//! commits. Then the root is loaded 100 times (a storage node reads a root
//! once, when it first needs it): median and range of a load.
//!
//! ```sh
//! cargo run --release -p tikaconf-store --example commit_bytes -- 10240 1000 all
//! cargo run --release -p tikaconf-store --example commit_bytes -- 1048576 200 all
//! ```

use std::time::{Duration, Instant};

use serde_json::json;
use tikaconf_proto::{Limits, Message, Patch, PersistCommit, Snapshot};
use tikaconf_store::conformance::{genesis, unique_root};
use tikaconf_store::{RedbStore, Retention, Store, StoreOptions, StoredHead};

/// What this process has written so far (`wchar`), or 0 where `/proc` has no
/// such file (then the figure is not measured, and said so).
fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar: ").and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// The commit of `ops` on `prev`, with the snapshot it makes.
fn commit_of(prev: &StoredHead, ops: serde_json::Value) -> PersistCommit {
    let limits = Limits::default();
    let Ok(Message::Snapshot(snapshot)) = Message::decode(&prev.snapshot, &limits) else {
        panic!("a real snapshot");
    };
    let patch = Patch::build(prev.root, prev.head, prev.height, ops, None).expect("a patch");
    let doc = patch
        .apply_to(prev.root, prev.height, &snapshot.config, &limits)
        .expect("it applies");
    PersistCommit {
        expected_head: prev.head,
        new: StoredHead {
            root: prev.root,
            head: patch.hash,
            height: patch.height,
            snapshot: Snapshot::new(prev.root, patch.hash, patch.height, doc).encoded,
        },
        patch: Some(patch.encoded),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().map_or(Ok(10 * 1024), |a| a.parse())?;
    let commits: u64 = args.next().map_or(Ok(1000), |a| a.parse())?;
    let retention: Retention = args
        .next()
        .map_or(Ok(Retention::default()), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let store = RedbStore::open_with(
        dir.path(),
        StoreOptions::default().with_retention(retention),
    )?;
    let mut head = genesis(unique_root("commit-bytes"));
    store.register(head.clone()).await?;
    // The document: its filler, and 50 members of 200 bytes the commits change.
    let members: serde_json::Map<_, _> = (0..50)
        .map(|i| (format!("m{i}"), json!("a".repeat(200))))
        .collect();
    let base = commit_of(
        &head,
        json!([
            {"op": "add", "path": "/filler", "value": "x".repeat(size.saturating_sub(11_000))},
            {"op": "add", "path": "/members", "value": members},
        ]),
    );
    store.commit(vec![base.clone()]).await?;
    head = base.new;
    let before = written();
    for i in 0..commits {
        let value = format!("{i:>200}");
        let ops =
            json!([{"op": "replace", "path": format!("/members/m{}", i % 50), "value": value}]);
        let commit = commit_of(&head, ops);
        let next = commit.new.clone();
        store.commit(vec![commit]).await?;
        head = next;
    }
    let total = written() - before;
    let mut loads = Vec::new();
    for _ in 0..100 {
        let started = Instant::now();
        let loaded = store.load(head.root).await?.expect("the root");
        loads.push(started.elapsed());
        assert_eq!(loaded.head, head.head);
    }
    loads.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    if total == 0 {
        println!("/proc/self/io not readable here: bytes not measured");
    } else {
        println!(
            "document {} B, {commits} commits of a 200 B change, retention {retention}: {:.0} B \
             written per commit ({:.2}x the document); a load {:.3} ms [{:.3}-{:.3}]",
            head.snapshot.len(),
            total as f64 / commits as f64,
            total as f64 / commits as f64 / head.snapshot.len() as f64,
            ms(loads[50]),
            ms(loads[0]),
            ms(loads[99]),
        );
    }
    Ok(())
}
