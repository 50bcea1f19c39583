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
//! Torn tail or corrupted middle: a torn write is always the *last* thing written
//! (records are written one at a time, each synced before the next), so nothing
//! written after it can continue the chain. Where the chain ends, the rest of the
//! file is therefore searched, at every byte offset (a damaged length field loses
//! the record boundaries), for a valid record whose sequence is above both the
//! chain's last and the database's durable sequence (`log_seq`): a record that
//! replay would need. Stale records never qualify (every one of them is at or below
//! the sequence the current chain started after, which the database already holds
//! durably), so finding one means the record where the chain ended was synced and
//! then damaged (bit rot, a stray write): [`StoreError::CorruptLog`] names it (the
//! sequence it should have and its offset) and the first record found after it, and
//! the store refuses to open rather than drop acknowledged writes and then
//! overwrite them. Finding none means a torn tail, dropped as above. The search
//! only checks candidates whose sequence could fit in the file (at most one record
//! per 16 bytes above the threshold), so it costs one pass over the file.
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
//! expects, and a log with another id is refused ([`StoreError::Corrupt`]). A
//! missing log file is refused too when the database expects one (it keeps a log
//! id): what the log held beyond the last checkpoint is gone, and creating a new
//! log would hide that ([`StoreError::MissingLog`]). Only a database that has never
//! had a log (new, or older than the log) gets a new one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::{Hash, PersistCommit, StoreError, StoredHead};

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
    /// all further writes ([`StoreError::Poisoned`], with this as its source) until
    /// the store is opened again and replays what is really on disk.
    broken: Option<Arc<StoreError>>,
    /// Test-only fault injection: the next sync fails (see
    /// [`crate::RedbStore::inject_log_sync_failure`]).
    fail_next_sync: bool,
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
    /// had a log: nothing in a file there can be its own). When `owner` is set and
    /// there is no file, the open fails ([`StoreError::MissingLog`]): the database
    /// expects a log, and what it held is lost. A log with an id other than `owner`
    /// is refused. `durable` is the sequence the database already holds durably:
    /// records at or below it are never needed, and a valid record above it after
    /// a damaged one makes the open fail ([`StoreError::CorruptLog`], see the
    /// module doc). The log is positioned at its start, ready for [`Wal::restart`]
    /// once the caller has made the records durable elsewhere; [`Wal::id`] is the
    /// id the database must keep.
    pub(crate) fn open(
        path: &Path,
        capacity: u64,
        owner: Option<u64>,
        durable: u64,
    ) -> Result<(Wal, Vec<Record>), StoreError> {
        match owner {
            None => create(path, capacity, new_id())?,
            Some(log_id) if !path.exists() => {
                return Err(StoreError::MissingLog {
                    path: path.to_path_buf(),
                    log_id,
                });
            }
            Some(_) => {}
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
            _ => scan(path, &bytes, durable)?,
        };
        let wal = Wal {
            file,
            path: path.to_path_buf(),
            id,
            len: bytes.len() as u64,
            end: FILE_HEADER_LEN,
            next_seq: records.last().map_or(1, |r| r.seq + 1),
            broken: None,
            fail_next_sync: false,
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

    /// The log file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
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
    /// synced (or while its fate is unknown), and returns the error every write
    /// gets from now on ([`StoreError::Poisoned`] with `error` as its source). See
    /// `broken`.
    pub(crate) fn fail(&mut self, error: StoreError) -> StoreError {
        let source = Arc::new(error);
        self.broken = Some(Arc::clone(&source));
        self.poisoned(source)
    }

    fn poisoned(&self, source: Arc<StoreError>) -> StoreError {
        StoreError::Poisoned {
            path: self.path.clone(),
            source,
        }
    }

    /// Fails if an earlier write or sync failed (see `broken`).
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(self.poisoned(Arc::clone(why))),
        }
    }

    /// Test-only fault injection: makes the next [`Wal::append`] write its record
    /// and then fail as if `fdatasync` had failed.
    pub(crate) fn fail_next_sync(&mut self) {
        self.fail_next_sync = true;
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
        let fail_sync = std::mem::take(&mut self.fail_next_sync);
        let written = self
            .file
            .seek(SeekFrom::Start(self.end))
            .and_then(|_| self.file.write_all(&self.buf))
            .and_then(|()| {
                if fail_sync {
                    Err(std::io::Error::other(
                        "fdatasync failed (injected by a test-only fault hook)",
                    ))
                } else {
                    self.file.sync_data()
                }
            });
        if let Err(e) = written {
            return Err(self.fail(StoreError::Io(e)));
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

/// The first offset at or after `from` holding a valid record whose sequence is
/// `plausible`, with that sequence. One pass over the file: a candidate's sequence
/// field is checked before its checksum is computed, and runs of zeros (most of a
/// log that has not been filled yet), where no sequence can be plausible (0 never
/// is), are skipped eight bytes at a time.
fn find_record_above(
    bytes: &[u8],
    from: usize,
    plausible: impl Fn(u64) -> bool + Copy,
) -> Option<(usize, u64)> {
    let mut at = from;
    while at + RECORD_HEADER_LEN <= bytes.len() {
        let seq = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes"));
        if seq == 0 {
            // Jump to the first offset whose sequence field reaches the next
            // non-zero byte.
            let nonzero = next_nonzero(bytes, at + 16);
            at = (nonzero - 15).max(at + 1);
            continue;
        }
        if plausible(seq)
            && let Some(found) = record_at(bytes, at, plausible)
        {
            return Some((at, found.seq));
        }
        at += 1;
    }
    None
}

/// Offset of the first non-zero byte at or after `from` (`bytes.len()` if none).
fn next_nonzero(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(word) = bytes.get(at..at + 8) {
        if word != [0; 8] {
            break;
        }
        at += 8;
    }
    while at < bytes.len() && bytes[at] == 0 {
        at += 1;
    }
    at
}

/// A record that passes its checksum, found at some offset of the file.
struct Found<'a> {
    seq: u64,
    payload: &'a [u8],
    /// Offset just past the record.
    end: usize,
}

/// The record at `at`, if the bytes there are a whole record with a valid checksum.
/// `plausible` filters on the sequence before the checksum is computed (the search
/// for a later record calls this at every offset of the file).
fn record_at(bytes: &[u8], at: usize, plausible: impl Fn(u64) -> bool) -> Option<Found<'_>> {
    let header = bytes.get(at..at.checked_add(RECORD_HEADER_LEN)?)?;
    let crc = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
    let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if !plausible(seq) {
        return None;
    }
    // A length running past the end of the file is a torn or garbage header.
    let end = at.checked_add(RECORD_HEADER_LEN)?.checked_add(len)?;
    let body = bytes.get(at + 4..end)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    Some(Found {
        seq,
        payload: &body[RECORD_HEADER_LEN - 4..],
        end,
    })
}

