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
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tikaconf::proto::FollowerConfig;
use tikaconf::store::RedbStore;
use tikaconf::{Client, ClientOptions, StorageNode, StorageOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The channel of load requests (PROTOCOL.md), which a storage node subscribes.
const LOAD_REQUESTS: &str = "update_requests";

/// A storage node child process; killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Storage {
    child: Child,
}

impl Storage {
    /// Starts a storage node on `redis_url` over a redb store in `dir`; returns
    /// once Redis shows its subscription to load requests, with the time from
    /// the spawn to that moment.
    ///
    /// The node's own "ready" (`StorageNode::ready`) is not waited for alone:
    /// it resolves when the bus connects, before the subscriptions are
    /// confirmed, and a load request published in between is lost (the
    /// follower asks again after its request timeout).
    pub async fn spawn(redis_url: &str, dir: &Path) -> anyhow::Result<(Storage, Duration)> {
        let exe = std::env::current_exe().context("locating the benchmark binary")?;
        let started = Instant::now();
        let mut child = Command::new(exe)
            .arg("storage-node")
            .arg("--redis")
            .arg(redis_url)
            .arg("--data")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning the storage node")?;
        let stdout = child.stdout.take().context("storage node stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("storage node not ready within 60 s")??;
        if line.as_deref() != Some("ready") {
            bail!("storage node said {line:?} instead of ready");
        }
        let mut conn = redis::Client::open(redis_url)?
            .get_multiplexed_async_connection()
            .await?;
        let deadline = started + Duration::from_secs(60);
        loop {
            let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(LOAD_REQUESTS)
                .query_async(&mut conn)
                .await?;
            if counts.first().is_some_and(|(_, n)| *n > 0) {
                break;
            }
            if Instant::now() > deadline {
                bail!("the storage node never subscribed to {LOAD_REQUESTS}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let took = started.elapsed();
        Ok((Storage { child }, took))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the node (as a crash would) and waits until it is gone.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The hidden `storage-node` role: runs a storage node until stdin closes.
pub async fn run_storage_node(redis: &str, data: &Path) -> anyhow::Result<()> {
    let data = data.to_path_buf();
    let store = tokio::task::spawn_blocking(move || RedbStore::open(&data)).await??;
    let bus = tikaconf::bus::BusHandle::redis(redis).await?;
    let node = StorageNode::spawn(bus, store, StorageOptions::default());
    node.ready().await;
    println!("ready");
    // Until the parent goes away (stdin closes) or kills us.
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = stdin.next_line().await {}
    node.shutdown().await;
    Ok(())
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
