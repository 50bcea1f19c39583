//! A storage node as a child process: the one the benchmark and the torture
//! suite both spawn (feature `storage-node`).
//!
//! Both need a storage node in a process of its own: the torture suite to
//! SIGKILL it mid-commit (no destructor runs, the file is left as the kernel had
//! it), the benchmark so that its fsyncs, CPU and memory compete with the
//! clients only through the OS, as deployed. Each binary re-executes itself
//! with a hidden subcommand whose body is [`serve`], and the parent drives it
//! through [`StorageChild`]: the child prints `ready` on stdout once its node is
//! ready, and exits when its stdin closes, so that a parent that dies never
//! leaves nodes behind.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The prefix of the shared Redis store's keys.
pub const REDIS_PREFIX: &str = "tikaconf:";

/// The channel of load requests (PROTOCOL.md), which a storage node subscribes.
const LOAD_REQUESTS: &str = "update_requests";

/// How long [`serve`] waits for its node to become ready.
const NODE_READY_WAIT: Duration = Duration::from_secs(60);

/// Which store a storage node keeps its heads in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded redb file of this node alone.
    Redb,
    /// Redis keys shared by every node on the same Redis.
    Redis,
}

impl StoreKind {
    /// The name on the command line (`--store redb`).
    pub fn label(self) -> &'static str {
        match self {
            StoreKind::Redb => "redb",
            StoreKind::Redis => "redis",
        }
    }
}

impl std::str::FromStr for StoreKind {
    type Err = String;

    fn from_str(s: &str) -> Result<StoreKind, String> {
        match s {
            "redb" => Ok(StoreKind::Redb),
            "redis" => Ok(StoreKind::Redis),
            other => Err(format!("no store kind {other:?} (redb, redis)")),
        }
    }
}

/// The body of the hidden subcommand: a storage node on `redis` over a store of
/// `kind` (redb: at `data`, a directory or a file as [`tikaconf::store::RedbStore::open`]
/// takes it; Redis: the keys under [`REDIS_PREFIX`] of the same server), with
/// default options, until stdin closes or the process is killed. Prints
/// `ready` once the node is.
///
/// The store's history retention is `TIKACONF_RETENTION` (as for `tikaconf
/// storage`: `all`, `none` or a count) when set, the default otherwise, so
/// that a benchmark can compare settings without a flag of its own.
pub async fn serve(redis: &str, data: &Path, kind: StoreKind) -> Result<()> {
    use tikaconf::bus::BusHandle;
    use tikaconf::store::{Retention, StoreOptions};
    use tikaconf::{StorageNode, StorageOptions};
    let retention = match std::env::var("TIKACONF_RETENTION") {
        Ok(text) => text
            .parse::<Retention>()
            .with_context(|| format!("TIKACONF_RETENTION={text}"))?,
        Err(_) => Retention::default(),
    };
    let bus = BusHandle::redis(redis)
        .await
        .with_context(|| format!("cannot connect to Redis at {redis}"))?;
    let node = match kind {
        StoreKind::Redb => {
            let path = data.to_path_buf();
            let options = StoreOptions::default().with_retention(retention);
            let store = tokio::task::spawn_blocking(move || {
                tikaconf::store::RedbStore::open_with(&path, options)
            })
            .await?
            .with_context(|| format!("cannot open the store at {}", data.display()))?;
            StorageNode::spawn(bus, store, StorageOptions::default())
        }
        StoreKind::Redis => {
            let store = tikaconf_redis::RedisStore::connect(redis, REDIS_PREFIX)
                .await
                .context("cannot open the Redis store")?
                .with_retention(retention);
            StorageNode::spawn(bus, store, StorageOptions::default())
        }
    };
    tokio::time::timeout(NODE_READY_WAIT, node.ready())
        .await
        .context("the storage node did not become ready")?;
    println!("ready");
    stdin_closed().await;
    node.shutdown().await;
    Ok(())
}

/// Resolves when this process's standard input closes: a child role's parent
/// holds it, so when the parent goes away (even killed), so does the child.
/// (A thread reads it, so that no crate needs tokio's stdin support.)
pub async fn stdin_closed() {
    let (gone, parent_gone) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = gone.send(());
    });
    let _ = parent_gone.await;
}

/// How the parent starts a [`StorageChild`].
#[derive(Debug, Clone)]
pub struct ChildOptions {
    /// The hidden subcommand of the current executable that runs [`serve`].
    pub subcommand: &'static str,
    /// The Redis URL the node talks through.
    pub redis: String,
    /// The node's data directory (its redb file, with [`StoreKind::Redb`]).
    pub data: PathBuf,
    /// Where the node keeps its state.
    pub store: StoreKind,
    /// Where the child's stderr goes: appended to this file, or the parent's.
    pub log: Option<PathBuf>,
    /// `RUST_LOG` for the child, if set here.
    pub rust_log: Option<&'static str>,
    /// How long the child may take to print `ready`.
    pub ready_wait: Duration,
    /// Also wait until Redis shows a subscriber to load requests: the node's
    /// `ready` resolves when the bus connects, before its subscriptions are
    /// confirmed, and a load request published in between is lost (the
    /// follower asks again after its request timeout). Only meaningful for the
    /// first node on a server.
    pub wait_subscribed: bool,
}

/// A storage node child process; SIGKILLed when dropped.
#[derive(Debug)]
pub struct StorageChild {
    child: Child,
    pid: u32,
}

impl StorageChild {
    /// Spawns the child and waits until it is ready (see [`ChildOptions`]).
    /// Returns it with the time from the spawn to that moment.
    pub async fn start(o: &ChildOptions) -> Result<(StorageChild, Duration)> {
        let exe = std::env::current_exe().context("cannot find the current executable")?;
        let stderr = match &o.log {
            Some(log) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .with_context(|| format!("cannot open {}", log.display()))?,
            ),
            None => Stdio::inherit(),
        };
        let args: Vec<OsString> = vec![
            o.subcommand.into(),
            "--redis".into(),
            o.redis.clone().into(),
            "--data".into(),
            o.data.clone().into(),
            "--store".into(),
            o.store.label().into(),
        ];
        let mut command = Command::new(exe);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        if let Some(filter) = o.rust_log {
            command.env("RUST_LOG", filter);
        }
        let started = Instant::now();
        let mut child = command.spawn().context("cannot spawn a storage node")?;
        let pid = child.id().context("the storage node has no pid")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let see = o
            .log
            .as_ref()
            .map_or(String::new(), |l| format!("; see {}", l.display()));
        match tokio::time::timeout(o.ready_wait, lines.next_line()).await {
            Ok(Ok(Some(line))) if line == "ready" => {}
            Ok(Ok(Some(line))) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!("storage node said {line:?} instead of ready{see}")
            }
            Ok(_) => {
                let status = child.wait().await.ok();
                bail!("storage node exited before it was ready ({status:?}){see}")
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!("storage node not ready within {:?}{see}", o.ready_wait)
            }
        }
        if o.wait_subscribed {
            let mut conn = redis::Client::open(o.redis.as_str())?
                .get_multiplexed_async_connection()
                .await?;
            let deadline = started + o.ready_wait;
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
        }
        Ok((StorageChild { child, pid }, started.elapsed()))
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process exited on its own.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL (as a crash would), then reap.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