/// Reads the unbroken chain of records out of the log file's bytes (header
/// already checked), and tells a torn tail from a damaged record in the middle
/// (see the module doc): fails with [`StoreError::CorruptLog`] if a valid record
/// with a sequence above both the chain's last and `durable` lies anywhere after
/// the point where the chain ends.
fn scan(path: &Path, bytes: &[u8], durable: u64) -> Result<Vec<Record>, StoreError> {
    let mut records: Vec<Record> = Vec::new();
    let mut at = FILE_HEADER_LEN as usize;
    while let Some(found) = record_at(bytes, at, |seq| {
        records
            .last()
            .is_none_or(|prev| prev.seq.checked_add(1) == Some(seq))
    }) {
        records.push(Record {
            seq: found.seq,
            payload: found.payload.to_vec(),
        });
        at = found.end;
    }
    let last = records.last().map(|r| r.seq);
    let needed_above = last.unwrap_or(0).max(durable);
    // No file holds more records than one per record header's length.
    let most = needed_above.saturating_add((bytes.len() / RECORD_HEADER_LEN) as u64);
    let plausible = |seq: u64| seq > needed_above && seq <= most;
    if let Some((later_offset, later_seq)) = find_record_above(bytes, at, plausible) {
        return Err(StoreError::CorruptLog {
            path: path.to_path_buf(),
            seq: last.unwrap_or(durable) + 1,
            offset: at as u64,
            later_seq,
            later_offset: later_offset as u64,
        });
    }
    Ok(records)
}

/// One applied compare-and-set as the log keeps it: enough to redo it without
/// deciding again (it was decided when first applied, against the same state),
/// and the patch to put in the root's history, if the record carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedCommit {
    pub expected_head: Hash,
    pub new: StoredHead,
    pub patch: Option<Bytes>,
}

/// The first four bytes of a payload of the second format (with patches),
/// where the first format has its commit count. No payload of the first
/// format starts so: a payload is at most 4 GiB and a commit takes at least
/// 108 bytes, so its count is far below `u32::MAX`.
const WITH_PATCHES: u32 = u32::MAX;
/// A patch length meaning "this commit has no patch" in the second format.
const NO_PATCH: u32 = u32::MAX;

