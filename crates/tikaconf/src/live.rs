//! [`Live`]: a typed value that follows a configuration, or a part of it.
//!
//! A bot reads its configuration on every chat message, and the configuration
//! changes a few times a day. [`crate::Config::get`] deserializes the whole
//! document on each call; a [`Live`] deserializes once per change, in a
//! background task, and hands readers the result as an `Arc<T>`.
//!
//! Three choices shape it:
//!
//! - **Reads never lock what the hub writes.** [`Live::load`] reads an
//!   [`ArcSwap`], which is lock-free: a reader on the hot path never waits for
//!   the hub, nor for the task deserializing a new value, and never reads the
//!   hub's `watch` channel (whose lock the hub takes on every change).
//! - **A view wakes only when its value differs.** The task compares the
//!   sub-tree it follows with the last one it saw, whatever moved the head (a
//!   patch, a load, a re-sync), so a handler for `/commands` does not wake for
//!   a timer change, and does wake when a re-sync brings new commands with no
//!   patch to look at.
//! - **A bad write does not break readers.** When the sub-tree no longer
//!   deserializes as `T`, the last good value stays in place; the failure is
//!   logged and counted ([`Live::failures`], [`Live::last_error`]). One
//!   mistyped write reaches every node of the fleet at once, and a reader that
//!   kept failing would take every bot down with it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tikaconf_proto::{Current, Hash};
use tokio::sync::watch;

/// Why [`crate::Config::typed`] or [`crate::Config::at`] made no [`Live`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// Not an RFC 6901 JSON Pointer: empty (the whole document), or `/`
    /// followed by tokens in which `~` is only ever `~0` or `~1`.
    #[error(
        "invalid JSON Pointer {pointer:?}: must be empty or start with '/', with '~' only as ~0 or ~1"
    )]
    Pointer {
        /// The pointer as given.
        pointer: String,
    },
    /// The current value at the pointer does not deserialize as the type asked
    /// for (a pointer that does not resolve reads as `null`).
    #[error("the value at {pointer:?} (head {head}) does not deserialize")]
    Deserialize {
        /// The pointer followed.
        pointer: String,
        /// The head whose document was read.
        head: Hash,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

/// [`Live::changed`] failed: the followed configuration has ended (every
/// [`crate::Config`] of the root was dropped, or its client shut down), so the
/// value will never change again. [`Live::load`] still returns the last value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the followed configuration has ended")]
pub struct LiveClosed;

/// A value of type `T` that follows a configuration, or the part of it at a
/// JSON Pointer: made by [`crate::Config::typed`] and [`crate::Config::at`].
///
/// [`Live::load`] is the hot-path read (lock-free, no deserialization);
/// [`Live::changed`] waits for a different value, like
/// [`tokio::sync::watch::Receiver::changed`]. Each clone keeps track of the
/// value it has seen on its own; all clones share one background task, which
/// ends when the configuration ends or the last clone is dropped.
///
/// A `Live` does not keep the configuration followed: it follows it for as
/// long as some [`crate::Config`] of the root exists.
pub struct Live<T> {
    shared: Arc<Shared<T>>,
    version: watch::Receiver<u64>,
}

/// What the handles and the task share.
struct Shared<T> {
    value: ArcSwap<T>,
    pointer: String,
    failures: AtomicU64,
    last_error: ArcSwapOption<serde_json::Error>,
}

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live {
            shared: self.shared.clone(),
            version: self.version.clone(),
        }
    }
}

impl<T> fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("pointer", &self.shared.pointer)
            .field("failures", &self.failures())
            .finish_non_exhaustive()
    }
}

impl<T> Live<T> {
    /// The current value. Lock-free and cheap (an atomic load and a reference
    /// count): meant for the hot path, e.g. on every chat message.
    ///
    /// Does not mark the value as seen; see [`Live::load_and_update`].
    pub fn load(&self) -> Arc<T> {
        self.shared.value.load_full()
    }

    /// The current value, marked as seen by this handle: the next
    /// [`Live::changed`] waits for a value after it (tokio's
    /// `borrow_and_update`).
    pub fn load_and_update(&mut self) -> Arc<T> {
        // Marked first: the task stores a value before it announces it, so the
        // value loaded after is at least the one marked (at worst a newer one,
        // which `changed` then announces again).
        self.version.mark_unchanged();
        self.load()
    }

    /// Waits until the value differs from the last one this handle has seen
    /// (the one at its creation, or at its last `changed` or
    /// `load_and_update`), and marks it seen; then [`Live::load`] returns it.
    ///
    /// Cancel-safe. Fails with [`LiveClosed`] once the configuration has ended
    /// and every change has been seen.
    pub async fn changed(&mut self) -> Result<(), LiveClosed> {
        // tokio's `changed` marks the new version seen.
        self.version.changed().await.map_err(|_| LiveClosed)
    }

