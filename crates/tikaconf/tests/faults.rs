//! Faults over a real `redis-server`: Redis restarting mid-stream, storage nodes
//! sharing one Redis store with one of them stopped, and the in-process bus.

mod common;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use tikaconf::bus::BusHandle;
use tikaconf::proto::canonical;
use tikaconf::store::{HeadRef, PersistCommit, PersistOutcome, Store, StoreError, StoredHead};
use tikaconf::{Hash, RootConfig, StorageNode, StorageOptions, WriteError};
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
    wait_for_head(&w, head).await.unwrap();
    wait_for_head(&r, head).await.unwrap();
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
    log: Arc<Mutex<Vec<(Hash, PersistOutcome)>>>,
}

impl Watched {
    async fn connect(url: &str) -> Watched {
        Watched {
            inner: Arc::new(RedisStore::connect(url, "tikaconf:").await.unwrap()),
            log: Arc::default(),
        }
    }

    fn log(&self) -> Vec<(Hash, PersistOutcome)> {
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
        batch: Vec<PersistCommit>,
    ) -> impl Future<Output = Result<Vec<PersistOutcome>, StoreError>> + Send {
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

    fn heads(
        &self,
        roots: Vec<Hash>,
    ) -> impl Future<Output = Result<Vec<Option<HeadRef>>, StoreError>> + Send {
        self.inner.heads(roots)
    }

    fn store_id(&self) -> impl Future<Output = Result<String, StoreError>> + Send {
        self.inner.store_id()
    }

    fn claim_answerer(
        &self,
        node: String,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.inner.claim_answerer(node, ttl)
    }

    fn release_answerer(
        &self,
        node: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.release_answerer(node)
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
    let applied_by = |log: &[(Hash, PersistOutcome)], head: Hash| {
        log.iter()
            .filter(|(h, o)| *h == head && *o == PersistOutcome::Applied)
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
                .any(|(h, o)| h == *head && *o != PersistOutcome::Applied)
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
    let fleet = tikaconf::testing::Fleet::start().await;
    let root = RootConfig::twitch("#local").unwrap();
    let ca = fleet.follow(root.clone()).await.unwrap();
    let cb = fleet.connect().follow(root.hash()).await.unwrap();
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
    wait_for_head(&cb, last).await.unwrap();
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
    wait_for_head(&config, head).await.unwrap();
    assert!(b.status().stats.stored_notices > stored_before);
    b.shutdown().await;
}

/// Several storage nodes on one shared store hear every load request; one of
/// them (the holder of the answerer lease) answers each, so a load costs the bus
/// one snapshot whatever the number of storage nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_nodes_of_one_store_answer_each_request_once() {
    use futures_util::StreamExt;
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
    let (a, b) = (spawn_node().await, spawn_node().await);
    assert!(
        a.status().answerer != b.status().answerer,
        "exactly one answerer: {} {}",
        a.status().answerer,
        b.status().answerer
    );
    let root = RootConfig::twitch("#once").unwrap();
    client(&redis).await.follow(root.clone()).await.unwrap();

    // Requests addressed to reply channels of our own, counted per channel.
    let mut listener = redis::Client::open(redis.url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    listener.psubscribe("replies:count-*").await.unwrap();
    let mut messages = listener.on_message();
    let mut publisher = raw(&redis).await;
    const REQUESTS: usize = 20;
    // One at a time, so that each is answered alone, on its own reply channel
    // (requests due together share one answer on the root's channel).
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..REQUESTS {
        let request = format!("@count-{i} {}", root.hash());
        let _: i64 = redis::AsyncCommands::publish(&mut publisher, "update_requests", request)
            .await
            .unwrap();
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("every request is answered")
            .unwrap();
        *answers
            .entry(message.get_channel_name().to_owned())
            .or_default() += 1;
    }
    // Both nodes heard every request; one answered each, the other left it.
    let settled = || {
        let (sa, sb) = (a.status().stats, b.status().stats);
        sa.load_requests > REQUESTS as u64 && sb.load_requests > REQUESTS as u64
    };
    assert!(tikaconf_test::wait_until(Duration::from_secs(10), settled).await);
    let (sa, sb) = (a.status().stats, b.status().stats);
    // (Plus the follower's registering request, answered on its own channel.)
    assert_eq!(
        sa.snapshots_sent + sb.snapshots_sent,
        REQUESTS as u64 + 1,
        "{sa:?} {sb:?}"
    );
    assert_eq!(
        sa.requests_left_to_peers + sb.requests_left_to_peers,
        REQUESTS as u64 + 1,
        "the registering request too was left to the answerer"
    );
    // And no second answer reached any requester.
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(200), messages.next()).await
    {
        *answers
            .entry(message.get_channel_name().to_owned())
            .or_default() += 1;
    }
    assert!(answers.values().all(|n| *n == 1), "{answers:?}");

    // The answerer stops (and gives the lease up): the other answers next.
    let (gone, stays) = if a.status().answerer { (a, b) } else { (b, a) };
    gone.shutdown().await;
    let fresh = client(&redis).await.follow(root.hash()).await.unwrap();
    assert_eq!(fresh.height(), 0);
    assert!(stays.status().answerer);
    stays.shutdown().await;
}

/// Two storage nodes with independent stores (two redb files) on one bus would
/// each acknowledge writes the other never holds: the one that joins second stops
/// with the reason, and the first goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_on_the_bus_stops_its_node() {
    let redis = RedisServer::start();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = storage(&redis, d1.path()).await;
    let bus = BusHandle::redis(&redis.url()).await.unwrap();
    let second = StorageNode::spawn(
        bus,
        tikaconf::store::RedbStore::open(d2.path()).unwrap(),
        StorageOptions::default(),
    );
    let failed = tokio::time::timeout(Duration::from_secs(10), second.failed())
        .await
        .expect("the second store's node stops");
    assert!(
        matches!(
            failed,
            tikaconf::storage_node::NodeFailed::ForeignStore { .. }
        ),
        "{failed:?}"
    );
    assert!(
        failed
            .to_string()
            .contains("independent stores cannot share a bus")
    );
    assert_eq!(first.status().stats.foreign_stores, 1);
    assert!(first.status().failed.is_none() && first.status().listening);
    // The first still serves.
    let root = RootConfig::twitch("#first").unwrap();
    let config = client(&redis).await.follow(root).await.unwrap();
    config
        .submit(json!([{"op": "add", "path": "/ok", "value": true}]))
        .await
        .unwrap();
    first.shutdown().await;
}
