//! The head cache: each followed root's last head, kept on local disk so that
//! a process can start on the last configuration it knew while Redis or
//! storage is unreachable (`ClientOptions::cache_dir`).
//!
//! # File format
//!
//! One file per root in the cache directory, named `<root>.head` after the
//! root hash (64 lowercase hex digits). It holds one header line and then
//! the snapshot message of the head, exactly as storage would send it:
//!
//! ```text
//! tikaconf-head-cache 1 <64 hex digits: the hash of the snapshot bytes>\n
//! {"config":{...},"head":"<H>","height":N,"root":"<R>","type":"snapshot"}
//! ```
//!
//! The snapshot is the protocol's own encoding (canonical JSON, RFC 8785), and
//! the header's hash is the protocol's hash of it
//! ([`Hash::of_canonical_bytes`], which is also what a storage signature of a
//! snapshot covers, [`tikaconf_proto::Message::signed_hash`]): no format or
//! hash of our own. `1` is the format's version; any other header is refused.
//!
//! # Checked on read
//!
//! A cached document is never used without these checks, and a file that
//! fails one is ignored with a warning and counted
//! ([`CacheStats::rejected`]), never trusted and never a panic:
//!
//! - the body decodes as strictly as a message from the bus, under the
//!   client's [`Limits`] ([`tikaconf_proto::Message::decode`]: shape, hashes,
//!   heights, and at height 0 that the document is the root configuration);
//! - it is a snapshot of the root the file is named after;
//! - its canonical encoding hashes to the header's hash, so a torn, truncated
//!   or bit-flipped file, or one edited by hand, is refused.
//!
//! What the hash cannot prove is that the head at height N > 0 is the one
//! that document has (a head is a patch's hash, not the document's): that was
//! checked when the follower applied the patch or took storage's snapshot,
//! and the file is the node's own state, as a storage node's store is its own
//! (it signs what it reads there). A cached head is then only ever a start:
//! the follower takes it as a head of its own that storage has not confirmed,
//! so storage's answer replaces it (see
//! [`tikaconf_proto::Follower::load_cached`]).
//!
//! # Written atomically, coalesced
//!
//! A file is written to a temporary file in the same directory (a unique
//! name, so that two clients sharing a directory never write the same one),
//! synced, renamed over the old file, and the directory synced: a reader sees
//! the old head or the new one, never a mix, even after a crash. By hand with
//! `std` rather than a crate: it is a dozen lines, and `tempfile` (a dev
//! dependency here) would not sync the directory either.
//!
//! Writes happen off the hub's loop, on the blocking pool, one root after the
//! other in a task of their own ([`CacheWriter`]); the heads handed to it
//! while it writes wait, and only the latest of each root is written: a burst
//! of patches costs one write per root per write time, not one per patch.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tikaconf_proto::{Current, DecodeError, Hash, Limits, Message, Snapshot};
use tokio::sync::mpsc;

/// The header line's first word.
const MAGIC: &str = "tikaconf-head-cache";
/// The version of the file format this module writes and reads.
const VERSION: u32 = 1;
/// A cache file's name ends with this, after the root hash.
const EXTENSION: &str = "head";

