//! The state one followed root shares between the hub and the application, its
//! lock, and the one path a write takes.
//!
//! A root's [`Follower`] sits behind a lock in [`Shared`] rather than inside the
//! hub alone, so that a write can be built and published from the application's
//! own task ([`Handle::write`]): going through the hub costs a task wake-up on
//! the write's critical path, tens of microseconds on a busy machine, which is a
//! large part of a Redis hop. The hub takes the same lock for every input it
//! feeds the follower, and sends the follower's commands before releasing it, so
//! both paths see one sequence of states.
//!
//! Three types, as mini-redis keeps `Db`, `Shared` and `State` together:
//! [`Handle`] is what a [`crate::Config`] holds (dropping the last one unfollows
//! the root), [`Shared`] is what the hub and every handle of a root point to,
//! and [`Core`] is the part that only changes under the lock. [`Request`] is the
//! hub's inbox, here rather than in the hub so that neither the client nor the
//! config needs the hub itself: the hub imports this module, never the reverse.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use serde_json::{Map, Value};
use tikaconf_proto::follower::{FollowerStats, Step, SubmitError};
use tikaconf_proto::{Command, Current, Follower, Hash, Patch, Snapshot, WriteOutcome};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::bus::{Bus, BusError};
use crate::change::Change;
use crate::error::WriteError;
use crate::root::Root;

/// What the application side of one followed root holds.
pub(crate) struct Shared {
    pub(crate) root: Hash,
    pub(crate) current: watch::Receiver<Option<Current>>,
    /// Made on the first [`crate::Config::changes`] call: a broadcast channel
    /// allocates all its slots up front, which for a process following 10,000
    /// roots nobody reads the changes of would be most of its memory.
    pub(crate) changes: OnceLock<broadcast::Sender<Change>>,
    /// Changes the readers of `changes` skipped by falling behind its buffer:
    /// reported in the stats, so that a reader that must not miss one (a test,
    /// an audit log) can tell that it did.
    pub(crate) changes_skipped: Arc<AtomicU64>,
    /// The follower and its writes in flight; see the module documentation.
    core: Mutex<Core>,
    /// For publishing a write from the application's task.
    bus: Arc<dyn Bus>,
    /// The hub executor's [`crate::executor::Executor::settled`] flag.
    settled: Arc<AtomicBool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// A root's state machine and the outcome senders of its writes, changed
/// together under one lock.
pub(crate) struct Core {
    pub(crate) follower: Follower,
    pub(crate) writes: HashMap<Hash, PendingWrite>,
    /// The hub is gone: nothing will drive this follower again, so no write may
    /// start here (its outcome would never come).
    pub(crate) closed: bool,
}

/// A write of this node waiting for its outcome.
pub(crate) struct PendingWrite {
    /// Where its outcome goes.
    pub(crate) outcome: oneshot::Sender<WriteOutcome>,
    /// When its patch was built, right before its `PUBLISH`: the start of the
    /// write's latency histograms (see [`crate::metrics::WRITE_DURATION`]).
    pub(crate) since: std::time::Instant,
}

/// A write's outcome, once its follower learns it.
pub(crate) type Outcome = oneshot::Receiver<WriteOutcome>;

/// Redis's answer to a write's `PUBLISH`: a refusal ends the write at once.
pub(crate) type Published = oneshot::Receiver<Result<(), BusError>>;

/// What a write started from the application's task or through the hub returns.
pub(crate) type Submitted = Result<(Arc<Patch>, Outcome, Published), SubmitError>;

impl Core {
    /// The one write path: builds the patch on the follower and records its
    /// outcome sender, under the root's lock. The caller publishes the
    /// commands: the application's task directly, or the hub through its
    /// executor (see [`Handle::write`]).
    pub(crate) fn write(
        &mut self,
        now: std::time::Instant,
        parent: Option<Hash>,
        ops: Value,
        meta: Option<Map<String, Value>>,
    ) -> Result<(Arc<Patch>, Outcome, Vec<Command>), SubmitError> {
        let mut step = Step::default();
        let patch = self.follower.submit(now, parent, ops, meta, &mut step)?;
        let (tx, rx) = oneshot::channel();
        self.writes.insert(
            patch.hash,
            PendingWrite {
                outcome: tx,
                since: now,
            },
        );
        Ok((patch, rx, step.commands))
    }
}

impl Shared {
    /// A newly followed root, its follower not yet loaded.
    pub(crate) fn new(
        root: Hash,
        follower: Follower,
        current: watch::Receiver<Option<Current>>,
        bus: Arc<dyn Bus>,
        settled: Arc<AtomicBool>,
    ) -> Shared {
        Shared {
            root,
            current,
            changes: OnceLock::new(),
            changes_skipped: Arc::default(),
            core: Mutex::new(Core {
                follower,
                writes: HashMap::new(),
                closed: false,
            }),
            bus,
            settled,
        }
    }

    /// The root's lock.
    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while the lock was held left a follower mid-step; its state is
        // still a valid one (every step builds its changes before committing them).
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This root's counters.
    pub(crate) fn stats(&self) -> FollowerStats {
        let mut stats = self.core().follower.stats().clone();
        stats.changes_skipped = self.changes_skipped.load(Ordering::Relaxed);
        stats
    }

