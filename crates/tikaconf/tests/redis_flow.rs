//! The configuration system end to end over a real `redis-server`: loading,
//! registering, writing, racing writers, the hop gap, many roots on one
//! connection.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tikaconf::proto::{Patch, canonical};
use tikaconf::{Error, RootConfig, WriteError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_first_write_on_a_new_root() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _storage = storage(&redis, dir.path()).await;
    let client = client(&redis).await;

    let root = RootConfig::twitch("#brand_new").unwrap();
    let config = client
        .follow(root.clone())
        .await
        .expect("registers and loads");
    assert_eq!(config.head(), root.hash());
    assert_eq!(config.height(), 0);
    assert_eq!(*config.document(), *root.value());

    let head = config
        .submit(json!([{"op": "add", "path": "/commands", "value": {"!hi": "hello"}}]))
        .await
        .expect("first write commits");
    assert_eq!(config.head(), head, "the writer's own follower applied it");
    assert_eq!(config.height(), 1);
    assert_eq!(config.document()["commands"]["!hi"], "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_of_an_existing_root_by_hash() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#tikatoo").unwrap();

    let writer = client(&redis).await;
    let config = writer.follow(root.clone()).await.unwrap();
    for i in 0..5 {
        config
            .submit(json!([{"op": "add", "path": format!("/k{i}"), "value": i}]))
            .await
            .unwrap();
    }

    let reader = client(&redis).await;
    let loaded = reader.follow(root.hash()).await.expect("loads by hash");
    assert_eq!(loaded.head(), config.head());
    assert_eq!(loaded.height(), 5);
    assert_eq!(
        canonical::to_vec(&loaded.document()),
        canonical::to_vec(&config.document())
    );
    #[derive(serde::Deserialize)]
    struct Typed {
        k3: u32,
    }
    assert_eq!(loaded.get::<Typed>().unwrap().k3, 3);

    let unknown = RootConfig::twitch("#nobody_here").unwrap().hash();
    match reader.follow(unknown).await {
        Err(Error::UnknownRoot(h)) => assert_eq!(h, unknown),
        other => panic!("expected UnknownRoot, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_one_commits_one_conflicts_all_on_the_winner() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#race").unwrap();
    let (a, b) = (client(&redis).await, client(&redis).await);
    let ca = a.follow(root.clone()).await.unwrap();
    let cb = b.follow(root.clone()).await.unwrap();

    let mut raced = 0;
    for round in 0..20 {
        let base = ca.head();
        wait_for_head(&cb, base).await.unwrap();
        let (ra, rb) = tokio::join!(
            ca.submit_on(
                base,
                json!([{"op": "add", "path": "/who", "value": format!("a{round}")}])
            ),
            cb.submit_on(
                base,
                json!([{"op": "add", "path": "/who", "value": format!("b{round}")}])
            ),
        );
        let winner = match (ra, rb) {
            (Ok(h), Err(WriteError::Conflict { winner, .. }))
            | (Err(WriteError::Conflict { winner, .. }), Ok(h)) => {
                assert_eq!(winner, h, "the loser is told the winner");
                raced += 1;
                h
            }
            // One writer's node had already applied the other's patch: no race.
            (Ok(h), Err(WriteError::HeadMoved)) | (Err(WriteError::HeadMoved), Ok(h)) => h,
            other => panic!("round {round}: expected one commit and one conflict, got {other:?}"),
        };
        wait_for_head(&ca, winner).await.unwrap();
        wait_for_head(&cb, winner).await.unwrap();
        assert_eq!(ca.document(), cb.document());
    }
    assert!(raced >= 5, "only {raced} of 20 rounds raced");
}

/// Every patch is published the moment the previous one is, with nobody waiting:
/// followers keep hopping to channels on which the next patch may already have
/// been published. Storage hears all of them (`updates:*`), and its `stored`
/// notices on the root channel make every follower catch up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_gap_back_to_back_chain_of_1000() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#hopgap").unwrap();
    let mut followers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let c = client(&redis).await;
        followers.push(c.follow(root.clone()).await.unwrap());
        clients.push(c);
    }

    let mut chain = Vec::new();
    let (mut parent, mut height) = (root.hash(), 0);
    for i in 0..1000u64 {
        let ops = json!([{"op": "add", "path": format!("/n{}", i % 50), "value": i}]);
        let patch = Patch::build(root.hash(), parent, height, ops, None).unwrap();
        parent = patch.hash;
        height = patch.height;
        chain.push(patch);
    }
    let mut raw = raw(&redis).await;
    let mut pipe = redis::pipe();
    for p in &chain {
        pipe.publish(format!("updates:{}", p.parent), p.encoded.as_ref())
            .ignore();
    }
    let () = pipe.query_async(&mut raw).await.unwrap();

    for f in &followers {
        wait_for_head(f, parent).await.unwrap();
        assert_eq!(f.height(), 1000);
    }
    // Storage holds the same document: a fresh follower loads it.
    let fresh = client(&redis).await.follow(root.hash()).await.unwrap();
    assert_eq!(fresh.head(), parent);
    assert_eq!(
        canonical::to_vec(&fresh.document()),
        canonical::to_vec(&followers[0].document())
    );
}

