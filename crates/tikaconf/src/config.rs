//! [`Config`]: the application's handle on one followed configuration.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tikaconf_proto::follower::FollowerStats;
use tikaconf_proto::{Current, Hash, Patch, WriteOutcome};
use tokio::sync::{broadcast, oneshot};

use crate::change::{CHANGES_BUFFER, Change, Changes, Watch};
use crate::error::{Error, WriteError};
use crate::live::{Live, LiveError};
use crate::shared::Handle;

/// A followed configuration: always holds the latest document this node has,
/// updated in the background as changes arrive.
///
/// Cloning is cheap; the root is unfollowed when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Config {
    inner: Arc<Handle>,
}

impl Config {
    pub(crate) fn new(handle: Handle) -> Config {
        Config {
            inner: Arc::new(handle),
        }
    }

    /// The root hash.
    pub fn root(&self) -> Hash {
        self.inner.shared.root
    }

    fn current(&self) -> Current {
        self.inner
            .shared
            .current
            .borrow()
            .clone()
            .expect("a Config exists only once its document is loaded")
    }

    /// The current head (the hash naming this version).
    pub fn head(&self) -> Hash {
        self.current().head
    }

    /// The number of patches from the root to the current head.
    pub fn height(&self) -> u64 {
        self.current().height
    }

    /// Whether the current document is the one this machine had cached (see
    /// [`crate::ClientOptions::cache_dir`]) and storage has not answered for
    /// it yet: the configuration may be out of date until it does. Takes the
    /// root's lock for a moment, never waits on the network.
    pub fn from_cache(&self) -> bool {
        self.inner.shared.core().follower.from_cache()
    }

    /// The current document. Cheap: the document is shared, never copied.
    pub fn document(&self) -> Arc<Value> {
        self.current().doc
    }

