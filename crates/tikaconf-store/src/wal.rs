//! The write-ahead log that makes a [`RedbStore`](crate::RedbStore) commit durable
//! with one small in-place write and one `fdatasync`.
//!
//! Why a log at all: a durable redb commit rewrites B-tree pages all over its file
//! and syncs them (with the file's metadata), which on a plain disk costs several
//! times what appending one record and syncing it does. So a commit appends its
//! batch here and syncs, then commits to redb *without* syncing; now and then a
//! checkpoint (one durable redb commit) makes all of those redb commits durable at
//! once and the log starts again from its beginning.
//!
//! Why a fixed-size, zero-filled file that is overwritten in place rather than
//! appended to: on ext4 (and most journaling file systems) a write that extends a
//! file, or that lands in a hole or an unwritten (fallocated) extent, changes the
//! file's block map or size, so its `fdatasync` must also commit the journal. A write
//! inside blocks that already hold data changes no metadata, and its `fdatasync` only
//! flushes the data. Measured on the development disk: ~197 us per 4 KiB append +
//! sync, ~112 us per in-place overwrite + sync. The file is therefore created at its
//! full size, filled with real zeros (not `set_len`, which leaves a hole), and never
//! grows: a record that does not fit is not written at all (see
//! [`Wal::fits`]); the caller checkpoints instead.
//!
//! File layout:
//!
//! ```text
//! file header (16 bytes): b"TKCFWAL1" (magic and format version), log id u64
//! record*:                crc32 u32 | payload length u32 | sequence u64 | payload
//! ```
//!
//! All integers are little-endian. The CRC-32 covers the length, the sequence and the
//! payload, so a record is valid only if every byte of it is what was written.
//!
//! Which records count (replay): the records from the start of the file that form an
//! unbroken chain, each valid and with the sequence number one above the previous
//! one. The first record that is invalid (torn by a crash mid-write, zeros, garbage)
//! or out of sequence ends the log. This is what makes reuse safe without ever
//! erasing anything: after a checkpoint at sequence `S` every record left in the file
//! has a sequence `<= S`, and the next record written (at the start) has `S + 1`, so
//! a stale record can never continue the new chain. A record whose write was torn
//! was never acknowledged (the acknowledgement waits for the sync), so dropping it
//! loses nothing anyone was promised.
//!
//! A record whose checksum and sequence are right but whose payload does not decode
//! is different: we wrote it, synced it and maybe acknowledged it, so dropping it
//! silently could lose an acknowledged write. That is reported as
//! [`StoreError::Corrupt`] and the store refuses to open, for a person to look at.
//! The same goes for a file header that is not ours.
//!
//! Which database a log belongs to: the log id, random, chosen when the file is
//! created and kept by the database (its `meta` table). Sequence numbers alone
//! cannot tell a log that belongs to another database (a database file restored
//! from a backup, or copied from another node, beside the old log): its records
//! could happen to continue the database's sequence and would then be redone into
//! a state they were never decided against. So the caller says which id it
//! expects, and a log with another id is refused ([`StoreError::Corrupt`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{Commit, Hash, StoreError, StoredHead};

/// Magic and format version at the start of every log file.
const MAGIC: &[u8; 8] = b"TKCFWAL1";
/// Size of the file header; the first record starts here.
pub(crate) const FILE_HEADER_LEN: u64 = 16;
/// crc32 (4) + payload length (4) + sequence (8).
const RECORD_HEADER_LEN: usize = 16;

/// How big the log file is made when it is created.
///
/// Why 8 MiB: big enough that checkpoints are rare (about 7,000 one-commit batches
/// of a 1 KiB snapshot between two, so the one slow durable redb commit is a small
/// share of the total), small enough that creating the file (writing the zeros)
/// takes tens of milliseconds, that replay at open reads little, and that the redb
/// pages kept unsynced between checkpoints stay few, so a checkpoint's own sync
/// stays short.
pub(crate) const DEFAULT_CAPACITY: u64 = 8 << 20;

