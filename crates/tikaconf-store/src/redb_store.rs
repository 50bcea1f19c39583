//! A durable store in one local redb file and a write-ahead log beside it, for a
//! storage node that keeps its own state on disk.
//!
//! redb gives what the store contract needs: ACID write transactions (so a batch is
//! all-or-nothing), readers that only ever see committed transactions, and crash
//! safety (a file left behind by a process killed mid-write reopens at its last
//! *durable* commit). redb is a synchronous library; where its calls run depends on
//! the runtime (see [Where the work runs](#where-the-work-runs)).
//!
//! Layout, as in the design:
//! - `roots`: root hash -> its record: latest hash, height, and once it has
//!   moved past height 0 the number of its registration (see [`record`]; a store written before the record had `heads` instead, root
//!   hash -> (latest hash, height), converted when it is first opened)
//! - `snapshots`: latest hash -> canonical snapshot bytes
//! - `registrations`: number -> the snapshot a root was registered with, moved
//!   here from `snapshots` when the root first changes (see [`record`])
//! - `patches`: (root hash, height) -> the patch that made that height, as the
//!   storage node accepted it: the root's history (see [`history`]), bounded
//!   by the store's [`Retention`]; absent entries under `none`
//! - `meta`: `"log_seq"` -> sequence of the last batch applied, `"log_id"` -> id of
//!   the write-ahead log that belongs to this database (see below),
//!   `"last_registration"` -> the number of the last entry of `registrations`
//!
//! Only the latest snapshot of each root is kept: moving a head deletes the old
//! hash's snapshot in the same transaction.
//!
//! # Why a write-ahead log
//!
//! A storage node acknowledges a write only once it is durable, so the cost of a
//! durable commit is the latency of every write. A durable redb commit rewrites
//! B-tree pages across its file and syncs them; the log ([`crate::wal`]) instead
//! costs one small write into already-allocated blocks and one `fdatasync`. So a
//! batch is committed like this, all under one lock that serializes writers:
//!
//! 1. decide and apply the batch in a redb write transaction, and write the batch's
//!    sequence number into `meta` in the same transaction;
//! 2. append a record holding the applied commits to the log, and sync it: from
//!    here on the batch survives a crash (replay redoes it);
//! 3. commit the transaction with [`Durability::None`]: no sync, but now visible.
//!
//! Doing 2 before 3 means that a concurrent `load`, which only sees committed
//! transactions, never reads a state that a crash could take back.
//!
//! **Checkpoint.** Non-durable redb commits become durable together with the next
//! durable one. When a batch's record does not fit in the log's remaining space,
//! that batch is committed durably instead of being logged (this is the
//! checkpoint, and costs one ordinary durable redb commit), and the log starts over
//! from its beginning. A registration is logged like a batch of one commit whose
//! expected head is all zeros (no snapshot has that key, so replaying it removes
//! nothing): a process that follows a thousand new channels at once registers
//! them at the cost of log appends, not of a thousand durable redb commits.
//!
//! **Open.** redb reopens at its last durable commit, whose `meta` says which batch
//! it holds last (`D`). Log records with sequences up to `D` are already in it; those
//! after are redone, in order, in one durable transaction, and the log starts over.
//! A record torn by a crash ends the log (it was never acknowledged); see
//! [`crate::wal`] for why stale records left by reuse are never redone. A damaged
//! record followed by a valid one that continues the chain is not a torn tail but
//! corruption of synced (maybe acknowledged) writes: the open fails
//! ([`StoreError::CorruptLog`], naming the record) instead of dropping them. So
//! does a missing log beside a database that keeps a log id
//! ([`StoreError::MissingLog`]); only a database without one gets a new log.
//!
//! **Failure.** If writing or syncing the log fails, or redb fails after the record
//! is synced, the store refuses every later write ([`StoreError::Poisoned`], which
//! [`StoreError::is_fatal`] reports, so that a storage node exits and its
//! supervisor restarts it) until it is
//! opened again: the batch may or may not be on disk, exactly as after a crash at
//! that point, and only a reopen (which replays what really is on disk) can tell.
//! The failed call returns `Err` and its batch is not visible in this process; a
//! reopen may find it durable, which is why an `Err` never means "certainly not
//! written".
//!
//! # Where the work runs
//!
//! On a multi-thread runtime every operation runs on tokio's blocking pool, so
//! that a commit's `fdatasync` never stalls a worker that other tasks share. On a
//! **current-thread** runtime it runs inline, on the calling thread. That is the
//! runtime a storage process of its own uses (the `tikaconf storage` command):
//! there the node's loop is the only work of consequence and it waits for the
//! commit's outcome anyway, while a hand-off to the pool costs two thread
//! wake-ups per commit (to the pool thread and back), each up to tens of
//! microseconds on a busy machine, and a pool thread competing with the loop for
//! the cores. Measured with `tikaconf-bench` (docs/PERFORMANCE.md): a durable
//! write's latency and a single root's chain of committed writes about 15% faster,
//! committed writes/s from 16 writers about 50% higher. Commits never overlap
//! either way: the lock that serializes writers is held across the whole batch.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, TableHandle,
};

mod delta;
mod history;
mod record;

use self::history::PATCHES;
use self::record::RootRecord;
use crate::wal::{self, Wal};
use crate::{
    Hash, HeadRef, ListedRoot, LoggedPatch, MAX_LIST_ROOTS, PersistCommit, PersistOutcome,
    Retention, Store, StoreError, StoreOptions, StoredHead, check_register,
};

/// `root -> record` (see [`record`]).
const ROOTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("roots");
/// `number -> the snapshot a root was registered with`, for each root that has
/// moved past height 0; its record holds the number (see [`record`] for why
/// not the root hash).
const REGISTRATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("registrations");
/// What `roots` replaced: `root -> (latest hash, height)`. Only read, by the
/// conversion of an older store when it is opened.
const OLD_HEADS: TableDefinition<[u8; 32], ([u8; 32], u64)> = TableDefinition::new("heads");
/// `latest hash -> snapshot bytes`.
const SNAPSHOTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("snapshots");
/// Bookkeeping: [`LOG_SEQ`], [`LOG_ID`], [`STORE_ID`], [`LAST_REGISTRATION`].
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Key in `meta` of the sequence number of the last batch applied (0: none yet).
/// Written in the same transaction as the batch, so the durable state always says
/// which log records it already holds.
const LOG_SEQ: &str = "log_seq";
/// Key in `meta` of the number of the last registration moved to
/// `registrations` (absent: none yet).
const LAST_REGISTRATION: &str = "last_registration";
/// Key in `meta` of the id of this database's log (absent: the database has never
/// had one, e.g. it is new or older than the log), so that a log left beside a
/// database it does not belong to is never replayed into it.
const LOG_ID: &str = "log_id";
/// Key in `meta` of the store's identity (see [`Store::store_id`]), drawn at
/// random when the database is created (or first opened by a version that keeps
/// one).
const STORE_ID: &str = "store_id";

/// The file name used when [`RedbStore::open`] is given a directory.
pub const FILE_NAME: &str = "tikaconf.redb";
/// Appended to the database file's name to name its write-ahead log
/// (`tikaconf.redb.wal`).
pub const LOG_SUFFIX: &str = ".wal";

/// A [`Store`] in a redb database file. Cheap to clone; clones share the database.
#[derive(Debug, Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
    path: PathBuf,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    /// See [`Store::store_id`].
    store_id: u64,
    /// Held by every write (commit, register) for its whole transaction, so that
    /// records reach the log in the order their transactions commit.
    wal: Mutex<Wal>,
    /// How much history to keep: this process's setting, not the file's.
    retention: Retention,
}

