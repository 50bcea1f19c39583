//! Faults over a real `redis-server`: Redis restarting mid-stream, storage nodes
//! sharing one Redis store with one of them stopped, and the in-process bus.

mod common;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use tikaconf::bus::BusHandle;
use tikaconf::memory::Broker;
use tikaconf::proto::canonical;
use tikaconf::store::{Commit, CommitOutcome, MemoryStore, Store, StoreError, StoredHead};
use tikaconf::{Client, Hash, RootConfig, StorageNode, StorageOptions, WriteError};
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

/// A `RedisStore` that records every compare-and-set it was asked for: the head
/// it would store and what the store answered. It changes nothing: it is the
/// real store, watched.
#[derive(Clone)]
struct Watched {
    inner: Arc<RedisStore>,
    log: Arc<Mutex<Vec<(Hash, CommitOutcome)>>>,
}

impl Watched {
    async fn connect(url: &str) -> Watched {
        Watched {
            inner: Arc::new(RedisStore::connect(url, "tikaconf:").await.unwrap()),
            log: Arc::default(),
        }
    }

    fn log(&self) -> Vec<(Hash, CommitOutcome)> {
        self.log.lock().unwrap().clone()
    }
}

impl Store for Watched {
    fn load(
        &self,
        root: Hash,
    ) -> impl Future<Output = Result<Option<StoredHead>, StoreError>> + Send {
        self.inner.load(root)
    }

    fn register(
        &self,
        head: StoredHead,
    ) -> impl Future<Output = Result<StoredHead, StoreError>> + Send {
        self.inner.register(head)
    }

    fn commit(
        &self,
        batch: Vec<Commit>,
    ) -> impl Future<Output = Result<Vec<CommitOutcome>, StoreError>> + Send {
        let heads: Vec<Hash> = batch.iter().map(|c| c.new.head).collect();
        let (inner, log) = (self.inner.clone(), self.log.clone());
        async move {
            let outcomes = inner.commit(batch).await?;
            log.lock()
                .unwrap()
                .extend(heads.into_iter().zip(outcomes.iter().cloned()));
            Ok(outcomes)
        }
    }

    fn root_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.inner.root_count()
    }
}

/// Two storage nodes share one Redis store; each patch is stored (its
/// compare-and-set applied) by exactly one of them, the other's attempt finding
/// it already stored (or the store moved on); and when one stops the other
/// carries on alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_storage_nodes_share_the_redis_store() {
    let redis = RedisServer::start();
    let spawn_node = |store: Watched| {
        let url = redis.url();
        async move {
            let bus = BusHandle::redis(&url).await.unwrap();
            let node = StorageNode::spawn(bus, store, StorageOptions::default());
            node.ready().await;
            node
        }
    };
    let (a, b) = (
        Watched::connect(&redis.url()).await,
        Watched::connect(&redis.url()).await,
    );
    let mut first = Some(spawn_node(a.clone()).await);
    let second = spawn_node(b.clone()).await;
    let root = RootConfig::twitch("#shared").unwrap();
    let client = client(&redis).await;
    let config = client.follow(root.clone()).await.unwrap();

    let mut heads = Vec::new();
    for i in 0..100u64 {
        if i == 50 {
            first.take().unwrap().shutdown().await;
        }
        heads.push(
            config
                .submit(json!([{"op": "add", "path": format!("/k{i}"), "value": i}]))
                .await
                .unwrap_or_else(|e| panic!("write {i}: {e}")),
        );
    }
    let stats = second.status().stats;
    assert!(
        stats.applied >= 100,
        "the survivor saw every patch: {stats:?}"
    );

    // Exactly one node stored each patch.
    let (a_log, b_log) = (a.log(), b.log());
    let applied_by = |log: &[(Hash, CommitOutcome)], head: Hash| {
        log.iter()
            .filter(|(h, o)| *h == head && *o == CommitOutcome::Applied)
            .count()
    };
    for (i, head) in heads.iter().enumerate() {
        let (by_a, by_b) = (applied_by(&a_log, *head), applied_by(&b_log, *head));
        assert_eq!(
            by_a + by_b,
            1,
            "write {i} ({head}) applied {by_a} times by the first node, {by_b} by the second"
        );
        if i >= 50 {
            assert_eq!(by_b, 1, "write {i}: only the second node was running");
        }
    }
    // And while both ran they both tried: the node that did not store a patch
    // found it already stored (or the store past it). Without that the rule
    // above would hold for a node that never commits at all.
    let lost_races = heads[..50]
        .iter()
        .filter(|head| {
            a_log
                .iter()
                .chain(&b_log)
                .any(|(h, o)| h == *head && *o != CommitOutcome::Applied)
        })
        .count();
    let stored_by_a = heads[..50]
        .iter()
        .filter(|h| applied_by(&a_log, **h) == 1)
        .count();
    eprintln!(
        "first 50 writes: {stored_by_a} stored by the first node, {} by the second, {lost_races} attempted by both",
        50 - stored_by_a
    );
    assert!(lost_races > 0, "the two nodes never raced on a patch");

    // The store holds the last head, and a new node on it answers from it.
    let third = spawn_node(Watched::connect(&redis.url()).await).await;
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