/// The log: an open file, where the next record goes, and which sequence it gets.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    /// Which database the log belongs to (see the module doc).
    id: u64,
    /// Length of the file, fixed at creation; records are only written below it.
    len: u64,
    /// Offset at which the next record will be written.
    end: u64,
    /// Sequence number of the next record.
    next_seq: u64,
    /// Set once a write or sync of the log failed. After a failed `fdatasync` the
    /// kernel may have dropped the dirty pages and a second sync can "succeed"
    /// without them, so nothing written after it could be trusted: the log refuses
    /// all further writes until the store is opened again and replays what is
    /// really on disk.
    broken: Option<String>,
    /// Reused buffer for one framed record.
    buf: Vec<u8>,
}

/// A record found by [`Wal::open`]: its sequence and payload.
#[derive(Debug)]
pub(crate) struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

impl Wal {
    /// Opens the log at `path` for the database that knows it as `owner`, and
    /// returns it with the unbroken chain of records it holds, in order.
    ///
    /// A new log (`capacity` bytes of zeros after the header) with a fresh id
    /// replaces whatever is at `path` when `owner` is `None` (a database that never
    /// had a log: nothing in a file there can be its own). When there is no file (a
    /// log that was deleted: what it held is lost, and refusing to start would not
    /// bring it back) a new one is created with the owner's id, so that a crash
    /// before the caller's next commit leaves the two still matching. A log with an
    /// id other than `owner` is
    /// refused. The log is positioned at its start, ready for [`Wal::restart`]
    /// once the caller has made the records durable elsewhere; [`Wal::id`] is the
    /// id the database must keep.
    pub(crate) fn open(
        path: &Path,
        capacity: u64,
        owner: Option<u64>,
    ) -> Result<(Wal, Vec<Record>), StoreError> {
        if owner.is_none() || !path.exists() {
            create(path, capacity, owner.unwrap_or_else(new_id))?;
        }
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let id = read_header(path, &bytes)?;
        let records = match owner {
            Some(owner) if owner != id => {
                return Err(StoreError::Corrupt(format!(
                    "{} belongs to another database (log id {id:016x}, the database's is \
                     {owner:016x}); move it away to start a new log (any writes in it that \
                     are not in the database are then lost)",
                    path.display()
                )));
            }
            _ => scan(&bytes),
        };
        let wal = Wal {
            file,
            path: path.to_path_buf(),
            id,
            len: bytes.len() as u64,
            end: FILE_HEADER_LEN,
            next_seq: records.last().map_or(1, |r| r.seq + 1),
            broken: None,
            buf: Vec::new(),
        };
        Ok((wal, records))
    }

    /// Starts the log over from its beginning, the next record taking `next_seq`.
    ///
    /// Call only once every record written so far is durable elsewhere (a durable
    /// redb commit whose meta sequence is `next_seq - 1` or more): the next record
    /// overwrites the first. Costs no I/O: the stale records left behind all have
    /// smaller sequences and so cannot continue the new chain (see the module doc).
    pub(crate) fn restart(&mut self, next_seq: u64) {
        self.end = FILE_HEADER_LEN;
        self.next_seq = next_seq;
    }

    /// The log's id (see the module doc).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Sequence number the next record will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether a record with a payload of `payload_len` bytes fits in the space left.
    pub(crate) fn fits(&self, payload_len: usize) -> bool {
        self.end + (RECORD_HEADER_LEN + payload_len) as u64 <= self.len
    }

    /// Offset at which the next record will be written (for tests).
    #[cfg(test)]
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Marks the log broken because of `error`, which happened after a record was
    /// synced (or while its fate is unknown), and returns the error. See `broken`.
    pub(crate) fn fail(&mut self, error: StoreError) -> StoreError {
        self.broken = Some(error.to_string());
        error
    }

