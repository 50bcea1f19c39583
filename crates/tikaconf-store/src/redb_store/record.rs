//! The value of redb's `roots` table: one compact record per root.
//!
//! A record holds the root's head and height and, once the root has moved past
//! height 0, where its registration is: the number under which the snapshot it
//! was registered with (its connection info) sits in the `registrations`
//! table. At height 0 that snapshot is the head's own, in `snapshots`, so it is
//! not kept twice; the commit that moves a root off height 0 moves those bytes
//! to `registrations` instead of deleting them.
//!
//! Why a number and not the root hash as the key of `registrations`: keyed by
//! a counter, registrations are appended at the right edge of their B-tree, so
//! a batch of a thousand roots leaving height 0 rewrites a handful of pages;
//! keyed by the (random) root hash, or kept inside this record, the same batch
//! rewrote a thousand scattered pages, and a 100,000-root store filled like
//! tikaconf-bench's workload 7 grew from 312 MB to 552-562 MB, nearly all of it
//! pages freed by copy-on-write but not yet reusable (issue 13; reproduce with
//! `cargo run --release -p tikaconf-store --example fill_size`).
//!
//! Since issue 14 a head need not have a snapshot of its own: a commit may
//! write only its patch (see `redb_store::delta`), and the record then names
//! the **base**, the latest head whose snapshot is in `snapshots`, and how
//! many bytes of patches lie between it and the head; loading replays them.
//!
//! Encoded by hand rather than as a redb tuple so that later fields can be
//! added behind the version byte without a new table. Version 1: `[1][head:
//! 32][height: u64 LE][registration: u64 LE]`, 0 meaning none (its base is its
//! head). Version 2 (written since issue 14): the same, then `[base: 32][base
//! height: u64 LE][patch bytes since the base: u64 LE]`.

use crate::{Hash, StoreError};

/// The first byte of every record this version writes.
const VERSION: u8 = 2;
/// The length of a version-1 record: version, head, height, registration.
const LEN_1: usize = 1 + 32 + 8 + 8;
/// The encoded length: version 1's fields, then base, base height, bytes since.
const LEN: usize = LEN_1 + 32 + 8 + 8;

/// A root's entry in the `roots` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RootRecord {
    pub head: Hash,
    pub height: u64,
    /// The key of the root's registration in `registrations`, once the root
    /// has moved past height 0 (`None` before, and for a root that moved in a
    /// store older than this record, which kept no copy). Never 0.
    pub registration: Option<u64>,
    /// The latest head whose snapshot is stored (the head itself after a full
    /// commit), and its height.
    pub base: Hash,
    pub base_height: u64,
    /// The bytes of the patches from the base to the head.
    pub since_bytes: u64,
}

impl RootRecord {
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0] = VERSION;
        out[1..33].copy_from_slice(self.head.as_bytes());
        out[33..41].copy_from_slice(&self.height.to_le_bytes());
        out[41..49].copy_from_slice(&self.registration.unwrap_or(0).to_le_bytes());
        out[49..81].copy_from_slice(self.base.as_bytes());
        out[81..89].copy_from_slice(&self.base_height.to_le_bytes());
        out[89..97].copy_from_slice(&self.since_bytes.to_le_bytes());
        out
    }

    /// Whether the head has a snapshot of its own (no patches to replay).
    pub fn is_full(&self) -> bool {
        self.base == self.head
    }

    /// Decodes the record of `root`; damage is [`StoreError::Corrupt`] naming it.
    pub fn decode(root: &Hash, bytes: &[u8]) -> Result<RootRecord, StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt(format!("record of root {root}: {why}"));
        let Some(&version) = bytes.first() else {
            return Err(corrupt("empty"));
        };
        let len = match version {
            1 => LEN_1,
            VERSION => LEN,
            _ => {
                return Err(corrupt(&format!(
                    "version {version} (this build reads 1 and {VERSION})"
                )));
            }
        };
        if bytes.len() != len {
            return Err(corrupt(&format!("{} bytes, not {len}", bytes.len())));
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let hash_at =
            |at: usize| Hash::from_bytes(bytes[at..at + 32].try_into().expect("32 bytes"));
        let (head, height, registration) = (hash_at(1), u64_at(33), u64_at(41));
        let (base, base_height, since_bytes) = match version {
            1 => (head, height, 0),
            _ => (hash_at(49), u64_at(81), u64_at(89)),
        };
        if base_height > height || (base_height == height) != (base == head) {
            return Err(corrupt(&format!(
                "base at height {base_height} does not precede head at height {height}"
            )));
        }
        Ok(RootRecord {
            head,
            height,
            registration: (registration != 0).then_some(registration),
            base,
            base_height,
            since_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(b: u8) -> Hash {
        Hash::from_bytes([b; 32])
    }

    #[test]
    fn a_record_round_trips_with_and_without_registration() {
        for registration in [None, Some(1), Some(u64::MAX)] {
            for (base, base_height) in [(hash(7), 42), (hash(5), 40)] {
                let record = RootRecord {
                    head: hash(7),
                    height: 42,
                    registration,
                    base,
                    base_height,
                    since_bytes: 42 - base_height,
                };
                assert_eq!(
                    RootRecord::decode(&hash(1), &record.encode()).unwrap(),
                    record
                );
            }
        }
    }

    #[test]
    fn a_version_1_record_is_its_own_base() {
        let mut old = vec![1u8];
        old.extend_from_slice(hash(7).as_bytes());
        old.extend_from_slice(&42u64.to_le_bytes());
        old.extend_from_slice(&3u64.to_le_bytes());
        let record = RootRecord::decode(&hash(1), &old).unwrap();
        assert_eq!((record.head, record.height), (hash(7), 42));
        assert_eq!(record.registration, Some(3));
        assert!(record.is_full());
        assert_eq!((record.base_height, record.since_bytes), (42, 0));
    }

    #[test]
    fn damage_is_corrupt_and_names_the_root() {
        let good = RootRecord {
            head: hash(7),
            height: 1,
            registration: Some(3),
            base: hash(7),
            base_height: 1,
            since_bytes: 0,
        }
        .encode();
        let mut wrong_version = good;
        wrong_version[0] = 9;
        let mut longer = good.to_vec();
        longer.push(0);
        let mut base_above = good;
        base_above[81..89].copy_from_slice(&2u64.to_le_bytes());
        for bad in [
            &good[..0],
            &good[..10],
            &longer[..],
            &wrong_version[..],
            &base_above[..],
        ] {
            match RootRecord::decode(&hash(1), bad) {
                Err(StoreError::Corrupt(msg)) => assert!(msg.contains(&hash(1).to_string())),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
    }
}