    /// The current document as a `T`.
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&*self.document())
    }

    /// The whole document as a [`Live`] `T`: deserialized once per change, in
    /// the background, for a lock-free [`Live::load`] on the hot path (where
    /// [`Config::get`] would deserialize the document on every call).
    ///
    /// A change that does not deserialize keeps the last good value and is
    /// counted ([`Live::failures`]); see [`Config::at`] for a part of the
    /// document. `typed` is `at("")`.
    ///
    /// Fails if the current document does not deserialize as `T`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns a task, as following a root does).
    ///
    /// ```no_run
    /// # async fn example(config: tikaconf::Config) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::collections::BTreeMap;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Bot {
    ///     #[serde(default)]
    ///     commands: BTreeMap<String, String>,
    /// }
    ///
    /// let mut bot = config.typed::<Bot>()?;
    /// // On every chat message: no lock, no parsing.
    /// let reply = bot.load().commands.get("!hi").cloned();
    ///
    /// // Somewhere else: react to changes.
    /// while bot.changed().await.is_ok() {
    ///     println!("{} commands", bot.load().commands.len());
    /// }
    /// # let _ = reply;
    /// # Ok(()) }
    /// ```
    pub fn typed<T>(&self) -> Result<Live<T>, LiveError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.at("")
    }

    /// The part of the document at `pointer` (an RFC 6901 JSON Pointer, such as
    /// `"/commands"`) as a [`Live`] `T`, which wakes [`Live::changed`] only when
    /// that part's value differs, whether the change came by a patch, a load or
    /// a re-sync. A pointer that does not resolve reads as `null`: use an
    /// `Option<T>` for a part that may be absent.
    ///
    /// Fails on a malformed pointer, or if the current value does not
    /// deserialize as `T`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns a task, as following a root does).
    pub fn at<T>(&self, pointer: &str) -> Result<Live<T>, LiveError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        Live::spawn(self.root(), &self.inner.shared.current, pointer)
    }

    /// This node's counters for this root: patches applied, stale ones, messages
    /// ignored by reason, load requests, re-syncs, drops.
    ///
    /// Synchronous (it takes the root's lock for a copy of the counters, never
    /// waits on the network), so that a health check can call it from anywhere.
    pub fn stats(&self) -> FollowerStats {
        self.inner.shared.stats()
    }

    /// The changes from now on. A reader more than 1,024 changes behind skips
    /// ahead (see [`Changes::next`]); the document itself is never stale.
    pub fn changes(&self) -> Changes {
        Changes {
            skipped: self.inner.shared.changes_skipped.clone(),
            rx: self
                .inner
                .shared
                .changes
                .get_or_init(|| broadcast::channel(CHANGES_BUFFER).0)
                .subscribe(),
        }
    }

    /// The current state, then every change, as a stream (see [`Watch`]): the
    /// first item is [`Event::Change`](crate::Event::Change) with the document
    /// now (no patch), later ones each change after it, and
    /// [`Event::Lagged`](crate::Event::Lagged) where a slow reader
    /// skipped changes. Ends when the configuration is no longer followed.
    ///
    /// ```no_run
    /// # async fn example(config: tikaconf::Config) {
    /// use futures_util::StreamExt;
    /// use tikaconf::Event;
    ///
    /// let mut watch = config.watch();
    /// while let Some(event) = watch.next().await {
    ///     match event {
    ///         Event::Change(change) => println!("{} at height {}", change.head, change.height),
    ///         Event::Lagged(n) => println!("missed {n} changes; the next one is current"),
    ///         _ => {}
    ///     }
    /// }
    /// # }
    /// ```
    pub fn watch(&self) -> Watch {
        // Subscribe before reading, so that nothing falls between the two.
        let changes = self.changes();
        let current = self.current();
        let baseline = Change {
            head: current.head,
            height: current.height,
            document: current.doc,
            patch: None,
            dropped: false,
            applied_at: std::time::Instant::now(),
        };
        Watch::new(baseline, changes)
    }

    /// Publishes `ops` (an RFC 6902 JSON Patch) against the current head and waits
    /// until storage has durably stored it. Returns the new head.
    pub async fn submit(&self, ops: Value) -> Result<Hash, WriteError> {
        self.submit_with_meta(ops, None).await
    }

    /// Like [`Config::submit`], but only on `parent`: fails with
    /// [`WriteError::HeadMoved`] if this node's head is no longer `parent` (a
    /// compare-and-set on the head, for ops computed from that version).
    pub async fn submit_on(&self, parent: Hash, ops: Value) -> Result<Hash, WriteError> {
        let (patch, outcome) = self.publish_on(Some(parent), ops, None).await?;
        finish(patch, outcome).await
    }

    /// [`Config::submit`] with a `meta` object (author, time, message).
    pub async fn submit_with_meta(
        &self,
        ops: Value,
        meta: Option<Map<String, Value>>,
    ) -> Result<Hash, WriteError> {
        let (patch, outcome) = self.publish(ops, meta).await?;
        finish(patch, outcome).await
    }

    /// Publishes a patch without waiting for its outcome: returns the patch and a
    /// receiver for the outcome.
    pub async fn publish(
        &self,
        ops: Value,
        meta: Option<Map<String, Value>>,
    ) -> Result<(Arc<Patch>, oneshot::Receiver<WriteOutcome>), WriteError> {
        self.publish_on(None, ops, meta).await
    }

    async fn publish_on(
        &self,
        parent: Option<Hash>,
        ops: Value,
        meta: Option<Map<String, Value>>,
    ) -> Result<(Arc<Patch>, oneshot::Receiver<WriteOutcome>), WriteError> {
        self.inner.write(parent, ops, meta).await
    }

    /// Changes the document with `edit`, as a patch computed from the difference,
    /// and retries on a conflict (rebased on the winner) up to 16 times. Returns the
    /// new head, or the current one if `edit` changed nothing.
    ///
    /// `edit` may run several times; it must not have side effects.
    pub async fn update<E>(
        &self,
        mut edit: impl FnMut(&mut Value) -> Result<(), E>,
    ) -> Result<Hash, Error>
    where
        E: std::fmt::Display,
    {
        const ATTEMPTS: usize = 16;
        for _ in 0..ATTEMPTS {
            let base = self.current();
            let mut next = (*base.doc).clone();
            edit(&mut next).map_err(|e| Error::Edit(e.to_string()))?;
            let ops = json_patch::diff(&base.doc, &next);
            if ops.0.is_empty() {
                return Ok(base.head);
            }
            let mut ops = serde_json::to_value(ops).map_err(|e| Error::Edit(e.to_string()))?;
            removals_from_the_end(&mut ops);
            match self.submit_on(base.head, ops).await {
                Ok(head) => return Ok(head),
                Err(WriteError::Conflict { .. }) => self.wait_past(base.head).await,
                Err(WriteError::HeadMoved) => {} // rebase on the new head
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::TooManyConflicts)
    }

    /// Waits (briefly) until the document has moved past `head`.
    async fn wait_past(&self, head: Hash) {
        let mut rx = self.inner.shared.current.clone();
        let moved = rx.wait_for(|c| c.as_ref().is_some_and(|c| c.head != head));
        let _ = tokio::time::timeout(Duration::from_secs(5), moved).await;
    }
}