    /// Fails if an earlier write or sync failed (see `broken`).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(StoreError::Backend(format!(
                "the write-ahead log {} failed earlier ({why}); reopen the store to recover",
                self.path.display()
            ))),
        }
    }

    /// Writes one record with sequence [`Wal::next_seq`] and `payload`, and returns
    /// only once it is on disk (`fdatasync`). The caller must have checked
    /// [`Wal::fits`]. On error the log is broken for good (until reopened): the
    /// record may or may not be on disk, as after a crash.
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<u64, StoreError> {
        self.check()?;
        if !self.fits(payload.len()) {
            return Err(StoreError::Invalid(format!(
                "a {}-byte record does not fit in the write-ahead log",
                payload.len()
            )));
        }
        let seq = self.next_seq;
        let len = u32::try_from(payload.len())
            .map_err(|_| StoreError::Invalid("write-ahead log record over 4 GiB".into()))?;
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.extend_from_slice(payload);
        let crc = crc32fast::hash(&self.buf[4..]);
        self.buf[..4].copy_from_slice(&crc.to_le_bytes());

        // One write and one data sync. Only the blocks under the record change, and
        // they are already allocated, so the sync has no metadata to commit.
        let written = self
            .file
            .seek(SeekFrom::Start(self.end))
            .and_then(|_| self.file.write_all(&self.buf))
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            self.broken = Some(e.to_string());
            return Err(StoreError::Io(e));
        }
        self.end += self.buf.len() as u64;
        self.next_seq += 1;
        Ok(seq)
    }
}

/// Creates the log file: written under a temporary name, filled, synced, then
/// renamed into place and the directory synced, so that a file at `path` is always
/// complete (a crash mid-creation leaves only the temporary file, which the next
/// creation overwrites).
fn create(path: &Path, capacity: u64, id: u64) -> Result<(), StoreError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".new");
    let tmp = PathBuf::from(tmp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    header[..MAGIC.len()].copy_from_slice(MAGIC);
    header[MAGIC.len()..].copy_from_slice(&id.to_le_bytes());
    file.write_all(&header)?;
    // Real zeros, not a hole: see the module doc.
    let zeros = vec![0u8; 1 << 20];
    let mut left = capacity;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    sync_dir(path)?;
    Ok(())
}

/// Makes a rename or creation in `path`'s directory durable.
#[cfg(unix)]
fn sync_dir(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Directories cannot be opened (so not synced) this way off Unix; there the
/// rename's durability is left to the file system.
#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// A log id unlikely ever to repeat: std's per-process random hash keys, mixed
/// with the time and the process id (no random-number crate needed for this).
fn new_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Checks the file header and returns the log id.
fn read_header(path: &Path, bytes: &[u8]) -> Result<u64, StoreError> {
    match bytes.get(..FILE_HEADER_LEN as usize) {
        Some(header) if &header[..MAGIC.len()] == MAGIC => Ok(u64::from_le_bytes(
            header[MAGIC.len()..].try_into().expect("8 bytes"),
        )),
        _ => Err(StoreError::Corrupt(format!(
            "{} is not a tikaconf write-ahead log (bad or unknown header)",
            path.display()
        ))),
    }
}

/// Reads the unbroken chain of records out of the log file's bytes (header
/// already checked).
fn scan(bytes: &[u8]) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    let mut at = FILE_HEADER_LEN as usize;
    while let Some(header) = bytes.get(at..at + RECORD_HEADER_LEN) {
        let crc = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        // A length running past the end of the file is a torn or garbage header.
        let Some(body) = bytes.get(at + 4..at + RECORD_HEADER_LEN + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        if let Some(prev) = records.last()
            && prev.seq.checked_add(1) != Some(seq)
        {
            break;
        }
        records.push(Record {
            seq,
            payload: body[RECORD_HEADER_LEN - 4..].to_vec(),
        });
        at += RECORD_HEADER_LEN + len;
    }
    records
}

/// One applied compare-and-set as the log keeps it: enough to redo it without
/// deciding again (it was decided when first applied, against the same state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedCommit {
    pub expected_head: Hash,
    pub new: StoredHead,
}