    /// Builds, records and publishes a write from the caller's task, when that
    /// keeps the executor's ordering rule (no subscription change of this hub is
    /// unconfirmed); otherwise returns the request untouched, for the hub.
    ///
    /// The flag is read under the root's lock, under which the hub also issues
    /// this root's subscription changes: a follower that has just moved to a new
    /// head has its `SUBSCRIBE` on the way, the flag reads false, and the write
    /// goes through the hub, which holds it until Redis confirms. Sent directly
    /// before that, the writer's own follower could miss its own patch.
    async fn submit_direct(
        &self,
        parent: Option<Hash>,
        ops: Value,
        meta: Option<Map<String, Value>>,
    ) -> Result<Submitted, (Value, Option<Map<String, Value>>)> {
        let (patch, outcome, commands) = {
            let mut core = self.core();
            if core.closed || !self.settled.load(Ordering::Acquire) {
                // Through the hub, which refuses it if it is gone.
                return Err((ops, meta));
            }
            match core.write(Instant::now().into_std(), parent, ops, meta) {
                Ok(write) => write,
                Err(err) => return Ok(Err(err)),
            }
        };
        let messages: Vec<(String, bytes::Bytes)> = commands
            .into_iter()
            .filter_map(|c| match c {
                Command::Publish { channel, payload } => Some((channel, payload)),
                _ => None,
            })
            .collect();
        let result = self.bus.publish(&messages).await;
        if let Err(err) = &result {
            // Refused, the write fails with the reason; otherwise it is recorded
            // and, without a stored notice, ends as TimedOut ("may or may not be
            // stored"), which is true of a publish whose reply was lost with the
            // connection.
            tracing::warn!(%err, hash = %patch.hash, "publishing a write failed");
        }
        let (tx, published) = oneshot::channel();
        let _ = tx.send(result);
        Ok(Ok((patch, outcome, published)))
    }
}

/// What the hub is asked to do.
#[derive(Debug)]
pub(crate) enum Request {
    Follow {
        root: Root,
        /// The root's cached head, checked, if the client keeps a head cache
        /// and has one: the follow may start from it (see `Hub::offer_cached`).
        cached: Option<Arc<Snapshot>>,
        reply: oneshot::Sender<Result<Arc<Shared>, LoadFailure>>,
    },
    Unfollow {
        root: Hash,
    },
    /// A write the application's task could not publish itself (see
    /// [`Shared::submit_direct`]); the hub runs [`Core::write`] for it.
    Submit {
        root: Hash,
        parent: Option<Hash>,
        ops: Value,
        meta: Option<Map<String, Value>>,
        reply: oneshot::Sender<Submitted>,
    },
}

/// Why a follow did not produce a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoadFailure {
    UnknownRoot,
}

/// The application's hold on one followed root: what a [`crate::Config`] and
/// its clones share. Dropping it tells the hub to unfollow the root (the hub
/// counts the handles of a root, and lets go at zero).
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    hub: mpsc::UnboundedSender<Request>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.hub.send(Request::Unfollow {
            root: self.shared.root,
        });
    }
}

impl Handle {
    pub(crate) fn new(shared: Arc<Shared>, hub: mpsc::UnboundedSender<Request>) -> Handle {
        Handle { shared, hub }
    }

    /// Starts a write: publishes a patch of `ops` on `parent` (or on the
    /// current head) and returns it with a receiver for its outcome, once Redis
    /// has taken the `PUBLISH`.
    pub(crate) async fn write(
        &self,
        parent: Option<Hash>,
        ops: Value,
        meta: Option<Map<String, Value>>,
    ) -> Result<(Arc<Patch>, Outcome), WriteError> {
        // From this task when that is safe (one task wake-up less on the write's
        // path), else through the hub.
        let submitted = match self.shared.submit_direct(parent, ops, meta).await {
            Ok(submitted) => Ok(submitted),
            Err((ops, meta)) => {
                let (reply, rx) = oneshot::channel();
                self.hub
                    .send(Request::Submit {
                        root: self.shared.root,
                        parent,
                        ops,
                        meta,
                        reply,
                    })
                    .map_err(|_| WriteError::Closed)?;
                rx.await
            }
        };
        match submitted {
            Ok(Ok((patch, outcome, published))) => {
                // Redis answers the PUBLISH within a round trip: a refusal (an ACL
                // without the channel) fails the write now, with the reason,
                // instead of leaving it to time out. Any other failure leaves the
                // outcome unknown, for the outcome receiver to tell.
                if let Ok(Err(err @ BusError::Refused(_))) = published.await {
                    return Err(WriteError::Refused {
                        attempted: patch.hash,
                        source: err,
                    });
                }
                Ok((patch, outcome))
            }
            Ok(Err(SubmitError::Rejected(r))) => Err(WriteError::Rejected(r.into())),
            Ok(Err(SubmitError::Invalid(e))) => Err(WriteError::Rejected(e.into())),
            Ok(Err(SubmitError::HeadMoved { .. })) => Err(WriteError::HeadMoved),
            Ok(Err(SubmitError::Disconnected)) => Err(WriteError::Disconnected),
            Ok(Err(_)) | Err(_) => Err(WriteError::Closed),
        }
    }
}
