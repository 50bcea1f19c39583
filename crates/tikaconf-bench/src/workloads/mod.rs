//! The nine workloads of the benchmark, one module each, and what they share:
//! the run's context (servers, mode), payloads of a given size, and the receipt
//! queues through which followers and subscribers report when something arrived.
//!
//! Every workload is bounded twice: by a count of operations and by a time
//! budget, whichever ends first, so that a slow or stuck system shortens a run
//! instead of hanging it. Every wait has a timeout that turns into an error row.

pub mod chain;
pub mod cold_load;
pub mod durable_throughput;
pub mod durable_write;
pub mod fanout;
pub mod http;
pub mod propagation;
pub mod scale;
pub mod visibility;

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tikaconf::{Config, Hash, RootConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::stats::Samples;

/// Names of the systems, as the tables print them.
pub const RAW_REDIS: &str = "raw redis";
/// Raw Redis with two more receivers on the channel than timed subscribers:
/// the same Redis and CPU load as a tikaconf update, which also reaches the
/// writer's own follower and the storage node. Shown beside the target's
/// baseline so the table separates what the protocol costs from what two
/// more receivers cost on the same cores.
pub const RAW_REDIS_PLUS_2: &str = "raw redis +2 rcv";
pub const ETCD: &str = "etcd";
pub const NATS: &str = "nats kv";

/// How long one receipt may take before the workload reports an error.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(10);

/// What every workload gets: where the servers are, and how big to run.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub redis_url: String,
    /// The servers' processes, for CPU accounting (see [`crate::cpu`]).
    pub pids: Pids,
    /// etcd's client endpoint, or why etcd does not run.
    pub etcd: Result<String, String>,
    /// NATS's URL, or why NATS does not run.
    pub nats: Result<String, String>,
    pub quick: bool,
}

/// Process ids of the servers the run started (`None` when not running).
#[derive(Debug, Clone, Copy)]
pub struct Pids {
    pub redis: Option<u32>,
    pub storage: Option<u32>,
    pub etcd: Option<u32>,
}

impl Ctx {
    /// `full` in a full run, `quick` with `--quick`.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }

    /// The time budget of one system in one case.
    pub fn budget(&self) -> Duration {
        self.pick(Duration::from_secs(15), Duration::from_millis(1500))
    }
}

/// A root of its own for each (workload, case), so that workloads sharing one
/// storage node never see each other's chains.
pub fn bench_root(workload: &str, id: impl std::fmt::Display) -> RootConfig {
    RootConfig::from_connection(json!({
        "platform": "tikaconf-bench",
        "workload": workload,
        "id": id.to_string(),
    }))
    .expect("a JSON object is valid connection info")
}

/// The length of the string value that makes a patch setting `/v` encode to
/// about `target` bytes on the wire (the envelope holds two hashes and the ops).
pub fn value_len_for_patch(target: usize) -> usize {
    let root = bench_root("probe", 0).hash();
    let probe = tikaconf::proto::Patch::build(root, root, 0, set_ops("add", String::new()), None)
        .expect("probe patch builds");
    target.saturating_sub(probe.encoded.len())
}

/// Ops setting `/v` to `value`: `add` the first time, `replace` after.
pub fn set_ops(op: &str, value: String) -> Value {
    json!([{"op": op, "path": "/v", "value": value}])
}

/// A string of `len` ASCII letters that changes with `seq`, so that every patch
/// differs (and so hashes differently) from the previous one.
pub fn filler(len: usize, seq: u64) -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz";
    let start = (seq % 26) as usize;
    (0..len)
        .map(|i| alphabet[(start + i) % 26] as char)
        .collect()
}

/// The same filler as bytes, for the baselines' payloads.
pub fn filler_bytes(len: usize, seq: u64) -> bytes::Bytes {
    bytes::Bytes::from(filler(len, seq).into_bytes())
}

