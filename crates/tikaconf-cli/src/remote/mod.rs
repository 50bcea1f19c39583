//! Where the commands that touch a deployment send their reads and writes:
//! a fleet's Redis (as a follower, through the library) or the HTTP API of
//! `tikaconf serve` (`--server URL`).
//!
//! Why one type over both: every verb (`get`, `set`, `patch`, `rm`, `watch`,
//! `ls`, `edit`, `import`, `export`) is written once against [`Remote`] and
//! [`Target`], so that a verb means the same, prints the same and fails with
//! the same exit code whichever way it travels. The transports differ only in
//! here: [`redis`] follows the root with a [`tikaconf::Client`], [`http`]
//! speaks to the API (`docs/API.md`). An enum rather than a trait object:
//! there are two transports, both known here, and the methods are async.
//!
//! The history verbs (`log`, `show`, `diff`, `rollback`) are methods of
//! [`http::HttpTarget`] alone: history lives in a storage node's store, which
//! only the API exposes, so `commands::history` refuses them without
//! `--server` before connecting (exit 2), as `ls` is refused.

pub mod http;
pub mod redis;
pub mod sse;

use std::sync::Arc;

use serde_json::Value;
use tikaconf::{Hash, Root};

use crate::cli::Global;
use crate::failure::{Code, Failure};

/// A connection to a deployment, over the transport the global options pick:
/// `--server URL` (or `TIKACONF_SERVER`) for HTTP, otherwise Redis.
#[derive(Debug)]
pub enum Remote {
    /// A fleet's Redis, followed through the library (boxed: the client's
    /// options are large, and the enum moves).
    Redis(Box<redis::Redis>),
    /// The HTTP API of `tikaconf serve`.
    Http(http::Http),
}

impl Remote {
    /// Connects as the global options say. Over Redis this checks that Redis
    /// answers (exit 6 at once, not after the library's retries); over HTTP
    /// nothing is sent until the first request.
    pub async fn connect(global: &Global) -> Result<Remote, Failure> {
        match &global.server {
            Some(url) => Ok(Remote::Http(http::Http::new(global, url)?)),
            None => Ok(Remote::Redis(Box::new(
                redis::Redis::connect(global).await?,
            ))),
        }
    }

    /// Opens one configuration: loads it over Redis (following it), resolves
    /// it to its root hash over HTTP. A ROOT given as connection info is
    /// registered with storage if it is new, over either transport.
    pub async fn open(&self, root: Root) -> Result<Target, Failure> {
        match self {
            Remote::Redis(redis) => Ok(Target::Redis(redis.open(root).await?)),
            Remote::Http(http) => Ok(Target::Http(http.open(root).await?)),
        }
    }

    /// One page of the roots storage holds (see [`Listing`]).
    pub async fn list(&self, query: &ListQuery) -> Result<RootPage, Failure> {
        match self {
            Remote::Redis(_) => Err(Failure::bad_input(anyhow::anyhow!(
                "`ls` needs --server URL (or TIKACONF_SERVER): listing roots reads a storage \
                 node's store, which only the HTTP API of `tikaconf serve` exposes (a redb \
                 store is a file on the storage node's machine; Redis carries no request for it)"
            ))),
            Remote::Http(http) => http.list(query).await,
        }
    }
}

/// One open configuration.
#[derive(Debug)]
pub enum Target {
    Redis(redis::RedisTarget),
    Http(http::HttpTarget),
}

impl Target {
    /// The root hash.
    pub fn root(&self) -> Hash {
        match self {
            Target::Redis(t) => t.root(),
            Target::Http(t) => t.root(),
        }
    }

    /// The current document with the head and height it belongs to, read at
    /// one moment.
    pub async fn read(&self) -> Result<Snapshot, Failure> {
        match self {
            Target::Redis(t) => t.read().await,
            Target::Http(t) => t.read().await,
        }
    }

    /// Publishes `ops` (a non-empty RFC 6902 patch) and waits until storage
    /// has stored it. With `if_head`, only on that head: otherwise nothing is
    /// written and the failure (exit 4) names the current head. Without it,
    /// on the current head, re-read if this side's view moved before
    /// publishing (nothing was published then).
    pub async fn write(&self, ops: Value, if_head: Option<Hash>) -> Result<Written, Failure> {
        match self {
            Target::Redis(t) => t.write(ops, if_head).await,
            Target::Http(t) => t.write(ops, if_head).await,
        }
    }

    /// The current state, then every change, until the caller stops reading.
    pub async fn watch(&self) -> Result<Watch, Failure> {
        match self {
            Target::Redis(t) => Ok(Watch::Redis(t.watch())),
            Target::Http(t) => Ok(Watch::Http(Box::new(t.watch().await?))),
        }
    }
}

/// A document and the version it is.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub head: Hash,
    pub height: u64,
    pub document: Arc<Value>,
}

/// A committed write: the new head.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub head: Hash,
    pub height: u64,
}

/// What `ls` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Roots per page (1 to 1000); the server's default when `None`.
    pub limit: Option<usize>,
    /// The previous page's `next`.
    pub cursor: Option<String>,
    /// Only roots of this platform.
    pub platform: Option<String>,
}

/// A page of roots, as `GET /v1/roots` answers.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RootPage {
    pub roots: Vec<Listing>,
    /// The cursor of the next page; `None` on the last one.
    pub next: Option<String>,
}

/// One root in a listing.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Listing {
    pub root: String,
    pub head: String,
    pub height: u64,
    /// Its connection info, when the store still has it.
    pub connection: Option<Value>,
}

/// One state of a watched configuration.
#[derive(Debug, Clone)]
pub struct Update {
    pub head: Hash,
    pub height: u64,
    /// The document at `head`.
    pub document: Arc<Value>,
    /// The RFC 6902 ops that led here from the previous update; `None` when
    /// there is no single patch to show (the first update, a re-sync).
    pub ops: Option<Value>,
    /// Patches storage never stored were dropped to get here (Redis only:
    /// the event stream does not say, so always false over HTTP).
    pub dropped: bool,
}

/// What a watch yields.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// A new state.
    Update(Update),
    /// This many changes were skipped (the reader was too slow); the next
    /// update is current.
    Lagged(u64),
    /// Something for the person watching (a reconnection), not a change.
    Note(String),
}

/// A watch over either transport.
#[derive(Debug)]
pub enum Watch {
    Redis(redis::RedisWatch),
    /// Boxed: it holds the open response and the parser's buffers.
    Http(Box<http::HttpWatch>),
}

impl Watch {
    /// The next event; `None` when the watch ended (the configuration was
    /// unfollowed).
    pub async fn next(&mut self) -> Option<Result<WatchEvent, Failure>> {
        match self {
            Watch::Redis(w) => w.next().await.map(Ok),
            Watch::Http(w) => w.next().await,
        }
    }
}

/// The failure of a write refused because `--if-head` is no longer the head.
pub fn stale(expected: Hash, current: Hash, height: Option<u64>) -> Failure {
    let height = height.map(|h| format!(" (height {h})")).unwrap_or_default();
    Failure::new(
        Code::Conflict,
        anyhow::anyhow!(
            "not written: the current head is {current}{height}, not --if-head {expected}"
        ),
    )
}
