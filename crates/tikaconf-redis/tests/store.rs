//! The store contract, run against a real redis-server, plus what only a shared
//! store must get right: two storage nodes (two connections) racing one commit, and
//! surviving a Redis restart.

use std::sync::Arc;

use tikaconf_redis::store::{DEFAULT_PREFIX, RedisStore};
use tikaconf_store::conformance::{self, genesis, next, step, unique_root};
use tikaconf_store::{PersistOutcome, Store};
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

/// History under each retention, and across reconnects that change it (a
/// storage node restarted with another `--retention`).
#[tokio::test]
async fn history_and_retention() {
    let server = RedisServer::start();
    let url = server.url();
    conformance::run_history(|retention| {
        let url = url.clone();
        async move {
            RedisStore::connect(&url, "history:")
                .await
                .expect("connect")
                .with_retention(retention)
        }
    })
    .await;
}

/// The history's keys, as PROTOCOL.md gives them: one list per root of
/// `"<height> <patch>"` entries, trimmed to the window, none under `none`.
#[tokio::test]
async fn history_key_layout() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), "hl:")
        .await
        .expect("connect")
        .with_retention("2".parse().expect("retention"));
    let g = genesis(unique_root("history-layout"));
    store.register(g.clone()).await.expect("register");
    let mut heads = vec![g.clone()];
    for i in 0..3 {
        let new = next(&heads[i], "x");
        store
            .commit(vec![step(&heads[i], &new)])
            .await
            .expect("commit");
        heads.push(new);
    }
    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let key = format!("hl:log:{}", g.root);
    let entries: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("lrange");
    let expected: Vec<Vec<u8>> = heads[2..]
        .iter()
        .map(|h| {
            [
                format!("{} ", h.height).as_bytes(),
                &conformance::patch_of(h),
            ]
            .concat()
        })
        .collect();
    assert_eq!(entries, expected);
    // Under `none` the list is not touched.
    let none = store.with_retention(tikaconf_store::Retention::None);
    let h4 = next(&heads[3], "x");
    none.commit(vec![step(&heads[3], &h4)])
        .await
        .expect("commit");
    let len: u64 = redis::cmd("LLEN")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("llen");
    assert_eq!(len, 2);
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
    assert_eq!(outcomes, [PersistOutcome::Applied]);

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

/// A batch is all or nothing: a commit that fails half-way (here a `GET` that
/// raises WRONGTYPE on the batch's second root, whose head key holds a hash)
/// leaves nothing of the batch written, not even the first commit, which on its
/// own applies.
#[tokio::test]
async fn a_batch_that_fails_half_way_writes_nothing() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), "ab:")
        .await
        .expect("connect");
    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let g = genesis(unique_root("all-or-nothing"));
    store.register(g.clone()).await.expect("register");
    let h1 = next(&g, "a");
    let h2 = next(&h1, "b");
    // A second root whose head key is not a string.
    let bad = genesis(unique_root("wrong-type"));
    let bad_key = format!("ab:head:{}", bad.root);
    let () = redis::cmd("HSET")
        .arg(&bad_key)
        .arg("field")
        .arg("value")
        .query_async(&mut conn)
        .await
        .expect("hset");
    let keys_before = all_keys(&mut conn).await;
    let failed = store
        .commit(vec![
            step(&g, &h1),
            step(&h1, &h2),
            step(&bad, &next(&bad, "x")),
        ])
        .await;
    assert!(
        failed.is_err(),
        "the WRONGTYPE must fail the batch: {failed:?}"
    );
    // Nothing of the batch was written: the root is still at its genesis, with
    // its snapshot, and no new snapshot key exists.
    assert_eq!(store.load(g.root).await.expect("load"), Some(g.clone()));
    assert_eq!(all_keys(&mut conn).await, keys_before);
    // The same two commits without the bad one do apply: the test above
    // refused writes that would otherwise have happened.
    let outcomes = store
        .commit(vec![step(&g, &h1), step(&h1, &h2)])
        .await
        .expect("commit");
    assert_eq!(outcomes, [PersistOutcome::Applied, PersistOutcome::Applied]);
    assert_eq!(store.load(g.root).await.expect("load"), Some(h2));
}