impl RedbStore {
    /// Opens (creating if needed) the store at `path`: an existing directory gets a
    /// `tikaconf.redb` file inside it, anything else is taken as the file's path
    /// (its parent directories are created). The write-ahead log is the same path
    /// with [`LOG_SUFFIX`] appended.
    ///
    /// This blocks (it may have to recover a file left by a crash and replay the
    /// log); call it at startup, or from `spawn_blocking`. Only one process may have
    /// a file open at a time: a second open fails with [`StoreError::Backend`]. A
    /// log that is not a tikaconf log, or that holds a record which passes its
    /// checksum but does not decode, fails with [`StoreError::Corrupt`] rather than
    /// dropping writes that may have been acknowledged; a damaged record in the
    /// middle of the log with [`StoreError::CorruptLog`]; a missing log beside a
    /// database that had one with [`StoreError::MissingLog`].
    ///
    /// The store keeps the default [`Retention`] of history; see
    /// [`RedbStore::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        RedbStore::open_with(path, StoreOptions::default())
    }

    /// [`RedbStore::open`] with `options`: how much history to keep. The
    /// setting is not stored; a smaller one than the file was written with
    /// hides the excess at once and prunes it root by root as roots commit.
    /// Log records replayed by this open are applied under this setting.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<RedbStore, StoreError> {
        RedbStore::open_with_log_capacity(path.as_ref(), wal::DEFAULT_CAPACITY, options)
    }

    /// [`RedbStore::open_with`] with a log file of `capacity` bytes when it has
    /// to be created (tests use a small one to make checkpoints frequent).
    pub(crate) fn open_with_log_capacity(
        path: &Path,
        capacity: u64,
        options: StoreOptions,
    ) -> Result<RedbStore, StoreError> {
        let retention = options.retention;
        let path = if path.is_dir() {
            path.join(FILE_NAME)
        } else {
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)?;
            }
            path.to_path_buf()
        };
        // redb first: its file lock is what keeps a second process away from the
        // log too.
        let db = Database::create(&path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        let (mut log, last, store_id) = {
            // Create every table up front so that readers never meet a missing one.
            let mut tables = Tables::open(&txn)?;
            convert_old_heads(&txn, &mut tables.roots)?;
            let owner = tables.meta.get(LOG_ID).map_err(backend)?.map(|v| v.value());
            let durable = tables
                .meta
                .get(LOG_SEQ)
                .map_err(backend)?
                .map_or(0, |v| v.value());
            let (log, records) = Wal::open(&log_path(&path), capacity, owner, durable)?;
            if owner.is_none() {
                tables.meta.insert(LOG_ID, log.id()).map_err(backend)?;
            }
            let kept = tables
                .meta
                .get(STORE_ID)
                .map_err(backend)?
                .map(|v| v.value());
            let store_id = match kept {
                Some(id) => id,
                None => {
                    let id = rand::random::<u64>();
                    tables.meta.insert(STORE_ID, id).map_err(backend)?;
                    id
                }
            };
            let mut last = durable;
            for record in &records {
                if record.seq <= durable {
                    // Already in the durable state (written before its checkpoint,
                    // or made durable when the store was last closed).
                    continue;
                }
                if record.seq != last + 1 {
                    return Err(StoreError::Corrupt(format!(
                        "write-ahead log record {} follows database sequence {last}: \
                         the records between are missing",
                        record.seq
                    )));
                }
                for commit in wal::decode_commits(record.seq, &record.payload)? {
                    let patch = commit.patch.as_deref();
                    let old = read_record(&tables.roots, &commit.new.root)?;
                    let record =
                        apply(&mut tables, old, &commit.expected_head, &commit.new, patch)?;
                    // A head without its snapshot needs its patch, whatever
                    // this process's retention.
                    let keeps = if commit.new.snapshot.is_empty() {
                        Retention::All
                    } else {
                        retention
                    };
                    history::append(
                        &mut tables.patches,
                        keeps,
                        &commit.new,
                        patch,
                        record.base_height,
                    )?;
                }
                last = record.seq;
            }
            if last != durable {
                tables.meta.insert(LOG_SEQ, last).map_err(backend)?;
            }
            (log, last, store_id)
        };
        // Durable (redb's default), and only then may the log be reused.
        txn.commit().map_err(backend)?;
        log.restart(last + 1);
        Ok(RedbStore {
            inner: Arc::new(Inner {
                db,
                store_id,
                wal: Mutex::new(log),
                retention,
            }),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The write-ahead log file beside the database file.
    pub fn log_path(&self) -> PathBuf {
        log_path(&self.path)
    }

    /// **Test-only fault injection; never call it in production.** The next write
    /// that appends to the log writes its record and then fails as if `fdatasync`
    /// had returned an I/O error, which poisons the store exactly as a real failed
    /// sync does ([`StoreError::Poisoned`]). It exists so that tests of the layers
    /// above (a storage node must exit when its store can no longer write) can
    /// cause the failure for real, through the store's own failure path, without
    /// a faulty disk.
    #[doc(hidden)]
    pub fn inject_log_sync_failure(&self) {
        if let Ok(mut log) = self.inner.wal.lock() {
            log.fail_next_sync();
        }
    }

    /// Runs blocking database work inline on a current-thread runtime, on tokio's
    /// blocking pool otherwise (see [Where the work runs](self#where-the-work-runs)).
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        if runs_inline() {
            return work(&self.inner);
        }
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| StoreError::Backend(format!("redb task failed: {e}")))?
    }
}

/// Whether store work should run on the calling thread: on a current-thread
/// runtime (or outside any runtime, where there is no pool to hand it to).
fn runs_inline() -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) => handle.runtime_flavor() == RuntimeFlavor::CurrentThread,
        Err(_) => true,
    }
}

impl Inner {
    /// Takes the log for a write, refusing if an earlier write broke it. A write
    /// that panicked while holding the log left it poisoned for good, and the
    /// state of its transaction and record unknown: as fatal as a failed sync.
    fn log(&self) -> Result<MutexGuard<'_, Wal>, StoreError> {
        let log = self.wal.lock().map_err(|poisoned| StoreError::Poisoned {
            path: poisoned.get_ref().path().to_path_buf(),
            source: Arc::new(StoreError::Backend("a write to the store panicked".into())),
        })?;
        log.check()?;
        Ok(log)
    }
}

fn log_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(LOG_SUFFIX);
    PathBuf::from(name)
}

/// Maps any redb error into the store's error, keeping I/O and corruption apart
/// because callers react to them differently.
fn backend(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Io(io) => StoreError::Io(io),
        redb::Error::Corrupted(msg) => StoreError::Corrupt(msg),
        other => StoreError::Backend(other.to_string()),
    }
}

/// Reads a root's record through any table handle (read or write transaction).
fn read_record(
    roots: &impl ReadableTable<[u8; 32], &'static [u8]>,
    root: &Hash,
) -> Result<Option<RootRecord>, StoreError> {
    match roots.get(root.as_bytes()).map_err(backend)? {
        Some(entry) => RootRecord::decode(root, entry.value()).map(Some),
        None => Ok(None),
    }
}

