//! Storage nodes as separate OS processes, so that the suite can SIGKILL them.
//!
//! A storage node killed in the middle of a group commit is the fault that tests
//! durability for real: no destructor runs, no buffer is flushed, the redb file is
//! left as the kernel had it. That only happens to a process of its own, so the
//! torture binary re-executes itself with the hidden `storage-node` subcommand
//! (no dependency on another crate's binary) and talks to the child through its
//! stdio: the child prints `ready` once it is subscribed and answering, and exits
//! when its stdin closes, so that a crashed suite never leaves nodes behind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Which store a storage node keeps its heads in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded redb file of this node alone.
    Redb,
    /// Redis keys shared by every node on the same Redis.
    Redis,
}

impl StoreKind {
    pub fn label(self) -> &'static str {
        match self {
            StoreKind::Redb => "redb",
            StoreKind::Redis => "redis",
        }
    }
}

/// The prefix of the shared Redis store's keys.
pub const REDIS_PREFIX: &str = "tikaconf:";

/// How long a child may take to print `ready`.
const READY_WAIT: Duration = Duration::from_secs(20);

/// The body of the hidden `storage-node` subcommand: runs a storage node until
/// killed or until stdin closes.
pub async fn serve(redis: &str, data: &Path, store: StoreKind) -> Result<()> {
    use tikaconf::bus::BusHandle;
    use tikaconf::{StorageNode, StorageOptions};
    let bus = BusHandle::redis(redis)
        .await
        .with_context(|| format!("cannot connect to Redis at {redis}"))?;
    let node = match store {
        StoreKind::Redb => {
            std::fs::create_dir_all(data)
                .with_context(|| format!("cannot create {}", data.display()))?;
            let dir = data.to_path_buf();
            let store = tokio::task::spawn_blocking(move || tikaconf::store::RedbStore::open(&dir))
                .await?
                .with_context(|| format!("cannot open the store in {}", data.display()))?;
            StorageNode::spawn(bus, store, StorageOptions::default())
        }
        StoreKind::Redis => {
            let store = tikaconf_redis::RedisStore::connect(redis, REDIS_PREFIX)
                .await
                .context("cannot open the Redis store")?;
            StorageNode::spawn(bus, store, StorageOptions::default())
        }
    };
    tokio::time::timeout(READY_WAIT, node.ready())
        .await
        .context("the storage node did not become ready")?;
    println!("ready");
    // The parent holds our stdin; when it goes away, so do we. (A thread: the
    // workspace's tokio has no stdin support compiled in.)
    let (gone, parent_gone) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = gone.send(());
    });
    let _ = parent_gone.await;
    node.shutdown().await;
    Ok(())
}

/// A storage node child process, SIGKILLed when dropped.
#[derive(Debug)]
pub struct StorageProcess {
    child: Child,
    pid: u32,
}

impl StorageProcess {
    /// Spawns a storage node talking to `redis` and waits until it is ready.
    /// Its stderr is appended to `log`.
    pub async fn start(redis: &str, data: &Path, store: StoreKind, log: &Path) -> Result<Self> {
        let exe = std::env::current_exe().context("cannot find the torture binary")?;
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut child = Command::new(exe)
            .arg("storage-node")
            .args(["--redis", redis, "--store", store.label()])
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("cannot spawn a storage node")?;
        let pid = child.id().context("the storage node has no pid")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_WAIT, lines.next_line()).await;
        match ready {
            Ok(Ok(Some(line))) if line == "ready" => Ok(StorageProcess { child, pid }),
            Ok(_) => {
                let status = child.wait().await.ok();
                bail!(
                    "storage node exited before it was ready ({status:?}); see {}",
                    log.display()
                )
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!("storage node not ready within {READY_WAIT:?}")
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process exited on its own (a crash: nothing here stops it
    /// gracefully).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL, then reap.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
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
