//! Heads without a snapshot of their own: a commit that writes only its patch.
//!
//! Why: a commit used to write the root's whole new snapshot (in the
//! write-ahead log's record, and in `snapshots`), so a 200 B change to a 1 MiB
//! document cost over a megabyte of writes. When the store keeps the root's
//! patches anyway (any retention but `none`), a commit may instead write only
//! its patch and leave the snapshot of an earlier head, the **base**, in
//! place; loading the root replays the patches since the base. A full snapshot
//! is written again once [`SNAPSHOT_EVERY`] patches, or more bytes of patches
//! than the document itself, lie past the base, so that a load replays at
//! most that many patches and reads at most about twice the document.
//!
//! The patches a replay needs are never pruned: a root's history keeps every
//! height above its base, whatever the retention (see `history::append`).
//! A store running with `none` writes every snapshot, exactly as before
//! history, and still replays what an earlier run left.

use bytes::Bytes;
use tikaconf_proto::{Limits, Message, Snapshot};

use super::record::RootRecord;
use crate::{Hash, PersistCommit, StoreError};

/// Most patches a root's head may lie past its base: a load replays at most
/// this many. 32 keeps a load of a 10 KiB document under a millisecond of
/// replay while writing its snapshot on 1 commit in 32.
pub(super) const SNAPSHOT_EVERY: u64 = 32;

/// Whether `commit`, applied on a root whose record is `old`, may write only
/// its patch: it has one, and with it the patches past the base stay fewer
/// than [`SNAPSHOT_EVERY`] and weigh no more than the new document.
pub(super) fn may_skip_snapshot(old: &RootRecord, commit: &PersistCommit) -> bool {
    let Some(patch) = &commit.patch else {
        return false;
    };
    let past_base = commit.new.height.saturating_sub(old.base_height);
    past_base < SNAPSHOT_EVERY
        && old.since_bytes + patch.len() as u64 <= commit.new.snapshot.len() as u64
}

/// The snapshot of `record`'s head, rebuilt from `base` (the snapshot at the
/// record's base) and `patches` (by ascending height, those above the base up
/// to the head; more are ignored): each patch decoded, checked to chain, and
/// applied. Anything that does not fit is [`StoreError::Corrupt`], naming the
/// root and the height.
///
/// The limits are relaxed: every patch was valid when a storage node accepted
/// it, and a smaller limit set since must not make a stored head unloadable.
/// The result carries no signature; a storage node signs what it reads.
pub(super) fn replay(
    root: Hash,
    record: &RootRecord,
    base: &[u8],
    patches: impl IntoIterator<Item = (u64, Bytes)>,
) -> Result<Bytes, StoreError> {
    let corrupt = |height: u64, why: String| {
        StoreError::Corrupt(format!(
            "root {root}: rebuilding head {} at height {height}: {why}",
            record.head
        ))
    };
    let relaxed = Limits {
        max_message_bytes: usize::MAX,
        max_depth: Limits::MAX_DEPTH_CEILING,
    };
    let snapshot = match Message::decode(base, &relaxed) {
        Ok(Message::Snapshot(snapshot)) => snapshot,
        Ok(other) => {
            return Err(corrupt(
                record.base_height,
                format!("the base is a {}", other.type_name()),
            ));
        }
        Err(e) => return Err(corrupt(record.base_height, format!("the base: {e}"))),
    };
    if (snapshot.head, snapshot.height) != (record.base, record.base_height) {
        return Err(corrupt(
            record.base_height,
            format!("the base snapshot is of {}", snapshot.head),
        ));
    }
    let mut bound = snapshot.config_bound();
    let mut doc = std::sync::Arc::unwrap_or_clone(snapshot).config;
    let (mut head, mut height) = (record.base, record.base_height);
    for (at, bytes) in patches {
        if at <= height {
            continue;
        }
        if at > record.height {
            break;
        }
        if at != height + 1 {
            return Err(corrupt(height + 1, "its patch is missing".into()));
        }
        let patch = match Message::decode(&bytes, &relaxed) {
            Ok(Message::Patch(patch)) => patch,
            Ok(other) => return Err(corrupt(at, format!("a {} is stored", other.type_name()))),
            Err(e) => return Err(corrupt(at, format!("the patch: {e}"))),
        };
        if patch.height != at {
            return Err(corrupt(
                at,
                format!("the patch says height {}", patch.height),
            ));
        }
        if patch.parent != head {
            // The patch below hashes to something else than this one names:
            // one of the two was altered since they were stored.
            return Err(corrupt(
                at,
                format!(
                    "the patch names parent {}, but what is stored at height {height} \
                     hashes to {head}: one of the two was altered",
                    patch.parent
                ),
            ));
        }
        let (next, next_bound) = patch
            .apply_with_bound(root, height, &doc, bound, &relaxed)
            .map_err(|e| corrupt(at, format!("the patch does not apply: {e}")))?;
        (doc, bound) = (next, next_bound);
        (head, height) = (patch.hash, at);
    }
    if (head, height) != (record.head, record.height) {
        return Err(corrupt(
            height + 1,
            format!("the patches end at height {height}, below the head"),
        ));
    }
    Ok(Snapshot::new(root, head, height, doc).encoded)
}