    /// Whether the value differs from the last one this handle has seen.
    /// Fails with [`LiveClosed`] once the configuration has ended.
    pub fn has_changed(&self) -> Result<bool, LiveClosed> {
        self.version.has_changed().map_err(|_| LiveClosed)
    }

    /// The JSON Pointer this value follows (`""` for the whole document).
    pub fn pointer(&self) -> &str {
        &self.shared.pointer
    }

    /// How many changes of the sub-tree did not deserialize as `T` (each kept
    /// the last good value).
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// The error of the last change that did not deserialize, if any ever did
    /// (it stays after a later good value: compare [`Live::failures`]).
    pub fn last_error(&self) -> Option<Arc<serde_json::Error>> {
        self.shared.last_error.load_full()
    }
}

/// Whether `pointer` is an RFC 6901 JSON Pointer.
fn valid_pointer(pointer: &str) -> bool {
    if pointer.is_empty() {
        return true;
    }
    if !pointer.starts_with('/') {
        return false;
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

/// The value at `pointer`, `null` if it does not resolve.
fn sub_tree<'a>(doc: &'a Value, pointer: &str) -> &'a Value {
    const NULL: &Value = &Value::Null;
    doc.pointer(pointer).unwrap_or(NULL)
}

impl<T: DeserializeOwned + Send + Sync + 'static> Live<T> {
    /// Deserializes the value at `pointer` now, and starts the task that
    /// follows it. `current` is the root's watch channel, already loaded.
    pub(crate) fn spawn(
        root: Hash,
        current: &watch::Receiver<Option<Current>>,
        pointer: &str,
    ) -> Result<Live<T>, LiveError> {
        if !valid_pointer(pointer) {
            return Err(LiveError::Pointer {
                pointer: pointer.to_owned(),
            });
        }
        let mut current = current.clone();
        // Marked seen here, so the task wakes for every change after this read.
        let Some(now) = current.borrow_and_update().clone() else {
            unreachable!("a Config exists only once its document is loaded")
        };
        let seen = sub_tree(&now.doc, pointer).clone();
        let value = T::deserialize(&seen).map_err(|source| LiveError::Deserialize {
            pointer: pointer.to_owned(),
            head: now.head,
            source,
        })?;
        let shared = Arc::new(Shared {
            value: ArcSwap::from_pointee(value),
            pointer: pointer.to_owned(),
            failures: AtomicU64::new(0),
            last_error: ArcSwapOption::empty(),
        });
        let (version_tx, version) = watch::channel(0);
        let failures = crate::metrics::live_failures();
        tokio::spawn(follow(
            root,
            current,
            version_tx,
            shared.clone(),
            seen,
            failures,
        ));
        Ok(Live { shared, version })
    }
}