/// Reads a root's head through any table handle (read or write transaction):
/// its own snapshot, or the base's with the patches since replayed (see
/// [`delta`]).
fn read_head(
    roots: &impl ReadableTable<[u8; 32], &'static [u8]>,
    snapshots: &impl ReadableTable<[u8; 32], &'static [u8]>,
    patches: &impl ReadableTable<([u8; 32], u64), &'static [u8]>,
    root: Hash,
) -> Result<Option<StoredHead>, StoreError> {
    let Some(record) = read_record(roots, &root)? else {
        return Ok(None);
    };
    let base = snapshots
        .get(record.base.as_bytes())
        .map_err(backend)?
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "root {root} points at {}, which has no snapshot",
                record.base
            ))
        })?;
    let snapshot = if record.is_full() {
        Bytes::copy_from_slice(base.value())
    } else {
        let key = *root.as_bytes();
        let since = patches
            .range((key, record.base_height + 1)..=(key, record.height))
            .map_err(backend)?
            .map(|entry| {
                let (k, v) = entry.map_err(backend)?;
                Ok((k.value().1, Bytes::copy_from_slice(v.value())))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        delta::replay(root, &record, base.value(), since)?
    };
    Ok(Some(StoredHead {
        root,
        head: record.head,
        height: record.height,
        snapshot,
    }))
}

/// The "expected head" a registration is logged with: names no snapshot.
const REGISTERED: Hash = Hash::from_bytes([0; 32]);

/// Moves `new.root`'s head from `expected_head` to `new.head`: the writes of one
/// applied compare-and-set, shared by `commit`, `register` and replay so that
/// all leave the same state. A registration is the case where the root has no
/// record yet (`expected_head` is then [`REGISTERED`], which names no snapshot).
///
/// The old head's snapshot is deleted, except the root's own registration when
/// the root leaves height 0: that moves into the record (see [`record`]).
///
/// A `new` with an empty snapshot is a head without one of its own (see
/// [`delta`]): the record moves to it and keeps its base, whose snapshot
/// stays; `patch`, the commit's, is what a load replays (the caller puts it
/// into `patches`).
///
/// `old` is the root's record as the caller read it in this transaction
/// (`None` for a registration); the new one is returned.
fn apply(
    tables: &mut Tables<'_>,
    old: Option<RootRecord>,
    expected_head: &Hash,
    new: &StoredHead,
    patch: Option<&[u8]>,
) -> Result<RootRecord, StoreError> {
    let Tables {
        roots,
        snapshots,
        registrations,
        meta,
        patches: _,
    } = tables;
    let mut registration = old.and_then(|r| r.registration);
    // Leaving height 0: the snapshot about to be deleted is the root's own
    // registration; it moves to `registrations`, under the next number.
    if registration.is_none()
        && *expected_head == new.root
        && let Some(snapshot) = snapshots.get(expected_head.as_bytes()).map_err(backend)?
    {
        let bytes = snapshot.value().to_vec();
        drop(snapshot);
        let number = meta
            .get(LAST_REGISTRATION)
            .map_err(backend)?
            .map_or(0, |v| v.value())
            + 1;
        meta.insert(LAST_REGISTRATION, number).map_err(backend)?;
        registrations
            .insert(number, bytes.as_slice())
            .map_err(backend)?;
        registration = Some(number);
    }
    if new.snapshot.is_empty() {
        let (Some(old), Some(patch)) = (old, patch) else {
            return Err(StoreError::Corrupt(format!(
                "root {}: a head without a snapshot needs the root's record and its patch",
                new.root
            )));
        };
        let record = RootRecord {
            head: new.head,
            height: new.height,
            registration,
            since_bytes: old.since_bytes + patch.len() as u64,
            ..old
        };
        roots
            .insert(new.root.as_bytes(), record.encode().as_slice())
            .map_err(backend)?;
        return Ok(record);
    }
    snapshots
        .insert(new.head.as_bytes(), new.snapshot.as_ref())
        .map_err(backend)?;
    let record = RootRecord {
        head: new.head,
        height: new.height,
        registration,
        base: new.head,
        base_height: new.height,
        since_bytes: 0,
    };
    roots
        .insert(new.root.as_bytes(), record.encode().as_slice())
        .map_err(backend)?;
    // The snapshot this one replaces: the old base's (the old head's, unless
    // the old head had none of its own).
    let old_base = old.map_or(*expected_head, |o| o.base);
    if old_base != new.head {
        snapshots.remove(old_base.as_bytes()).map_err(backend)?;
    }
    Ok(record)
}

/// The tables every write opens, in one transaction.
struct Tables<'txn> {
    roots: Table<'txn, [u8; 32], &'static [u8]>,
    snapshots: Table<'txn, [u8; 32], &'static [u8]>,
    registrations: Table<'txn, u64, &'static [u8]>,
    meta: Table<'txn, &'static str, u64>,
    patches: Table<'txn, ([u8; 32], u64), &'static [u8]>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn redb::WriteTransaction) -> Result<Tables<'txn>, StoreError> {
        Ok(Tables {
            roots: txn.open_table(ROOTS).map_err(backend)?,
            snapshots: txn.open_table(SNAPSHOTS).map_err(backend)?,
            registrations: txn.open_table(REGISTRATIONS).map_err(backend)?,
            meta: txn.open_table(META).map_err(backend)?,
            patches: txn.open_table(PATCHES).map_err(backend)?,
        })
    }
}

/// Converts a store written before the `roots` record (it has a `heads`
/// table): every head is carried over, in the open's transaction, and `heads`
/// is deleted. A root that had already moved past height 0 gets no
/// registration: that store kept none.
fn convert_old_heads(
    txn: &redb::WriteTransaction,
    roots: &mut Table<[u8; 32], &'static [u8]>,
) -> Result<(), StoreError> {
    let old = txn
        .list_tables()
        .map_err(backend)?
        .any(|t| t.name() == "heads");
    if !old {
        return Ok(());
    }
    {
        let heads = txn.open_table(OLD_HEADS).map_err(backend)?;
        for entry in heads.iter().map_err(backend)? {
            let (root, value) = entry.map_err(backend)?;
            let (head, height) = value.value();
            let record = RootRecord {
                head: Hash::from_bytes(head),
                height,
                registration: None,
                base: Hash::from_bytes(head),
                base_height: height,
                since_bytes: 0,
            };
            roots
                .insert(root.value(), record.encode().as_slice())
                .map_err(backend)?;
        }
    }
    txn.delete_table(OLD_HEADS).map_err(backend)?;
    Ok(())
}

/// Makes the writes of `txn` durable through the log: the record `payload`
/// (and `meta`'s sequence, written here in the same transaction) is appended and
/// synced, then the transaction commits without a sync of its own. When the log
/// has no room, the transaction commits durably instead (a checkpoint) and the
/// log starts over.
fn commit_logged(
    mut txn: redb::WriteTransaction,
    log: &mut Wal,
    payload: &[u8],
) -> Result<(), StoreError> {
    let seq = log.next_seq();
    txn.open_table(META)
        .map_err(backend)?
        .insert(LOG_SEQ, seq)
        .map_err(backend)?;
    if log.fits(payload.len()) {
        // Nothing logged yet: a refusal here just aborts the transaction.
        txn.set_durability(Durability::None).map_err(backend)?;
        // The record first: once it is synced the batch survives a crash, and
        // only then does the transaction become visible to readers.
        log.append(payload)?;
        txn.commit().map_err(|e| log.fail(backend(e)))?;
    } else {
        // The checkpoint: no room left in the log (or a batch bigger than the
        // whole log), so this batch commits durably, which makes every earlier
        // non-durable commit durable with it, and the log starts over. If the
        // commit fails, whether it reached the disk (and with it `meta`'s `seq`)
        // is unknown, so the log must not be reused.
        txn.commit().map_err(|e| log.fail(backend(e)))?;
        log.restart(seq + 1);
    }
    Ok(())
}

impl Store for RedbStore {
    async fn load(&self, root: Hash) -> Result<Option<StoredHead>, StoreError> {
        self.blocking(move |inner| {
            let txn = inner.db.begin_read().map_err(backend)?;
            let roots = txn.open_table(ROOTS).map_err(backend)?;
            let snapshots = txn.open_table(SNAPSHOTS).map_err(backend)?;
            let patches = txn.open_table(PATCHES).map_err(backend)?;
            read_head(&roots, &snapshots, &patches, root)
        })
        .await
    }

