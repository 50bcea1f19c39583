//! A durable store in one local redb file, for a storage node that keeps its own
//! state on disk.
//!
//! redb gives what the store contract needs and nothing it does not: ACID write
//! transactions (so a batch is all-or-nothing), a durable commit that returns only
//! after the data is synced, and crash safety (a file left behind by a process
//! killed mid-write reopens at its last committed transaction). redb is a
//! synchronous library whose commits block on fsync, so every operation runs on
//! tokio's blocking pool and never stalls the async workers.
//!
//! Layout, as in the design:
//! - `heads`: root hash -> (latest hash, height)
//! - `snapshots`: latest hash -> canonical snapshot bytes
//!
//! Only the latest snapshot of each root is kept: moving a head deletes the old
//! hash's snapshot in the same transaction.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::{Commit, CommitOutcome, Hash, Store, StoreError, StoredHead, check_register, decide};

/// `root -> (latest hash, height)`.
const HEADS: TableDefinition<[u8; 32], ([u8; 32], u64)> = TableDefinition::new("heads");
/// `latest hash -> snapshot bytes`.
const SNAPSHOTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("snapshots");

/// The file name used when [`RedbStore::open`] is given a directory.
pub const FILE_NAME: &str = "tikaconf.redb";

/// A [`Store`] in a redb database file. Cheap to clone; clones share the database.
#[derive(Debug, Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl RedbStore {
    /// Opens (creating if needed) the store at `path`: an existing directory gets a
    /// `tikaconf.redb` file inside it, anything else is taken as the file's path
    /// (its parent directories are created).
    ///
    /// This blocks (it may have to recover a file left by a crash); call it at
    /// startup, or from `spawn_blocking`. Only one process may have a file open at a
    /// time: a second open fails with [`StoreError::Backend`].
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let path = path.as_ref();
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
        let db = Database::create(&path).map_err(backend)?;
        // Create both tables up front so that readers never meet a missing table.
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(HEADS).map_err(backend)?;
        txn.open_table(SNAPSHOTS).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(RedbStore {
            db: Arc::new(db),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs blocking database work on tokio's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("redb task failed: {e}")))?
    }
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

/// Reads a root's head through any table handle (read or write transaction).
fn read_head(
    heads: &impl ReadableTable<[u8; 32], ([u8; 32], u64)>,
    snapshots: &impl ReadableTable<[u8; 32], &'static [u8]>,
    root: Hash,
) -> Result<Option<StoredHead>, StoreError> {
    let Some(entry) = heads.get(root.as_bytes()).map_err(backend)? else {
        return Ok(None);
    };
    let (head, height) = entry.value();
    let head = Hash::from_bytes(head);
    let snapshot = snapshots
        .get(head.as_bytes())
        .map_err(backend)?
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "root {root} points at {head}, which has no snapshot"
            ))
        })?;
    Ok(Some(StoredHead {
        root,
        head,
        height,
        snapshot: Bytes::copy_from_slice(snapshot.value()),
    }))
}

impl Store for RedbStore {
    async fn load(&self, root: Hash) -> Result<Option<StoredHead>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let heads = txn.open_table(HEADS).map_err(backend)?;
            let snapshots = txn.open_table(SNAPSHOTS).map_err(backend)?;
            read_head(&heads, &snapshots, root)
        })
        .await
    }

    async fn register(&self, head: StoredHead) -> Result<StoredHead, StoreError> {
        check_register(&head)?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            let current = {
                let mut heads = txn.open_table(HEADS).map_err(backend)?;
                let mut snapshots = txn.open_table(SNAPSHOTS).map_err(backend)?;
                match read_head(&heads, &snapshots, head.root)? {
                    Some(current) => Some(current),
                    None => {
                        snapshots
                            .insert(head.head.as_bytes(), head.snapshot.as_ref())
                            .map_err(backend)?;
                        heads
                            .insert(head.root.as_bytes(), (*head.head.as_bytes(), head.height))
                            .map_err(backend)?;
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
                    txn.commit().map_err(backend)?;
                    Ok(head)
                }
            }
        })
        .await
    }

    async fn commit(&self, batch: Vec<Commit>) -> Result<Vec<CommitOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            let mut outcomes = Vec::with_capacity(batch.len());
            {
                let mut heads = txn.open_table(HEADS).map_err(backend)?;
                let mut snapshots = txn.open_table(SNAPSHOTS).map_err(backend)?;
                for commit in &batch {
                    let new = &commit.new;
                    let current = read_head(&heads, &snapshots, new.root)?;
                    let outcome = decide(current.as_ref(), commit);
                    if outcome == CommitOutcome::Applied {
                        snapshots
                            .insert(new.head.as_bytes(), new.snapshot.as_ref())
                            .map_err(backend)?;
                        heads
                            .insert(new.root.as_bytes(), (*new.head.as_bytes(), new.height))
                            .map_err(backend)?;
                        snapshots
                            .remove(commit.expected_head.as_bytes())
                            .map_err(backend)?;
                    }
                    outcomes.push(outcome);
                }
            }
            if outcomes.contains(&CommitOutcome::Applied) {
                // The one durable sync of the batch (redb's default durability is
                // Immediate: commit returns after fsync).
                txn.commit().map_err(backend)?;
            } else {
                txn.abort().map_err(backend)?;
            }
            Ok(outcomes)
        })
        .await
    }

    async fn root_count(&self) -> Result<u64, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(backend)?;
            let heads = txn.open_table(HEADS).map_err(backend)?;
            heads.len().map_err(backend)
        })
        .await
    }
}
