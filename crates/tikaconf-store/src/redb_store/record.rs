//! The value of redb's `roots` table: one compact record per root.
//!
//! A record holds the root's head and height and, once the root has moved past
//! height 0, the snapshot it was registered with (its connection info). At
//! height 0 that snapshot is the head's own, in `snapshots`, so it is not kept
//! twice; the commit that moves a root off height 0 moves those bytes here
//! instead of deleting them. So a listing can name every root's channel or
//! server, and filter by platform, at the cost of the registration's bytes in
//! the record of each root that ever changed, and no extra table, write or
//! B-tree per commit (issue 13; a table of its own made a 100,000-root store
//! 1.7x larger, see `ListedRoot::registration`).
//!
//! Encoded by hand rather than as a redb tuple so that later fields (the
//! history of issue 14) can be added behind the version byte without a new
//! table: `[version 1][head: 32][height: u64 LE][registration length: u32 LE]
//! [registration]`, length 0 meaning none.

use bytes::Bytes;

use crate::{Hash, StoreError};

/// The first byte of every record this version writes.
const VERSION: u8 = 1;
/// The fixed part: version, head, height, registration length.
const FIXED: usize = 1 + 32 + 8 + 4;

/// A root's entry in the `roots` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RootRecord {
    pub head: Hash,
    pub height: u64,
    /// The snapshot the root was registered with, kept once the root has
    /// moved past height 0 (`None` before, and for a root that moved in a
    /// store older than this record, which kept no copy).
    pub registration: Option<Bytes>,
}

impl RootRecord {
    pub fn encode(&self) -> Vec<u8> {
        let registration = self.registration.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(FIXED + registration.len());
        out.push(VERSION);
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        // Registrations are snapshots, bounded by the protocol's message limit
        // (far below 4 GiB); `check_register` enforced it when the root came in.
        let len = u32::try_from(registration.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(registration);
        out
    }

    /// Decodes the record of `root`; damage is [`StoreError::Corrupt`] naming it.
    pub fn decode(root: &Hash, bytes: &[u8]) -> Result<RootRecord, StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt(format!("record of root {root}: {why}"));
        if bytes.len() < FIXED {
            return Err(corrupt("shorter than its fixed part"));
        }
        if bytes[0] != VERSION {
            return Err(corrupt(&format!(
                "version {} (this build reads {VERSION})",
                bytes[0]
            )));
        }
        let head: [u8; 32] = bytes[1..33].try_into().expect("32 bytes");
        let height = u64::from_le_bytes(bytes[33..41].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(bytes[41..45].try_into().expect("4 bytes")) as usize;
        let rest = &bytes[FIXED..];
        if rest.len() != len {
            return Err(corrupt("registration length does not match"));
        }
        Ok(RootRecord {
            head: Hash::from_bytes(head),
            height,
            registration: (len > 0).then(|| Bytes::copy_from_slice(rest)),
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
        for registration in [None, Some(Bytes::from_static(b"{\"platform\":\"twitch\"}"))] {
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
            registration: Some(Bytes::from_static(b"abc")),
        }
        .encode();
        let mut wrong_version = good.clone();
        wrong_version[0] = 9;
        for bad in [&good[..10], &good[..good.len() - 1], &wrong_version[..]] {
            match RootRecord::decode(&hash(1), bad) {
                Err(StoreError::Corrupt(msg)) => assert!(msg.contains(&hash(1).to_string())),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
    }
}
