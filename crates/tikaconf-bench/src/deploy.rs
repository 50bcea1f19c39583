//! A tikaconf deployment as the benchmark runs it: Redis, a storage node in a
//! process of its own, and clients in the benchmark's process.
//!
//! The storage node runs as a child process (this same binary, hidden
//! `storage-node` role) because that is how it is deployed: its group commit,
//! its fsyncs and its CPU compete with the clients only through the OS, as in
//! production, and its memory and restart time can be measured on their own.
//! The child exits when its stdin closes, so an aborted benchmark leaves no
//! storage node behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tikaconf::proto::FollowerConfig;
use tikaconf::{Client, ClientOptions};
use tikaconf_test::storage_node::{ChildOptions, StorageChild, StoreKind};

/// A storage node child process (the hidden `storage-node` role, see
/// [`tikaconf_test::storage_node`]); killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Storage(StorageChild);

impl Storage {
    /// Starts a storage node on `redis_url` over a redb store at `dir` (a
    /// directory, or the database file itself); returns once Redis shows its
    /// subscription to load requests, with the time from the spawn to that
    /// moment.
    ///
    /// The node's own "ready" (`StorageNode::ready`) is not waited for alone:
    /// it resolves when the bus connects, before the subscriptions are
    /// confirmed, and a load request published in between is lost (the
    /// follower asks again after its request timeout).
    pub async fn spawn(redis_url: &str, dir: &Path) -> anyhow::Result<(Storage, Duration)> {
        let options = ChildOptions {
            subcommand: "storage-node",
            redis: redis_url.to_owned(),
            data: dir.to_path_buf(),
            store: StoreKind::Redb,
            log: None,
            rust_log: None,
            ready_wait: Duration::from_secs(60),
            wait_subscribed: true,
        };
        let (child, took) = StorageChild::start(&options)
            .await
            .context("starting the storage node")?;
        Ok((Storage(child), took))
    }

    pub fn pid(&self) -> Option<u32> {
        Some(self.0.pid())
    }

    /// Kills the node (as a crash would) and waits until it is gone.
    pub async fn kill(self) {
        self.0.kill().await;
    }
}

static SEED: AtomicU64 = AtomicU64::new(1);

/// Client options for the benchmark: the library's defaults (production
/// timers), a distinct jitter seed per client, and a load timeout long enough
/// for the scale workload's 10,000 concurrent loads.
pub fn options() -> ClientOptions {
    ClientOptions {
        follower: FollowerConfig {
            jitter_seed: SEED.fetch_add(0x9e37_79b9, Ordering::Relaxed),
            ..FollowerConfig::default()
        },
        load_timeout: Duration::from_secs(60),
        ..ClientOptions::default()
    }
}

pub async fn client(redis_url: &str) -> anyhow::Result<Client> {
    Client::connect_with(redis_url, options())
        .await
        .context("connecting a tikaconf client")
}

/// `n` clients, each with its own pair of connections (one node each).
pub async fn clients(redis_url: &str, n: usize) -> anyhow::Result<Vec<Client>> {
    let mut out = Vec::with_capacity(n);
    for chunk_start in (0..n).step_by(50) {
        let chunk = (chunk_start..n.min(chunk_start + 50)).map(|_| client(redis_url));
        out.extend(futures_util::future::try_join_all(chunk).await?);
    }
    Ok(out)
}

/// Resident set size of process `pid` in bytes (Linux `/proc`), if readable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A temporary directory for a store: on the real disk (fsyncs cost what they
/// cost in production), not tmpfs.
pub fn data_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    let base: PathBuf = std::env::var_os("TIKACONF_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    Ok(tempfile::Builder::new().prefix(prefix).tempdir_in(base)?)
}
