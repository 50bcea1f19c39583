//! A storage node whose store can no longer write stops, with the reason, instead
//! of staying up answering loads while never acknowledging a write again (a
//! zombie). The failure is real: the store's own failure path, entered through
//! its test-only hook that makes the write-ahead log's next sync fail.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tikaconf::bus::BusHandle;
use tikaconf::storage_node::{self, NodeFailed, StorageStatus};
use tikaconf::store::{RedbStore, StoreError};
use tikaconf::{RootConfig, StorageOptions};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_log_sync_stops_the_storage_node_with_the_reason() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path()).expect("open");
    let bus = BusHandle::redis(&redis.url()).await.expect("bus");
    let (status_tx, mut status) = watch::channel(StorageStatus::default());
    let node = tokio::spawn(storage_node::run(
        bus,
        store.clone(),
        StorageOptions::default(),
        status_tx,
        std::future::pending(),
    ));
    status.wait_for(|s| s.listening).await.expect("listening");

    let writer = client(&redis).await;
    let config = writer
        .follow(RootConfig::twitch("#zombie").expect("root"))
        .await
        .expect("follow");
    // The store works: a write is acknowledged, so durable.
    config
        .submit(json!([{"op": "add", "path": "/before", "value": 1}]))
        .await
        .expect("a write before the fault is stored");

    store.inject_log_sync_failure();
    // The next write makes the node's commit hit the failed sync; it is never
    // acknowledged.
    let write = config
        .submit(json!([{"op": "add", "path": "/after", "value": 2}]))
        .await;
    assert!(write.is_err(), "acknowledged on a failed sync: {write:?}");

    // The node's loop ends by itself, with the store's error (bounded wait: a
    // node that stays up fails here).
    let ended = tokio::time::timeout(Duration::from_secs(30), node)
        .await
        .expect("the storage node did not stop after its store failed")
        .expect("the node's task");
    let failed = ended.expect_err("the node must end with the store's error");
    let NodeFailed::Store(source) = &failed else {
        panic!("expected the store's failure, got {failed:?}");
    };
    assert!(source.is_fatal(), "{source:?}");
    match &**source {
        StoreError::Poisoned { source, .. } => {
            assert!(matches!(**source, StoreError::Io(_)), "{source:?}");
        }
        other => panic!("expected Poisoned, got {other:?}"),
    }
    // The reason is shown in its status too, and it no longer claims to listen.
    let last = status.borrow().clone();
    assert!(!last.listening);
    let shown = last.failed.expect("the status carries the reason");
    assert!(matches!(&shown, NodeFailed::Store(s) if s.is_fatal()));
    let chain = format!("{failed}: {source}");
    assert!(chain.contains("can no longer write"), "{chain}");
}
