//! Storage nodes as separate OS processes, so that the suite can SIGKILL them.
//!
//! A storage node killed in the middle of a group commit is the fault that tests
//! durability for real: no destructor runs, no buffer is flushed, the redb file is
//! left as the kernel had it. That only happens to a process of its own, so the
//! torture binary re-executes itself with the hidden `storage-node` subcommand
//! (no dependency on another crate's binary), whose body and parent side are
//! the benchmark's too ([`tikaconf_test::storage_node`]): the child prints `ready`
//! once its node is ready, and exits when its stdin closes, so that a crashed
//! suite never leaves nodes behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tikaconf_test::storage_node::{ChildOptions, StorageChild};
pub use tikaconf_test::storage_node::{REDIS_PREFIX, StoreKind, serve};

/// How long a child may take to print `ready`.
const READY_WAIT: Duration = Duration::from_secs(20);

/// A storage node child process (the hidden `storage-node` subcommand, see
/// [`tikaconf_test::storage_node`]), SIGKILLed when dropped.
#[derive(Debug)]
pub struct StorageProcess(StorageChild);

impl StorageProcess {
    /// Spawns a storage node talking to `redis` and waits until it is ready.
    /// Its stderr is appended to `log`; a redb store lives in the directory
    /// `data`, created here.
    pub async fn start(redis: &str, data: &Path, store: StoreKind, log: &Path) -> Result<Self> {
        if store == StoreKind::Redb {
            std::fs::create_dir_all(data)
                .with_context(|| format!("cannot create {}", data.display()))?;
        }
        let options = ChildOptions {
            subcommand: "storage-node",
            redis: redis.to_owned(),
            data: data.to_path_buf(),
            store,
            log: Some(log.to_path_buf()),
            rust_log: Some("warn"),
            ready_wait: READY_WAIT,
            wait_subscribed: false,
        };
        let (child, _) = StorageChild::start(&options).await?;
        Ok(StorageProcess(child))
    }

    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Whether the process exited on its own (a crash: nothing here stops it
    /// gracefully).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.exited()
    }

    /// SIGKILL, then reap.
    pub async fn kill(self) {
        self.0.kill().await;
    }
}

/// One storage node's place in a deployment: its data directory, its store and,
/// while it runs, its process.
#[derive(Debug)]
pub struct StorageSlot {
    pub name: String,
    pub data: PathBuf,
    pub log: PathBuf,
    pub store: StoreKind,
    pub process: Option<StorageProcess>,
}

impl StorageSlot {
    /// Starts the node, retrying while it cannot connect (its proxy may be
    /// refusing connections). Returns the number of failed attempts.
    pub async fn start(&mut self, redis: &str, attempts: usize) -> Result<u64> {
        let mut failed = 0;
        loop {
            match StorageProcess::start(redis, &self.data, self.store, &self.log).await {
                Ok(p) => {
                    self.process = Some(p);
                    return Ok(failed);
                }
                Err(e) if (failed as usize) + 1 < attempts => {
                    tracing::debug!(node = %self.name, "restart failed: {e:#}");
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn kill(&mut self) {
        if let Some(p) = self.process.take() {
            p.kill().await;
        }
    }

    /// Lines of the node's log that show a panic.
    pub fn panics(&self) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("panicked"))
            .map(str::to_owned)
            .collect()
    }
}

/// Resident memory of a process in bytes (`VmRSS` of `/proc/PID/status`), or of
/// this process when `pid` is `None`.
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
