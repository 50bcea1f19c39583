//! redb's `patches` table: each root's history, keyed by (root, height).
//!
//! Why that key: a root's patches sit together in height order, so a page of
//! history, the patches since a height, and the pruning of the oldest are each
//! one range of one B-tree, and a commit adds one entry (and, under `last N`,
//! removes the one that fell out of the window) in the transaction that moves
//! the head. The cost of the key is where it lands: roots are random hashes,
//! so consecutive commits of different roots insert at scattered leaves (the
//! registrations table avoids that with a counter, but a history must be read
//! per root, and a counter key would need a second index to do so).
//!
//! Commits do not insert there one by one: a batch's patches wait in memory
//! ([`Pending`]) and go into the table in key order with the next checkpoint,
//! the durable commit the write-ahead log makes when it is full. Inserted on
//! every commit, each patch landed at a scattered leaf and cost the storage
//! node ~15 us of CPU (a copy-on-write of that page), a quarter of its work per
//! commit under 16 writers (docs/PERFORMANCE.md, "History"); sorted, a leaf is
//! copied once per checkpoint for all the patches that land on it. Nothing is
//! lost by waiting: the write-ahead log carries every patch, and replay puts
//! them in the table.
//!
//! Nothing here decides anything: the head moves (or not) before the history
//! is touched, and a damaged or missing entry only shortens what reads return.

use std::collections::BTreeMap;

use bytes::Bytes;
use redb::{ReadableTable, Table, TableDefinition};

use super::backend;
use crate::{
    Hash, LoggedPatch, MAX_HISTORY, Retention, StoreError, StoredHead, patches_since_from,
};

/// `(root, height) -> patch bytes`.
pub(super) const PATCHES: TableDefinition<([u8; 32], u64), &[u8]> = TableDefinition::new("patches");

/// Most entries one commit prunes. A steady `last N` prunes one per commit;
/// only a restart with a much smaller setting leaves more, and those are
/// pruned this many at a time by the root's next commits (reads hide them
/// meanwhile), so that no single commit pays for a whole history at once.
const PRUNE_PER_COMMIT: usize = 1024;

/// One patch of a committed batch, for the history.
#[derive(Debug)]
pub(super) struct Logged {
    key: ([u8; 32], u64),
    patch: Bytes,
}

impl Logged {
    /// The patch that made `new.height` of `new.root`.
    pub(super) fn new(new: &StoredHead, patch: Bytes) -> Logged {
        Logged {
            key: (*new.root.as_bytes(), new.height),
            patch,
        }
    }
}

/// Patches committed since the last checkpoint, not yet in [`PATCHES`], in
/// key order: at most a log's worth (the log is 8 MiB by default).
#[derive(Debug, Default)]
pub(super) struct Pending {
    entries: BTreeMap<([u8; 32], u64), Bytes>,
}

impl Pending {
    pub(super) fn extend(&mut self, logged: Vec<Logged>) {
        self.entries
            .extend(logged.into_iter().map(|l| (l.key, l.patch)));
    }

    /// `root`'s pending patches, by ascending height.
    pub(super) fn of(&self, root: &Hash) -> Vec<(u64, Bytes)> {
        let root = *root.as_bytes();
        self.entries
            .range((root, 0)..=(root, u64::MAX))
            .map(|((_, height), patch)| (*height, patch.clone()))
            .collect()
    }

