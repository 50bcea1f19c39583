//! The bad-input phase: every message of the reject corpus published on the
//! channels it is meant for, against a live follower and storage node.
//!
//! The corpus (`testdata/wire/rejects/rejects.jsonl`) is also replayed, record by
//! record and label by label, by the test suite on every CI run. This phase puts
//! the figures in the report from the suite's own run: how many messages were
//! published, how many each node ignored and counted, whether any state moved, and
//! whether the next valid patch still went through.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tikaconf::bus::BusHandle;
use tikaconf::proto::{Channels, canonical};
use tikaconf::store::MemoryStore;
use tikaconf::{Client, Hash, RootConfig, StorageNode, StorageOptions};
use tikaconf_test::RedisServer;
use tikaconf_test::rejects::{self, corpus};

/// What the phase saw.
#[derive(Debug, Clone)]
pub struct BadInputResult {
    /// Corpus records, and messages published (a record may go on several channels).
    pub records: usize,
    pub published: usize,
    /// Messages the follower heard that it had to ignore (by label) or count as
    /// stale, and how many it did.
    pub follower_expected: u64,
    pub follower_counted: u64,
    /// The same for the storage node (ignored, stale, or for an unknown root).
    pub storage_expected: u64,
    pub storage_counted: u64,
    /// Head, height and canonical document unchanged, at the follower and in storage.
    pub unchanged: bool,
    /// The next valid patch was committed and applied.
    pub next_write_ok: bool,
}

impl BadInputResult {
    pub fn passed(&self) -> bool {
        self.follower_counted == self.follower_expected
            && self.storage_counted == self.storage_expected
            && self.unchanged
            && self.next_write_ok
    }
}

fn total(m: &BTreeMap<&'static str, u64>) -> u64 {
    m.values().sum()
}

pub async fn run() -> Result<BadInputResult> {
    let redis = RedisServer::start();
    let bus = BusHandle::redis(&redis.url()).await?;
    let storage = StorageNode::spawn(bus, MemoryStore::new(), StorageOptions::default());
    storage.ready().await;
    let client = Client::connect(&redis.url()).await?;
    let root = RootConfig::twitch("#bad_input")?;
    let config = client.follow(root.clone()).await?;
    let prev = config
        .submit(json!([{"op": "add", "path": "/commands", "value": {"!hi": "hello"}}]))
        .await?;
    let head = config
        .submit(json!([{"op": "add", "path": "/timers", "value": []}]))
        .await?;
    let live = rejects::Live {
        root: root.hash().to_hex(),
        root_config: String::from_utf8(root.to_canonical())?,
        head: head.to_hex(),
        prev: prev.to_hex(),
        height: 2,
        other_root: RootConfig::twitch("#someone_else")?.hash().to_hex(),
        random: Hash::of_canonical_bytes(b"a head on no chain").to_hex(),
        updates: |h| format!("updates:{h}"),
        update_requests: Channels::new(None).update_requests(),
    };
    let doc_before = canonical::to_vec(&config.document());
    let f0 = config.stats();
    let s0 = storage.status().stats;

    let (head_channel, root_channel) = (live.channel("head"), live.channel("root"));
    let (mut follower_expected, mut storage_expected) = (0u64, 0u64);
    let mut raw = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let records = corpus();
    let mut published = 0;
    for rec in &records {
        let payload = live.substitute(&rec.payload);
        for kind in &rec.channels {
            let channel = live.channel(kind);
            let _: i64 = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload.as_slice())
                .query_async(&mut raw)
                .await
                .with_context(|| format!("publishing {} on {channel}", rec.name))?;
            published += 1;
            let counts = |expect: &Option<String>| {
                expect
                    .as_deref()
                    .is_some_and(|e| !matches!(e, "none" | "resync"))
            };
            if (channel == head_channel || channel == root_channel) && counts(&rec.follower) {
                follower_expected += 1;
            }
            let storage_hears = channel.starts_with("updates:") || channel == "update_requests";
            if storage_hears && counts(&rec.storage) {
                storage_expected += 1;
            }
        }
    }

    let follower_counted = |s: &tikaconf::proto::follower::FollowerStats| {
        total(&s.ignored) + s.stale - total(&f0.ignored) - f0.stale
    };
    let storage_counted = |s: &tikaconf::proto::storage::StorageStats| {
        total(&s.ignored) + s.stale + s.unknown_root
            - total(&s0.ignored)
            - s0.stale
            - s0.unknown_root
    };
    // Wait (bounded) until both nodes got through everything.
    for _ in 0..300 {
        let f = config.stats();
        let s = storage.status().stats;
        if follower_counted(&f) >= follower_expected && storage_counted(&s) >= storage_expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let f = config.stats();
    let s = storage.status().stats;
    let fresh = Client::connect(&redis.url())
        .await?
        .follow(root.hash())
        .await?;
    let unchanged = config.head() == head
        && config.height() == 2
        && canonical::to_vec(&config.document()) == doc_before
        && fresh.head() == head
        && canonical::to_vec(&fresh.document()) == doc_before
        && f.applied == f0.applied
        && s.applied == s0.applied;
    let next_write_ok = match config
        .submit(json!([{"op": "add", "path": "/ok", "value": true}]))
        .await
    {
        Ok(next) => config.head() == next,
        Err(e) => bail!("the next valid patch failed after the bad inputs: {e}"),
    };
    storage.shutdown().await;
    Ok(BadInputResult {
        records: records.len(),
        published,
        follower_expected,
        follower_counted: follower_counted(&f),
        storage_expected,
        storage_counted: storage_counted(&s),
        unchanged,
        next_write_ok,
    })
}
