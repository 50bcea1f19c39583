//! [`Config`]: the application's handle on one followed configuration.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tikaconf_proto::follower::FollowerStats;
use tikaconf_proto::{Current, Hash, Patch, WriteOutcome};
use tokio::sync::{broadcast, oneshot};

use crate::change::{CHANGES_BUFFER, Change, Changes, Watch};
use crate::error::{Error, WriteError};
use crate::live::{Live, LiveError};
use crate::shared::Handle;

/// How many times a write that starts again from a moved head (an update's
/// rebase, a schema check's re-check) tries before it gives up: a root busy
/// enough to move under sixteen attempts in a row should be told so.
const ATTEMPTS: usize = 16;

/// A followed configuration: always holds the latest document this node has,
/// updated in the background as changes arrive.
///
/// Cloning is cheap; the root is unfollowed when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Config {
    inner: Arc<Handle>,
    /// The client's schema, checked before each write is published.
    #[cfg(feature = "schema")]
    schema: Option<crate::Schema>,
}

impl Config {
    pub(crate) fn new(handle: Handle) -> Config {
        Config {
            inner: Arc::new(handle),
            #[cfg(feature = "schema")]
            schema: None,
        }
    }

    #[cfg(feature = "schema")]
    pub(crate) fn with_schema(self, schema: Option<crate::Schema>) -> Config {
        Config { schema, ..self }
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
        self.submit_on_with_meta(parent, ops, None).await
    }

    /// [`Config::submit_on`] with a `meta` object (author, time, message): a
    /// compare-and-set write that says who made it and why, as the CLI and the
    /// HTTP API write (and `rollback`, whose `meta` names the version it
    /// restores).
    pub async fn submit_on_with_meta(
        &self,
        parent: Hash,
        ops: Value,
        meta: Option<Map<String, Value>>,
    ) -> Result<Hash, WriteError> {
        let (patch, outcome) = self.publish_on(Some(parent), ops, meta).await?;
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
        #[cfg(feature = "schema")]
        if let Some(schema) = &self.schema {
            return self.publish_checked(schema, parent, ops, meta).await;
        }
        self.inner.write(parent, ops, meta).await
    }

    /// [`Config::publish_on`] under a schema: the ops are applied to the head
    /// they will be published on, the result checked, and the patch published
    /// on exactly that head (so the document checked is the one it makes).
    /// The ops are applied twice, here and by the follower: the price of a
    /// check that lives outside the protocol core, paid only with a schema.
    #[cfg(feature = "schema")]
    async fn publish_checked(
        &self,
        schema: &crate::Schema,
        parent: Option<Hash>,
        ops: Value,
        meta: Option<Map<String, Value>>,
    ) -> Result<(Arc<Patch>, oneshot::Receiver<WriteOutcome>), WriteError> {
        use tikaconf_proto::patch::Ops;
        for _ in 0..ATTEMPTS {
            let base = self.current();
            if parent.is_some_and(|p| p != base.head) {
                return Err(WriteError::HeadMoved);
            }
            // Ops that do not parse or apply are left to the follower, which
            // refuses them with the precise reason.
            let result = Ops::from_value(&ops)
                .ok()
                .and_then(|parsed| parsed.apply_owned((*base.doc).clone()).ok());
            if let Some(result) = result {
                schema
                    .check(&result)
                    .map_err(|v| WriteError::Rejected(v.into()))?;
            }
            match self
                .inner
                .write(Some(base.head), ops.clone(), meta.clone())
                .await
            {
                // Moved between the check and the write: check on the new head.
                Err(WriteError::HeadMoved) if parent.is_none() => continue,
                written => return written,
            }
        }
        // The head moved under every attempt: as busy a root as that is better
        // told than waited on forever.
        Err(WriteError::HeadMoved)
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
        self.update_document(|doc| edit(doc).map_err(|e| Error::Edit(e.to_string())))
            .await
    }

