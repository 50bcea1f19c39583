//! The store contract, run against a real redis-server, plus what only a shared
//! store must get right: two storage nodes (two connections) racing one commit, and
//! surviving a Redis restart.

use std::sync::Arc;

use tikaconf_redis::store::{DEFAULT_PREFIX, RedisStore};
use tikaconf_store::conformance::{self, genesis, next, step, unique_root};
use tikaconf_store::{CommitOutcome, Store};
use tikaconf_test::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_default_prefix() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), DEFAULT_PREFIX)
        .await
        .expect("connect");
    conformance::run_all(store).await;
}

/// Prefixes keep deployments apart, even prefixes with glob characters in them
/// (root_count scans by pattern).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_namespaced_prefixes_are_isolated() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url(), "tikaconf:prod[1]*:")
        .await
        .expect("connect a");
    let b = RedisStore::connect(&server.url(), "tikaconf:prod:")
        .await
        .expect("connect b");
    conformance::run_all(a.clone()).await;
    assert_eq!(b.root_count().await.expect("count"), 0);
    let g = genesis(unique_root("isolated"));
    b.register(g.clone()).await.expect("register");
    assert_eq!(a.load(g.root).await.expect("load"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_racing_one_commit() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url(), DEFAULT_PREFIX)
        .await
        .expect("connect a");
    let b = RedisStore::connect(&server.url(), DEFAULT_PREFIX)
        .await
        .expect("connect b");
    conformance::racing_commits(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test]
async fn key_layout_and_old_snapshot_deleted() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), "ns:")
        .await
        .expect("connect");
    let g = genesis(unique_root("layout"));
    let h1 = next(&g, "a");
    store.register(g.clone()).await.expect("register");
    let outcomes = store.commit(vec![step(&g, &h1)]).await.expect("commit");
    assert_eq!(outcomes, [CommitOutcome::Applied]);

    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let head: String = redis::cmd("GET")
        .arg(format!("ns:head:{}", g.root))
        .query_async(&mut conn)
        .await
        .expect("get head");
    assert_eq!(head, format!("{} 1", h1.head));
    let snap: Vec<u8> = redis::cmd("GET")
        .arg(format!("ns:snap:{}", h1.head))
        .query_async(&mut conn)
        .await
        .expect("get snap");
    assert_eq!(snap, h1.snapshot.as_ref());
    let old: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("ns:snap:{}", g.head))
        .query_async(&mut conn)
        .await
        .expect("get old snap");
    assert_eq!(old, None, "the old head's snapshot is deleted");
}

/// A storage node keeps its store across a Redis restart: with persistence the
/// data is still there, and the connection comes back by itself.
#[tokio::test]
async fn survives_redis_restart() {
    let mut server = RedisServer::builder().persistence(true).start();
    let store = RedisStore::connect(&server.url(), DEFAULT_PREFIX)
        .await
        .expect("connect");
    let g = genesis(unique_root("restart"));
    let h1 = next(&g, "a");
    store.register(g.clone()).await.expect("register");
    store.commit(vec![step(&g, &h1)]).await.expect("commit");

    server.kill();
    assert!(store.load(g.root).await.is_err(), "the server is down");
    server.restart();

    let mut loaded = None;
    for _ in 0..50 {
        if let Ok(head) = store.load(g.root).await {
            loaded = Some(head);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(loaded, Some(Some(h1)));
}