/// Why a cache file was not used or not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CacheError {
    /// Reading or writing the file failed.
    #[error("cache file I/O failed")]
    Io(#[from] io::Error),
    /// The first line is not `tikaconf-head-cache 1 <hash>`.
    #[error("not a head cache file of format version {VERSION} (bad header line)")]
    BadHeader,
    /// The body is not a valid message.
    #[error("the cached snapshot does not decode")]
    Decode(#[source] DecodeError),
    /// The body is a valid message, but not a snapshot.
    #[error("the file holds a {0} message, not a snapshot")]
    NotASnapshot(&'static str),
    /// The snapshot is of another root than the file's name says.
    #[error("the file holds root {found}, not {expected}")]
    WrongRoot {
        /// The root the file is named after.
        expected: Hash,
        /// The root in the snapshot.
        found: Hash,
    },
    /// The snapshot is not what was written: torn, damaged or edited.
    #[error("the cached snapshot hashes to {actual}, not to the {stored} it was written with")]
    HashMismatch {
        /// The hash in the header.
        stored: Hash,
        /// The hash of the snapshot read.
        actual: Hash,
    },
}

/// What the head cache did, for [`crate::ClientStats`]: kept across the
/// client's life, read without a lock.
#[derive(Debug, Default)]
pub(crate) struct CacheStats {
    /// Follows whose first document came from the cache.
    pub(crate) loads: AtomicU64,
    /// Cache files ignored because they failed a check or could not be read.
    pub(crate) rejected: AtomicU64,
    /// Heads written.
    pub(crate) writes: AtomicU64,
    /// Heads that could not be written (the previous file, if any, stays).
    pub(crate) write_failures: AtomicU64,
}

/// One client's cache directory: reads and writes its files.
#[derive(Debug)]
pub(crate) struct HeadCache {
    dir: PathBuf,
    /// The limits a cached snapshot must meet, as one from the bus must.
    limits: Limits,
    pub(crate) stats: CacheStats,
}

impl HeadCache {
    /// The cache in `dir` (created on the first write), for a client whose
    /// messages must meet `limits`.
    pub(crate) fn new(dir: PathBuf, limits: Limits) -> HeadCache {
        HeadCache {
            dir,
            limits,
            stats: CacheStats::default(),
        }
    }

    /// Where `root`'s last head is kept.
    pub(crate) fn file(&self, root: &Hash) -> PathBuf {
        self.dir.join(format!("{}.{EXTENSION}", root.to_hex()))
    }

    /// `root`'s cached head, checked (see the module documentation), read on
    /// the blocking pool. `None` when there is none, or when it fails a check
    /// (logged and counted).
    pub(crate) async fn read(self: &Arc<Self>, root: Hash) -> Option<Arc<Snapshot>> {
        let cache = self.clone();
        match tokio::task::spawn_blocking(move || cache.read_blocking(root)).await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                tracing::warn!(%err, %root, "reading the head cache failed");
                None
            }
        }
    }

    /// [`HeadCache::read`], in the calling thread.
    pub(crate) fn read_blocking(&self, root: Hash) -> Option<Arc<Snapshot>> {
        let path = self.file(&root);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
            Err(err) => return self.reject(&path, CacheError::Io(err)),
        };
        match decode(root, &bytes, &self.limits) {
            Ok(snapshot) => Some(snapshot),
            Err(err) => self.reject(&path, err),
        }
    }

    fn reject(&self, path: &Path, err: CacheError) -> Option<Arc<Snapshot>> {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            path = %path.display(),
            err = &err as &dyn std::error::Error,
            "ignoring a head cache file: it fails its check; the follow waits for storage"
        );
        None
    }

    /// Writes `current` as `root`'s last head, atomically (see the module
    /// documentation), in the calling thread.
    pub(crate) fn write_blocking(&self, root: Hash, current: &Current) -> Result<(), CacheError> {
        let snapshot = Snapshot::new(root, current.head, current.height, (*current.doc).clone());
        let bytes = encode(&snapshot);
        fs::create_dir_all(&self.dir)?;
        let target = self.file(&root);
        let temp = self.dir.join(format!(
            ".{}.{EXTENSION}.{:016x}.tmp",
            root.to_hex(),
            rand::random::<u64>()
        ));
        let written = write_synced(&temp, &bytes).and_then(|()| fs::rename(&temp, &target));
        if let Err(err) = written {
            let _ = fs::remove_file(&temp);
            return Err(err.into());
        }
        // The rename itself is durable once the directory is synced. Not every
        // platform can open a directory for that; the file is whole either way.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// Creates `path` (which must not exist) holding `bytes`, synced to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::options().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The bytes of a cache file holding `snapshot` (see the module
/// documentation).
pub(crate) fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let hash = Hash::of_canonical_bytes(&snapshot.encoded);
    let mut bytes = format!("{MAGIC} {VERSION} {}\n", hash.to_hex()).into_bytes();
    bytes.extend_from_slice(&snapshot.encoded);
    bytes
}