    async fn register(&self, head: StoredHead) -> Result<StoredHead, StoreError> {
        check_register(&head)?;
        self.blocking(move |inner| {
            let mut log = inner.log()?;
            let txn = inner.db.begin_write().map_err(backend)?;
            let current = {
                let mut tables = Tables::open(&txn)?;
                match read_head(&tables.roots, &tables.snapshots, &tables.patches, head.root)? {
                    Some(current) => Some(current),
                    None => {
                        apply(&mut tables, None, &REGISTERED, &head, None)?;
                        None
                    }
                }
            };
            match current {
                Some(current) => {
                    // Nothing was written: skip the sync.
                    txn.abort().map_err(backend)?;
                    Ok(current)
                }
                None => {
                    // Logged like a commit, so that a burst of new roots (a
                    // process following a thousand channels for the first time)
                    // costs a log append each, not a full durable redb commit.
                    // The zero "expected head" names no snapshot: replaying it
                    // removes nothing.
                    let registered = PersistCommit {
                        expected_head: REGISTERED,
                        new: head,
                        patch: None,
                    };
                    let mut payload = Vec::new();
                    wal::encode_commits(std::iter::once(&registered), false, &mut payload)?;
                    commit_logged(txn, &mut log, &payload)?;
                    Ok(registered.new)
                }
            }
        })
        .await
    }

    async fn commit(&self, batch: Vec<PersistCommit>) -> Result<Vec<PersistOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.blocking(move |inner| {
            let mut log = inner.log()?;
            let txn = inner.db.begin_write().map_err(backend)?;
            let mut outcomes = Vec::with_capacity(batch.len());
            // The applied commits as written: a head without its own snapshot
            // (see `delta`) is logged with an empty one.
            let mut written = Vec::with_capacity(batch.len());
            let logs = inner.retention.logs();
            {
                let mut tables = Tables::open(&txn)?;
                for commit in &batch {
                    // The record decides; the head's document is read (and
                    // replayed) only to report a stale commit.
                    let record = read_record(&tables.roots, &commit.new.root)?;
                    let outcome = match record {
                        Some(r) if r.head == commit.new.head => PersistOutcome::AlreadyStored,
                        Some(r) if r.head == commit.expected_head => PersistOutcome::Applied,
                        _ => PersistOutcome::Stale {
                            current: read_head(
                                &tables.roots,
                                &tables.snapshots,
                                &tables.patches,
                                commit.new.root,
                            )?,
                        },
                    };
                    if let (PersistOutcome::Applied, Some(old)) = (&outcome, record) {
                        let mut commit = commit.clone();
                        if logs && delta::may_skip_snapshot(&old, &commit) {
                            commit.new.snapshot = Bytes::new();
                        }
                        let patch = commit.patch.as_deref();
                        let record = apply(
                            &mut tables,
                            Some(old),
                            &commit.expected_head,
                            &commit.new,
                            patch,
                        )?;
                        // In this transaction: a head without its snapshot is
                        // replayed from it, so it must be there whenever the
                        // head is.
                        history::append(
                            &mut tables.patches,
                            inner.retention,
                            &commit.new,
                            patch,
                            record.base_height,
                        )?;
                        written.push(commit);
                    }
                    outcomes.push(outcome);
                }
            }
            if written.is_empty() {
                // Nothing was written: no record, no sync.
                txn.abort().map_err(backend)?;
                return Ok(outcomes);
            }
            let mut payload = Vec::new();
            // Patches in the record only when this store logs them: under
            // `none` the record is byte for byte what it was before history.
            wal::encode_commits(written.iter(), logs, &mut payload)?;
            commit_logged(txn, &mut log, &payload)?;
            Ok(outcomes)
        })
        .await
    }

    async fn root_count(&self) -> Result<u64, StoreError> {
        self.blocking(|inner| {
            let txn = inner.db.begin_read().map_err(backend)?;
            let roots = txn.open_table(ROOTS).map_err(backend)?;
            roots.len().map_err(backend)
        })
        .await
    }

    async fn list_roots(
        &self,
        after: Option<Hash>,
        limit: usize,
    ) -> Result<Vec<ListedRoot>, StoreError> {
        let limit = limit.min(MAX_LIST_ROOTS);
        self.blocking(move |inner| {
            let txn = inner.db.begin_read().map_err(backend)?;
            let roots = txn.open_table(ROOTS).map_err(backend)?;
            let snapshots = txn.open_table(SNAPSHOTS).map_err(backend)?;
            let registrations = txn.open_table(REGISTRATIONS).map_err(backend)?;
            let range = match after {
                Some(after) => roots.range::<[u8; 32]>((
                    std::ops::Bound::Excluded(*after.as_bytes()),
                    std::ops::Bound::Unbounded,
                )),
                None => roots.range::<[u8; 32]>(..),
            }
            .map_err(backend)?;
            let mut listed = Vec::with_capacity(limit);
            for entry in range.take(limit) {
                let (root, value) = entry.map_err(backend)?;
                let root = Hash::from_bytes(root.value());
                let record = RootRecord::decode(&root, value.value())?;
                // At height 0 the registration is the head's own snapshot.
                let registration = match record.registration {
                    Some(number) => Some(
                        registrations
                            .get(number)
                            .map_err(backend)?
                            .map(|r| Bytes::copy_from_slice(r.value()))
                            .ok_or_else(|| {
                                StoreError::Corrupt(format!(
                                    "root {root} names registration {number}, which is missing"
                                ))
                            })?,
                    ),
                    None if record.height == 0 => snapshots
                        .get(record.head.as_bytes())
                        .map_err(backend)?
                        .map(|r| Bytes::copy_from_slice(r.value())),
                    None => None,
                };
                listed.push(ListedRoot::new(
                    root,
                    HeadRef {
                        head: record.head,
                        height: record.height,
                    },
                    registration,
                ));
            }
            Ok(listed)
        })
        .await
    }

    /// Never asked by a node of its own (see [`Store::is_shared`]), but kept
    /// cheap all the same: one read transaction, heads only.
    async fn heads(&self, roots: Vec<Hash>) -> Result<Vec<Option<HeadRef>>, StoreError> {
        self.blocking(move |inner| {
            let txn = inner.db.begin_read().map_err(backend)?;
            let table = txn.open_table(ROOTS).map_err(backend)?;
            roots
                .iter()
                .map(|root| {
                    Ok(read_record(&table, root)?.map(|record| HeadRef {
                        head: record.head,
                        height: record.height,
                    }))
                })
                .collect()
        })
        .await
    }

    fn retention(&self) -> Retention {
        self.inner.retention
    }

    async fn history(
        &self,
        root: Hash,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LoggedPatch>, StoreError> {
        self.blocking(move |inner| {
            let txn = inner.db.begin_read().map_err(backend)?;
            let roots = txn.open_table(ROOTS).map_err(backend)?;
            let Some(record) = read_record(&roots, &root)? else {
                return Ok(Vec::new());
            };
            let patches = txn.open_table(PATCHES).map_err(backend)?;
            history::page(
                &patches,
                inner.retention,
                &root,
                record.height,
                before,
                limit,
            )
        })
        .await
    }

    async fn patches_since(
        &self,
        root: Hash,
        height: u64,
        max: usize,
    ) -> Result<Option<Vec<Bytes>>, StoreError> {
        self.blocking(move |inner| {
            let txn = inner.db.begin_read().map_err(backend)?;
            let roots = txn.open_table(ROOTS).map_err(backend)?;
            let Some(record) = read_record(&roots, &root)? else {
                return Ok(None);
            };
            let patches = txn.open_table(PATCHES).map_err(backend)?;
            history::since(&patches, inner.retention, &root, record.height, height, max)
        })
        .await
    }

    /// The file is locked by the one process that opened it: nobody else moves
    /// its heads.
    fn is_shared(&self) -> bool {
        false
    }

    async fn store_id(&self) -> Result<String, StoreError> {
        Ok(format!("{:016x}", self.inner.store_id))
    }
}

#[cfg(test)]
mod tests {
    //! The log's crash cases. A "crash" here is a copy of the database and log files
    //! taken while the store is open: redb keeps non-durable commits in process
    //! memory and the log's records are already synced, so the copy holds exactly
    //! what a SIGKILL at that moment would leave (the durable redb state plus the
    //! log), and opening the copy must recover everything acknowledged.

