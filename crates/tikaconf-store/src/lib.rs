//! Where storage nodes keep the latest state of every root, behind one small trait.
//!
//! A storage node's whole durable state is, per root, "the latest hash and the
//! snapshot that reaches it". Everything else (the patch chain, the history) lives
//! on the bus and is never needed again once a newer head is stored. So a backend
//! needs exactly two operations beyond reading: *register* a root, and move a head
//! forward with a *compare-and-set* ("if the head is still `expected`, make it
//! `new`"). The compare-and-set is what lets several storage nodes share one
//! backend without locks: the node that loses a race learns that another node
//! already stored the same head ([`PersistOutcome::AlreadyStored`]) or that the
//! store has moved on ([`PersistOutcome::Stale`]), and never overwrites newer state
//! with older.
//!
//! Commits come in batches because the durable sync is the expensive part: a
//! backend applies a whole batch in one transaction with one sync (group commit),
//! so a burst of patches costs one fsync rather than one each.
//!
//! Beside each head a store may keep the root's *history*: the patches that
//! led to it, each as the storage node accepted it, in a log keyed by height
//! and bounded by a per-deployment [`Retention`] (the last 1,000 per root by
//! default). The history never changes what a node decides (heads alone do),
//! and a commit costs one appended record more, plus the deletion of the one
//! that falls out of the window; [`Retention::None`] writes exactly what a
//! store without history did. It is for people and tools (`tikaconf log`, the
//! history endpoint, `verify`) and for catching a follower up with the few
//! patches it missed ([`Store::patches_since`]).
//!
//! Backends here: [`MemoryStore`] (tests and the in-process bus) and [`RedbStore`]
//! (one node's local disk). `tikaconf-redis` adds a store that several nodes share.
//! [`conformance`] is the behaviour every backend must show; it is always compiled
//! (it is small and needs nothing extra) so that backends in other crates can run
//! it from their own tests. The `conformance` cargo feature exists only so that
//! asking for it is not an error.

use std::future::Future;

/// The store speaks the storage engine's own vocabulary: a `Persist` command's
/// compare-and-sets go to [`Store::commit`] as they are, and its outcomes go
/// back to the engine as they come, with no second copy of either type.
pub use tikaconf_proto::storage::{HeadRef, PersistCommit, PersistOutcome};
pub use tikaconf_proto::{Hash, StoredHead};

mod chain;
pub mod conformance;
mod memory;
mod redb_store;
mod retention;
mod wal;

pub use chain::{MAX_CHAIN, StoredChain, read_chain};
pub use memory::MemoryStore;
pub use redb_store::{FILE_NAME, LOG_SUFFIX, RedbStore};
pub use retention::{ParseRetentionError, Retention, StoreOptions};

/// Why a store operation failed. Outcomes of a compare-and-set (including losing a
/// race) are not errors; these are failures of the backend itself, after which the
/// caller should retry later or give up, but never assume the write happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The operating system refused a read, write or sync.
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The backend (database, server, connection) reported an error.
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// Stored data does not decode; a person must look at it.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// This backend cannot do what was asked (the operation names it), e.g. a
    /// store written before it could list its roots. Not a failure of the data:
    /// the caller should say the feature is missing rather than retry.
    #[error("this store cannot {0}")]
    Unsupported(&'static str),
    /// The caller asked for something the contract forbids (e.g. registering a root
    /// at a height other than 0). A bug in the caller, reported rather than stored.
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The write-ahead log holds a record that fails its checksum *followed by* a
    /// valid record that continues the chain: the bad record is not a write torn by
    /// a crash (a torn write is always the last one) but damage to a record that
    /// was synced and maybe acknowledged. Dropping it, and everything after it,
    /// would lose acknowledged writes, so the store refuses to open; a person must
    /// look at the file (restore it, or move it away and accept the loss).
    #[error(
        "write-ahead log {p} is corrupt: record {seq} at offset {offset} is damaged, \
         yet record {later_seq} at offset {later_offset} follows it; refusing to drop \
         acknowledged writes (restore the log, or move it away to start without them)",
        p = .path.display()
    )]
    CorruptLog {
        /// The write-ahead log file.
        path: std::path::PathBuf,
        /// Sequence the damaged record should have had (one above the last good one).
        seq: u64,
        /// File offset at which the damaged record starts.
        offset: u64,
        /// The first valid record found after it whose sequence continues the chain.
        later_seq: u64,
        /// File offset at which that valid record starts.
        later_offset: u64,
    },
    /// The database says it has a write-ahead log (it keeps the log's id) but there
    /// is no log file. Whatever the log held and the database does not is gone, and
    /// starting with a new log would hide that, so the store refuses to open.
    #[error(
        "write-ahead log {p} is missing, but the database beside it expects one \
         (log id {log_id:016x}); writes acknowledged since the last checkpoint may be \
         lost. Restore the log file, or delete the database too to start empty",
        p = .path.display()
    )]
    MissingLog {
        /// Where the log file should be.
        path: std::path::PathBuf,
        /// The id of the log the database belongs with, as it records it.
        log_id: u64,
    },
    /// A write failed in a way that leaves the store unable to write again in this
    /// process (e.g. a failed `fdatasync` of the log: the kernel may have dropped
    /// the unwritten pages, so a later sync proves nothing). Every later write
    /// fails the same way. Reads still work, but a node that can no longer store
    /// anything must stop (see [`StoreError::is_fatal`]): reopening the store,
    /// which replays what really is on disk, is the only recovery.
    #[error(
        "the store {p} can no longer write; restart the process to reopen it",
        p = .path.display()
    )]
    Poisoned {
        /// The store's write-ahead log file.
        path: std::path::PathBuf,
        /// The failure that poisoned the store (the first one; later writes
        /// report it again).
        #[source]
        source: std::sync::Arc<StoreError>,
    },
}