/// A follower's receipt of one head: when the document became visible
/// (`Change::applied_at`, taken by the node's loop right after the swap, the
/// same point in the pipeline as a raw subscriber's receipt), when the
/// application's `changes()` reader was woken with it (one task wake-up
/// later), and whether it came by a patch (`true`) or by a snapshot after
/// missing one (`false`: a re-sync).
#[derive(Debug, Clone, Copy)]
pub struct Applied {
    pub head: Hash,
    pub visible_at: Instant,
    pub read_at: Instant,
    pub by_patch: bool,
}

/// Forwards each change of `config` to `tx`. The stream is subscribed before
/// this returns, so nothing applied afterwards is missed.
pub fn forward_applied(config: Config, tx: mpsc::UnboundedSender<Applied>) -> JoinHandle<()> {
    let mut changes = config.changes();
    tokio::spawn(async move {
        let _config = config; // following ends when the last handle goes
        while let Some(change) = changes.next().await {
            let applied = Applied {
                head: change.head,
                visible_at: Instant::from_std(change.applied_at),
                read_at: Instant::now(),
                by_patch: change.patch.is_some(),
            };
            if tx.send(applied).is_err() {
                return;
            }
        }
    })
}

/// Background tasks of a case (followers' forwarders, raw subscribers), aborted
/// when the case ends so that idle connections do not pile up across workloads.
#[derive(Debug, Default)]
pub struct Tasks(pub Vec<JoinHandle<()>>);

impl Tasks {
    pub fn push(&mut self, task: JoinHandle<()>) {
        self.0.push(task);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Waits for `n` followers to report `head`; returns the latest time the
/// document became visible at one of them. Pushes each follower's latency from
/// `t0` to visibility into `each`, and to its `changes()` reader into `read`;
/// counts re-syncs.
pub async fn await_applied(
    rx: &mut mpsc::UnboundedReceiver<Applied>,
    head: Hash,
    n: usize,
    t0: Instant,
    each: &mut Vec<Duration>,
    read: &mut Samples,
    resyncs: &mut u64,
) -> anyhow::Result<Instant> {
    let mut seen = 0;
    let mut last = t0;
    while seen < n {
        let applied = tokio::time::timeout(RECEIPT_TIMEOUT, rx.recv())
            .await
            .with_context(|| {
                format!("only {seen} of {n} followers applied within {RECEIPT_TIMEOUT:?}")
            })?
            .context("follower receipts closed")?;
        if applied.head != head {
            continue; // a straggler of an earlier update
        }
        seen += 1;
        *resyncs += u64::from(!applied.by_patch);
        last = last.max(applied.visible_at);
        each.push(applied.visible_at - t0);
        read.push(applied.read_at - t0);
    }
    Ok(last)
}

/// Waits for `n` receipts (raw subscribers report only a time); returns the
/// latest, pushing each latency from `t0` into `each`.
pub async fn await_receipts(
    rx: &mut mpsc::UnboundedReceiver<Instant>,
    n: usize,
    t0: Instant,
    each: &mut Vec<Duration>,
) -> anyhow::Result<Instant> {
    let mut last = t0;
    for seen in 0..n {
        let at = tokio::time::timeout(RECEIPT_TIMEOUT, rx.recv())
            .await
            .with_context(|| {
                format!("only {seen} of {n} subscribers received within {RECEIPT_TIMEOUT:?}")
            })?
            .context("subscriber receipts closed")?;
        last = last.max(at);
        each.push(at - t0);
    }
    Ok(last)
}

/// Waits until `config` is at `head` (via its change stream, no polling).
pub async fn wait_head(config: &Config, head: Hash) -> anyhow::Result<()> {
    let mut changes = config.changes();
    if config.head() == head {
        return Ok(());
    }
    let deadline = Instant::now() + RECEIPT_TIMEOUT;
    loop {
        if config.head() == head {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, changes.next()).await {
            Ok(Some(_)) => {}
            Ok(None) => bail!("config closed while waiting for {head}"),
            Err(_) => bail!(
                "config stuck at height {} instead of reaching {head}",
                config.height()
            ),
        }
    }
}
