//! Faults over a real `redis-server`: Redis restarting mid-stream, storage nodes
//! sharing one Redis store with one of them stopped, and the in-process bus.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tikaconf::bus::BusHandle;
use tikaconf::memory::Broker;
use tikaconf::proto::canonical;
use tikaconf::store::MemoryStore;
use tikaconf::{Client, RootConfig, StorageNode, StorageOptions, WriteError};
use tikaconf_redis::RedisStore;

/// Redis restarts (losing every subscription and whatever was in flight) while a
/// writer keeps writing: every node reconnects, re-subscribes, re-syncs, and ends
/// on storage's head; no committed write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_stream() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#restart").unwrap();
    let writer = client(&redis).await;
    let w = writer.follow(root.clone()).await.unwrap();
    let reader = client(&redis).await;
    let r = reader.follow(root.clone()).await.unwrap();

    let mut committed = Vec::new();
    let mut uncertain = 0;
    for i in 0..200u64 {
        if i == 80 {
            redis.restart();
        }
        let key = format!("/k{i}");
        match w
            .submit(json!([{"op": "add", "path": key, "value": i}]))
            .await
        {
            Ok(_) => committed.push(format!("k{i}")),
            // While Redis is down: not connected, or no outcome in time.
            Err(WriteError::Disconnected | WriteError::Timeout { .. }) => {
                uncertain += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(WriteError::Conflict { .. } | WriteError::HeadMoved) => {}
            Err(e) => panic!("write {i}: {e}"),
        }
    }
    eprintln!("committed {}, uncertain {uncertain}", committed.len());
    assert!(committed.len() > 150, "only {} committed", committed.len());

    // Everyone converges on storage's head.
    let fresh = client(&redis).await.follow(root.hash()).await.unwrap();
    let head = fresh.head();
    wait_for_head(&w, head, Duration::from_secs(10)).await;
    wait_for_head(&r, head, Duration::from_secs(10)).await;
    let doc = fresh.document();
    for k in &committed {
        assert!(
            doc.get(k).is_some(),
            "committed {k} lost ({uncertain} uncertain)"
        );
    }
    assert_eq!(canonical::to_vec(&r.document()), canonical::to_vec(&doc));
}

/// Two storage nodes share one Redis store; exactly one of them stores each patch,
/// both answer, and when one stops the other carries on alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_storage_nodes_share_the_redis_store() {
    let redis = RedisServer::start();
    let spawn_node = || async {
        let bus = BusHandle::redis(&redis.url()).await.unwrap();
        let store = RedisStore::connect(&redis.url(), "tikaconf:")
            .await
            .unwrap();
        let node = StorageNode::spawn(bus, store, StorageOptions::default());
        node.ready().await;
        node
    };
    let mut first = Some(spawn_node().await);
    let second = spawn_node().await;
    let root = RootConfig::twitch("#shared").unwrap();
    let client = client(&redis).await;
    let config = client.follow(root.clone()).await.unwrap();

    for i in 0..100u64 {
        if i == 50 {
            first.take().unwrap().shutdown().await;
        }
        config
            .submit(json!([{"op": "add", "path": format!("/k{i}"), "value": i}]))
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    let stats = second.status().stats;
    assert!(
        stats.applied >= 100,
        "the survivor saw every patch: {stats:?}"
    );

    // The store holds the last head, and a new node on it answers from it.
    let third = spawn_node().await;
    let fresh = tikaconf::Client::connect(&redis.url())
        .await
        .unwrap()
        .follow(root.hash())
        .await
        .unwrap();
    assert_eq!(fresh.head(), config.head());
    assert_eq!(fresh.height(), 100);
    third.shutdown().await;
    second.shutdown().await;
}

