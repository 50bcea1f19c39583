//! [`Change`] and [`Changes`]: what a followed root tells its readers.
//!
//! Apart from [`crate::Config`] because the hub makes the changes and the
//! config hands them out: both import this module, neither the other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;
use tikaconf_proto::{ChangeCause, Current, Hash, Patch};
use tokio::sync::broadcast;

/// Changes kept for a slow reader before it starts to miss them.
pub(crate) const CHANGES_BUFFER: usize = 1024;

/// One change of a configuration, as the application sees it.
#[derive(Debug, Clone)]
pub struct Change {
    pub head: Hash,
    pub height: u64,
    pub document: Arc<Value>,
    /// The patch applied, when the change came from one; `None` when the follower
    /// loaded or re-synced from a snapshot.
    pub patch: Option<Arc<Patch>>,
    /// True when the follower went back to drop patches storage never stored.
    pub dropped: bool,
    /// When this node made the change visible: the moment
    /// [`Config::document`](crate::Config::document) started returning it. A
    /// reader of [`Config::changes`](crate::Config::changes) is woken a little
    /// later; the difference is its own scheduling delay, and `applied_at`
    /// lets an application (or a benchmark) tell the two apart.
    pub applied_at: Instant,
}

impl Change {
    pub(crate) fn new(current: &Current, cause: ChangeCause) -> Change {
        let (patch, dropped) = match cause {
            ChangeCause::Patch(p) => (Some(p), false),
            ChangeCause::Resync { dropped } => (None, dropped),
            ChangeCause::Loaded => (None, false),
        };
        Change {
            head: current.head,
            height: current.height,
            document: current.doc.clone(),
            patch,
            dropped,
            applied_at: Instant::now(),
        }
    }
}

/// A stream of [`Change`]s.
#[derive(Debug)]
pub struct Changes {
    pub(crate) rx: broadcast::Receiver<Change>,
    /// The root's count of skipped changes
    /// ([`tikaconf_proto::follower::FollowerStats::changes_skipped`]).
    pub(crate) skipped: Arc<AtomicU64>,
}

impl Changes {
    /// The next change; `None` once the configuration is no longer followed. A
    /// reader that fell more than 1,024 changes behind skips to the oldest change
    /// still buffered; the skipped changes are counted in
    /// [`tikaconf_proto::follower::FollowerStats::changes_skipped`]
    /// ([`crate::Config::stats`]).
    pub async fn next(&mut self) -> Option<Change> {
        loop {
            match self.rx.recv().await {
                Ok(change) => return Some(change),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.skipped.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(skipped = n, "change reader fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