/// Appends the payload of a record holding `commits` to `out`.
///
/// Without `with_patches` (a store keeping no history, and registrations) the
/// first format, as written before history existed: `count u32`, then per
/// commit `root[32] expected[32] head[32] height u64 snapshot_len u32
/// snapshot`. With it the second: `0xFFFFFFFF u32`, `count u32`, then per
/// commit the same fields followed by `patch_len u32 patch` (`patch_len`
/// `0xFFFFFFFF` and no bytes for a commit without its patch). Both replay.
pub(crate) fn encode_commits<'a>(
    commits: impl Iterator<Item = &'a PersistCommit>,
    with_patches: bool,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    if with_patches {
        out.extend_from_slice(&WITH_PATCHES.to_le_bytes());
    }
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
        if with_patches {
            match &commit.patch {
                Some(patch) => {
                    let len = u32::try_from(patch.len())
                        .ok()
                        .filter(|len| *len != NO_PATCH)
                        .ok_or_else(|| StoreError::Invalid("patch over 4 GiB".into()))?;
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(patch);
                }
                None => out.extend_from_slice(&NO_PATCH.to_le_bytes()),
            }
        }
    }
    out[start..start + 4].copy_from_slice(&count.to_le_bytes());
    Ok(())
}

/// Decodes a payload written by [`encode_commits`], in either format. Any
/// mismatch is corruption: the record passed its checksum, so these are bytes
/// we wrote.
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
    let u32_at = |bytes: &[u8]| u32::from_le_bytes(bytes.try_into().expect("4 bytes"));
    let mut count = u32_at(take(4)?);
    let with_patches = count == WITH_PATCHES;
    if with_patches {
        count = u32_at(take(4)?);
    }
    let mut commits = Vec::new();
    for _ in 0..count {
        let root = Hash::from_bytes(take(32)?.try_into().expect("32 bytes"));
        let expected_head = Hash::from_bytes(take(32)?.try_into().expect("32 bytes"));
        let head = Hash::from_bytes(take(32)?.try_into().expect("32 bytes"));
        let height = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let len = u32_at(take(4)?) as usize;
        let snapshot = Bytes::copy_from_slice(take(len)?);
        let patch = if with_patches {
            match u32_at(take(4)?) {
                NO_PATCH => None,
                len => Some(Bytes::copy_from_slice(take(len as usize)?)),
            }
        } else {
            None
        };
        commits.push(LoggedCommit {
            expected_head,
            new: StoredHead {
                root,
                head,
                height,
                snapshot,
            },
            patch,
        });
    }
    if !payload.is_empty() {
        return Err(corrupt());
    }
    Ok(commits)
}

#[cfg(test)]
mod tests {
    /// The CRC PROTOCOL.md names (IEEE 802.3, as zlib), by its check value.
    #[test]
    fn the_record_checksum_is_the_ieee_crc32() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    use super::*;

    fn log_in(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("test.wal")
    }