/// Appends the payload of a record holding `commits` to `out`:
/// `count u32`, then per commit `root[32] expected[32] head[32] height u64
/// snapshot_len u32 snapshot`.
pub(crate) fn encode_commits<'a>(
    commits: impl Iterator<Item = &'a Commit>,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut count: u32 = 0;
    for commit in commits {
        count += 1;
        let new = &commit.new;
        out.extend_from_slice(new.root.as_bytes());
        out.extend_from_slice(commit.expected_head.as_bytes());
        out.extend_from_slice(new.head.as_bytes());
        out.extend_from_slice(&new.height.to_le_bytes());
        let len = u32::try_from(new.snapshot.len())
            .map_err(|_| StoreError::Invalid("snapshot over 4 GiB".into()))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&new.snapshot);
    }
    out[start..start + 4].copy_from_slice(&count.to_le_bytes());
    Ok(())
}

/// Decodes a payload written by [`encode_commits`]. Any mismatch is corruption: the
/// record passed its checksum, so these are bytes we wrote.
pub(crate) fn decode_commits(
    seq: u64,
    mut payload: &[u8],
) -> Result<Vec<LoggedCommit>, StoreError> {
    let corrupt = || {
        StoreError::Corrupt(format!(
            "write-ahead log record {seq} has a valid checksum but does not decode"
        ))
    };
    let mut take = |n: usize| -> Result<&[u8], StoreError> {
        if payload.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = payload.split_at(n);
        payload = rest;
        Ok(head)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
    let mut commits = Vec::new();
    for _ in 0..count {
        let root = Hash::from_bytes(take(32)?.try_into().expect("32 bytes"));
        let expected_head = Hash::from_bytes(take(32)?.try_into().expect("32 bytes"));
        let head = Hash::from_bytes(take(32)?.try_into().expect("32 bytes"));
        let height = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let snapshot = Bytes::copy_from_slice(take(len)?);
        commits.push(LoggedCommit {
            expected_head,
            new: StoredHead {
                root,
                head,
                height,
                snapshot,
            },
        });
    }
    if !payload.is_empty() {
        return Err(corrupt());
    }
    Ok(commits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_in(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("test.wal")
    }

    #[test]
    fn a_new_log_is_zero_filled_and_holds_no_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, records) = Wal::open(&log_in(&dir), 4096, None).expect("open");
        assert!(records.is_empty(), "zeros are not a record");
        assert_eq!(log.next_seq(), 1);
        let bytes = std::fs::read(log_in(&dir)).expect("read");
        assert_eq!(bytes.len() as u64, FILE_HEADER_LEN + 4096);
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(bytes[8..16], log.id().to_le_bytes());
        assert!(bytes[16..].iter().all(|b| *b == 0));
        assert!(!dir.path().join("test.wal.new").exists());
    }

    #[test]
    fn records_come_back_in_order_and_the_file_never_grows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = {
            let (mut log, _) = Wal::open(&log_in(&dir), 100, None).expect("open");
            assert_eq!(log.append(b"one").expect("append"), 1);
            assert_eq!(log.append(b"two").expect("append"), 2);
            assert!(log.fits(100 - 2 * 19 - 16));
            assert!(!log.fits(100 - 2 * 19 - 15));
            match log.append(&[0; 100]) {
                Err(StoreError::Invalid(_)) => {}
                other => panic!("a record that does not fit must be refused, got {other:?}"),
            }
            log.id()
        };
        assert_eq!(
            std::fs::metadata(log_in(&dir)).expect("meta").len(),
            FILE_HEADER_LEN + 100
        );
        let (mut log, records) = Wal::open(&log_in(&dir), 100, Some(id)).expect("reopen");
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.seq, r.payload.as_slice()))
            .collect();
        assert_eq!(got, [(1, &b"one"[..]), (2, &b"two"[..])]);
        // Start over at 3: the new record overwrites "one" and "two" must no
        // longer count, though it is intact.
        log.restart(3);
        assert_eq!(log.append(b"333").expect("append"), 3);
        let (_, records) = Wal::open(&log_in(&dir), 100, Some(id)).expect("reopen");
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.seq, r.payload.as_slice()))
            .collect();
        assert_eq!(got, [(3, &b"333"[..])]);
    }

    #[test]
    fn a_length_past_the_end_is_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = Wal::open(&log_in(&dir), 64, None).expect("open");
        log.append(b"kept").expect("append");
        let id = log.id();
        drop(log);
        let mut bytes = std::fs::read(log_in(&dir)).expect("read");
        // A second "record" header claiming 4 GiB.
        let at = FILE_HEADER_LEN as usize + RECORD_HEADER_LEN + 4;
        bytes[at + 4..at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[at + 8..at + 16].copy_from_slice(&2u64.to_le_bytes());
        std::fs::write(log_in(&dir), &bytes).expect("write");
        let (_, records) = Wal::open(&log_in(&dir), 64, Some(id)).expect("reopen");
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn owners_and_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = Wal::open(&log_in(&dir), 64, None).expect("open");
        log.append(b"x").expect("append");
        let id = log.id();
        drop(log);
        // Another owner's log is refused, and left alone.
        match Wal::open(&log_in(&dir), 64, Some(id ^ 1)) {
            Err(StoreError::Corrupt(msg)) => assert!(msg.contains("another database"), "{msg}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let (_, records) = Wal::open(&log_in(&dir), 64, Some(id)).expect("reopen");
        assert_eq!(records.len(), 1);
        // No owner: a new log replaces it.
        let (log, records) = Wal::open(&log_in(&dir), 64, None).expect("replace");
        assert!(records.is_empty());
        assert_ne!(log.id(), id);
        // A missing log is created anew for its owner, with its id.
        drop(log);
        std::fs::remove_file(log_in(&dir)).expect("remove");
        let (log, records) = Wal::open(&log_in(&dir), 64, Some(id)).expect("recreate");
        assert!(records.is_empty());
        assert_eq!(log.id(), id);
    }

    #[test]
    fn a_broken_log_refuses_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = Wal::open(&log_in(&dir), 64, None).expect("open");
        let _ = log.fail(StoreError::Backend("disk on fire".into()));
        match log.append(b"x") {
            Err(StoreError::Backend(msg)) => assert!(msg.contains("disk on fire"), "{msg}"),
            other => panic!("expected Backend, got {other:?}"),
        }
    }

    #[test]
    fn commits_round_trip() {
        let root = Hash::of_canonical_bytes(b"{\"r\":1}");
        let head = Hash::of_canonical_bytes(b"{\"h\":1}");
        let commits = [
            Commit {
                expected_head: root,
                new: StoredHead {
                    root,
                    head,
                    height: 7,
                    snapshot: Bytes::from_static(b"{\"a\":1}"),
                },
            },
            Commit {
                expected_head: head,
                new: StoredHead {
                    root,
                    head: root,
                    height: u64::MAX,
                    snapshot: Bytes::new(),
                },
            },
        ];
        let mut payload = Vec::new();
        encode_commits(commits.iter(), &mut payload).expect("encode");
        let back = decode_commits(1, &payload).expect("decode");
        assert_eq!(back.len(), 2);
        for (c, b) in commits.iter().zip(&back) {
            assert_eq!((&c.expected_head, &c.new), (&b.expected_head, &b.new));
        }
        for cut in 0..payload.len() {
            assert!(matches!(
                decode_commits(1, &payload[..cut]),
                Err(StoreError::Corrupt(_))
            ));
        }
        payload.push(0);
        assert!(matches!(
            decode_commits(1, &payload),
            Err(StoreError::Corrupt(_))
        ));
    }
}