/// The task behind a [`Live`]: one deserialization per change of its sub-tree.
///
/// Ends when the configuration ends (the hub drops its watch sender) or when
/// the last handle is dropped (`version` closes), whichever comes first.
async fn follow<T: DeserializeOwned + Send + Sync + 'static>(
    root: Hash,
    mut current: watch::Receiver<Option<Current>>,
    version: watch::Sender<u64>,
    shared: Arc<Shared<T>>,
    // The sub-tree of the value readers have.
    mut good: Value,
    // The process-wide series beside this view's own count.
    failures: ::metrics::Counter,
) {
    // The last sub-tree that did not deserialize, while it is current: a bad
    // value is reported once, not again at every change elsewhere in the
    // document. (Kept apart from `good` so that the usual case holds one copy.)
    let mut bad: Option<Value> = None;
    loop {
        tokio::select! {
            changed = current.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = version.closed() => return,
        }
        let Some(now) = current.borrow_and_update().clone() else {
            continue;
        };
        let sub = sub_tree(&now.doc, &shared.pointer);
        if *sub == good {
            // Unchanged, or back to the value readers have after a bad one.
            bad = None;
            continue;
        }
        if bad.as_ref() == Some(sub) {
            continue;
        }
        match T::deserialize(sub) {
            Ok(value) => {
                shared.value.store(Arc::new(value));
                good = sub.clone();
                bad = None;
                version.send_modify(|v| *v += 1);
            }
            Err(err) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                failures.increment(1);
                tracing::warn!(
                    root = %root,
                    head = %now.head,
                    pointer = %shared.pointer,
                    error = %err,
                    "the configuration does not deserialize: keeping the last good value"
                );
                shared.last_error.store(Some(Arc::new(err)));
                bad = Some(sub.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;
    use std::time::Duration;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use tikaconf_proto::RootConfig;

    use crate::testing::{Fleet, PATIENCE, fast_options};
    use crate::{Client, Config};

    /// How long a view that must not wake is watched.
    const QUIET: Duration = Duration::from_millis(300);

    #[derive(Debug, Deserialize, PartialEq)]
    struct Bot {
        #[serde(default)]
        commands: BTreeMap<String, String>,
    }

    async fn set(config: &Config, pointer: &str, value: Value) {
        config
            .update(|doc| {
                let mut parts = pointer.split('/').skip(1).peekable();
                let mut at = doc;
                while let Some(part) = parts.next() {
                    if parts.peek().is_none() {
                        at[part] = value.clone();
                        break;
                    }
                    at = &mut at[part];
                }
                Ok::<_, Infallible>(())
            })
            .await
            .unwrap();
    }

    async fn changed<T>(live: &mut Live<T>) {
        tokio::time::timeout(PATIENCE, live.changed())
            .await
            .expect("the value changes")
            .expect("the configuration is still followed");
    }

    async fn stays_quiet<T>(live: &mut Live<T>) {
        let waited = tokio::time::timeout(QUIET, live.changed()).await;
        assert!(waited.is_err(), "woke for a change of something else");
    }

    #[test]
    fn pointers_are_checked() {
        for ok in ["", "/", "/commands", "/a~0b/c~1d", "/0"] {
            assert!(valid_pointer(ok), "{ok:?}");
        }
        for bad in ["commands", "#/a", "/a~", "/a~2"] {
            assert!(!valid_pointer(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_typed_value_follows_writes() {
        let fleet = Fleet::start().await;
        let config = fleet
            .follow(RootConfig::twitch("#live_typed").unwrap())
            .await
            .unwrap();
        let mut bot = config.typed::<Bot>().unwrap();
        let first = bot.load();
        assert!(first.commands.is_empty());
        assert!(!bot.has_changed().unwrap());

        set(&config, "/commands", json!({"!hi": "hello"})).await;
        changed(&mut bot).await;
        let second = bot.load();
        assert_eq!(second.commands["!hi"], "hello");
        assert!(!Arc::ptr_eq(&first, &second));
        // A clone tracks what it has seen on its own.
        let mut other = bot.clone();
        set(&config, "/commands/!bye", json!("see you")).await;
        changed(&mut other).await;
        assert_eq!(other.load().commands.len(), 2);
        assert_eq!(bot.load_and_update().commands.len(), 2);
        assert!(!bot.has_changed().unwrap());
        assert_eq!(bot.failures(), 0);
    }

    #[tokio::test]
    async fn a_sub_tree_view_wakes_only_for_its_own_changes() {
        let fleet = Fleet::start().await;
        let config = fleet
            .follow(RootConfig::twitch("#live_at").unwrap())
            .await
            .unwrap();
        let mut commands = config
            .at::<Option<BTreeMap<String, String>>>("/commands")
            .unwrap();
        assert_eq!(*commands.load(), None);
        assert_eq!(commands.pointer(), "/commands");

        set(&config, "/timers", json!({"ad": 600})).await;
        stays_quiet(&mut commands).await;
        set(&config, "/commands", json!({"!hi": "hello"})).await;
        changed(&mut commands).await;
        assert_eq!(commands.load().as_ref().as_ref().unwrap()["!hi"], "hello");
        set(&config, "/timers/ad", json!(900)).await;
        stays_quiet(&mut commands).await;
        // Writing the same value again is no change either.
        set(&config, "/commands/!hi", json!("hello")).await;
        set(&config, "/timers/ad", json!(1200)).await;
        stays_quiet(&mut commands).await;
    }

    #[tokio::test]
    async fn a_bad_write_keeps_the_last_good_value() {
        let fleet = Fleet::start().await;
        let config = fleet
            .follow(RootConfig::twitch("#live_bad").unwrap())
            .await
            .unwrap();
        set(&config, "/commands", json!({"!hi": "hello"})).await;
        let mut commands = config.at::<BTreeMap<String, String>>("/commands").unwrap();
        assert_eq!(commands.load()["!hi"], "hello");

        set(&config, "/commands/!hi", json!(42)).await;
        stays_quiet(&mut commands).await;
        assert_eq!(commands.load()["!hi"], "hello");
        assert_eq!(commands.failures(), 1);
        assert!(commands.last_error().is_some());
        // A change elsewhere does not report the same bad value again.
        set(&config, "/timers", json!({"ad": 600})).await;
        stays_quiet(&mut commands).await;
        assert_eq!(commands.failures(), 1);

        // Back to the value readers have: nothing for them to see.
        set(&config, "/commands/!hi", json!("hello")).await;
        stays_quiet(&mut commands).await;
        set(&config, "/commands/!hi", json!("hi there")).await;
        changed(&mut commands).await;
        assert_eq!(commands.load()["!hi"], "hi there");
        assert_eq!(commands.failures(), 1);
    }

    #[tokio::test]
    async fn creating_a_view_fails_on_a_bad_pointer_or_value() {
        let fleet = Fleet::start().await;
        let config = fleet
            .follow(RootConfig::twitch("#live_err").unwrap())
            .await
            .unwrap();
        assert!(matches!(
            config.at::<Value>("commands"),
            Err(LiveError::Pointer { .. })
        ));
        // An absent part reads as null: fine for an Option, not for a map.
        assert!(config.at::<Option<u32>>("/missing").is_ok());
        let err = config
            .at::<BTreeMap<String, String>>("/missing")
            .unwrap_err();
        assert!(matches!(err, LiveError::Deserialize { ref pointer, .. } if pointer == "/missing"));
        assert!(std::error::Error::source(&err).is_some());
    }

    /// A change that comes by re-sync (no patch to look at) reaches a view too:
    /// the second node loses the patch to /commands (its bus drops it, and says
    /// so, as Redis's overflow does), and adopts storage's snapshot.
    #[tokio::test]
    async fn a_re_sync_updates_a_view() {
        use std::sync::atomic::AtomicBool;

        use futures_util::StreamExt;
        use tikaconf_proto::BusEvent;

        use crate::bus::BusHandle;

        let fleet = Fleet::start().await;
        let config = fleet
            .follow(RootConfig::twitch("#live_resync").unwrap())
            .await
            .unwrap();
        let losing = Arc::new(AtomicBool::new(false));
        let (inject, injected) = tokio::sync::mpsc::unbounded_channel::<BusEvent>();
        let lossy = {
            let BusHandle { bus, events } = fleet.broker().connect();
            let losing = losing.clone();
            let events = events.filter(move |e| {
                let lose = losing.load(Ordering::SeqCst) && matches!(e, BusEvent::Message { .. });
                std::future::ready(!lose)
            });
            let injected = futures_util::stream::unfold(injected, |mut rx| async move {
                rx.recv().await.map(|e| (e, rx))
            });
            BusHandle::new(bus, futures_util::stream::select(events, injected))
        };
        let other = Client::with_bus(lossy, fast_options());
        let second = other.follow(config.root()).await.unwrap();
        let mut commands = second
            .at::<Option<BTreeMap<String, String>>>("/commands")
            .unwrap();

        losing.store(true, Ordering::SeqCst);
        set(&config, "/commands", json!({"!hi": "hello"})).await;
        stays_quiet(&mut commands).await;
        losing.store(false, Ordering::SeqCst);
        inject
            .send(BusEvent::Overflowed {
                dropped: 1,
                channels: None,
            })
            .unwrap();
        changed(&mut commands).await;
        assert_eq!(commands.load().as_ref().as_ref().unwrap()["!hi"], "hello");
        assert_eq!(second.head(), config.head());
        let stats = second.stats();
        assert_eq!(stats.applied, 0, "no patch reached the second node");
        assert!(stats.resyncs >= 1, "it came by re-sync: {stats:?}");
    }

    #[tokio::test]
    async fn the_task_ends_with_the_last_handle() {
        let fleet = Fleet::start().await;
        let config = fleet
            .follow(RootConfig::twitch("#live_drop").unwrap())
            .await
            .unwrap();
        let live = config.typed::<Value>().unwrap();
        let task = Arc::downgrade(&live.shared);
        let clone = live.clone();
        drop(live);
        set(&config, "/a", json!(1)).await;
        assert!(task.upgrade().is_some(), "a clone is left");
        drop(clone);
        tokio::time::timeout(PATIENCE, async {
            while task.upgrade().is_some() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the task ends once every handle is gone");
    }

    #[tokio::test]
    async fn the_task_ends_when_the_configuration_ends() {
        let fleet = Fleet::start().await;
        let config = fleet
            .follow(RootConfig::twitch("#live_unfollow").unwrap())
            .await
            .unwrap();
        let mut live = config.typed::<Value>().unwrap();
        set(&config, "/a", json!(1)).await;
        drop(config);
        // The change before the end is still delivered, then the end.
        changed(&mut live).await;
        assert_eq!(live.load()["a"], 1);
        let end = tokio::time::timeout(PATIENCE, live.changed())
            .await
            .expect("the end is announced");
        assert_eq!(end, Err(LiveClosed));
        assert_eq!(live.load()["a"], 1, "the last value stays readable");
    }
}
