//! The Redis link under faults the socket does not report, over a real
//! `redis-server`: a partition that keeps every socket open (the fault proxy's
//! black hole) between a follower, or a storage node, and Redis; and a follower
//! whose loop stops reading while messages keep coming.
//!
//! Each test waits for the event that proves the fault was seen (a reported
//! disconnection, dropped messages) before it checks that the node recovered,
//! so that none can pass without the fault having happened.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tikaconf::bus::{BusHandle, BusOptions, QueueLimit};
use tikaconf::store::RedbStore;
use tikaconf::{Client, RootConfig, StorageNode, StorageOptions, WriteError};
use tikaconf_proto::BusEvent;
use tikaconf_redis::bus::{RedisBus, open_client};
use tikaconf_test::{FaultProxy, wait_until};
use tokio::sync::{mpsc, watch};

/// Generous: the default ping finds a dead link within about 5 s.
const WAIT: Duration = Duration::from_secs(20);

fn addr(redis: &RedisServer) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, redis.port()))
}

/// What the hub read from its bus, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Connected,
    Disconnected,
    Overflowed,
}

/// A client on a Redis bus to `url` made with `options`, whose events pass a
/// tap (what the hub read, by kind) and a gate (closed, the hub reads nothing:
/// a loop that fell behind). Returns the client, the tap, the gate and the
/// bus's queue counters.
async fn tapped_client(
    url: &str,
    options: BusOptions,
    client_options: tikaconf::ClientOptions,
) -> (
    Client,
    mpsc::UnboundedReceiver<Seen>,
    watch::Sender<bool>,
    Arc<tikaconf_redis::bus::QueueStats>,
) {
    let (bus, events) = RedisBus::connect_with(open_client(url, None).unwrap(), options)
        .await
        .expect("connects");
    let stats = bus.queue_stats();
    let (gate, open) = watch::channel(true);
    let (tap, seen) = mpsc::unbounded_channel();
    let gated = futures_util::stream::unfold((events, open), |(mut events, mut open)| async move {
        let _ = open.wait_for(|open| *open).await;
        let event = events.next().await?;
        Some((event, (events, open)))
    })
    .inspect(move |event| {
        let kind = match event {
            BusEvent::Connected => Seen::Connected,
            BusEvent::Disconnected => Seen::Disconnected,
            BusEvent::Overflowed { .. } => Seen::Overflowed,
            BusEvent::Message { .. } => return,
        };
        let _ = tap.send(kind);
    });
    let client = Client::with_bus(BusHandle::from_redis(bus, gated), client_options);
    (client, seen, gate, stats)
}