/// Sequential writes, each published as soon as the previous one committed, 1,000
/// times: the followers that do not write must end on the last head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_gap_sequential_submits_of_1000() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#hopgap2").unwrap();
    let writer = client(&redis).await;
    let w = writer.follow(root.clone()).await.unwrap();
    let others = client(&redis).await;
    let o1 = others.follow(root.clone()).await.unwrap();
    let third = client(&redis).await;
    let o2 = third.follow(root.hash()).await.unwrap();

    let mut last = w.head();
    for i in 0..1000u64 {
        let op = if i == 0 { "add" } else { "replace" };
        last = w
            .submit(json!([{"op": op, "path": "/seq", "value": i}]))
            .await
            .unwrap();
    }
    wait_for_head(&o1, last).await.unwrap();
    wait_for_head(&o2, last).await.unwrap();
    assert_eq!(o2.document()["seq"], 999);
}

/// One client following 1,000 roots holds one subscribed connection, with every
/// channel on it, and one connection for publishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_roots_over_one_pubsub_connection() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _storage = storage(&redis, dir.path()).await;
    let mut raw = raw(&redis).await;
    let before: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();

    let client = client(&redis).await;
    let roots: Vec<RootConfig> = (0..1000)
        .map(|i| RootConfig::twitch(&format!("#chan_{i}")).unwrap())
        .collect();
    let follows = roots.iter().map(|r| client.follow(r.clone()));
    let configs = futures_util::future::try_join_all(follows).await.unwrap();
    assert_eq!(configs.len(), 1000);

    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();
    let new: Vec<&str> = list
        .lines()
        .filter(|l| !before.contains(l.split(' ').next().unwrap_or("-")))
        .collect();
    let field = |line: &str, name: &str| -> u64 {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let subscribed: Vec<&&str> = new.iter().filter(|l| field(l, "sub") > 0).collect();
    assert_eq!(subscribed.len(), 1, "one subscribed connection: {new:#?}");
    assert_eq!(
        field(subscribed[0], "sub"),
        1001,
        "every root channel on it, and the client's one reply channel"
    );
    assert_eq!(
        new.len(),
        2,
        "one subscribed and one publishing connection: {new:#?}"
    );

    // And it still works: a write on the last root reaches its follower.
    let last = configs.last().unwrap();
    last.submit(json!([{"op": "add", "path": "/x", "value": 1}]))
        .await
        .unwrap();
}

