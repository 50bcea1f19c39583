//! [`Change`] and [`Changes`]: what a followed root tells its readers.
//!
//! Apart from [`crate::Config`] because the hub makes the changes and the
//! config hands them out: both import this module, neither the other.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::Stream;
use futures_util::stream::BoxStream;

use serde_json::Value;
use tikaconf_proto::{ChangeCause, Current, Hash, Patch};
use tokio::sync::broadcast;

/// Changes kept for a slow reader before it starts to miss them.
pub(crate) const CHANGES_BUFFER: usize = 1024;

/// One change of a configuration, as the application sees it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The hash of the document after the change: the configuration's new head.
    pub head: Hash,
    /// How many patches the head is from the root (the root itself is height 0).
    pub height: u64,
    /// The whole document after the change, shared with every other reader.
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
            ChangeCause::Loaded | ChangeCause::Cached => (None, false),
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

/// What [`Watch`] yields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The state when watching began (first), then each change.
    Change(Change),
    /// The reader fell more than 1,024 changes behind and this many were
    /// skipped. The next [`Event::Change`] is current again: an application
    /// that keeps derived state should rebuild it from that change's document
    /// rather than apply ops to what it had. Also counted in
    /// [`tikaconf_proto::follower::FollowerStats::changes_skipped`].
    Lagged(u64),
}

/// The current state and then every change of a configuration, as a
/// [`futures_util::Stream`] of [`Event`]s: list-then-watch, as kube's
/// reflectors and `nats kv watch` do. Made by [`crate::Config::watch`].
///
/// Why a stream that starts with the current state: every reader needs a
/// baseline, and reading the document and then subscribing leaves a gap in
/// which a change is missed, while subscribing first shows a change twice
/// (in the baseline and as the first item). The stream subscribes first and
/// skips what the baseline already holds. Why lag is an item: a reader that
/// keeps derived state must know it missed changes, which a log line does not
/// tell it.
pub struct Watch {
    inner: BoxStream<'static, Event>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

impl Watch {
    /// `baseline` is the state read after subscribing to `changes`.
    pub(crate) fn new(baseline: Change, changes: Changes) -> Watch {
        struct State {
            baseline: Option<Change>,
            /// The head of the last change yielded.
            last: Hash,
            changes: Changes,
        }
        let state = State {
            last: baseline.head,
            baseline: Some(baseline),
            changes,
        };
        let inner = futures_util::stream::unfold(state, |mut state| async move {
            if let Some(baseline) = state.baseline.take() {
                return Some((Event::Change(baseline), state));
            }
            loop {
                match state.changes.rx.recv().await {
                    // Queued before the baseline was read: already shown.
                    Ok(change) if change.head == state.last => continue,
                    Ok(change) => {
                        state.last = change.head;
                        return Some((Event::Change(change), state));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        state.changes.skipped.fetch_add(n, Ordering::Relaxed);
                        return Some((Event::Lagged(n), state));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Watch {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for Watch {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.inner.as_mut().poll_next(cx)
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

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use serde_json::json;

    use super::*;
    use tikaconf_proto::RootConfig;

    use crate::testing::{Fleet, PATIENCE};

    async fn next(watch: &mut Watch) -> Event {
        tokio::time::timeout(PATIENCE, watch.next())
            .await
            .expect("an event in time")
            .expect("the watch goes on")
    }

    fn change(event: Event) -> Change {
        match event {
            Event::Change(change) => change,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    /// The first item is the state when watching began; each later change
    /// comes once, in order, with its patch.
    #[tokio::test]
    async fn a_watch_starts_with_the_current_state_then_each_change() {
        let fleet = Fleet::start().await;
        let config = fleet
            .follow(RootConfig::twitch("#watch").unwrap())
            .await
            .unwrap();
        let first = config
            .submit(json!([{"op": "add", "path": "/a", "value": 1}]))
            .await
            .unwrap();
        let mut watch = config.watch();
        let baseline = change(next(&mut watch).await);
        assert_eq!((baseline.head, baseline.height), (first, 1));
        assert!(baseline.patch.is_none());
        assert_eq!(baseline.document["a"], 1);
        let second = config
            .submit(json!([{"op": "add", "path": "/b", "value": 2}]))
            .await
            .unwrap();
        let next_change = change(next(&mut watch).await);
        assert_eq!((next_change.head, next_change.height), (second, 2));
        assert!(next_change.patch.is_some(), "a change by patch carries it");
        // Nothing else is queued: no duplicate of the baseline or the change.
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(200), watch.next()).await;
        assert!(quiet.is_err(), "unexpected event: {quiet:?}");
    }

    /// A reader that falls more than the buffer behind is told how many
    /// changes it skipped, as an item, and then gets a current change.
    #[tokio::test]
    async fn a_lagging_watch_gets_lagged_then_a_current_change() {
        let fleet = Fleet::start().await;
        let config = fleet
            .follow(RootConfig::twitch("#lagging").unwrap())
            .await
            .unwrap();
        let mut watch = config.watch();
        let baseline = change(next(&mut watch).await);
        assert_eq!(baseline.height, 0);
        let writes = CHANGES_BUFFER as u64 + 10;
        let mut head = baseline.head;
        for i in 0..writes {
            head = config
                .submit(json!([{"op": "add", "path": "/n", "value": i}]))
                .await
                .unwrap();
        }
        let Event::Lagged(skipped) = next(&mut watch).await else {
            panic!("expected Lagged first");
        };
        assert_eq!(skipped, 10, "the changes beyond the buffer");
        assert_eq!(config.stats().changes_skipped, 10);
        // Then the buffered changes, ending at the head.
        let mut last = change(next(&mut watch).await);
        while last.head != head {
            last = change(next(&mut watch).await);
        }
        assert_eq!(last.height, writes);
    }
}
