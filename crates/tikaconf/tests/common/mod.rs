//! What the integration tests share: a real `redis-server` per test (started on a
//! free loopback port by `tikaconf-test`), storage nodes over it, and clients with
//! timers short enough for tests.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::Duration;

use serde_json::Value;
use tikaconf::bus::BusHandle;
use tikaconf::proto::FollowerConfig;
use tikaconf::store::RedbStore;
use tikaconf::{Client, ClientOptions, Config, Hash, StorageNode, StorageOptions};
pub use tikaconf_test::RedisServer;

/// Follower timers scaled down so that healing shows within a test's patience.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        follower: FollowerConfig {
            jitter_seed: rand::random(),
            ..FollowerConfig::quick(Duration::from_secs(5))
        },
        load_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

pub async fn client(redis: &RedisServer) -> Client {
    Client::connect_with(&redis.url(), fast_options())
        .await
        .expect("client connects")
}

/// A storage node on the embedded redb store in `dir`, ready to answer.
pub async fn storage(redis: &RedisServer, dir: &std::path::Path) -> StorageNode {
    let bus = BusHandle::redis(&redis.url()).await.expect("storage bus");
    let store = RedbStore::open(dir).expect("redb opens");
    let node = StorageNode::spawn(bus, store, StorageOptions::default());
    node.ready().await;
    node
}

/// Waits until `config` is at `head`, or panics after `within`.
pub async fn wait_for_head(config: &Config, head: Hash, within: Duration) {
    let ok = tikaconf_test::wait_until(within, || config.head() == head).await;
    assert!(
        ok,
        "config stuck at height {} ({}), expected {head}",
        config.height(),
        config.head()
    );
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
