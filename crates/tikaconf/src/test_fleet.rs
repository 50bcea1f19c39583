//! The in-process fleet the crate's unit tests run on: a bus, a storage node
//! and a client with fast timers. (Issue 12's public test kit,
//! `tikaconf::testing`, is meant to grow from it.)

use std::time::Duration;

use tikaconf_proto::{FollowerConfig, RootConfig};
use tikaconf_store::MemoryStore;

use crate::memory::Broker;
use crate::{Client, ClientOptions, Config, StorageNode, StorageOptions};

/// How long a test waits for something that must happen.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);

/// A bus, a storage node, and a client following one new root (kept alive
/// with the returned values).
pub(crate) async fn fleet(channel: &str) -> (Broker, StorageNode, Client, Config) {
    let broker = Broker::new();
    let node = StorageNode::spawn(
        broker.connect(),
        MemoryStore::new(),
        StorageOptions::default(),
    );
    node.ready().await;
    let client = Client::with_bus(broker.connect(), fast_options());
    let config = client
        .follow(RootConfig::twitch(channel).unwrap())
        .await
        .unwrap();
    (broker, node, client, config)
}

/// [`fast_options`] with a head cache in `dir`.
pub(crate) fn cached_options(dir: &std::path::Path) -> ClientOptions {
    ClientOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..fast_options()
    }
}

/// Client options with the follower's quick timers.
pub(crate) fn fast_options() -> ClientOptions {
    ClientOptions {
        follower: FollowerConfig {
            jitter_seed: rand::random(),
            ..FollowerConfig::quick(PATIENCE)
        },
        load_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}