    /// Inserts every pending patch into `patches`, in key order, and prunes
    /// what each root's newest one pushes out of the window. The caller
    /// commits, then clears.
    pub(super) fn flush_into(
        &self,
        patches: &mut Table<'_, ([u8; 32], u64), &'static [u8]>,
        retention: Retention,
    ) -> Result<(), StoreError> {
        let mut newest: Option<([u8; 32], u64)> = None;
        for (key, patch) in &self.entries {
            if let Some((root, height)) = newest
                && root != key.0
            {
                prune(patches, retention, &root, height)?;
            }
            patches.insert(*key, patch.as_ref()).map_err(backend)?;
            newest = Some(*key);
        }
        if let Some((root, height)) = newest {
            prune(patches, retention, &root, height)?;
        }
        Ok(())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Removes `root`'s entries that a head at `head_height` leaves out of the
/// window (at most [`PRUNE_PER_COMMIT`] at a time).
fn prune(
    patches: &mut Table<'_, ([u8; 32], u64), &'static [u8]>,
    retention: Retention,
    root: &[u8; 32],
    head_height: u64,
) -> Result<(), StoreError> {
    let Some(through) = retention.drops_through(head_height) else {
        return Ok(());
    };
    let mut old = Vec::new();
    for entry in patches
        .range((*root, 0)..=(*root, through))
        .map_err(backend)?
        .take(PRUNE_PER_COMMIT)
    {
        old.push(entry.map_err(backend)?.0.value());
    }
    for key in old {
        patches.remove(key).map_err(backend)?;
    }
    Ok(())
}

/// Logs `patch` as the one that made `new.height` of `new.root`, when the
/// store keeps history and there is a patch, and prunes what falls out of the
/// window. Called right after the head moved, in the same transaction.
pub(super) fn append(
    patches: &mut Table<'_, ([u8; 32], u64), &'static [u8]>,
    retention: Retention,
    new: &StoredHead,
    patch: Option<&[u8]>,
) -> Result<(), StoreError> {
    let Some(patch) = patch.filter(|_| retention.logs()) else {
        return Ok(());
    };
    let root = *new.root.as_bytes();
    patches.insert((root, new.height), patch).map_err(backend)?;
    prune(patches, retention, &root, new.height)
}

/// A page of `root`'s history (see [`crate::Store::history`]), whose head is
/// at `head_height`.
pub(super) fn page(
    patches: &impl ReadableTable<([u8; 32], u64), &'static [u8]>,
    newer: &[(u64, Bytes)],
    retention: Retention,
    root: &Hash,
    head_height: u64,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<LoggedPatch>, StoreError> {
    let limit = limit.min(MAX_HISTORY);
    let root = *root.as_bytes();
    let mut out = Vec::new();
    if limit == 0 || !retention.logs() {
        return Ok(out);
    }
    let below = before.unwrap_or(u64::MAX);
    // The pending patches are the newest (all above what the table holds for
    // the root: heights only grow, and the table has nothing since the last
    // checkpoint), so they come first.
    for (height, patch) in newer.iter().rev().filter(|(h, _)| *h < below) {
        if !retention.keeps(*height, head_height) {
            return Ok(out);
        }
        out.push(LoggedPatch::new(*height, patch.clone()));
        if out.len() == limit {
            return Ok(out);
        }
    }
    let range = match before {
        Some(before) => patches.range((root, 0)..(root, before)),
        None => patches.range((root, 0)..=(root, u64::MAX)),
    }
    .map_err(backend)?;
    for entry in range.rev() {
        let (key, value) = entry.map_err(backend)?;
        let height = key.value().1;
        if !retention.keeps(height, head_height) {
            break;
        }
        out.push(LoggedPatch::new(
            height,
            Bytes::copy_from_slice(value.value()),
        ));
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// The patches from `height` to the head at `head_height` (see
/// [`crate::Store::patches_since`]).
pub(super) fn since(
    patches: &impl ReadableTable<([u8; 32], u64), &'static [u8]>,
    newer: &[(u64, Bytes)],
    retention: Retention,
    root: &Hash,
    head_height: u64,
    height: u64,
    max: usize,
) -> Result<Option<Vec<Bytes>>, StoreError> {
    let Some(need) = head_height.checked_sub(height) else {
        return Ok(None);
    };
    // Read nothing when the answer cannot be yes.
    if need > max.min(MAX_HISTORY) as u64 || (need > 0 && !retention.keeps(height + 1, head_height))
    {
        return Ok(None);
    }
    let root = *root.as_bytes();
    let mut entries = Vec::with_capacity(need as usize);
    for entry in patches
        .range((root, height + 1)..=(root, head_height))
        .map_err(backend)?
    {
        let (key, value) = entry.map_err(backend)?;
        entries.push((key.value().1, Bytes::copy_from_slice(value.value())));
    }
    entries.extend(
        newer
            .iter()
            .filter(|(h, _)| *h > height && *h <= head_height)
            .cloned(),
    );
    Ok(patches_since_from(
        retention,
        head_height,
        height,
        max,
        entries.into_iter(),
    ))
}