/// Garbage on a live head's channel, on the root channel and on `update_requests`
/// is ignored and counted by every node; the next valid patch still applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_ignored_counted_and_harmless() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#garbage").unwrap();
    let client = client(&redis).await;
    let config = client.follow(root.clone()).await.unwrap();
    let head = config
        .submit(json!([{"op": "add", "path": "/a", "value": 1}]))
        .await
        .unwrap();

    let mut raw = raw(&redis).await;
    let on_head = format!("updates:{head}");
    let on_root = format!("updates:{}", root.hash());
    let wrong_parent = Patch::build(root.hash(), root.hash(), 0, json!([]), None).unwrap();
    let failing = Patch::build(
        root.hash(),
        head,
        1,
        json!([{"op": "remove", "path": "/missing"}]),
        None,
    )
    .unwrap();
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        (&on_head, b"\xff\xfe not utf-8".to_vec()),
        (&on_head, b"{\"type\":\"patch\"".to_vec()),
        (&on_head, br#"{"type":"patch","type":"patch"}"#.to_vec()),
        (&on_head, wrong_parent.encoded.to_vec()),
        (&on_head, failing.encoded.to_vec()),
        (
            &on_root,
            br#"{"type":"stored","root":"nothex","head":"x","height":1}"#.to_vec(),
        ),
        (&on_root, br#"{"type":"mystery"}"#.to_vec()),
        ("update_requests", b"[1,2,3]".to_vec()),
        ("update_requests", vec![b'['; 10_000]),
    ];
    for (channel, payload) in &garbage {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(*channel)
            .arg(payload.as_slice())
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let next = config
        .submit(json!([{"op": "add", "path": "/b", "value": 2}]))
        .await
        .expect("the next valid patch applies");
    assert_eq!(config.head(), next);
    assert_eq!(config.document()["b"], 2);

    let stats = config.stats();
    let ignored: u64 = stats.ignored.values().sum();
    assert_eq!(
        ignored, 7,
        "every bad message on the node's channels: {stats:?}"
    );
    assert_eq!(stats.ignored.get("ops_failed"), Some(&1));
    assert_eq!(stats.ignored.get("channel_mismatch"), Some(&1));
    let storage_ignored: u64 = storage.status().stats.ignored.values().sum();
    assert_eq!(storage_ignored, 9, "{:?}", storage.status().stats);
}

/// A node that loads alone gets its answer on its client's reply channel: the
/// other followers of the root, listening on `updates:<root>`, never hear the
/// document again. Two loads that coalesce are answered once, on the root's
/// channel, which is where a client that could not use its reply channel looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_load_is_answered_on_the_clients_reply_channel() {
    use futures_util::StreamExt;

    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#private_loads").unwrap();
    // No periodic re-syncs: one coalescing with the reader's load would rightly
    // be answered on the root channel.
    let mut quiet = fast_options();
    quiet.follower.resync_interval = Duration::from_secs(600);
    let url = redis.url();
    let connect = || tikaconf::Client::connect_with(&url, quiet.clone());
    let writer = connect().await.unwrap();
    let w = writer.follow(root.clone()).await.unwrap();
    w.submit(json!([{"op": "add", "path": "/doc", "value": "x".repeat(10_000)}]))
        .await
        .unwrap();

    // What every follower of the root hears.
    let mut listener = redis::Client::open(redis.url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    listener
        .subscribe(format!("updates:{}", root.hash()))
        .await
        .unwrap();
    let private_before = storage.status().stats.private_answers;
    let reader = connect().await.unwrap();
    let r = reader.follow(root.hash()).await.expect("loads");
    assert_eq!(r.head(), w.head());
    assert_eq!(r.document()["doc"], w.document()["doc"]);
    assert!(storage.status().stats.private_answers > private_before);

    // A write's `stored` notice follows on the same channel, from the same
    // storage connection: had the answer gone to the root channel, it would
    // have come first.
    let head = w
        .submit(json!([{"op": "add", "path": "/after", "value": 1}]))
        .await
        .unwrap();
    let mut heard = Vec::new();
    let mut messages = listener.on_message();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("the stored notice arrives")
            .expect("listener open");
        let payload: String = message.get_payload().unwrap();
        let is_notice = payload.contains(r#""type":"stored""#) && payload.contains(&head.to_hex());
        heard.push(payload);
        if is_notice {
            break;
        }
    }
    assert!(
        heard.iter().all(|m| !m.contains(r#""type":"snapshot""#)),
        "the root channel carried a snapshot: {heard:?}"
    );
}

/// A reader of `Config::changes()` that falls more than the stream's buffer
/// (1,024 changes) behind skips ahead; the skipped changes are counted in the
/// stats, so that a reader that must see every change (the torture suite's
/// record) can tell that its record has a gap. On cdbe9c4 the skip was only a
/// `warn` log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reader_that_falls_behind_is_counted_in_the_stats() {
    const WRITES: u64 = 1100;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _storage = storage(&redis, dir.path()).await;
    let client = client(&redis).await;
    let config = client
        .follow(RootConfig::twitch("#slow_reader").unwrap())
        .await
        .unwrap();
    let mut changes = config.changes();
    for i in 0..WRITES {
        config
            .submit(json!([{"op": "add", "path": format!("/n{}", i % 50), "value": i}]))
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    assert_eq!(config.height(), WRITES);
    assert_eq!(config.stats().changes_skipped, 0, "nothing read yet");
    // Every write is one change of the writer's own configuration; read them
    // all, up to the last head.
    let mut received = 0u64;
    loop {
        let change = tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("a change within 5 s")
            .expect("still followed");
        received += 1;
        if change.height == WRITES {
            break;
        }
    }
    let skipped = config.stats().changes_skipped;
    assert!(skipped > 0, "the reader fell {WRITES} changes behind");
    assert_eq!(
        received + skipped,
        WRITES,
        "received {received}, skipped {skipped}"
    );
}