/// The snapshot in a cache file's `bytes`, if it passes every check (see the
/// module documentation) for `root` under `limits`.
pub(crate) fn decode(
    root: Hash,
    bytes: &[u8],
    limits: &Limits,
) -> Result<Arc<Snapshot>, CacheError> {
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(CacheError::BadHeader)?;
    let (header, body) = (&bytes[..newline], &bytes[newline + 1..]);
    let stored = std::str::from_utf8(header)
        .ok()
        .and_then(|header| {
            let rest = header.strip_prefix(MAGIC)?.strip_prefix(' ')?;
            let hash = rest.strip_prefix(&format!("{VERSION} "))?;
            hash.parse::<Hash>().ok()
        })
        .ok_or(CacheError::BadHeader)?;
    let snapshot = match Message::decode(body, limits).map_err(CacheError::Decode)? {
        Message::Snapshot(snapshot) => snapshot,
        other => return Err(CacheError::NotASnapshot(other.type_name())),
    };
    if snapshot.root != root {
        return Err(CacheError::WrongRoot {
            expected: root,
            found: snapshot.root,
        });
    }
    let actual = Hash::of_canonical_bytes(&snapshot.encoded);
    if actual != stored {
        return Err(CacheError::HashMismatch { stored, actual });
    }
    Ok(snapshot)
}

/// Writes the heads the hub hands it, in a task of its own, latest first
/// (see the module documentation). Dropping it lets the task write what it
/// still holds and end.
#[derive(Debug)]
pub(crate) struct CacheWriter {
    heads: mpsc::UnboundedSender<(Hash, Current)>,
}

impl CacheWriter {
    /// Starts the writing task for `cache`.
    pub(crate) fn spawn(cache: Arc<HeadCache>) -> CacheWriter {
        let (heads, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_heads(cache, rx));
        CacheWriter { heads }
    }

    /// `root` is now at `current`: write it, unless a later head of the root
    /// comes before the task gets to it.
    pub(crate) fn store(&self, root: Hash, current: Current) {
        // The task ends only after this sender is dropped.
        let _ = self.heads.send((root, current));
    }
}

