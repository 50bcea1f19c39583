//! What the integration tests share: a real `redis-server` per test (started on a
//! free loopback port by `tikaconf-test`), storage nodes over it, and clients with
//! timers short enough for tests (`tikaconf::testing`'s, the test kit users
//! get).

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;

use serde_json::Value;
use tikaconf::bus::BusHandle;
use tikaconf::proto::{Limits, Message};
use tikaconf::store::RedbStore;
#[allow(unused_imports)] // each test binary uses its own subset
pub use tikaconf::testing::{fast_options, wait_for_head};
use tikaconf::{Client, Hash, StorageNode, StorageOptions};
pub use tikaconf_test::RedisServer;

pub async fn client(redis: &RedisServer) -> Client {
    Client::connect_with(&redis.url(), fast_options())
        .await
        .expect("client connects")
}

/// A storage node on the embedded redb store in `dir`, ready to answer.
pub async fn storage(redis: &RedisServer, dir: &Path) -> StorageNode {
    let bus = BusHandle::redis(&redis.url()).await.expect("storage bus");
    let store = RedbStore::open(dir).expect("redb opens");
    let node = StorageNode::spawn(bus, store, StorageOptions::default());
    node.ready().await;
    node
}

/// A raw Redis connection, for what the tests inspect or inject.
pub async fn raw(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

pub fn doc_keys(doc: &Value) -> Vec<String> {
    doc.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The head in `dir`'s cache file for `root` (a client's
/// `ClientOptions::cache_dir`), read as its format is documented: a
/// `tikaconf-head-cache 1 <hash>` line, then a snapshot message.
pub fn cached_head(dir: &Path, root: Hash) -> Option<Hash> {
    let bytes = std::fs::read(dir.join(format!("{root}.head"))).ok()?;
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    if !bytes.starts_with(b"tikaconf-head-cache 1 ") {
        return None;
    }
    match Message::decode(&bytes[newline + 1..], &Limits::default()).ok()? {
        Message::Snapshot(snapshot) if snapshot.root == root => Some(snapshot.head),
        _ => None,
    }
}
