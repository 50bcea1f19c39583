//! tikaconf: one configuration cached in every node of a fleet, changed on the fly,
//! everywhere at once.
//!
//! A configuration starts as a root configuration derived from connection info
//! (for Twitch, the channel name). Every change is a patch naming the hash it
//! applies to, published on Redis Pub/Sub; every node applies it to its cached
//! document, and storage nodes persist the result and acknowledge it. Nobody polls
//! a database.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use tikaconf::{Client, RootConfig};
//! use serde_json::json;
//!
//! let client = Client::connect("redis://127.0.0.1:6379").await?;
//! let config = client.follow(RootConfig::twitch("#tikatoo")?).await?;
//! println!("{}", config.document());
//!
//! // A durable change: returns once storage has stored it.
//! config
//!     .submit(json!([{"op": "add", "path": "/commands", "value": {"!hi": "hello"}}]))
//!     .await?;
//!
//! // Or edit the document and let tikaconf compute the patch (retries on conflict).
//! config.update(|doc| {
//!     doc["commands"]["!bye"] = json!("see you");
//!     Ok::<_, std::convert::Infallible>(())
//! }).await?;
//!
//! // The part a handler cares about, typed, read lock-free on the hot path, and
//! // waking only when that part changes.
//! let mut commands = config.at::<std::collections::BTreeMap<String, String>>("/commands")?;
//! println!("!hi: {:?}", commands.load().get("!hi"));
//! while commands.changed().await.is_ok() {
//!     println!("{} commands", commands.load().len());
//! }
//! # Ok(()) }
//! ```
//!
//! The read side: [`Config::typed`] and [`Config::at`] ([`Live`] values),
//! [`Config::watch`] (a `Stream` of [`Event`]s). The write side:
//! [`Config::submit`], [`Config::submit_on`], [`Config::update`],
//! [`Config::update_typed`], with an optional [`Schema`] check
//! ([`ClientOptions::schema`]). Starting without Redis:
//! [`ClientOptions::cache_dir`] and [`ClientOptions::retry_on_initial_connect`].
//! Tests: [`testing`], a whole deployment in the process. For a single process,
//! [`memory::Broker`] is an in-process bus with Redis Pub/Sub's semantics, and
//! [`StorageNode`] runs a storage node over any bus. Metrics: [`metrics`], the
//! series tikaconf reports through the `metrics` facade to the application's
//! exporter.

pub mod bus;
mod cache;
mod change;
mod client;
mod config;
mod connection;
mod error;
mod executor;
mod hub;
mod live;
pub mod memory;
pub mod metrics;
mod root;
#[cfg(feature = "schema")]
mod schema;
mod shared;
pub mod storage_node;
pub mod testing;
pub mod verify;

pub use change::{Change, Changes, Event, Watch};
pub use client::{Client, ClientOptions, ClientStats};
pub use config::{Config, diff};
pub use connection::ConnectionState;
pub use error::{Error, InvalidPatch, WriteError};
pub use live::{Live, LiveClosed, LiveError};
pub use root::{ParseRootError, Root};
#[cfg(feature = "schema")]
pub use schema::{InvalidSchema, Schema, SchemaViolation, Violation};
pub use storage_node::{StorageNode, StorageOptions};
pub use tikaconf_proto as proto;
pub use tikaconf_proto::{Hash, Limits, PublicKey, RootConfig, SigningKey, TrustSet};
pub use tikaconf_store as store;

/// The README's library example, compiled as a doctest so it cannot rot.
///
/// `crates/tikaconf/README.md` is a link to the repository's README, so that the
/// same path works in the workspace and in the published package (which holds
/// the README itself).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