    #[test]
    fn a_new_log_is_zero_filled_and_holds_no_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, records) = Wal::open(&log_in(&dir), 4096, None, 0).expect("open");
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
            let (mut log, _) = Wal::open(&log_in(&dir), 100, None, 0).expect("open");
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
        let (mut log, records) = Wal::open(&log_in(&dir), 100, Some(id), 0).expect("reopen");
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.seq, r.payload.as_slice()))
            .collect();
        assert_eq!(got, [(1, &b"one"[..]), (2, &b"two"[..])]);
        // Start over at 3: the new record overwrites "one" and "two" must no
        // longer count, though it is intact.
        log.restart(3);
        assert_eq!(log.append(b"333").expect("append"), 3);
        let (_, records) = Wal::open(&log_in(&dir), 100, Some(id), 0).expect("reopen");
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.seq, r.payload.as_slice()))
            .collect();
        assert_eq!(got, [(3, &b"333"[..])]);
    }

    #[test]
    fn a_length_past_the_end_is_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = Wal::open(&log_in(&dir), 64, None, 0).expect("open");
        log.append(b"kept").expect("append");
        let id = log.id();
        drop(log);
        let mut bytes = std::fs::read(log_in(&dir)).expect("read");
        // A second "record" header claiming 4 GiB.
        let at = FILE_HEADER_LEN as usize + RECORD_HEADER_LEN + 4;
        bytes[at + 4..at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[at + 8..at + 16].copy_from_slice(&2u64.to_le_bytes());
        std::fs::write(log_in(&dir), &bytes).expect("write");
        let (_, records) = Wal::open(&log_in(&dir), 64, Some(id), 0).expect("reopen");
        assert_eq!(records.len(), 1);
    }

    /// Writes records 1..=n (payloads of distinct sizes) into a new log and
    /// returns the log's id and each record's offset.
    fn log_with(dir: &tempfile::TempDir, n: u64) -> (u64, Vec<usize>) {
        let (mut log, _) = Wal::open(&log_in(dir), 4096, None, 0).expect("open");
        let mut offsets = Vec::new();
        for i in 1..=n {
            offsets.push(log.end() as usize);
            let payload = vec![b'a' + i as u8; 10 + i as usize];
            assert_eq!(log.append(&payload).expect("append"), i);
        }
        (log.id(), offsets)
    }

    fn corrupt_log(result: Result<(Wal, Vec<Record>), StoreError>) -> (u64, u64, u64, u64) {
        match result {
            Err(StoreError::CorruptLog {
                seq,
                offset,
                later_seq,
                later_offset,
                ..
            }) => (seq, offset, later_seq, later_offset),
            Err(other) => panic!("expected CorruptLog, got {other:?}"),
            Ok((_, records)) => panic!(
                "expected CorruptLog, got {} records: the damaged one and those after were dropped",
                records.len()
            ),
        }
    }

    #[test]
    fn a_damaged_record_followed_by_its_successor_is_corruption_not_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (id, at) = log_with(&dir, 4);
        let clean = std::fs::read(log_in(&dir)).expect("read");
        // One flipped payload byte in record 2: records 3 and 4 follow intact.
        let mut bytes = clean.clone();
        bytes[at[1] + RECORD_HEADER_LEN + 3] ^= 0x01;
        std::fs::write(log_in(&dir), &bytes).expect("write");
        let (seq, offset, later_seq, later_offset) =
            corrupt_log(Wal::open(&log_in(&dir), 4096, Some(id), 0));
        assert_eq!(
            (seq, offset, later_seq, later_offset),
            (2, at[1] as u64, 3, at[2] as u64)
        );
        // The refused open left the file as it was.
        assert_eq!(std::fs::read(log_in(&dir)).expect("read"), bytes);
        // A damaged length field loses the record boundaries: record 3 is found
        // by its content all the same.
        let mut bytes = clean.clone();
        bytes[at[1] + 4..at[1] + 8].copy_from_slice(&3000u32.to_le_bytes());
        std::fs::write(log_in(&dir), &bytes).expect("write");
        let found = corrupt_log(Wal::open(&log_in(&dir), 4096, Some(id), 0));
        assert_eq!(found, (2, at[1] as u64, 3, at[2] as u64));
        // Damage to the very first record is found too.
        let mut bytes = clean.clone();
        bytes[at[0]] ^= 0xFF;
        std::fs::write(log_in(&dir), &bytes).expect("write");
        let found = corrupt_log(Wal::open(&log_in(&dir), 4096, Some(id), 0));
        assert_eq!(found, (1, at[0] as u64, 2, at[1] as u64));
        // The same damage in the last record is a torn tail: nothing follows it.
        let mut bytes = clean;
        bytes[at[3] + RECORD_HEADER_LEN] ^= 0x01;
        std::fs::write(log_in(&dir), &bytes).expect("write");
        let (_, records) = Wal::open(&log_in(&dir), 4096, Some(id), 0).expect("torn tail");
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn records_the_database_already_holds_do_not_count_as_continuing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (id, at) = log_with(&dir, 5);
        let mut bytes = std::fs::read(log_in(&dir)).expect("read");
        bytes[at[2] + RECORD_HEADER_LEN] ^= 0x01;
        std::fs::write(log_in(&dir), &bytes).expect("write");
        // Records 4 and 5 follow the damaged 3, but a database that durably holds
        // everything up to 5 needs none of them: a damaged stale record.
        let (_, records) = Wal::open(&log_in(&dir), 4096, Some(id), 5).expect("stale");
        assert_eq!(records.len(), 2);
        // Up to 3 only: record 4 is needed and follows the damage.
        let found = corrupt_log(Wal::open(&log_in(&dir), 4096, Some(id), 3));
        assert_eq!(found, (3, at[2] as u64, 4, at[3] as u64));
        // After reuse: record 6 overwrites record 1 from the start, and records
        // 2..5 (3 damaged) are stale leftovers below it.
        let (mut log, records) = Wal::open(&log_in(&dir), 4096, Some(id), 5).expect("reopen");
        assert_eq!(records.len(), 2);
        log.restart(6);
        log.append(&[b'f'; 11]).expect("append");
        let (_, records) = Wal::open(&log_in(&dir), 4096, Some(id), 5).expect("reused");
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [6]);
    }

    #[test]
    fn owners_and_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = Wal::open(&log_in(&dir), 64, None, 0).expect("open");
        log.append(b"x").expect("append");
        let id = log.id();
        drop(log);
        // Another owner's log is refused, and left alone.
        match Wal::open(&log_in(&dir), 64, Some(id ^ 1), 0) {
            Err(StoreError::Corrupt(msg)) => assert!(msg.contains("another database"), "{msg}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let (_, records) = Wal::open(&log_in(&dir), 64, Some(id), 0).expect("reopen");
        assert_eq!(records.len(), 1);
        // No owner: a new log replaces it.
        let (log, records) = Wal::open(&log_in(&dir), 64, None, 0).expect("replace");
        assert!(records.is_empty());
        assert_ne!(log.id(), id);
        // A missing log is refused when its owner expects one, and not recreated.
        let new_id = log.id();
        drop(log);
        std::fs::remove_file(log_in(&dir)).expect("remove");
        match Wal::open(&log_in(&dir), 64, Some(new_id), 0) {
            Err(StoreError::MissingLog { log_id, path }) => {
                assert_eq!((log_id, path), (new_id, log_in(&dir)));
            }
            other => panic!("expected MissingLog, got {other:?}"),
        }
        assert!(
            !log_in(&dir).exists(),
            "a refused open must not create a log"
        );
    }

    #[test]
    fn a_broken_log_refuses_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = Wal::open(&log_in(&dir), 64, None, 0).expect("open");
        let _ = log.fail(StoreError::Backend("disk on fire".into()));
        match log.append(b"x") {
            Err(e @ StoreError::Poisoned { .. }) => {
                assert!(e.is_fatal());
                let source = std::error::Error::source(&e).expect("a source").to_string();
                assert!(source.contains("disk on fire"), "{source}");
            }
            other => panic!("expected Poisoned, got {other:?}"),
        }
    }

    #[test]
    fn commits_round_trip_in_both_formats() {
        let root = Hash::of_canonical_bytes(b"{\"r\":1}");
        let head = Hash::of_canonical_bytes(b"{\"h\":1}");
        let commits = [
            PersistCommit {
                expected_head: root,
                new: StoredHead {
                    root,
                    head,
                    height: 7,
                    snapshot: Bytes::from_static(b"{\"a\":1}"),
                },
                patch: Some(Bytes::from_static(b"{\"type\":\"patch\"}")),
            },
            PersistCommit {
                expected_head: head,
                new: StoredHead {
                    root,
                    head: root,
                    height: u64::MAX,
                    snapshot: Bytes::new(),
                },
                patch: None,
            },
        ];
        for with_patches in [false, true] {
            let mut payload = Vec::new();
            encode_commits(commits.iter(), with_patches, &mut payload).expect("encode");
            let back = decode_commits(1, &payload).expect("decode");
            assert_eq!(back.len(), 2);
            for (c, b) in commits.iter().zip(&back) {
                assert_eq!((&c.expected_head, &c.new), (&b.expected_head, &b.new));
                let patch = if with_patches { c.patch.as_ref() } else { None };
                assert_eq!(b.patch.as_ref(), patch);
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

    /// A record written before history existed (the first format, as that
    /// version wrote it byte for byte) still replays, and a store keeping no
    /// history writes exactly it.
    #[test]
    fn the_first_format_is_unchanged() {
        let root = Hash::from_bytes([1; 32]);
        let commit = PersistCommit {
            expected_head: Hash::from_bytes([2; 32]),
            new: StoredHead {
                root,
                head: Hash::from_bytes([3; 32]),
                height: 5,
                snapshot: Bytes::from_static(b"{}"),
            },
            patch: Some(Bytes::from_static(b"ignored without history")),
        };
        let mut old = Vec::new();
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&[1; 32]);
        old.extend_from_slice(&[2; 32]);
        old.extend_from_slice(&[3; 32]);
        old.extend_from_slice(&5u64.to_le_bytes());
        old.extend_from_slice(&2u32.to_le_bytes());
        old.extend_from_slice(b"{}");
        let mut payload = Vec::new();
        encode_commits(std::iter::once(&commit), false, &mut payload).expect("encode");
        assert_eq!(payload, old);
        let back = decode_commits(1, &old).expect("decode");
        assert_eq!(back[0].new, commit.new);
        assert_eq!(back[0].patch, None);
    }
}