/// Rewrites each run of identical `remove` ops on one array index (how
/// `json_patch::diff` shortens an array: `n` removals of `/a/i`) into removals of
/// `/a/i+n-1` down to `/a/i`: the same result, but each removal takes the last of
/// the elements left to remove, so it shifts only what lies beyond the run.
///
/// Why: a patch is charged the elements its array removals shift (the protocol's
/// work budget, which keeps hostile patches cheap), and removing from the front
/// shifts the whole rest of the array each time: cutting a long list short in
/// one `update` would cost quadratic work and be refused.
fn removals_from_the_end(ops: &mut Value) {
    let Some(ops) = ops.as_array_mut() else {
        return;
    };
    let remove_path = |op: &Value| -> Option<String> {
        (op.get("op")? == "remove").then(|| op.get("path")?.as_str().map(str::to_owned))?
    };
    let mut i = 0;
    while i < ops.len() {
        let Some(path) = remove_path(&ops[i]) else {
            i += 1;
            continue;
        };
        let run = ops[i..]
            .iter()
            .take_while(|op| remove_path(op).as_deref() == Some(&path))
            .count();
        let index = path
            .rsplit_once('/')
            .and_then(|(parent, last)| Some((parent, last.parse::<usize>().ok()?)))
            .filter(|(_, last)| path.ends_with(&format!("/{last}")));
        if let (true, Some((parent, first))) = (run > 1, index) {
            for (k, op) in ops[i..i + run].iter_mut().enumerate() {
                op["path"] = Value::from(format!("{parent}/{}", first + run - 1 - k));
            }
        }
        i += run;
    }
}

async fn finish(
    patch: Arc<Patch>,
    outcome: oneshot::Receiver<WriteOutcome>,
) -> Result<Hash, WriteError> {
    match outcome.await {
        Ok(WriteOutcome::Committed) => Ok(patch.hash),
        Ok(WriteOutcome::Conflict { winner }) => Err(WriteError::Conflict {
            attempted: patch.hash,
            winner,
        }),
        Ok(WriteOutcome::TimedOut) | Err(_) => Err(WriteError::Timeout {
            attempted: patch.hash,
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tikaconf_proto::limits::DocBound;
    use tikaconf_proto::patch::{Caps, Ops};

    use super::*;

    /// Cutting a long list short by `update` is within the patch work budget,
    /// and the rewritten ops give the same document as the diff's own.
    #[test]
    fn shortening_a_long_array_removes_from_the_end() {
        let before = json!({"list": (0..3_000).collect::<Vec<_>>(), "keep": [1, 2, 3]});
        let after = json!({"list": (0..10).collect::<Vec<_>>(), "keep": [1, 3]});
        let diff = serde_json::to_value(json_patch::diff(&before, &after)).unwrap();
        let mut ops = diff.clone();
        removals_from_the_end(&mut ops);
        assert_eq!(
            ops.as_array().unwrap().len(),
            diff.as_array().unwrap().len()
        );
        let mut doc = before.clone();
        json_patch::patch(
            &mut doc,
            &serde_json::from_value::<json_patch::Patch>(ops.clone()).unwrap(),
        )
        .unwrap();
        assert_eq!(doc, after);
        let apply = |ops: &Value| {
            let ops = Ops::from_value(ops).unwrap();
            let bound = DocBound::measure(&before);
            let caps = Caps {
                max_bytes: usize::MAX,
                max_depth: usize::MAX,
                budget: tikaconf_proto::Limits::patch_budget(
                    bound.bytes,
                    tikaconf_proto::canonical::encoded_len(&ops.to_value()),
                ),
            };
            ops.apply_counted(before.clone(), bound, caps).0.is_ok()
        };
        assert!(
            !apply(&diff),
            "the diff's own ops shift the whole list each time"
        );
        assert!(apply(&ops));
    }
}