/// The writing task: takes everything waiting, keeps the latest head of each
/// root, writes those, and again.
async fn write_heads(cache: Arc<HeadCache>, mut rx: mpsc::UnboundedReceiver<(Hash, Current)>) {
    while let Some((root, current)) = rx.recv().await {
        let mut latest = HashMap::from([(root, current)]);
        while let Ok((root, current)) = rx.try_recv() {
            latest.insert(root, current);
        }
        let cache = cache.clone();
        let written = tokio::task::spawn_blocking(move || {
            for (root, current) in latest {
                match cache.write_blocking(root, &current) {
                    Ok(()) => cache.stats.writes.fetch_add(1, Ordering::Relaxed),
                    Err(err) => {
                        tracing::warn!(
                            %root,
                            head = %current.head,
                            path = %cache.file(&root).display(),
                            err = &err as &dyn std::error::Error,
                            "could not write the head cache; the previous file stays"
                        );
                        cache.stats.write_failures.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
        .await;
        if let Err(err) = written {
            tracing::warn!(%err, "the head cache writer failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tikaconf_proto::{Patch, RootConfig};
    use tikaconf_store::MemoryStore;

    use super::*;
    use crate::bus::BusHandle;
    use crate::memory::Broker;
    use crate::testing::{PATIENCE, fast_options};

    /// [`fast_options`] with a head cache in `dir`.
    fn cached_options(dir: &std::path::Path) -> crate::ClientOptions {
        crate::ClientOptions {
            cache_dir: Some(dir.to_path_buf()),
            ..fast_options()
        }
    }
    use crate::{Client, Config, StorageNode, StorageOptions, WriteError};

    fn root() -> RootConfig {
        RootConfig::twitch("#cached").unwrap()
    }

    /// The snapshot in `dir`'s file for `root`, if it passes its checks.
    fn cached(dir: &Path, root: Hash) -> Option<Arc<Snapshot>> {
        HeadCache::new(dir.to_path_buf(), Limits::default()).read_blocking(root)
    }

    /// Waits until `dir` holds `config`'s current head.
    async fn wait_cached(dir: &Path, config: &Config) {
        let ok = tikaconf_test::wait_until(PATIENCE, || {
            cached(dir, config.root()).is_some_and(|s| s.head == config.head())
        })
        .await;
        assert!(ok, "the cache never held head {}", config.head());
    }

    async fn set(config: &Config, key: &str) -> Hash {
        config
            .submit(json!([{"op": "add", "path": format!("/{key}"), "value": 1}]))
            .await
            .unwrap()
    }

    /// A storage node over `store` on `broker`, answering.
    async fn storage(broker: &Broker, store: &MemoryStore) -> StorageNode {
        let node = StorageNode::spawn(broker.connect(), store.clone(), StorageOptions::default());
        node.ready().await;
        node
    }

    /// A client on `broker` whose bus never connects: what a client sees
    /// while Redis is down.
    fn never_connected(broker: &Broker, dir: &Path) -> Client {
        let bus = broker.connect().bus;
        let events = futures_util::stream::pending();
        Client::with_bus(BusHandle::new(bus, events), cached_options(dir))
    }

    #[test]
    fn a_written_file_reads_back_and_says_what_it_is() {
        let root = root();
        let snapshot = Snapshot::new(
            root.hash(),
            Hash::of_canonical_bytes(b"h"),
            3,
            json!({"a": [1, 2]}),
        );
        let bytes = encode(&snapshot);
        let header = format!(
            "tikaconf-head-cache 1 {}\n",
            Hash::of_canonical_bytes(&snapshot.encoded)
        );
        assert!(bytes.starts_with(header.as_bytes()));
        assert_eq!(&bytes[header.len()..], &snapshot.encoded[..]);
        let read = decode(root.hash(), &bytes, &Limits::default()).unwrap();
        assert_eq!(*read, snapshot);
    }

    /// Every kind of damage is refused with its own reason, and counted.
    #[test]
    fn damaged_files_are_refused_and_counted() {
        let root = root();
        let dir = tempfile::tempdir().unwrap();
        let cache = HeadCache::new(dir.path().to_path_buf(), Limits::default());
        let current = Current {
            head: Hash::of_canonical_bytes(b"h"),
            height: 1,
            doc: Arc::new(json!({"key": "value"})),
        };
        cache.write_blocking(root.hash(), &current).unwrap();
        let good = fs::read(cache.file(&root.hash())).unwrap();
        assert_eq!(cache.read_blocking(root.hash()).unwrap().head, current.head);

        let flipped = {
            let mut bytes = good.clone();
            let at = bytes.len() - 40;
            bytes[at] ^= 0x01;
            bytes
        };
        let other = RootConfig::twitch("#other").unwrap();
        let others = encode(&Snapshot::of_root(&other));
        let edited = String::from_utf8(good.clone())
            .unwrap()
            .replace("\"value\"", "\"VALUE\"")
            .into_bytes();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("flipped bit", flipped),
            ("truncated", good[..good.len() - 5].to_vec()),
            ("edited", edited),
            (
                "no header",
                good[good.iter().position(|&b| b == b'\n').unwrap() + 1..].to_vec(),
            ),
            (
                "future version",
                String::from_utf8(good.clone())
                    .unwrap()
                    .replacen(" 1 ", " 2 ", 1)
                    .into_bytes(),
            ),
            ("another root's", others),
            ("garbage", b"\xff\xfe garbage\n\x00".to_vec()),
            ("empty", Vec::new()),
        ];
        for (n, (what, bytes)) in cases.into_iter().enumerate() {
            let err = decode(root.hash(), &bytes, &Limits::default()).unwrap_err();
            fs::write(cache.file(&root.hash()), &bytes).unwrap();
            assert!(
                cache.read_blocking(root.hash()).is_none(),
                "{what} was accepted"
            );
            assert_eq!(
                cache.stats.rejected.load(Ordering::Relaxed),
                n as u64 + 1,
                "{what}: {err}"
            );
        }
        // A missing file is no damage.
        fs::remove_file(cache.file(&root.hash())).unwrap();
        assert!(cache.read_blocking(root.hash()).is_none());
        assert_eq!(cache.stats.rejected.load(Ordering::Relaxed), 8);
    }

    /// A write replaces the file whole: a writer that died half way (its
    /// temporary file left behind) changes nothing a reader sees, and a
    /// write that fails leaves no temporary file.
    #[test]
    fn a_write_replaces_the_file_whole_or_not_at_all() {
        let root = root().hash();
        let dir = tempfile::tempdir().unwrap();
        let cache = HeadCache::new(dir.path().join("nested"), Limits::default());
        let at = |height: u64| Current {
            head: Hash::of_canonical_bytes(height.to_string().as_bytes()),
            height,
            doc: Arc::new(json!({"height": height})),
        };
        cache.write_blocking(root, &at(1)).unwrap();
        let torn = dir
            .path()
            .join("nested")
            .join(format!(".{}.head.dead.tmp", root.to_hex()));
        fs::write(&torn, &fs::read(cache.file(&root)).unwrap()[..30]).unwrap();
        assert_eq!(cache.read_blocking(root).unwrap().height, 1);

        cache.write_blocking(root, &at(2)).unwrap();
        assert_eq!(cache.read_blocking(root).unwrap().height, 2);
        let names = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let expected = vec![
            torn.file_name().unwrap().to_string_lossy().into_owned(),
            format!("{}.head", root.to_hex()),
        ];
        assert_eq!(names(&dir.path().join("nested")), expected);

        // The rename cannot replace a directory: the write fails, cleanly.
        let blocked = RootConfig::twitch("#blocked").unwrap().hash();
        fs::create_dir(cache.file(&blocked)).unwrap();
        assert!(matches!(
            cache.write_blocking(blocked, &at(3)),
            Err(CacheError::Io(_))
        ));
        let mut with_blocked = expected.clone();
        with_blocked.push(format!("{}.head", blocked.to_hex()));
        with_blocked.sort();
        assert_eq!(names(&dir.path().join("nested")), with_blocked);
    }

    /// A client with a cache writes each head of what it follows there.
    #[tokio::test]
    async fn heads_are_written_as_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::new();
        let _node = storage(&broker, &MemoryStore::new()).await;
        let client = Client::with_bus(broker.connect(), cached_options(dir.path()));
        let config = client.follow(root()).await.unwrap();
        wait_cached(dir.path(), &config).await;
        for key in ["a", "b", "c"] {
            set(&config, key).await;
        }
        wait_cached(dir.path(), &config).await;
        let stats = client.stats();
        assert!(stats.cache_writes >= 2, "{stats:?}");
        let snapshot = cached(dir.path(), config.root()).unwrap();
        assert_eq!(snapshot.height, 3);
        assert_eq!(snapshot.config, *config.document());
        assert_eq!(
            (
                stats.cache_loads,
                stats.cache_rejected,
                stats.cache_write_failures
            ),
            (0, 0, 0)
        );
    }

    /// Not connected, a follow answers from the cache at once; writes fail
    /// as disconnected.
    #[tokio::test]
    async fn a_client_that_cannot_connect_follows_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::new();
        let node = storage(&broker, &MemoryStore::new()).await;
        let first = Client::with_bus(broker.connect(), cached_options(dir.path()));
        let config = first.follow(root()).await.unwrap();
        let head = set(&config, "a").await;
        wait_cached(dir.path(), &config).await;
        drop((config, first));
        node.shutdown().await;

        let offline = never_connected(&broker, dir.path());
        let config = offline.follow(root()).await.unwrap();
        assert_eq!(offline.stats().cache_loads, 1);
        assert_eq!(config.head(), head);
        assert_eq!(config.document()["a"], 1);
        assert!(config.from_cache());
        assert_eq!(
            offline.connection_state(),
            crate::ConnectionState::Connecting
        );
        assert_eq!(
            config
                .submit(json!([{"op": "add", "path": "/b", "value": 2}]))
                .await,
            Err(WriteError::Disconnected)
        );
    }

    /// Connected but storage silent: the cache answers (after the request
    /// timeout); when storage comes, its later head replaces the cached one.
    #[tokio::test]
    async fn storage_replaces_a_cached_head_that_is_behind() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::new();
        let store = MemoryStore::new();
        let node = storage(&broker, &store).await;
        let cached_client = Client::with_bus(broker.connect(), cached_options(dir.path()));
        let config = cached_client.follow(root()).await.unwrap();
        set(&config, "a").await;
        wait_cached(dir.path(), &config).await;
        drop((config, cached_client));
        // Storage moves on while the cache stays behind.
        let other = Client::with_bus(broker.connect(), fast_options());
        let later = set(&other.follow(root()).await.unwrap(), "b").await;
        node.shutdown().await;

        let client = Client::with_bus(broker.connect(), cached_options(dir.path()));
        let config = client.follow(root()).await.unwrap();
        assert_eq!(client.stats().cache_loads, 1);
        assert!(config.from_cache());
        assert_eq!(config.height(), 1);
        assert_eq!(client.connection_state(), crate::ConnectionState::Connected);

        let _node = storage(&broker, &store).await;
        let ok = tikaconf_test::wait_until(PATIENCE, || config.head() == later).await;
        assert!(ok, "storage's head never replaced the cached one");
        assert_eq!(config.document()["b"], 1);
        assert!(!config.from_cache());
    }

    /// The cached head is a patch storage never stored: storage's head wins.
    #[tokio::test]
    async fn storage_replaces_a_cached_head_it_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::new();
        let store = MemoryStore::new();
        let node = storage(&broker, &store).await;
        let client = Client::with_bus(broker.connect(), fast_options());
        let config = client.follow(root()).await.unwrap();
        let stored = set(&config, "a").await;
        let mut forked = (*config.document()).clone();
        forked["lost"] = json!(1);
        drop((config, client));
        node.shutdown().await;
        // A head on top of storage's that storage never saw, as a node that
        // applied a write lost with storage's crash would have cached it.
        let ops = json!([{"op": "add", "path": "/lost", "value": 1}]);
        let lost = Patch::build(root().hash(), stored, 1, ops, None).unwrap();
        let cache = HeadCache::new(dir.path().to_path_buf(), Limits::default());
        let fork = Current {
            head: lost.hash,
            height: 2,
            doc: Arc::new(forked),
        };
        cache.write_blocking(root().hash(), &fork).unwrap();

        let client = Client::with_bus(broker.connect(), cached_options(dir.path()));
        let config = client.follow(root()).await.unwrap();
        assert_eq!(client.stats().cache_loads, 1);
        assert_eq!(config.head(), lost.hash);
        assert_eq!(config.document()["lost"], 1);
        let _node = storage(&broker, &store).await;
        let ok = tikaconf_test::wait_until(PATIENCE, || config.head() == stored).await;
        assert!(ok, "storage's head never replaced the cached fork");
        assert_eq!(config.document().get("lost"), None);
        assert!(!config.from_cache());
        // And the cache follows storage again.
        wait_cached(dir.path(), &config).await;
    }

    /// A damaged file is not used: the follow waits for storage, as without
    /// a cache.
    #[tokio::test]
    async fn a_damaged_file_is_ignored_and_storage_answers() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::new();
        let _node = storage(&broker, &MemoryStore::new()).await;
        let path = HeadCache::new(dir.path().to_path_buf(), Limits::default()).file(&root().hash());
        fs::write(&path, b"tikaconf-head-cache 1 nonsense\n{}").unwrap();
        let client = Client::with_bus(broker.connect(), cached_options(dir.path()));
        let config = client.follow(root()).await.unwrap();
        let stats = client.stats();
        assert_eq!((stats.cache_rejected, stats.cache_loads), (1, 0));
        assert!(!config.from_cache());
        assert_eq!(config.height(), 0);
        // Storage's answer is cached in its place.
        wait_cached(dir.path(), &config).await;
    }
}