/// Waits (at most `WAIT`) until the tap shows `kind`.
async fn saw(seen: &mut mpsc::UnboundedReceiver<Seen>, kind: Seen) -> bool {
    let wait = async {
        while let Some(k) = seen.recv().await {
            if k == kind {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(WAIT, wait).await.unwrap_or(false)
}

/// A follower of a quiet root behind a partition: without a ping it would
/// stay "connected" and deaf for as long as the kernel keeps quiet. The ping's
/// deadline finds the dead link, the follower's client reports it
/// (`Disconnected`), reconnects once the partition heals, and catches up on the
/// write committed meanwhile. The follower's periodic re-sync (a publish, whose
/// reply would miss its deadline too) is pushed out of reach: only the ping
/// can find the dead link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_a_black_hole_notices_reconnects_and_catches_up() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#halfopen").unwrap();
    let w = client(&redis).await.follow(root.clone()).await.unwrap();
    let proxy = FaultProxy::start(addr(&redis));
    let mut options = fast_options();
    options.follower.resync_interval = Duration::from_secs(3600);
    let (follower, mut seen, _gate, stats) =
        tapped_client(&proxy.url(), BusOptions::default(), options).await;
    let f = follower.follow(root.hash()).await.unwrap();
    assert!(saw(&mut seen, Seen::Connected).await);

    proxy.blackhole(true);
    let head = w
        .submit(json!([{"op": "add", "path": "/meanwhile", "value": 1}]))
        .await
        .expect("storage, not behind the proxy, stores it");
    assert!(
        saw(&mut seen, Seen::Disconnected).await,
        "the follower's client must notice the half-open link"
    );
    assert!(
        stats.deadlines_missed.load(Ordering::Relaxed) >= 1,
        "found by the ping"
    );

    proxy.heal();
    assert!(saw(&mut seen, Seen::Connected).await, "reconnects");
    wait_for_head(&f, head).await.unwrap();
    assert_eq!(f.document()["meanwhile"], 1);
}

/// A storage node behind a partition: it reports that it no longer listens
/// (`StorageStatus::listening`), reconnects once the partition heals, and
/// stores again. The write published meanwhile reached no storage node, so it
/// has no outcome (`Timeout`); its writer re-syncs to what storage holds, and
/// its next write, on that head, is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_node_behind_a_black_hole_notices_reconnects_and_stores_again() {
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(addr(&redis));
    let dir = tempfile::tempdir().unwrap();
    let bus = BusHandle::redis(&proxy.url()).await.expect("storage bus");
    let node = StorageNode::spawn(
        bus,
        RedbStore::open(dir.path()).unwrap(),
        StorageOptions::default(),
    );
    node.ready().await;
    let root = RootConfig::twitch("#halfopen_storage").unwrap();
    let w = client(&redis).await.follow(root.clone()).await.unwrap();
    let before = w
        .submit(json!([{"op": "add", "path": "/before", "value": 1}]))
        .await
        .expect("stored before the partition");

    proxy.blackhole(true);
    let meanwhile = tokio::spawn({
        let w = w.clone();
        async move {
            w.submit(json!([{"op": "add", "path": "/meanwhile", "value": 1}]))
                .await
        }
    });
    assert!(
        wait_until(WAIT, || !node.status().listening).await,
        "the storage node must notice the half-open link"
    );
    proxy.heal();
    assert!(
        wait_until(WAIT, || node.status().listening).await,
        "reconnects"
    );
    let meanwhile = meanwhile.await.unwrap();
    assert!(
        matches!(meanwhile, Err(WriteError::Timeout { .. })),
        "no storage node heard it: {meanwhile:?}"
    );

    wait_for_head(&w, before).await.unwrap();
    let after = w
        .submit(json!([{"op": "add", "path": "/after", "value": 1}]))
        .await
        .expect("stored after the reconnect");
    let fresh = client(&redis).await.follow(root.hash()).await.unwrap();
    assert_eq!(fresh.head(), after);
    assert!(fresh.document().get("meanwhile").is_none());
}

/// A follower whose loop stops reading while the root's channel floods: its
/// subscribed connection holds at most the bound and drops the rest, including
/// a real write's patch and notice. When the loop reads again it learns that
/// messages were dropped (`Overflowed`), re-syncs, and reaches the head. The
/// periodic re-sync is pushed out of reach, so only the overflow can heal it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_follower_stays_bounded_then_resyncs_to_the_head() {
    const BOUND: usize = 20;
    const JUNK: usize = 200;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#overflow").unwrap();
    let w = client(&redis).await.follow(root.clone()).await.unwrap();

    let bus_options = BusOptions {
        queue: QueueLimit {
            messages: BOUND,
            bytes: 1 << 20,
        },
        ..BusOptions::default()
    };
    let mut options = fast_options();
    options.follower.resync_interval = Duration::from_secs(3600);
    let (follower, mut seen, gate, stats) = tapped_client(&redis.url(), bus_options, options).await;
    let f = follower.follow(root.hash()).await.unwrap();
    let start = f.head();

    // The loop stops reading; junk floods the root channel, then a real write.
    gate.send_replace(false);
    let mut raw = raw(&redis).await;
    for i in 0..JUNK {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(format!("updates:{}", root.hash()))
            .arg(format!("junk {i}"))
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let head = w
        .submit(json!([{"op": "add", "path": "/while_stalled", "value": 1}]))
        .await
        .expect("stored");
    // The patch and its notice are dropped with the junk beyond the bound. (The
    // hub may have been waiting inside the stream when the gate closed: then
    // one junk message was taken before the gate held, and one fewer dropped.)
    let dropped = JUNK + 2 - BOUND - 1;
    assert!(
        wait_until(WAIT, || stats.dropped.load(Ordering::Relaxed) as usize
            >= dropped)
        .await,
        "messages beyond the bound are dropped: {stats:?}"
    );
    assert_eq!(
        stats.max_len.load(Ordering::Relaxed),
        BOUND,
        "never above the bound"
    );
    assert_eq!(f.head(), start, "nothing read while stalled");

    gate.send_replace(true);
    assert!(
        saw(&mut seen, Seen::Overflowed).await,
        "the hub learns of the drop"
    );
    wait_for_head(&f, head).await.unwrap();
    assert!(f.stats().resyncs >= 1);
}

/// A storage node whose loop stops reading while load requests flood in: its
/// subscribed connection holds at most the bound; reading again, it learns of
/// the drop (`Overflowed`), starts afresh as after a reconnect (its
/// subscriptions still in place), and stores the next write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_storage_node_stays_bounded_then_stores_again() {
    const BOUND: usize = 20;
    const FLOOD: usize = 200;
    let redis = RedisServer::start();
    let bus_options = BusOptions {
        queue: QueueLimit {
            messages: BOUND,
            bytes: 1 << 20,
        },
        ..BusOptions::default()
    };
    let (bus, events) =
        RedisBus::connect_with(open_client(&redis.url(), None).unwrap(), bus_options)
            .await
            .unwrap();
    let stats = bus.queue_stats();
    let (gate, open) = watch::channel(true);
    let (tap, mut seen) = mpsc::unbounded_channel();
    let gated = futures_util::stream::unfold((events, open), |(mut events, mut open)| async move {
        let _ = open.wait_for(|open| *open).await;
        let event = events.next().await?;
        Some((event, (events, open)))
    })
    .inspect(move |event| {
        if let BusEvent::Overflowed { .. } = event {
            let _ = tap.send(Seen::Overflowed);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let node = StorageNode::spawn(
        BusHandle::from_redis(bus, gated),
        RedbStore::open(dir.path()).unwrap(),
        StorageOptions::default(),
    );
    node.ready().await;
    let root = RootConfig::twitch("#overflow_storage").unwrap();
    let w = client(&redis).await.follow(root.clone()).await.unwrap();

    gate.send_replace(false);
    let mut raw = raw(&redis).await;
    for _ in 0..FLOOD {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("update_requests")
            .arg(root.hash().to_string())
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    assert!(
        wait_until(WAIT, || stats.dropped.load(Ordering::Relaxed) as usize
            >= FLOOD - BOUND - 1)
        .await,
        "requests beyond the bound are dropped: {stats:?}"
    );
    assert_eq!(
        stats.max_len.load(Ordering::Relaxed),
        BOUND,
        "never above the bound"
    );

    gate.send_replace(true);
    assert!(
        saw(&mut seen, Seen::Overflowed).await,
        "the node learns of the drop"
    );
    let head = w
        .submit(json!([{"op": "add", "path": "/after", "value": 1}]))
        .await
        .expect("stored after the overflow");
    let fresh = client(&redis).await.follow(root.hash()).await.unwrap();
    assert_eq!(fresh.head(), head);
    node.shutdown().await;
}