    use std::fs::OpenOptions;
    use std::io::{Seek, SeekFrom, Write};

    use super::*;
    use crate::conformance::{genesis, next, step, unique_root};

    /// Opening `db` must fail as `Corrupt`, with `needle` in the reason.
    fn assert_refused_as_corrupt(db: &Path, needle: &str) {
        match RedbStore::open(db) {
            Err(StoreError::Corrupt(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn store_work_runs_inline_only_on_a_current_thread_runtime() {
        assert!(runs_inline(), "outside a runtime there is no pool");
        let one = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(one.block_on(async { runs_inline() }));
        let many = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        assert!(!many.block_on(async { runs_inline() }));
    }

    /// Copies the store's files into `dir`, as a crash now would leave them.
    fn crash_copy(store: &RedbStore, dir: &Path) -> PathBuf {
        let db = dir.join(FILE_NAME);
        std::fs::copy(store.path(), &db).expect("copy db");
        std::fs::copy(store.log_path(), log_path(&db)).expect("copy log");
        db
    }

    /// Roots that only the log holds (crashed before a checkpoint) are listed
    /// after replay with their heads and registrations, also for a root that
    /// moved on (replay moves its registration into the record as the commit
    /// did).
    #[tokio::test]
    async fn replay_restores_the_roots_for_listings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path()).expect("open");
        let moved = chain(&store, "replay-list", 2).await;
        let fresh = chain(&store, "replay-list-fresh", 0).await;
        let crashed = tempfile::tempdir().expect("tempdir");
        let db = crash_copy(&store, crashed.path());
        assert_eq!(durable_seq(&db), 0, "only the log holds the writes");
        let reopened = RedbStore::open(&db).expect("reopen");
        let listed = reopened.list_roots(None, 10).await.expect("list");
        assert_eq!(listed.len(), 2);
        let find = |root: Hash| listed.iter().find(|l| l.root == root).expect("listed");
        assert_eq!(find(moved[0].root).head, HeadRef::from(&moved[2]));
        assert_eq!(
            find(moved[0].root).registration.as_ref(),
            Some(&moved[0].snapshot)
        );
        assert_eq!(find(fresh[0].root).head, HeadRef::from(&fresh[0]));
        assert_eq!(
            find(fresh[0].root).registration.as_ref(),
            Some(&fresh[0].snapshot)
        );
    }

    /// A store written before root records (a `heads` table of (head,
    /// height)) opens converted: every head loads and is listed, a root still
    /// at height 0 with its registration, one that had moved without (that
    /// store kept none); `heads` is gone, and writes go on from there.
    #[tokio::test]
    async fn a_store_with_the_old_heads_table_is_converted_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = RedbStore::open(dir.path().join("source")).expect("open");
        let moved = chain(&source, "old-moved", 2).await;
        let fresh = chain(&source, "old-fresh", 0).await;
        drop(source);
        // The old layout, written with redb directly as the old code did.
        let old = dir.path().join("old.redb");
        {
            let db = Database::create(&old).expect("create");
            let txn = db.begin_write().expect("txn");
            {
                let mut heads = txn.open_table(OLD_HEADS).expect("heads");
                let mut snapshots = txn.open_table(SNAPSHOTS).expect("snapshots");
                for h in [&moved[2], &fresh[0]] {
                    heads
                        .insert(h.root.as_bytes(), (*h.head.as_bytes(), h.height))
                        .expect("insert head");
                    snapshots
                        .insert(h.head.as_bytes(), h.snapshot.as_ref())
                        .expect("insert snapshot");
                }
            }
            txn.commit().expect("commit");
        }
        let store = RedbStore::open(&old).expect("open converts");
        assert_eq!(
            store.load(moved[0].root).await.expect("load"),
            Some(moved[2].clone())
        );
        assert_eq!(
            store.load(fresh[0].root).await.expect("load"),
            Some(fresh[0].clone())
        );
        let listed = store.list_roots(None, 10).await.expect("list");
        let find = |root: Hash| listed.iter().find(|l| l.root == root).expect("listed");
        assert_eq!(find(moved[0].root).registration, None);
        assert_eq!(
            find(fresh[0].root).registration.as_ref(),
            Some(&fresh[0].snapshot)
        );
        let after = next(&moved[2], "after");
        store
            .commit(vec![step(&moved[2], &after)])
            .await
            .expect("commit");
        drop(store);
        let reopened = RedbStore::open(&old).expect("reopen");
        assert_eq!(
            reopened.load(moved[0].root).await.expect("load"),
            Some(after)
        );
        assert_eq!(reopened.root_count().await.expect("count"), 2);
        let txn = reopened.inner.db.begin_read().expect("read");
        let names: Vec<String> = txn
            .list_tables()
            .expect("tables")
            .map(|t| t.name().to_owned())
            .collect();
        assert!(!names.contains(&"heads".to_owned()), "{names:?}");
    }

    /// Sequence of the last batch in the store's current state.
    fn meta_seq(store: &RedbStore) -> u64 {
        let txn = store.inner.db.begin_read().expect("read");
        let meta = txn.open_table(META).expect("meta");
        meta.get(LOG_SEQ).expect("get").map_or(0, |v| v.value())
    }

    /// Sequence of the last batch in the *durable* state of the database file at
    /// `db` (opened as plain redb, without its log).
    fn durable_seq(db: &Path) -> u64 {
        let db = Database::open(db).expect("open copy");
        let txn = db.begin_read().expect("read");
        let meta = txn.open_table(META).expect("meta");
        meta.get(LOG_SEQ).expect("get").map_or(0, |v| v.value())
    }

    /// The log id the database file at `db` keeps.
    fn log_id(db: &Path) -> u64 {
        let db = Database::open(db).expect("open");
        let txn = db.begin_read().expect("read");
        let meta = txn.open_table(META).expect("meta");
        meta.get(LOG_ID).expect("get").expect("a log id").value()
    }

    fn log_end(store: &RedbStore) -> u64 {
        store.inner.wal.lock().expect("lock").end()
    }

    /// Registers a root and moves it `n` steps, one batch each; returns all heads.
    async fn chain(store: &RedbStore, label: &str, n: usize) -> Vec<StoredHead> {
        let g = genesis(unique_root(label));
        store.register(g.clone()).await.expect("register");
        let mut heads = vec![g];
        for i in 0..n {
            let prev = heads.last().expect("head").clone();
            let new = next(&prev, &format!("{label}{i}"));
            let outcomes = store.commit(vec![step(&prev, &new)]).await.expect("commit");
            assert_eq!(outcomes, [PersistOutcome::Applied]);
            heads.push(new);
        }
        heads
    }

    /// The history and the heads replayed from it come back whole whatever
    /// the moment of a crash or a close: a small log makes checkpoints happen
    /// every few batches while three roots move interleaved, and heads and
    /// history are read while open, after a crash (copy of the files,
    /// replayed) and after a clean close; under `last 5` only the window,
    /// before and after.
    #[tokio::test]
    async fn the_history_is_whole_across_checkpoints_crashes_and_closes() {
        use crate::conformance::patch_of;
        for retention in [Retention::All, "5".parse().expect("retention")] {
            let dir = tempfile::tempdir().expect("tempdir");
            let options = StoreOptions::default().with_retention(retention);
            let store = RedbStore::open_with_log_capacity(&dir.path().join("h"), 4096, options)
                .expect("open");
            let mut chains: Vec<Vec<StoredHead>> = Vec::new();
            for r in 0..3 {
                let g = genesis(unique_root(&format!("checkpointed-{r}")));
                store.register(g.clone()).await.expect("register");
                chains.push(vec![g]);
            }
            for i in 0..40 {
                for chain in &mut chains {
                    let prev = chain.last().expect("head").clone();
                    let new = next(&prev, &format!("c{i}"));
                    let outcomes = store.commit(vec![step(&prev, &new)]).await.expect("commit");
                    assert_eq!(outcomes, [PersistOutcome::Applied]);
                    chain.push(new);
                }
            }
            // Each commit put its patch in the table; most heads have no
            // snapshot of their own (see `delta`), and loads replay them.
            let logged = {
                let txn = store.inner.db.begin_read().expect("read");
                let patches = txn.open_table(history::PATCHES).expect("patches");
                patches.len().expect("len")
            };
            assert!(logged > 0, "commits put patches in the table");
            let deltas = {
                let txn = store.inner.db.begin_read().expect("read");
                let roots = txn.open_table(ROOTS).expect("roots");
                chains
                    .iter()
                    .filter(|c| !read_record(&roots, &c[0].root).unwrap().unwrap().is_full())
                    .count()
            };
            assert!(deltas > 0, "some heads are replayed from a base");
            let expect = |chain: &[StoredHead]| -> Vec<LoggedPatch> {
                chain[1..]
                    .iter()
                    .rev()
                    .filter(|h| retention.keeps(h.height, 40))
                    .map(|h| LoggedPatch::new(h.height, patch_of(h)))
                    .collect()
            };
            let check = |store: RedbStore, when: &'static str| {
                let chains = chains.clone();
                async move {
                    for chain in &chains {
                        let root = chain[0].root;
                        let loaded = store.load(root).await.expect("load");
                        assert_eq!(loaded.as_ref(), chain.last(), "{when}, {retention}");
                        let page = store.history(root, None, 1000).await.expect("history");
                        assert_eq!(page, expect(chain), "{when}, {retention}");
                        let since = store.patches_since(root, 35, 100).await.expect("since");
                        let want: Vec<Bytes> = chain[36..].iter().map(patch_of).collect();
                        assert_eq!(since, Some(want), "{when}, {retention}");
                    }
                    store
                }
            };
            let store = check(store, "open").await;
            let crashed = tempfile::tempdir().expect("tempdir");
            let copy = crash_copy(&store, crashed.path());
            let replayed = RedbStore::open_with(&copy, options).expect("reopen the crash copy");
            drop(check(replayed, "replayed after a crash").await);
            let path = store.path().to_path_buf();
            drop(store);
            let reopened = RedbStore::open_with(&path, options).expect("reopen");
            drop(check(reopened, "reopened after a close").await);
        }
    }