impl StoreError {
    /// Whether the store can no longer write in this process
    /// ([`StoreError::Poisoned`]): retrying is useless, and the process should exit
    /// so that a supervisor restarts it and the store is reopened.
    pub fn is_fatal(&self) -> bool {
        matches!(self, StoreError::Poisoned { .. })
    }
}

/// Most roots [`Store::list_roots`] returns at once: a page is a bounded read
/// whatever the caller asks, so that 100,000 roots are never one answer.
pub const MAX_LIST_ROOTS: usize = 1000;

/// One registered root, as [`Store::list_roots`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedRoot {
    /// The root hash (the page's order and its cursor).
    pub root: Hash,
    /// Its latest head and height.
    pub head: HeadRef,
    /// The canonical snapshot message it was registered with (height 0: its
    /// `config` is the root configuration, the connection info), kept as
    /// opaque bytes like every snapshot. Every store keeps it; `None` only for
    /// a root that moved past height 0 in a redb store written before redb
    /// kept it (converted on open, with nothing to recover it from).
    ///
    /// Why: a store otherwise holds only the latest snapshot, and once a root
    /// has moved past height 0 nothing says which channel or server it is for;
    /// a listing filtered by platform, or a console showing channel names,
    /// needs that. redb moves it from `snapshots` to a table appended in
    /// order when the root first changes (6 % more file for 100,000 moved
    /// roots; keyed by root hash instead, 1.8x: see its `record` module).
    pub registration: Option<bytes::Bytes>,
}

impl ListedRoot {
    /// A listed root (the struct is non-exhaustive, so backends in other
    /// crates build it here).
    pub fn new(root: Hash, head: HeadRef, registration: Option<bytes::Bytes>) -> ListedRoot {
        ListedRoot {
            root,
            head,
            registration,
        }
    }
}

/// Most patches [`Store::history`] and [`Store::patches_since`] return at once,
/// whatever the caller asks: a bounded read, like a page of roots.
pub const MAX_HISTORY: usize = 1000;

/// One patch of a root's history, as [`Store::history`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoggedPatch {
    /// The height the patch made (its `height` field): the history's order and
    /// its cursor.
    pub height: u64,
    /// The patch message exactly as the storage node accepted it (its `sig`
    /// included), opaque to the store.
    pub patch: bytes::Bytes,
}

impl LoggedPatch {
    /// A logged patch (the struct is non-exhaustive, so backends in other
    /// crates build it here).
    pub fn new(height: u64, patch: bytes::Bytes) -> LoggedPatch {
        LoggedPatch { height, patch }
    }
}

