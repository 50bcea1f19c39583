//! The Redis transport: the CLI is a follower of the root like any bot, through
//! the library's [`Client`], and writes with [`Config::submit_on_with_meta`] (author, time, message).

use futures_util::StreamExt;
use serde_json::Value;
use tikaconf::proto::{Limits, Patch, json};
use tikaconf::{Change, Client, Config, Event, Hash, Root, WriteError};

use super::{Snapshot, Update, WatchEvent, Written, stale};
use crate::cli::Global;
use crate::failure::Failure;
use crate::session;

/// How many times a write without `--if-head` re-reads the head when this
/// node's view moved between reading it and publishing (as the server does).
const REBASES: usize = 16;

/// A connected client of the fleet's Redis.
#[derive(Debug)]
pub struct Redis {
    client: Client,
    /// `meta.author` and `meta.message` of this command's writes.
    author: String,
    message: Option<String>,
}

impl Redis {
    /// Connects, failing fast (exit 6) when Redis cannot be reached.
    pub async fn connect(global: &Global) -> Result<Redis, Failure> {
        let options = session::client_options(global)?;
        session::check_reachable(global).await?;
        let client = Client::connect_with(&global.redis, options)
            .await
            .map_err(|e| {
                Failure::from(e).context(format!("Redis at {}", session::redact(&global.redis)))
            })?;
        Ok(Redis {
            client,
            author: session::author(global),
            message: global.message.clone(),
        })
    }

    /// Follows `root`: returns once its current document is loaded.
    pub async fn open(&self, root: Root) -> Result<RedisTarget, Failure> {
        Ok(RedisTarget {
            config: self.client.follow(root).await?,
            author: self.author.clone(),
            message: self.message.clone(),
        })
    }
}

/// A followed configuration.
#[derive(Debug)]
pub struct RedisTarget {
    config: Config,
    author: String,
    message: Option<String>,
}

impl RedisTarget {
    pub fn root(&self) -> Hash {
        self.config.root()
    }

    /// The first item of the library's watch: document, head and height of
    /// one moment, even if a change lands meanwhile.
    pub async fn read(&self) -> Result<Snapshot, Failure> {
        match self.config.watch().next().await {
            Some(Event::Change(change)) => Ok(Snapshot {
                head: change.head,
                height: change.height,
                document: change.document,
            }),
            _ => Err(Failure::other(anyhow::anyhow!(
                "the configuration was unfollowed while reading it"
            ))),
        }
    }

    pub async fn write(&self, ops: Value, if_head: Option<Hash>) -> Result<Written, Failure> {
        for _ in 0..REBASES {
            let base = self.read().await?;
            if let Some(expected) = if_head
                && expected != base.head
            {
                return Err(stale(expected, base.head, Some(base.height)));
            }
            // The time is each attempt's: the patch says when it was made.
            let meta = tikaconf_server::meta::meta(&self.author, self.message.as_deref());
            match self
                .config
                .submit_on_with_meta(base.head, ops.clone(), Some(meta))
                .await
            {
                Ok(head) => {
                    return Ok(Written {
                        head,
                        height: base.height + 1,
                    });
                }
                // Our view moved between the read and the publish; nothing
                // was published.
                Err(WriteError::HeadMoved) => match if_head {
                    Some(expected) => {
                        let now = self.read().await?;
                        return Err(stale(expected, now.head, Some(now.height)));
                    }
                    None => continue,
                },
                Err(e) => return Err(write_failure(e)),
            }
        }
        Err(Failure::from(WriteError::HeadMoved)
            .context("the configuration kept changing while this write was prepared; retry"))
    }

    pub fn watch(&self) -> RedisWatch {
        RedisWatch {
            watch: self.config.watch(),
            _config: self.config.clone(),
        }
    }
}

/// The library's error, with what a person needs to act on it.
fn write_failure(e: WriteError) -> Failure {
    let context = match &e {
        WriteError::Conflict { winner, .. } => format!("another write won: {winner}"),
        WriteError::Rejected(_) => "the patch does not apply".to_owned(),
        WriteError::Timeout { .. } => "outcome unknown".to_owned(),
        _ => "write failed".to_owned(),
    };
    Failure::from(e).context(context)
}

/// The library's watch of a followed configuration.
#[derive(Debug)]
pub struct RedisWatch {
    watch: tikaconf::Watch,
    /// Keeps the root followed while the watch lives.
    _config: Config,
}

impl RedisWatch {
    pub async fn next(&mut self) -> Option<WatchEvent> {
        loop {
            match self.watch.next().await? {
                Event::Change(change) => return Some(WatchEvent::Update(update(&change))),
                Event::Lagged(skipped) => return Some(WatchEvent::Lagged(skipped)),
                // An event this version does not know.
                _ => continue,
            }
        }
    }
}

fn update(change: &Change) -> Update {
    Update {
        head: change.head,
        height: change.height,
        document: change.document.clone(),
        ops: change.patch.as_deref().map(ops),
        dropped: change.dropped,
    }
}

/// The patch's ops as they were published. [`Patch`] keeps its ops parsed; the
/// canonical bytes it was hashed from hold them as JSON.
fn ops(patch: &Patch) -> Value {
    match json::parse_strict(&patch.encoded, Limits::MAX_DEPTH_CEILING) {
        Ok(Value::Object(mut m)) => m.remove("ops").unwrap_or(Value::Null),
        _ => Value::Null,
    }
}