/// Every key on the server with its value (strings) or type (anything else).
/// The same for the history: a root whose log key holds a string fails the
/// batch in the script's first phase (its `LLEN`), before any write, so the
/// root committed before it in the batch is not moved either.
#[tokio::test]
async fn a_history_key_of_another_type_fails_the_batch_before_any_write() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), "ht:")
        .await
        .expect("connect");
    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let good = genesis(unique_root("history-good"));
    let bad = genesis(unique_root("history-bad"));
    store.register(good.clone()).await.expect("register");
    store.register(bad.clone()).await.expect("register");
    let () = redis::cmd("SET")
        .arg(format!("ht:log:{}", bad.root))
        .arg("not a list")
        .query_async(&mut conn)
        .await
        .expect("set");
    let keys_before = all_keys(&mut conn).await;
    let failed = store
        .commit(vec![
            step(&good, &next(&good, "a")),
            step(&bad, &next(&bad, "a")),
        ])
        .await;
    assert!(failed.is_err(), "WRONGTYPE must fail the batch: {failed:?}");
    assert_eq!(all_keys(&mut conn).await, keys_before);
    assert_eq!(store.load(good.root).await.expect("load"), Some(good));
}

async fn all_keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<(String, String)> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(conn)
        .await
        .expect("keys");
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(conn)
            .await
            .expect("type");
        let value = if kind == "string" {
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&key)
                .query_async(conn)
                .await
                .expect("get");
            String::from_utf8_lossy(&v).into_owned()
        } else {
            kind
        };
        out.push((key, value));
    }
    out
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

/// A store written before the `roots` set: its roots are not listed until
/// `index_roots` runs, which lists them all (with the registration of a root
/// still at height 0; a root that had moved on has none left), says so in
/// `layout`, and does nothing the second time.
#[tokio::test]
async fn roots_registered_before_the_index_are_listed_after_index_roots() {
    let server = RedisServer::start();
    let prefix = "old:";
    let store = RedisStore::connect(&server.url(), prefix)
        .await
        .expect("connect");
    let fresh = genesis(unique_root("old-fresh"));
    let moved = genesis(unique_root("old-moved"));
    let moved1 = next(&moved, "1");
    store.register(fresh.clone()).await.expect("register");
    store.register(moved.clone()).await.expect("register");
    store
        .commit(vec![step(&moved, &moved1)])
        .await
        .expect("commit");
    // What the store looked like before the index: no set, no registrations.
    let mut conn = redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let () = redis::cmd("DEL")
        .arg(format!("{prefix}roots"))
        .arg(format!("{prefix}reg:{}", fresh.root))
        .arg(format!("{prefix}reg:{}", moved.root))
        .query_async(&mut conn)
        .await
        .expect("del");
    assert!(store.list_roots(None, 10).await.expect("list").is_empty());

    assert_eq!(store.index_roots().await.expect("index"), 2);
    let listed = store.list_roots(None, 10).await.expect("list");
    assert_eq!(listed.len(), 2);
    let find = |root| listed.iter().find(|l| l.root == root).expect("listed");
    assert_eq!(
        find(fresh.root).registration.as_ref(),
        Some(&fresh.snapshot)
    );
    assert_eq!(find(moved.root).registration, None);
    assert_eq!(find(moved.root).head.head, moved1.head);
    let layout: String = redis::cmd("GET")
        .arg(format!("{prefix}layout"))
        .query_async(&mut conn)
        .await
        .expect("layout");
    assert_eq!(layout, "2");
    assert_eq!(store.index_roots().await.expect("again"), 0);
}