/// A backend that holds the latest head of every registered root.
///
/// Methods return `Send` futures so that a storage node can drive a store from any
/// task of a multi-threaded runtime.
pub trait Store: Send + Sync + 'static {
    /// Current head of `root`, if the root is registered.
    fn load(
        &self,
        root: Hash,
    ) -> impl Future<Output = Result<Option<StoredHead>, StoreError>> + Send;

    /// Registers a root at height 0 (`head.head == head.root`) if absent; returns
    /// the current head either way, so a node that restarts (or a second node)
    /// registering the same root picks up where the store is.
    fn register(
        &self,
        head: StoredHead,
    ) -> impl Future<Output = Result<StoredHead, StoreError>> + Send;

    /// Applies a batch of compare-and-set commits, in order, in ONE transaction with
    /// ONE durable sync. Commits for the same root may chain within a batch (the
    /// second's `expected_head` is the first's `new.head`). Returns one outcome per
    /// commit, in the same order; on `Err` nothing of the batch was applied.
    fn commit(
        &self,
        batch: Vec<PersistCommit>,
    ) -> impl Future<Output = Result<Vec<PersistOutcome>, StoreError>> + Send;

    /// Number of registered roots (for status and tests).
    fn root_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The current heads of `roots` (without their snapshots), one entry per root
    /// in the same order, `None` for a root that is not registered.
    ///
    /// A storage node on a shared store calls this to check its cache against the
    /// store after a reconnect and before answering a load: a read of a few dozen
    /// bytes per root where a [`Store::load`] reads whole documents. The default
    /// does it with `load`; backends override it with one cheap read.
    fn heads(
        &self,
        roots: Vec<Hash>,
    ) -> impl Future<Output = Result<Vec<Option<HeadRef>>, StoreError>> + Send {
        async move {
            let mut heads = Vec::with_capacity(roots.len());
            for root in roots {
                heads.push(self.load(root).await?.as_ref().map(HeadRef::from));
            }
            Ok(heads)
        }
    }

    /// Up to `limit` (at most [`MAX_LIST_ROOTS`]) registered roots whose hash
    /// is above `after` (all when `None`), in ascending order of hash bytes,
    /// with their heads and registrations: a page of a listing whose cursor is
    /// the last root of the previous page, so pages neither skip nor repeat a
    /// root that existed before the listing began, however many roots are
    /// registered meanwhile.
    ///
    /// For operators and the HTTP API (`GET /v1/roots`); storage nodes never
    /// call it. The default fails with [`StoreError::Unsupported`], for a
    /// backend that cannot list.
    fn list_roots(
        &self,
        after: Option<Hash>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ListedRoot>, StoreError>> + Send {
        let _ = (after, limit);
        async { Err(StoreError::Unsupported("list its roots")) }
    }

    /// How much history this store keeps (what it was opened with). The
    /// default, for a backend that keeps none, is [`Retention::None`].
    fn retention(&self) -> Retention {
        Retention::None
    }

    /// Up to `limit` (at most [`MAX_HISTORY`]) patches of `root`'s history
    /// with heights below `before` (all when `None`), newest first: a page of
    /// a listing whose cursor is the last height of the previous page. Only
    /// patches within the store's [`Retention`] window of the root's current
    /// head are returned, whatever the store still holds (after a restart
    /// with a smaller setting). Empty for an unknown root, a root with no
    /// patches kept, and under [`Retention::None`]. Registrations are not
    /// patches and never appear. A history may have gaps where commits were
    /// made without their patch (a storage node running with `none`, or older
    /// than history, on a shared store): the heights say so.
    ///
    /// For people and tools (`tikaconf log`, the history endpoint); storage
    /// nodes never call it. The default fails with
    /// [`StoreError::Unsupported`].
    fn history(
        &self,
        root: Hash,
        before: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LoggedPatch>, StoreError>> + Send {
        let _ = (root, before, limit);
        async { Err(StoreError::Unsupported("keep history")) }
    }

    /// The patches that take `root` from height `height` to its current head,
    /// oldest first (heights `height + 1 ..= head`), read in one consistent
    /// step; empty when `height` is the head's. `None` unless every one of
    /// them is within the retention window and held, and there are at most
    /// `max` (and [`MAX_HISTORY`]) of them, or when the root is unknown or
    /// `height` is above its head: the caller then sends a snapshot instead.
    ///
    /// For catching up a follower that missed a few patches, when they are
    /// smaller than the snapshot. The default fails with
    /// [`StoreError::Unsupported`].
    fn patches_since(
        &self,
        root: Hash,
        height: u64,
        max: usize,
    ) -> impl Future<Output = Result<Option<Vec<bytes::Bytes>>, StoreError>> + Send {
        let _ = (root, height, max);
        async { Err(StoreError::Unsupported("keep history")) }
    }

    /// Whether other storage nodes may write this store too (a store in a shared
    /// server, or a shared in-memory map), so that a node's cache can fall behind
    /// without its hearing of it. A store only one node can open says `false`, and
    /// its node skips the reads that guard against that.
    fn is_shared(&self) -> bool {
        true
    }

    /// This store's identity: made once, when the store is created, and kept in
    /// it, so that every node opening the same store reads the same id and nodes
    /// of different stores read different ones. Storage nodes announce it so that
    /// two independent stores never serve one bus (see
    /// `tikaconf_proto::storage::presence`). 1 to 64 characters from `0-9`,
    /// `a-z`, `A-Z`, `_` and `-`.
    fn store_id(&self) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Claims, or renews, the right to answer load requests for `ttl`, for the
    /// storage node named `node`; `true` if `node` holds it now.
    ///
    /// Every storage node of a shared store hears every load request; the lease
    /// makes one of them answer (see `StorageEngine::handle_answerer`). A store
    /// only one node uses needs no lease: the default says yes.
    fn claim_answerer(
        &self,
        node: String,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (node, ttl);
        async { Ok(true) }
    }

    /// Gives the lease up if `node` holds it (a node shutting down), so that
    /// another node takes over at its next claim instead of when it expires.
    fn release_answerer(
        &self,
        node: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = node;
        async { Ok(()) }
    }
}

/// Rejects a registration that is not at height 0 of its own root, so that every
/// backend enforces the same contract.
pub(crate) fn check_register(head: &StoredHead) -> Result<(), StoreError> {
    if head.head != head.root || head.height != 0 {
        return Err(StoreError::Invalid(format!(
            "register must be at height 0 with head == root, got root {} head {} height {}",
            head.root, head.head, head.height
        )));
    }
    Ok(())
}

/// Decides one compare-and-set against the current head, the same way in every
/// backend. Checking `new.head` first matters: a degenerate commit whose expected
/// and new heads are equal must not "apply" and then delete the snapshot it keeps.
pub(crate) fn decide(current: Option<&StoredHead>, commit: &PersistCommit) -> PersistOutcome {
    match current {
        Some(cur) if cur.head == commit.new.head => PersistOutcome::AlreadyStored,
        Some(cur) if cur.head == commit.expected_head => PersistOutcome::Applied,
        other => PersistOutcome::Stale {
            current: other.cloned(),
        },
    }
}

/// A page of history from a root's log entries (`entries`: height and patch, in
/// ascending height order, possibly holding more than the window), the same
/// way in every backend: within `retention`'s window of `head_height`, below
/// `before`, newest first, at most `limit` (and [`MAX_HISTORY`]). Public for
/// backends in other crates, so that every one applies the window alike.
pub fn history_page(
    retention: Retention,
    head_height: u64,
    entries: impl DoubleEndedIterator<Item = (u64, bytes::Bytes)>,
    before: Option<u64>,
    limit: usize,
) -> Vec<LoggedPatch> {
    entries
        .rev()
        .filter(|(height, _)| before.is_none_or(|before| *height < before))
        .take_while(|(height, _)| retention.keeps(*height, head_height))
        .take(limit.min(MAX_HISTORY))
        .map(|(height, patch)| LoggedPatch::new(height, patch))
        .collect()
}

/// The answer of [`Store::patches_since`] from a root's log entries with
/// heights above `height` (ascending), the same way in every backend: `Some`
/// only if they are exactly `height + 1 ..= head_height`, all within the
/// window, and at most `max` (and [`MAX_HISTORY`]) of them. Public for
/// backends in other crates.
pub fn patches_since_from(
    retention: Retention,
    head_height: u64,
    height: u64,
    max: usize,
    entries: impl Iterator<Item = (u64, bytes::Bytes)>,
) -> Option<Vec<bytes::Bytes>> {
    let need = head_height.checked_sub(height)?;
    if need > max.min(MAX_HISTORY) as u64 {
        return None;
    }
    if need > 0 && !retention.keeps(height + 1, head_height) {
        return None;
    }
    let mut out = Vec::with_capacity(need as usize);
    for (expected, (at, patch)) in (height + 1..=head_height).zip(entries) {
        if at != expected {
            return None;
        }
        out.push(patch);
    }
    (out.len() as u64 == need).then_some(out)
}
