//! Issue 14, protocol v1.3: a follower that re-syncs names its head, and storage
//! answers with what it lacks (the patches it missed, or a `stored` notice when
//! it is current) instead of the whole document; a follower behind the window
//! storage keeps, or a peer that names no head, still gets the snapshot. Real
//! `redis-server`, a real storage node on redb, the follower cut off through a
//! fault proxy.

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tikaconf::bus::BusHandle;
use tikaconf::proto::{Limits, LoadRequest, Message, ReplyToken, RootConfig};
use tikaconf::store::{RedbStore, Retention, StoreOptions};
use tikaconf::{Client, Config, ConnectionState, StorageNode, StorageOptions};

use common::{RedisServer, client, fast_options, wait_for_head};

/// A storage node on redb in `dir` with history `retention`.
async fn storage_keeping(
    redis: &RedisServer,
    dir: &std::path::Path,
    retention: Retention,
) -> StorageNode {
    let bus = BusHandle::redis(&redis.url()).await.expect("storage bus");
    let options = StoreOptions::default().with_retention(retention);
    let store = RedbStore::open_with(dir, options).expect("redb opens");
    let node = StorageNode::spawn(bus, store, StorageOptions::default());
    node.ready().await;
    node
}

/// A writer on `root`, with a document of about 20 KB (so that a few small
/// patches weigh far less than a snapshot), and a reader that follows it
/// through a fault proxy.
async fn writer_and_cut_off_reader(
    redis: &RedisServer,
    proxy: &tikaconf_test::FaultProxy,
    channel: &str,
) -> (Config, Client, Config) {
    let root = RootConfig::twitch(channel).unwrap();
    let writer = client(redis).await.follow(root.clone()).await.unwrap();
    writer
        .submit(json!([{"op": "add", "path": "/big", "value": "x".repeat(20_000)}]))
        .await
        .unwrap();
    let reader_client = Client::connect_with(&proxy.url(), fast_options())
        .await
        .unwrap();
    let reader = reader_client.follow(root.hash()).await.unwrap();
    wait_for_head(&reader, writer.head()).await.unwrap();
    // Cut the reader off: its connection reset, new ones refused.
    proxy.drop_new(true);
    proxy.reset_all();
    assert!(
        tikaconf_test::wait_until(Duration::from_secs(10), || {
            matches!(
                reader_client.connection_state(),
                ConnectionState::Disconnected { .. }
            )
        })
        .await,
        "the reader noticed it was cut off"
    );
    (writer, reader_client, reader)
}

async fn write_five(writer: &Config) {
    for i in 0..5 {
        writer
            .submit(json!([{"op": "add", "path": format!("/k{i}"), "value": i}]))
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_five_patches_behind_is_sent_those_five() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = storage_keeping(&redis, dir.path(), Retention::default()).await;
    let proxy = tikaconf_test::FaultProxy::start(([127, 0, 0, 1], redis.port()).into());
    let (writer, _reader_client, reader) =
        writer_and_cut_off_reader(&redis, &proxy, "#catchup").await;
    let before = reader.height();
    write_five(&writer).await;
    assert_eq!(writer.height(), before + 5);
    let stats = storage.status().stats;
    let (snapshots, batches) = (stats.snapshots_sent, stats.patches_answers);

    // Back: the reader's re-sync names its head, and the five patches come.
    let mut changes = reader.changes();
    proxy.drop_new(false);
    wait_for_head(&reader, writer.head()).await.unwrap();
    assert_eq!(reader.document(), writer.document());
    let stats = storage.status().stats;
    assert_eq!(stats.patches_answers, batches + 1, "{stats:?}");
    assert_eq!(
        stats.snapshots_sent, snapshots,
        "no snapshot was sent: {stats:?}"
    );
    assert_eq!(reader.stats().caught_up, 1, "{:?}", reader.stats());
    // One change per patch, as if they had been heard live.
    for i in 0..5 {
        let change = tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("a change")
            .expect("still followed");
        assert_eq!(change.height, before + 1 + i);
    }

    // Current, the next periodic re-sync (every 2 s here) costs a notice.
    let notices = storage.status().stats.current_answers;
    assert!(
        tikaconf_test::wait_until(Duration::from_secs(10), || {
            storage.status().stats.current_answers > notices
        })
        .await,
        "a current follower's re-sync was answered with a notice"
    );
    assert_eq!(storage.status().stats.snapshots_sent, snapshots);
    storage.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_retained_window_gets_the_snapshot() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let three = Retention::Last(NonZeroU32::new(3).unwrap());
    let storage = storage_keeping(&redis, dir.path(), three).await;
    let proxy = tikaconf_test::FaultProxy::start(([127, 0, 0, 1], redis.port()).into());
    let (writer, _reader_client, reader) =
        writer_and_cut_off_reader(&redis, &proxy, "#behind").await;
    write_five(&writer).await;
    let stats = storage.status().stats;
    let snapshots = stats.snapshots_sent;

    proxy.drop_new(false);
    wait_for_head(&reader, writer.head()).await.unwrap();
    assert_eq!(reader.document(), writer.document());
    let stats = storage.status().stats;
    assert_eq!(stats.patches_answers, 0, "{stats:?}");
    assert!(stats.snapshots_sent > snapshots, "{stats:?}");
    assert_eq!(reader.stats().caught_up, 0);
    storage.shutdown().await;
}

/// A peer of v1.2 or earlier names no head: a plain request by hash is
/// answered with the snapshot on the root's channel, an addressed one on its
/// reply channel, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_peer_that_sends_only_the_root_hash_gets_a_snapshot() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = storage_keeping(&redis, dir.path(), Retention::default()).await;
    let root = RootConfig::twitch("#old_peer").unwrap();
    let writer = client(&redis).await.follow(root.clone()).await.unwrap();
    write_five(&writer).await;

    let token = ReplyToken::new("old_peer").unwrap();
    let mut listener = redis::Client::open(redis.url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    let updates = format!("updates:{}", root.hash());
    let replies = format!("replies:{}", token.as_str());
    listener.subscribe(&updates).await.unwrap();
    listener.subscribe(&replies).await.unwrap();
    let mut publisher = common::raw(&redis).await;
    let request = LoadRequest::ByHash(root.hash());
    for (bytes, on) in [
        (request.encode(), &updates),
        (request.encode_addressed(Some(&token), None), &replies),
    ] {
        let _: () =
            redis::AsyncCommands::publish(&mut publisher, "update_requests", bytes.to_vec())
                .await
                .unwrap();
        let mut messages = listener.on_message();
        let snapshot = loop {
            let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("an answer within 10 s")
                .expect("listener open");
            let payload: Vec<u8> = message.get_payload().unwrap();
            if let Ok(Message::Snapshot(s)) = Message::decode(&payload, &Limits::default()) {
                assert_eq!(message.get_channel_name(), on.as_str());
                break s;
            }
        };
        assert_eq!((snapshot.head, snapshot.height), (writer.head(), 6 - 1));
        assert_eq!(snapshot.config, *writer.document());
    }
    let stats = storage.status().stats;
    assert_eq!(
        (stats.patches_answers, stats.current_answers),
        (0, 0),
        "{stats:?}"
    );
    storage.shutdown().await;
}