    /// Changes the document through its typed view: deserializes it as a `T`,
    /// runs `edit` on it, and publishes the difference between the `T` before
    /// and after, retrying on conflicts as [`Config::update`] does. Returns the
    /// new head, or the current one if `edit` changed nothing.
    ///
    /// Only what `edit` changed is written: parts of the document that `T`
    /// does not have (fields it ignores, written by newer code or other tools)
    /// are kept, and a field that `T` fills with a default stays absent unless
    /// `edit` changes it. An array that changes is written whole. With a
    /// [`ClientOptions::schema`](crate::ClientOptions::schema), the result is
    /// checked before it is published.
    ///
    /// Fails with [`Error::Typed`] if the document does not deserialize as a
    /// `T` (nothing is published), and with [`Error::Edit`] if `edit` fails.
    /// `edit` may run several times; it must not have side effects.
    ///
    /// ```no_run
    /// # async fn example(config: tikaconf::Config) -> Result<(), tikaconf::Error> {
    /// use std::collections::BTreeMap;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Bot {
    ///     #[serde(default)]
    ///     commands: BTreeMap<String, String>,
    /// }
    ///
    /// config
    ///     .update_typed(|bot: &mut Bot| {
    ///         bot.commands.insert("!hi".into(), "hello".into());
    ///         Ok::<_, std::convert::Infallible>(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_typed<T, E>(
        &self,
        mut edit: impl FnMut(&mut T) -> Result<(), E>,
    ) -> Result<Hash, Error>
    where
        T: Serialize + DeserializeOwned,
        E: std::fmt::Display,
    {
        self.update_document(|doc| {
            // Deserialized twice rather than cloned, so `T` need not be Clone.
            let before = serde_json::to_value(T::deserialize(&*doc).map_err(Error::Typed)?)
                .map_err(Error::Typed)?;
            let mut typed = T::deserialize(&*doc).map_err(Error::Typed)?;
            edit(&mut typed).map_err(|e| Error::Edit(e.to_string()))?;
            let after = serde_json::to_value(typed).map_err(Error::Typed)?;
            carry_edit(doc, &before, &after);
            Ok(())
        })
        .await
    }

    /// The loop of [`Config::update`] and [`Config::update_typed`]: edit a
    /// copy of the head's document, publish the difference on that head, and
    /// on a conflict or a moved head start again from the new one.
    async fn update_document(
        &self,
        mut edit: impl FnMut(&mut Value) -> Result<(), Error>,
    ) -> Result<Hash, Error> {
        for _ in 0..ATTEMPTS {
            let base = self.current();
            let mut next = (*base.doc).clone();
            edit(&mut next)?;
            let ops = diff(&base.doc, &next);
            if ops.as_array().is_some_and(Vec::is_empty) {
                return Ok(base.head);
            }
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

/// Makes in `doc` the change that turned `before` into `after` (two renderings
/// of one typed view of `doc`), leaving alone what the view does not show.
///
/// Objects are walked key by key: a key whose value is equal in both is not
/// touched (so a default the view filled in is not written, and a field the
/// view does not know is kept), a key only `before` has is removed, and a
/// changed value is carried down into `doc`'s own value, or written whole
/// where `doc` has none or the two are not both objects (an array, a scalar).
fn carry_edit(doc: &mut Value, before: &Value, after: &Value) {
    if before == after {
        return;
    }
    match (doc, before, after) {
        (Value::Object(doc), Value::Object(before), Value::Object(after)) => {
            for (key, new) in after {
                match (doc.get_mut(key), before.get(key)) {
                    (Some(own), Some(old)) => carry_edit(own, old, new),
                    _ => {
                        if before.get(key) != Some(new) {
                            doc.insert(key.clone(), new.clone());
                        }
                    }
                }
            }
            for key in before.keys() {
                if !after.contains_key(key) {
                    doc.remove(key);
                }
            }
        }
        (doc, _, after) => *doc = after.clone(),
    }
}

/// The RFC 6902 ops that turn `before` into `after`, as [`Config::update`]
/// publishes them: an empty array when the two are equal.
///
/// Public so that a writer that gets a whole new document (an HTTP `PUT`, a
/// merge patch, an editor's buffer) publishes the same ops `update` would:
/// array elements removed from the end of a run, which keeps a patch that
/// shortens a long list within the protocol's work budget.
pub fn diff(before: &Value, after: &Value) -> Value {
    let ops = json_patch::diff(before, after);
    let mut ops = serde_json::to_value(ops).unwrap_or_else(|_| Value::Array(Vec::new()));
    removals_from_the_end(&mut ops);
    ops
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
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::json;
    use tikaconf_proto::limits::DocBound;
    use tikaconf_proto::patch::{Caps, Ops};

    use super::*;
    use crate::testing::{self, Fleet};

    /// What an older bot knows of the document: its commands only.
    #[derive(Debug, Serialize, Deserialize)]
    struct Bot {
        #[serde(default)]
        commands: BTreeMap<String, String>,
        #[serde(default)]
        greeting: Option<String>,
    }

    #[tokio::test]
    async fn a_typed_update_writes_only_what_the_edit_changed() {
        let config = testing::config(json!({
            "commands": {"!hi": "hello", "!old": "bye"},
            "timers": {"ad": 600},
        }))
        .await;
        let before = config.head();
        let mut changes = config.changes();
        let head = config
            .update_typed(|bot: &mut Bot| {
                bot.commands.insert("!new".into(), "new".into());
                bot.commands.remove("!old");
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .unwrap();
        assert_ne!(head, before, "a patch was committed");
        assert_eq!(
            *config.document(),
            json!({"commands": {"!hi": "hello", "!new": "new"}, "timers": {"ad": 600}}),
            "the timers Bot does not know are kept, and its default greeting is not written"
        );
        let change = changes.next().await.expect("the change is seen");
        assert_eq!(change.head, head);
        let ops = change.patch.expect("it came as a patch").ops.to_value();
        let paths: Vec<&str> = ops
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths.len(), 2, "{ops}");
        assert!(paths.iter().all(|p| p.starts_with("/commands/")), "{ops}");
    }

    #[tokio::test]
    async fn a_typed_update_that_changes_nothing_publishes_nothing() {
        let config = testing::config(json!({"commands": {}, "x": 1})).await;
        let head = config.head();
        let same = config
            .update_typed(|_: &mut Bot| Ok::<_, std::convert::Infallible>(()))
            .await
            .unwrap();
        assert_eq!(same, head);
        assert_eq!(config.height(), 1);
    }

    #[tokio::test]
    async fn a_document_that_does_not_fit_the_type_is_an_error_and_nothing_is_published() {
        let config = testing::config(json!({"commands": ["not", "a", "map"]})).await;
        let err = config
            .update_typed(|bot: &mut Bot| {
                bot.greeting = Some("hi".into());
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Typed(_)), "{err:?}");
        assert_eq!(config.height(), 1, "nothing was published");
    }

    #[test]
    fn carrying_an_edit_keeps_what_the_view_does_not_show() {
        let mut doc = json!({"a": {"x": 1, "unknown": true}, "list": [1, 2], "keep": 0});
        let before = json!({"a": {"x": 1}, "list": [1, 2], "default": {}});
        let after = json!({"a": {"x": 2}, "list": [2], "default": {"k": 1}});
        carry_edit(&mut doc, &before, &after);
        assert_eq!(
            doc,
            json!({"a": {"x": 2, "unknown": true}, "list": [2], "keep": 0, "default": {"k": 1}})
        );
        let mut doc = json!({"gone": 1, "kept": 2});
        carry_edit(&mut doc, &json!({"gone": 1}), &json!({}));
        assert_eq!(doc, json!({"kept": 2}));
    }

    #[cfg(feature = "schema")]
    #[tokio::test]
    async fn a_write_the_schema_refuses_is_never_published() {
        use crate::{InvalidPatch, Schema};

        let fleet = Fleet::start().await;
        let shared = fleet.config(json!({"commands": {"!hi": "hello"}})).await;
        let schema = Schema::new(&json!({
            "type": "object",
            "properties": {"commands": {"additionalProperties": {"type": "string"}}}
        }))
        .unwrap();
        let options = crate::ClientOptions {
            schema: Some(schema),
            ..testing::fast_options()
        };
        let checked = crate::Client::with_bus(fleet.broker().connect(), options);
        let config = checked.follow(shared.root()).await.unwrap();
        let head = config.head();

        let err = config
            .submit(json!([{"op": "add", "path": "/commands/!n", "value": 5}]))
            .await
            .unwrap_err();
        let WriteError::Rejected(InvalidPatch::Schema(violation)) = &err else {
            panic!("refused for the schema: {err:?}");
        };
        assert_eq!(violation.violations[0].pointer, "/commands/!n");
        let err = config
            .update(|doc| {
                doc["commands"]["!m"] = json!(["no"]);
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Write(WriteError::Rejected(InvalidPatch::Schema(_)))
            ),
            "{err:?}"
        );

        // What matches goes through, and only that was ever published.
        let next = config
            .submit(json!([{"op": "add", "path": "/commands/!n", "value": "five"}]))
            .await
            .unwrap();
        testing::wait_for_head(&shared, next).await.unwrap();
        assert_eq!(shared.height(), config.height());
        assert_eq!(config.height(), 2, "one write committed after {head}");
        assert_eq!(fleet.storage().status().stats.applied, 2);
    }

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
