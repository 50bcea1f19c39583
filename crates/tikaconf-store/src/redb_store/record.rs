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
//! Encoded by hand rather than as a redb tuple so that later fields (the
//! history of issue 14) can be added behind the version byte without a new
//! table: `[version 1][head: 32][height: u64 LE][registration: u64 LE]`, 0
//! meaning none.

use crate::{Hash, StoreError};

/// The first byte of every record this version writes.
const VERSION: u8 = 1;
/// The encoded length: version, head, height, registration.
const LEN: usize = 1 + 32 + 8 + 8;

/// A root's entry in the `roots` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RootRecord {
    pub head: Hash,
    pub height: u64,
    /// The key of the root's registration in `registrations`, once the root
    /// has moved past height 0 (`None` before, and for a root that moved in a
    /// store older than this record, which kept no copy). Never 0.
    pub registration: Option<u64>,
}

impl RootRecord {
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0] = VERSION;
        out[1..33].copy_from_slice(self.head.as_bytes());
        out[33..41].copy_from_slice(&self.height.to_le_bytes());
        out[41..49].copy_from_slice(&self.registration.unwrap_or(0).to_le_bytes());
        out
    }

    /// Decodes the record of `root`; damage is [`StoreError::Corrupt`] naming it.
    pub fn decode(root: &Hash, bytes: &[u8]) -> Result<RootRecord, StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt(format!("record of root {root}: {why}"));
        let Some(&version) = bytes.first() else {
            return Err(corrupt("empty"));
        };
        if version != VERSION {
            return Err(corrupt(&format!(
                "version {version} (this build reads {VERSION})"
            )));
        }
        if bytes.len() != LEN {
            return Err(corrupt(&format!("{} bytes, not {LEN}", bytes.len())));
        }
        let head: [u8; 32] = bytes[1..33].try_into().expect("32 bytes");
        let height = u64::from_le_bytes(bytes[33..41].try_into().expect("8 bytes"));
        let registration = u64::from_le_bytes(bytes[41..49].try_into().expect("8 bytes"));
        Ok(RootRecord {
            head: Hash::from_bytes(head),
            height,
            registration: (registration != 0).then_some(registration),
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
            let record = RootRecord {
                head: hash(7),
                height: 42,
                registration,
            };
            assert_eq!(
                RootRecord::decode(&hash(1), &record.encode()).unwrap(),
                record
            );
        }
    }

    #[test]
    fn damage_is_corrupt_and_names_the_root() {
        let good = RootRecord {
            head: hash(7),
            height: 1,
            registration: Some(3),
        }
        .encode();
        let mut wrong_version = good;
        wrong_version[0] = 9;
        let mut longer = good.to_vec();
        longer.push(0);
        for bad in [&good[..0], &good[..10], &longer[..], &wrong_version[..]] {
            match RootRecord::decode(&hash(1), bad) {
                Err(StoreError::Corrupt(msg)) => assert!(msg.contains(&hash(1).to_string())),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
    }
}
