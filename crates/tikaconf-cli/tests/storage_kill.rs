//! A storage node is a separate OS process, killed with SIGKILL in the middle of a
//! stream of writes and restarted on the same data: every write that was reported
//! Committed is still there, nothing is acknowledged while no storage node runs,
//! and every node converges on what storage holds.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tikaconf::proto::FollowerConfig;
use tikaconf::{Client, ClientOptions, RootConfig, WriteError};
use tikaconf_test::RedisServer;

fn options() -> ClientOptions {
    ClientOptions {
        follower: FollowerConfig::quick(Duration::from_secs(1)),
        ..ClientOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_storage_keeps_every_committed_write() {
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let mut storage = Some(start_storage(&redis.url(), &data_dir, &[]));

    let root = RootConfig::twitch("#killed").unwrap();
    let writer = Client::connect_with(&redis.url(), options()).await.unwrap();
    let w = writer.follow(root.clone()).await.unwrap();
    let reader = Client::connect_with(&redis.url(), options()).await.unwrap();
    let r = reader.follow(root.hash()).await.unwrap();

    let mut committed = Vec::new();
    let mut while_down = 0;
    let mut killed = false;
    let mut seq = 0u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Kill after 100 commits, try writes while down, restart, write 100 more.
    while committed.len() < 200 {
        if Instant::now() > deadline {
            panic!(
                "stuck at {} commits, head {} height {}; writer {:?}; reader {:?} at {}",
                committed.len(),
                w.head(),
                w.height(),
                w.stats(),
                r.stats(),
                r.height()
            );
        }
        if committed.len() == 100 && !killed {
            killed = true;
            // `Child::kill` is SIGKILL: no shutdown path runs.
            drop(storage.take());
            for _ in 0..3 {
                seq += 1;
                let ops = json!([{"op": "add", "path": format!("/k{seq}"), "value": seq}]);
                match w.submit(ops).await {
                    Err(WriteError::Timeout { .. }) => while_down += 1,
                    Ok(h) => panic!("write {seq} acknowledged with no storage running: {h}"),
                    Err(e) => panic!("write {seq}: {e}"),
                }
            }
            storage = Some(start_storage(&redis.url(), &data_dir, &[]));
        }
        seq += 1;
        let ops = json!([{"op": "add", "path": format!("/k{seq}"), "value": seq}]);
        match w.submit(ops).await {
            Ok(_) => committed.push(format!("k{seq}")),
            // Right after the restart the writer's node may still be on a head the
            // dead node never stored; it drops back and the next write lands.
            Err(
                WriteError::Timeout { .. } | WriteError::Conflict { .. } | WriteError::HeadMoved,
            ) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("write {seq}: {e}"),
        }
    }
    assert_eq!(while_down, 3);

    let fresh = Client::connect(&redis.url())
        .await
        .unwrap()
        .follow(root.hash())
        .await
        .unwrap();
    let doc = fresh.document();
    for key in &committed {
        assert!(doc.get(key).is_some(), "committed write {key} lost");
    }
    let converged = tikaconf_test::wait_until(Duration::from_secs(10), || {
        w.head() == fresh.head() && r.head() == fresh.head()
    })
    .await;
    assert!(converged, "followers did not converge on storage's head");
    assert_eq!(*r.document(), *doc);
}
