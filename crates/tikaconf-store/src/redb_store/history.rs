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
//! Each commit inserts its patch in the transaction that moves the head. An
//! earlier version deferred the inserts to the checkpoints, in key order,
//! because a scattered insert per commit cost the storage node ~15 us of CPU
//! (docs/PERFORMANCE.md, "History"); since a head may have no snapshot of its
//! own and be replayed from its patches (see `delta`), the patch must be in
//! the table whenever the head is, and the commit no longer writes (nor
//! deletes) a snapshot most of the time, which more than pays for the insert.
//!
//! Nothing here decides anything: the head moves (or not) before the history
//! is touched. A damaged or missing entry shortens what history reads return,
//! and makes the load of a head replayed through it fail as corrupt.

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

/// Removes `root`'s entries that a head at `head_height` leaves out of the
/// window (at most [`PRUNE_PER_COMMIT`] at a time), never one above
/// `base_height`: a head without its own snapshot is replayed from those (see
/// `delta`).
fn prune(
    patches: &mut Table<'_, ([u8; 32], u64), &'static [u8]>,
    retention: Retention,
    root: &[u8; 32],
    head_height: u64,
    base_height: u64,
) -> Result<(), StoreError> {
    let Some(through) = retention.drops_through(head_height) else {
        return Ok(());
    };
    let through = through.min(base_height);
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
/// window (never above `base_height`, the height of the root's latest stored
/// snapshot). Called right after the head moved, in the same transaction.
pub(super) fn append(
    patches: &mut Table<'_, ([u8; 32], u64), &'static [u8]>,
    retention: Retention,
    new: &StoredHead,
    patch: Option<&[u8]>,
    base_height: u64,
) -> Result<(), StoreError> {
    let Some(patch) = patch.filter(|_| retention.logs()) else {
        return Ok(());
    };
    let root = *new.root.as_bytes();
    patches.insert((root, new.height), patch).map_err(backend)?;
    prune(patches, retention, &root, new.height, base_height)
}

/// A page of `root`'s history (see [`crate::Store::history`]), whose head is
/// at `head_height`.
pub(super) fn page(
    patches: &impl ReadableTable<([u8; 32], u64), &'static [u8]>,
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
    Ok(patches_since_from(
        retention,
        head_height,
        height,
        max,
        entries.into_iter(),
    ))
}
