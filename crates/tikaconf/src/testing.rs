//! A test kit for code that uses tikaconf: a whole deployment in one process,
//! configurations built from a fixed document, and helpers that wait for a
//! head.
//!
//! Testing a bot's handler against tikaconf takes a bus, a storage node, and a
//! client whose timers are short enough that healing shows within a test; a
//! [`Fleet`] is those three, on the in-process [`Broker`] and a
//! [`MemoryStore`], started in one line. It behaves like a deployment over
//! Redis (the in-process bus has Pub/Sub's semantics, the storage node is the
//! real one), so a test written against it exercises the same code paths:
//! conflicts, rebases, late joiners.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use serde_json::json;
//! use tikaconf::testing::{self, Fleet};
//!
//! let fleet = Fleet::start().await;
//! // Two bots following one configuration that starts as a fixed document.
//! let a = fleet.config(json!({"commands": {"!hi": "hello"}})).await;
//! let b = fleet.connect().follow(a.root()).await.unwrap();
//!
//! let head = a
//!     .submit(json!([{"op": "add", "path": "/commands/!bye", "value": "bye"}]))
//!     .await
//!     .unwrap();
//! testing::wait_for_head(&b, head).await.unwrap();
//! assert_eq!(b.document()["commands"]["!bye"], "bye");
//! # }
//! ```
//!
//! Everything here is ordinary public API built from [`Broker`],
//! [`StorageNode`] and [`Client`]; the module exists so that every user does
//! not wire them by hand (the project's own tests use it too).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tikaconf_proto::{FollowerConfig, Hash, RootConfig};
use tikaconf_store::MemoryStore;

use crate::memory::Broker;
use crate::{Client, ClientOptions, Config, Error, Root, StorageNode, StorageOptions};

/// How long the helpers here wait for something that must happen before they
/// give up: far longer than anything takes on an idle machine (a thousand
/// patches cross a debug build over Redis in a few seconds), so that a slow,
/// shared CI machine does not fail a correct test. Only a failing test waits
/// this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Client options with the follower's quick timers (a re-sync every 2 s, a
/// lost request retried after 0.5 s, a write's outcome awaited 5 s; see
/// [`FollowerConfig::quick`]), a random jitter seed, and 10 s to load, so
/// that healing shows within a test.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        follower: FollowerConfig {
            jitter_seed: rand::random(),
            ..FollowerConfig::quick(Duration::from_secs(5))
        },
        load_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

/// A deployment in one process: an in-process bus, a storage node over a
/// memory store, and a client with [`fast_options`]. Dropping it stops the
/// storage node; configurations followed through it keep their last document.
#[derive(Debug)]
pub struct Fleet {
    broker: Broker,
    storage: StorageNode,
    client: Client,
}

impl Fleet {
    /// Starts the bus, the storage node (returning once it answers) and the
    /// client.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start() -> Fleet {
        let broker = Broker::new();
        let storage = StorageNode::spawn(
            broker.connect(),
            MemoryStore::new(),
            StorageOptions::default(),
        );
        storage.ready().await;
        let client = Client::with_bus(broker.connect(), fast_options());
        Fleet {
            broker,
            storage,
            client,
        }
    }

    /// The fleet's own client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bus, for connecting anything else (another storage node, a client
    /// with other options).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The storage node, for its status.
    pub fn storage(&self) -> &StorageNode {
        &self.storage
    }

    /// Another node of the fleet: a new client on the same bus with
    /// [`fast_options`], as a second bot process would be.
    pub fn connect(&self) -> Client {
        Client::with_bus(self.broker.connect(), fast_options())
    }

    /// Follows `root` with the fleet's client (registering it if it is new).
    pub async fn follow(&self, root: impl Into<Root>) -> Result<Config, Error> {
        self.client.follow(root).await
    }

    /// A configuration of its own whose document is `document`: a new root
    /// (connection info `{"platform": "testing", ...}`, unique in the process),
    /// followed and changed to `document` by one committed patch, so its head
    /// is a real hash that storage knows and other nodes can follow.
    ///
    /// # Panics
    ///
    /// If the storage node does not commit the patch within [`PATIENCE`], or
    /// `document` is larger than the deployment's limits.
    pub async fn config(&self, document: Value) -> Config {
        let config = self
            .follow(fresh_root())
            .await
            .expect("the fleet's storage node answers");
        if *config.document() != document {
            config
                .submit(json!([{"op": "replace", "path": "", "value": document}]))
                .await
                .expect("the fleet's storage node commits the document");
        }
        config
    }

    /// Stops the storage node and waits for it to end.
    pub async fn shutdown(self) {
        self.storage.shutdown().await;
    }
}

