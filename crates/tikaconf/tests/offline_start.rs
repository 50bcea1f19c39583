//! Starting without Redis, on the last known configuration (issue 12, item 5),
//! over a real `redis-server`: a client keeps its heads in a cache directory;
//! with Redis and storage down, a new client that retries its first
//! connection in the background starts at once and follows from the cache;
//! when they come back it connects on its own and storage's heads reach it.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tikaconf::{Client, ClientOptions, ConnectionState, RootConfig, WriteError};
use tikaconf_test::wait_until;

/// Long enough for anything that must happen (a reconnect, a load).
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_starts_from_its_cache_while_redis_is_down_and_catches_up() {
    let mut redis = RedisServer::start();
    let store = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let node = storage(&redis, store.path()).await;
    let root = RootConfig::twitch("#offline").unwrap();
    let options = ClientOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..fast_options()
    };

    // A client with a cache follows and writes; its head reaches the cache.
    let first = Client::connect_with(&redis.url(), options.clone())
        .await
        .unwrap();
    let config = first.follow(root.clone()).await.unwrap();
    let head = config
        .submit(json!([{"op": "add", "path": "/greeting", "value": "hello"}]))
        .await
        .unwrap();
    let written = wait_until(PATIENCE, || {
        cached_head(cache.path(), root.hash()) == Some(head)
    })
    .await;
    assert!(written, "the head never reached the cache");
    assert!(first.stats().cache_writes >= 1);
    assert_eq!(first.connection_state(), ConnectionState::Connected);

    // Storage and Redis go away; the first client notices.
    node.shutdown().await;
    redis.stop();
    let lost = wait_until(PATIENCE, || {
        matches!(
            first.connection_state(),
            ConnectionState::Disconnected { .. }
        )
    })
    .await;
    assert!(lost, "still {:?}", first.connection_state());
    drop((config, first));

    // A new client starts anyway, and follows from the cache.
    let offline = ClientOptions {
        retry_on_initial_connect: true,
        ..options
    };
    let client = Client::connect_with(&redis.url(), offline)
        .await
        .expect("with retry_on_initial_connect, connecting does not wait for Redis");
    let config = client.follow(root.clone()).await.unwrap();
    assert_eq!(client.stats().cache_loads, 1);
    assert_eq!(config.head(), head);
    assert_eq!(config.document()["greeting"], "hello");
    assert!(config.from_cache());
    assert_eq!(client.connection_state(), ConnectionState::Connecting);
    assert_eq!(
        config
            .submit(json!([{"op": "add", "path": "/offline", "value": true}]))
            .await,
        Err(WriteError::Disconnected)
    );

    // Redis and storage come back: the client connects by itself, storage
    // confirms the cached head, and a write made now reaches the client.
    redis.restart();
    let _node = storage(&redis, store.path()).await;
    let connected = wait_until(PATIENCE, || client.connection_state().is_connected()).await;
    assert!(
        connected,
        "never reconnected: {:?}",
        client.connection_state()
    );
    let confirmed = wait_until(PATIENCE, || !config.from_cache()).await;
    assert!(confirmed, "storage never answered for the cached head");
    assert_eq!(config.head(), head);

    let writer = common::client(&redis).await;
    let after = writer
        .follow(root.hash())
        .await
        .unwrap()
        .submit(json!([{"op": "add", "path": "/after", "value": 1}]))
        .await
        .unwrap();
    wait_for_head(&config, after).await.unwrap();
    assert_eq!(config.document()["after"], 1);
    assert_eq!(config.document()["greeting"], "hello");

    // The reconnected client writes again, and caches what it follows.
    let own = config
        .submit(json!([{"op": "add", "path": "/back", "value": true}]))
        .await
        .unwrap();
    let cached = wait_until(PATIENCE, || {
        cached_head(cache.path(), root.hash()) == Some(own)
    })
    .await;
    assert!(cached, "the cache never caught up with the new head");
}