    /// The head after a real patch that adds 20 KB to `prev`'s document, so
    /// that the small patches after it weigh less than the document.
    fn big_step(prev: &StoredHead) -> (StoredHead, PersistCommit) {
        use tikaconf_proto::{Limits, Message, Patch, Snapshot};
        let Ok(Message::Snapshot(snapshot)) = Message::decode(&prev.snapshot, &Limits::default())
        else {
            panic!("a real snapshot");
        };
        let ops = serde_json::json!([{"op": "add", "path": "/big", "value": "x".repeat(20_000)}]);
        let patch = Patch::build(prev.root, prev.head, prev.height, ops, None).expect("patch");
        let doc = patch
            .apply_to(prev.root, prev.height, &snapshot.config, &Limits::default())
            .expect("applies");
        let new = StoredHead {
            root: prev.root,
            head: patch.hash,
            height: patch.height,
            snapshot: Snapshot::new(prev.root, patch.hash, patch.height, doc).encoded,
        };
        let commit = PersistCommit {
            expected_head: prev.head,
            new: new.clone(),
            patch: Some(patch.encoded),
        };
        (new, commit)
    }

    /// Issue 14, item 6: a commit writes its patch and, only every
    /// `SNAPSHOT_EVERY` patches (or once the patches outweigh the document),
    /// a snapshot; loads replay the rest. Under `none` every commit writes its
    /// snapshot, and a head left without one by an earlier run still loads.
    #[tokio::test]
    async fn heads_are_replayed_from_a_snapshot_every_32_patches() {
        let record = |store: &RedbStore, root: Hash| {
            let txn = store.inner.db.begin_read().expect("read");
            let roots = txn.open_table(ROOTS).expect("roots");
            read_record(&roots, &root).expect("read").expect("a record")
        };
        let snapshots = |store: &RedbStore| {
            let txn = store.inner.db.begin_read().expect("read");
            txn.open_table(SNAPSHOTS)
                .expect("snapshots")
                .len()
                .expect("len")
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let last3 = StoreOptions::default().with_retention("3".parse().expect("retention"));
        let store = RedbStore::open_with(dir.path(), last3).expect("open");
        let mut chain = vec![genesis(unique_root("deltas"))];
        store.register(chain[0].clone()).await.expect("register");
        let root = chain[0].root;
        let (big, commit) = big_step(&chain[0]);
        store.commit(vec![commit]).await.expect("commit");
        chain.push(big);
        let mut full_at = Vec::new();
        for i in 0..70 {
            let prev = chain.last().expect("head").clone();
            let new = next(&prev, &format!("d{i}"));
            store.commit(vec![step(&prev, &new)]).await.expect("commit");
            chain.push(new);
            let r = record(&store, root);
            if r.is_full() {
                full_at.push(r.height);
            }
            assert!(r.height - r.base_height < delta::SNAPSHOT_EVERY);
            // One snapshot for the root, whatever the height.
            assert_eq!(snapshots(&store), 1, "at height {}", r.height);
            assert_eq!(store.load(root).await.expect("load").as_ref(), chain.last());
        }
        // Height 1 (the 20 KB patch) left the root's registration as the
        // base; at height 2 the patches since outweighed the document, so it
        // wrote a snapshot; then one in 32.
        assert_eq!(full_at, [2, 34, 66], "a snapshot every 32 patches");
        // The window is 3, but the patches a load replays are kept.
        let history = store.history(root, None, 100).await.expect("history");
        assert_eq!(history.len(), 3);
        let path = store.path().to_path_buf();
        drop(store);

        // Under `none`: the head left by the run before still loads, and every
        // commit now writes its snapshot.
        let none = StoreOptions::default().with_retention(Retention::None);
        let store = RedbStore::open_with(&path, none).expect("reopen");
        assert!(!record(&store, root).is_full());
        assert_eq!(store.load(root).await.expect("load").as_ref(), chain.last());
        let prev = chain.last().expect("head").clone();
        let new = next(&prev, "whole");
        store.commit(vec![step(&prev, &new)]).await.expect("commit");
        assert!(record(&store, root).is_full());
        assert_eq!(store.load(root).await.expect("load"), Some(new));
        assert_eq!(snapshots(&store), 1);
    }

    /// A head whose patches were damaged in the store is refused as corrupt,
    /// naming the root and the height, never returned wrong.
    #[tokio::test]
    async fn a_damaged_patch_under_a_head_is_corrupt_not_a_wrong_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path()).expect("open");
        let g = genesis(unique_root("damaged"));
        store.register(g.clone()).await.expect("register");
        let (mut head, commit) = big_step(&g);
        store.commit(vec![commit]).await.expect("commit");
        for i in 0..4 {
            let new = next(&head, &i.to_string());
            store.commit(vec![step(&head, &new)]).await.expect("commit");
            head = new;
        }
        assert_eq!(store.load(g.root).await.expect("load"), Some(head));
        let root = g.root;
        {
            let txn = store.inner.db.begin_write().expect("write");
            {
                let mut patches = txn.open_table(PATCHES).expect("patches");
                patches
                    .insert((*root.as_bytes(), 3), b"{}".as_slice())
                    .expect("insert");
            }
            txn.commit().expect("commit");
        }
        match store.load(root).await {
            Err(StoreError::Corrupt(msg)) => {
                assert!(
                    msg.contains(&root.to_string()) && msg.contains("height 3"),
                    "{msg}"
                );
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn replay_after_crash_without_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let crashed = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path()).expect("open");
        let heads = chain(&store, "replay", 5).await;
        // A batch that chains two commits on one root, and one that is stale.
        let a = next(&heads[5], "a");
        let b = next(&a, "b");
        let outcomes = store
            .commit(vec![
                step(&heads[5], &a),
                step(&a, &b),
                step(&heads[0], &heads[1]),
            ])
            .await
            .expect("commit");
        assert_eq!(
            outcomes[..2],
            [PersistOutcome::Applied, PersistOutcome::Applied]
        );
        // The registration is a logged record too: 1 + 5 + 1.
        assert_eq!(meta_seq(&store), 7);

        let db = crash_copy(&store, crashed.path());
        // Nothing was checkpointed: the durable file alone is empty, and only the
        // log has the seven records.
        assert_eq!(durable_seq(&db), 0);
        let reopened = RedbStore::open(&db).expect("reopen");
        assert_eq!(
            reopened.load(heads[0].root).await.expect("load"),
            Some(b.clone())
        );
        assert_eq!(meta_seq(&reopened), 7);
        // The old snapshots were dropped on replay as they were on commit.
        let txn = reopened.inner.db.begin_read().expect("read");
        assert_eq!(
            txn.open_table(SNAPSHOTS)
                .expect("snapshots")
                .len()
                .expect("len"),
            1
        );
        drop(txn);
        // Replay ended in a durable commit, and the log starts over.
        assert_eq!(log_end(&reopened), wal::FILE_HEADER_LEN);
        drop(reopened);
        assert_eq!(durable_seq(&db), 7);
    }