/// The in-process bus has the same semantics: the same flow runs on it.
#[tokio::test]
async fn in_process_bus_and_memory_store() {
    let broker = Broker::new();
    let node = StorageNode::spawn(
        broker.connect(),
        MemoryStore::new(),
        StorageOptions::default(),
    );
    node.ready().await;
    let a = Client::with_bus(broker.connect(), fast_options());
    let b = Client::with_bus(broker.connect(), fast_options());
    let root = RootConfig::twitch("#local").unwrap();
    let ca = a.follow(root.clone()).await.unwrap();
    let cb = b.follow(root.hash()).await.unwrap();
    let mut changes = cb.changes();

    let head = ca
        .update(|doc| {
            doc["timers"] = json!({"ad": 600});
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .unwrap();
    let change = tokio::time::timeout(Duration::from_secs(5), changes.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.head, head);
    assert_eq!(change.document["timers"]["ad"], 600);
    let ops = change.patch.expect("came as a patch").ops.len();
    assert_eq!(ops, 1);

    // Racing `update`s both land, one after a rebase.
    let (x, y) = tokio::join!(
        ca.update(|d| {
            d["x"] = json!(1);
            Ok::<_, std::convert::Infallible>(())
        }),
        cb.update(|d| {
            d["y"] = json!(2);
            Ok::<_, std::convert::Infallible>(())
        }),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_ne!(x, y);
    let last = if ca.height() > 0 { ca.head() } else { x };
    wait_for_head(&cb, last, Duration::from_secs(5)).await;
    let doc = cb.document();
    assert_eq!((doc["x"].clone(), doc["y"].clone()), (json!(1), json!(2)));
}

/// Issue 11's scenario: two storage nodes share one Redis store; B, which holds
/// the root at height 3, is cut off (its connections reset, new ones refused)
/// while A acknowledges ten writes; B comes back, then A dies. B must serve the
/// committed head (height 13), not the height-3 head it had cached, and
/// acknowledge the next write on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_node_cut_off_from_a_shared_store_serves_the_stored_head() {
    let redis = RedisServer::start();
    let proxy = tikaconf_test::FaultProxy::start(([127, 0, 0, 1], redis.port()).into());
    let spawn_node = |url: String| async move {
        let bus = BusHandle::redis(&url).await.unwrap();
        let store = RedisStore::connect(&url, "tikaconf:").await.unwrap();
        let node = StorageNode::spawn(bus, store, StorageOptions::default());
        node.ready().await;
        node
    };
    // B alone stores the first three writes, so that it holds height 3, settled.
    let b = spawn_node(proxy.url()).await;
    let root = RootConfig::twitch("#cutoff").unwrap();
    let writer = client(&redis).await;
    let config = writer.follow(root.clone()).await.unwrap();
    let write = |i: u64| {
        let config = &config;
        async move {
            config
                .submit(json!([{"op": "add", "path": format!("/k{i}"), "value": i}]))
                .await
                .unwrap_or_else(|e| panic!("write {i}: {e}"))
        }
    };
    for i in 0..3 {
        write(i).await;
    }
    // Three patches applied and acknowledged (and the registration announced).
    let stats = b.status().stats;
    assert_eq!((stats.applied, stats.stored_notices), (3, 4), "{stats:?}");
    let a = spawn_node(redis.url()).await;

    // Cut B off: every connection through the proxy reset, new ones refused.
    proxy.drop_new(true);
    proxy.reset_all();
    assert!(
        tikaconf_test::wait_until(Duration::from_secs(10), || !b.status().listening).await,
        "B noticed it was cut off"
    );
    for i in 3..13 {
        write(i).await;
    }
    assert_eq!(config.height(), 13);
    assert_eq!(b.status().stats.applied, 3, "B missed the ten writes");
    assert!(a.status().stats.stored_notices >= 10, "A stored them");

    // B comes back; then A dies.
    proxy.drop_new(false);
    assert!(
        tikaconf_test::wait_until(Duration::from_secs(20), || b.status().listening).await,
        "B reconnected"
    );
    a.shutdown().await;

    // A fresh node loads the root: B answers with the committed head.
    let fresh = client(&redis).await.follow(root.hash()).await.unwrap();
    assert_eq!(
        (fresh.height(), fresh.head()),
        (13, config.head()),
        "B served a stale head: {:?}",
        b.status().stats
    );
    // And B acknowledges the next write, made on that head.
    let stored_before = b.status().stats.stored_notices;
    let head = fresh
        .submit(json!([{"op": "add", "path": "/after", "value": true}]))
        .await
        .expect("the write on the real head is committed by B");
    assert_eq!(fresh.height(), 14);
    wait_for_head(&config, head, Duration::from_secs(10)).await;
    assert!(b.status().stats.stored_notices > stored_before);
    b.shutdown().await;
}