/// A configuration whose document is `document`, on a [`Fleet`] of its own
/// that lives as long as the configuration is followed: for a unit test that
/// needs a [`Config`] and nothing else. Writes to it work as on any fleet.
///
/// # Panics
///
/// As [`Fleet::config`].
pub async fn config(document: Value) -> Config {
    let fleet = Fleet::start().await;
    let config = fleet.config(document).await;
    // The fleet lives until the root is unfollowed (the last clone of the
    // returned Config dropped), which closes its changes.
    let mut changes = config.changes();
    tokio::spawn(async move {
        while changes.next().await.is_some() {}
        drop(fleet);
    });
    config
}

/// Waits until `config` is at `head`.
pub async fn wait_for_head(config: &Config, head: Hash) -> Result<(), WaitTimedOut> {
    wait_for(config, |c| c.head() == head)
        .await
        .map_err(|e| WaitTimedOut {
            awaited: format!("head {head}"),
            ..e
        })
}

/// Waits until `condition` holds of `config` (checked at once, and on every
/// change).
pub async fn wait_for(
    config: &Config,
    condition: impl FnMut(&Config) -> bool,
) -> Result<(), WaitTimedOut> {
    wait_within(config, condition, PATIENCE).await
}

async fn wait_within(
    config: &Config,
    mut condition: impl FnMut(&Config) -> bool,
    patience: Duration,
) -> Result<(), WaitTimedOut> {
    let mut changes = config.changes();
    let reached = async {
        loop {
            if condition(config) {
                return true;
            }
            if changes.next().await.is_none() {
                return condition(config);
            }
        }
    };
    match tokio::time::timeout(patience, reached).await {
        Ok(true) => Ok(()),
        _ => Err(WaitTimedOut {
            awaited: "a condition".into(),
            patience,
            head: config.head(),
            height: config.height(),
        }),
    }
}

/// What a wait of this module gave up on, and where the configuration was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("waited {patience:?} for {awaited}; the configuration is at {head} (height {height})")]
pub struct WaitTimedOut {
    /// What was awaited, for the test's failure message.
    pub awaited: String,
    /// How long.
    pub patience: Duration,
    /// The configuration's head when the wait gave up.
    pub head: Hash,
    /// Its height then.
    pub height: u64,
}

/// A root no other test in this process uses.
fn fresh_root() -> RootConfig {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    RootConfig::from_connection(json!({
        "platform": "testing",
        "name": format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)),
    }))
    .expect("a valid connection info")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fixed_document_is_a_committed_head_another_node_can_follow() {
        let fleet = Fleet::start().await;
        let config = fleet.config(json!({"timers": {"ad": 600}})).await;
        assert_eq!(config.height(), 1, "one patch from the root");
        assert_eq!(config.document()["timers"]["ad"], 600);
        let other = fleet.connect().follow(config.root()).await.unwrap();
        assert_eq!(other.head(), config.head(), "storage has it");
        assert_eq!(fleet.storage().status().stats.applied, 1);
    }

    #[tokio::test]
    async fn a_standalone_config_accepts_writes_and_its_fleet_outlives_the_call() {
        let config = config(json!({"n": 1})).await;
        let head = config
            .submit(json!([{"op": "replace", "path": "/n", "value": 2}]))
            .await
            .expect("the detached fleet's storage commits");
        assert_eq!(config.head(), head);
        assert_eq!(config.document()["n"], 2);
    }

    #[tokio::test]
    async fn waiting_for_a_head_that_never_comes_times_out_with_where_it_is() {
        let config = config(json!({})).await;
        let never = Hash::of_value(&json!("never"));
        let err = wait_within(&config, |c| c.head() == never, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err.head, config.head());
        assert!(
            err.to_string().contains(&config.head().to_string()),
            "{err}"
        );
    }
}