    #[tokio::test]
    async fn torn_tail_record_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path()).expect("open");
        let heads = chain(&store, "torn", 3).await;
        // The log ends with the third batch's record.
        let end = log_end(&store);
        {
            let crashed = tempfile::tempdir().expect("tempdir");
            let db = crash_copy(&store, crashed.path());
            let file = OpenOptions::new()
                .write(true)
                .open(log_path(&db))
                .expect("log");
            // Cut the log in the middle of the last record, as a crash mid-write
            // (the file shrinking is harsher than a real torn write, which keeps
            // the file size: both must be survived).
            file.set_len(end - 10).expect("truncate");
            drop(file);
            let reopened = RedbStore::open(&db).expect("reopen");
            assert_eq!(
                reopened.load(heads[0].root).await.expect("load"),
                Some(heads[2].clone()),
                "the torn third batch was never acknowledged and is dropped"
            );
            // Registration (1) and two batches.
            assert_eq!(meta_seq(&reopened), 3);
            // The store goes on from there, sequence included.
            let again = next(&heads[2], "again");
            let outcomes = reopened
                .commit(vec![step(&heads[2], &again)])
                .await
                .expect("commit");
            assert_eq!(outcomes, [PersistOutcome::Applied]);
            assert_eq!(meta_seq(&reopened), 4);
        }
        // Same, but the record's bytes are overwritten in place (size kept).
        let crashed = tempfile::tempdir().expect("tempdir");
        let db = crash_copy(&store, crashed.path());
        let mut file = OpenOptions::new()
            .write(true)
            .open(log_path(&db))
            .expect("log");
        file.seek(SeekFrom::Start(end - 5)).expect("seek");
        file.write_all(&[0xA5; 3]).expect("scribble");
        drop(file);
        let reopened = RedbStore::open(&db).expect("reopen");
        assert_eq!(
            reopened.load(heads[0].root).await.expect("load"),
            Some(heads[2].clone())
        );
    }

    #[tokio::test]
    async fn a_write_that_panicked_holding_the_log_is_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path()).expect("open");
        let heads = chain(&store, "panicked", 1).await;
        let inner = Arc::clone(&store.inner);
        let panicked = std::thread::spawn(move || {
            let _log = inner.wal.lock().expect("lock");
            panic!("a write panics while it holds the log");
        })
        .join();
        assert!(panicked.is_err(), "the write must have panicked");
        let next = next(&heads[1], "after");
        match store.commit(vec![step(&heads[1], &next)]).await {
            Err(e) => assert!(e.is_fatal(), "{e:?}"),
            Ok(outcomes) => panic!("wrote after a panic: {outcomes:?}"),
        }
    }

    #[tokio::test]
    async fn a_damaged_record_in_the_middle_is_refused_not_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path()).expect("open");
        let g = genesis(unique_root("middle"));
        store.register(g.clone()).await.expect("register");
        // Where each acknowledged batch's record starts in the log.
        let mut starts = vec![log_end(&store)];
        let mut heads = vec![g];
        for i in 0..3 {
            let prev = heads.last().expect("head").clone();
            let new = next(&prev, &format!("middle{i}"));
            let outcomes = store.commit(vec![step(&prev, &new)]).await.expect("commit");
            assert_eq!(outcomes, [PersistOutcome::Applied]);
            starts.push(log_end(&store));
            heads.push(new);
        }
        // Records: 1 registration, 2..=4 the three batches; none checkpointed.
        assert_eq!(meta_seq(&store), 4);
        let crashed = tempfile::tempdir().expect("tempdir");
        let db = crash_copy(&store, crashed.path());
        assert_eq!(durable_seq(&db), 0);
        // Flip one byte inside record 2 (the first batch): records 3 and 4, both
        // acknowledged, follow it intact.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(log_path(&db))
            .expect("log");
        file.seek(SeekFrom::Start(starts[0] + 40)).expect("seek");
        let mut byte = [0u8; 1];
        std::io::Read::read_exact(&mut file, &mut byte).expect("read");
        file.seek(SeekFrom::Start(starts[0] + 40)).expect("seek");
        file.write_all(&[byte[0] ^ 0x10]).expect("flip");
        drop(file);
        let damaged = std::fs::read(log_path(&db)).expect("read log");
        match RedbStore::open(&db) {
            Err(e @ StoreError::CorruptLog { .. }) => {
                let StoreError::CorruptLog {
                    seq,
                    offset,
                    later_seq,
                    later_offset,
                    ref path,
                } = e
                else {
                    unreachable!()
                };
                assert_eq!((seq, offset), (2, starts[0]));
                assert_eq!((later_seq, later_offset), (3, starts[1]));
                assert_eq!(path, &log_path(&db));
                let msg = e.to_string();
                assert!(msg.contains("record 2 at offset"), "{msg}");
            }
            Err(other) => panic!("expected CorruptLog, got {other:?}"),
            Ok(reopened) => panic!(
                "opened at {:?} instead of refusing: three acknowledged batches dropped",
                reopened
                    .load(heads[0].root)
                    .await
                    .expect("load")
                    .map(|h| h.height)
            ),
        }
        // Nothing was written: the damaged log is still there for a person.
        assert_eq!(std::fs::read(log_path(&db)).expect("read log"), damaged);
        assert_eq!(durable_seq(&db), 0);
    }

    #[tokio::test]
    async fn garbage_and_stale_records_after_the_end_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let crashed = tempfile::tempdir().expect("tempdir");
        // Epoch 1: six batches, then a clean close (which makes them durable).
        let heads = {
            let store = RedbStore::open(dir.path()).expect("open");
            chain(&store, "stale", 6).await
        };
        // Epoch 2: the log starts over, and one batch of the same size overwrites
        // the first record, leaving records 2..6 of epoch 1 right after it: valid
        // checksums, lower sequences.
        let store = RedbStore::open(dir.path()).expect("reopen");
        // The registration and six batches.
        assert_eq!(meta_seq(&store), 7);
        let back = store
            .load(heads[0].root)
            .await
            .expect("load")
            .expect("root");
        assert_eq!(back, heads[6]);
        let h7 = next(&heads[6], "stale6");
        store
            .commit(vec![step(&heads[6], &h7)])
            .await
            .expect("commit");
        let end = log_end(&store);
        let db = crash_copy(&store, crashed.path());
        // And garbage after those.
        let mut file = OpenOptions::new()
            .write(true)
            .open(log_path(&db))
            .expect("log");
        file.seek(SeekFrom::Start(end * 6)).expect("seek");
        file.write_all(&[0xFF; 300]).expect("garbage");
        drop(file);
        assert_eq!(durable_seq(&db), 7);
        let reopened = RedbStore::open(&db).expect("reopen crashed");
        assert_eq!(reopened.load(heads[0].root).await.expect("load"), Some(h7));
        assert_eq!(meta_seq(&reopened), 8);
    }

    #[tokio::test]
    async fn checkpoint_and_reuse() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Room for a few records only, so the log fills and starts over often.
        let store = RedbStore::open_with_log_capacity(
            &dir.path().join(FILE_NAME),
            2048,
            StoreOptions::default(),
        )
        .expect("open");
        let log_len = std::fs::metadata(store.log_path()).expect("log").len();
        let mut checkpoints = 0;
        let mut heads = chain(&store, "reuse", 0).await;
        for i in 0..60 {
            let prev = heads.last().expect("head").clone();
            let new = next(&prev, &format!("reuse{i}"));
            let before = log_end(&store);
            store.commit(vec![step(&prev, &new)]).await.expect("commit");
            if log_end(&store) < before {
                checkpoints += 1;
                // The batch that did not fit was committed durably.
                let crashed = tempfile::tempdir().expect("tempdir");
                let db = crash_copy(&store, crashed.path());
                // After the registration's record (1).
                assert_eq!(durable_seq(&db), i + 2);
            }
            heads.push(new);
            // Every few batches, crash and check that nothing acknowledged is lost.
            if i % 7 == 3 {
                let crashed = tempfile::tempdir().expect("tempdir");
                let db = crash_copy(&store, crashed.path());
                let reopened = RedbStore::open(&db).expect("reopen");
                assert_eq!(
                    reopened.load(prev.root).await.expect("load").as_ref(),
                    heads.last()
                );
                assert_eq!(meta_seq(&reopened), i + 2);
            }
        }
        assert!(checkpoints >= 5, "only {checkpoints} checkpoints");
        // Reused in place: the file never grew.
        assert_eq!(
            std::fs::metadata(store.log_path()).expect("log").len(),
            log_len
        );
        // A batch bigger than the whole log is committed durably, not logged.
        let prev = heads.last().expect("head").clone();
        let mut big = next(&prev, "big");
        big.snapshot = Bytes::from(vec![b'x'; 4096]);
        // Without its patch: a commit that must write its (large) snapshot.
        let mut whole = step(&prev, &big);
        whole.patch = None;
        store.commit(vec![whole]).await.expect("commit");
        assert_eq!(log_end(&store), wal::FILE_HEADER_LEN);
        let crashed = tempfile::tempdir().expect("tempdir");
        let db = crash_copy(&store, crashed.path());
        assert_eq!(durable_seq(&db), 62);
        let reopened = RedbStore::open(&db).expect("reopen");
        assert_eq!(reopened.load(prev.root).await.expect("load"), Some(big));
    }

    #[tokio::test]
    async fn sequence_continues_across_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut expected = 0;
        let g = genesis(unique_root("continuity"));
        let mut head = g.clone();
        for round in 0..4 {
            let store = RedbStore::open(dir.path()).expect("open");
            assert_eq!(meta_seq(&store), expected);
            store.register(g.clone()).await.expect("register");
            if round == 0 {
                // A new root is a logged record; a known one writes nothing.
                expected += 1;
            }
            assert_eq!(meta_seq(&store), expected);
            assert_eq!(
                store.load(g.root).await.expect("load").as_ref(),
                Some(&head)
            );
            for i in 0..3 {
                let new = next(&head, &format!("{round}.{i}"));
                store.commit(vec![step(&head, &new)]).await.expect("commit");
                head = new;
                expected += 1;
                assert_eq!(meta_seq(&store), expected);
            }
            if round % 2 == 1 {
                // Crash instead of closing: continue from the copy.
                let crashed = tempfile::tempdir().expect("tempdir");
                let db = crash_copy(&store, crashed.path());
                drop(store);
                std::fs::copy(&db, dir.path().join(FILE_NAME)).expect("restore db");
                std::fs::copy(log_path(&db), log_path(&dir.path().join(FILE_NAME)))
                    .expect("restore log");
            }
        }
        let store = RedbStore::open(dir.path()).expect("open");
        assert_eq!(meta_seq(&store), expected);
        assert_eq!(store.load(g.root).await.expect("load"), Some(head));
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_log_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join(FILE_NAME);
        drop(RedbStore::open(&db).expect("open"));
        std::fs::write(log_path(&db), b"not a log at all").expect("write");
        assert_refused_as_corrupt(&db, "not a tikaconf");
    }

    #[tokio::test]
    async fn a_log_is_only_replayed_into_its_own_database() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let store_a = RedbStore::open(a.path()).expect("open a");
        let heads = chain(&store_a, "own", 3).await;
        let store_b = RedbStore::open(b.path()).expect("open b");
        chain(&store_b, "other", 3).await;
        // A's database with B's log (as after restoring a database file from
        // elsewhere beside the old log): refused, though the sequences would fit.
        let crashed = tempfile::tempdir().expect("tempdir");
        let db = crash_copy(&store_a, crashed.path());
        std::fs::copy(store_b.log_path(), log_path(&db)).expect("copy b's log");
        assert_refused_as_corrupt(&db, "another database");
        // A new database beside an old log: the log is replaced, nothing replayed.
        std::fs::remove_file(&db).expect("remove db");
        let fresh = RedbStore::open(&db).expect("open fresh");
        assert_eq!(fresh.root_count().await.expect("count"), 0);
        drop(fresh);
        // A's database whose log was deleted: refused (its durable state alone is
        // empty here: even the registration was only in the log, so opening would
        // silently lose all four acknowledged writes), and no log is recreated.
        let crashed = tempfile::tempdir().expect("tempdir");
        let db = crash_copy(&store_a, crashed.path());
        std::fs::remove_file(log_path(&db)).expect("remove log");
        assert_eq!(heads.len(), 4, "the writes the missing log held");
        match RedbStore::open(&db) {
            Err(StoreError::MissingLog { path, log_id: id }) => {
                assert_eq!(path, log_path(&db));
                assert_eq!(id, log_id(&db));
            }
            other => panic!("a missing log must be refused, got {other:?}"),
        }
        assert!(!log_path(&db).exists(), "the refused open created a log");
        // Refused again on the next try: nothing was recreated behind our back.
        assert!(matches!(
            RedbStore::open(&db),
            Err(StoreError::MissingLog { .. })
        ));
    }

    #[tokio::test]
    async fn a_record_that_passes_its_checksum_but_does_not_decode_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join(FILE_NAME);
        drop(RedbStore::open(&db).expect("open"));
        {
            // Sequence 1 follows the empty database's 0, and the checksum is right,
            // but the payload claims a commit it does not hold.
            let (mut log, records) =
                Wal::open(&log_path(&db), 0, Some(log_id(&db)), 0).expect("log");
            assert!(records.is_empty());
            log.restart(1);
            log.append(&[1, 0, 0, 0, 9, 9]).expect("append");
        }
        assert_refused_as_corrupt(&db, "record 1");
    }

    #[tokio::test]
    async fn a_gap_between_database_and_log_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join(FILE_NAME);
        drop(RedbStore::open(&db).expect("open"));
        {
            let (mut log, _) = Wal::open(&log_path(&db), 0, Some(log_id(&db)), 0).expect("log");
            log.restart(5);
            let mut payload = Vec::new();
            wal::encode_commits(std::iter::empty(), false, &mut payload).expect("encode");
            log.append(&payload).expect("append");
        }
        assert_refused_as_corrupt(&db, "missing");
    }
}
