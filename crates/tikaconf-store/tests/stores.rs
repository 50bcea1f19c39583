//! Runs the store contract against the in-crate backends, and checks what only a
//! durable store can promise: what was committed survives closing the file, and
//! survives the process being killed mid-stream.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tikaconf_store::conformance::{self, genesis, next, step, unique_root};
use tikaconf_store::{CommitOutcome, MemoryStore, RedbStore, Store, StoreError};

#[tokio::test]
async fn memory_conformance() {
    conformance::run_all(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_clones_share_state() {
    let a = MemoryStore::new();
    let b = a.clone();
    conformance::racing_commits(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path()).expect("open");
    assert_eq!(store.path(), dir.path().join("tikaconf.redb"));
    conformance::run_all(store).await;
}

#[tokio::test]
async fn redb_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/state.redb");
    let g = genesis(unique_root("reopen"));
    let h1 = next(&g, "a");
    let h2 = next(&h1, "b");
    {
        let store = RedbStore::open(&path).expect("open");
        store.register(g.clone()).await.expect("register");
        let outcomes = store
            .commit(vec![step(&g, &h1), step(&h1, &h2)])
            .await
            .expect("commit");
        assert_eq!(outcomes, [CommitOutcome::Applied, CommitOutcome::Applied]);
    }
    let store = RedbStore::open(&path).expect("reopen");
    assert_eq!(store.load(g.root).await.expect("load"), Some(h2));
    assert_eq!(store.root_count().await.expect("count"), 1);
}

#[tokio::test]
async fn redb_file_is_exclusive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = RedbStore::open(dir.path()).expect("open");
    match RedbStore::open(dir.path()) {
        Err(StoreError::Backend(_)) => {}
        other => panic!("a second open of one file must fail, got {other:?}"),
    }
}

/// Environment variable naming the directory the child writer commits into.
const CHILD_DIR: &str = "TIKACONF_STORE_CHILD_DIR";

/// The child half of `redb_survives_sigkill`: commits forever, printing each
/// height once its commit has returned (so is durable). Ignored when run normally.
#[tokio::test]
#[ignore = "the child half of redb_survives_sigkill, which runs it in a process it SIGKILLs: cargo test -p tikaconf-store --test stores redb_survives_sigkill"]
async fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let store = RedbStore::open(&dir).expect("open");
    let root = tikaconf_store::Hash::of_canonical_bytes(b"{\"child\":true}");
    let mut head = store.register(genesis(root)).await.expect("register");
    loop {
        let new = next(&head, "x");
        let outcomes = store.commit(vec![step(&head, &new)]).await.expect("commit");
        assert_eq!(outcomes, [CommitOutcome::Applied]);
        head = new;
        println!("durable {}", head.height);
    }
}

#[tokio::test]
async fn redb_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args(["--exact", "child_writer", "--ignored", "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn child writer");
    // Let the child get well into its stream of commits, then kill it mid-write.
    let root = tikaconf_store::Hash::of_canonical_bytes(b"{\"child\":true}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    let store = RedbStore::open(dir.path()).expect("reopen after SIGKILL");
    let head = store
        .load(root)
        .await
        .expect("load")
        .expect("the child committed at least once");
    assert!(head.height > 0, "the child got past registration");
    // The reopened store is fully usable.
    let new = next(&head, "after");
    assert_eq!(
        store.commit(vec![step(&head, &new)]).await.expect("commit"),
        [CommitOutcome::Applied]
    );
}
