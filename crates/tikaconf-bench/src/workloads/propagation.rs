//! Workload 1, propagation: a writer publishes a patch; how long until each
//! follower has applied it (document swapped, change yielded to the
//! application)? 1, 10 and 100 followers, 200 B and 10 KiB patches, against raw
//! Redis publish -> receipt with the same payload size and subscriber count.
//!
//! This is tikaconf's core promise ("within a Redis round trip"), so the ratio
//! to raw Redis is the protocol's whole overhead on the hot path: decoding and
//! validating the patch, applying it, hashing, and the hops between tasks.
//!
//! Each update is measured on its own: before the next one, the writer waits
//! until its own follower has applied the patch and storage has committed it
//! (not timed). Back to back, a follower can miss the next patch while its
//! subscription to the new head's channel is still on its way to Redis (the hop
//! gap); it then heals by a re-sync from storage. Receipts that came by re-sync
//! are counted and shown, since they are the slow tail of this path. Both systems run twice, interleaved (raw, tikaconf,
//! raw, tikaconf), so drift of the noisy machine hits both alike.

use std::time::Duration;

use tikaconf::proto::WriteOutcome;
use tikaconf::{Client, Config};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    Applied, Ctx, RAW_REDIS, RAW_REDIS_PLUS_2, RECEIPT_TIMEOUT, Tasks, await_applied,
    await_receipts, bench_root, filler, filler_bytes, forward_applied, set_ops,
    value_len_for_patch, wait_head,
};
use crate::baselines::raw_redis;
use crate::deploy;
use crate::report::{Kind, Metric, Section, TIKACONF};
use crate::stats::{Samples, fmt_duration};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "1. Propagation: publish -> applied at each follower (per follower)",
        Kind::Latency,
    );
    let sizes = [200usize, 10 * 1024];
    for n in [1usize, 10, 100] {
        let iterations = match n {
            1 => ctx.pick(1000, 100),
            10 => ctx.pick(400, 40),
            _ => ctx.pick(100, 10),
        };
        let followers = deploy::clients(&ctx.redis_url, n).await?;
        let writer = deploy::client(&ctx.redis_url).await?;
        for size in sizes {
            let case = case_name(n, size);
            let label = format!("prop-{n}-{size}");
            let compared = compare(ctx, &writer, &followers, &label, size, iterations).await;
            let resyncs = compared.resyncs;
            if resyncs > 0 {
                section.note(format!(
                    "{case}: {resyncs} receipts came by re-sync (a missed patch healed from storage)"
                ));
            }
            if let Some(read) = compared.read {
                section.note(read_note(&case, read));
            }
            if let Some(cpu) = compared.cpu_per_receipt {
                section.note(format!(
                    "{case}: tikaconf's writer and followers (the benchmark process) spent {} CPU per receipt",
                    fmt_duration(cpu)
                ));
            }
            let summary = |r: anyhow::Result<Samples>| r.map(Samples::summarize);
            section.record(&case, RAW_REDIS, summary(compared.raw));
            section.record(&case, RAW_REDIS_PLUS_2, summary(compared.raw_plus_2));
            section.record(&case, TIKACONF, summary(compared.tikaconf));
        }
    }
    for n in [1usize, 10, 100] {
        for size in sizes {
            let case = case_name(n, size);
            section.ratio_target(&case, RAW_REDIS, Metric::P50, 1.15);
            section.ratio_target(&case, RAW_REDIS, Metric::P99, 1.3);
        }
    }
    section.note(format!("{RAW_REDIS_PLUS_2}: raw Redis with 2 more, untimed, receivers on the channel: a tikaconf update also reaches the writer's own follower and the storage node, on the same 2 cores"));
    section.note("throughput: raw = publishes/s one after another; tikaconf = updates/s where each also waits for Committed (not comparable)");
    Ok(section)
}

pub fn case_name(n: usize, size: usize) -> String {
    let size = if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    };
    let s = if n == 1 { "" } else { "s" };
    format!("{n} follower{s}, {size}")
}

/// Runs raw Redis and tikaconf on one case, interleaved in two halves each.
pub async fn compare(
    ctx: &Ctx,
    writer: &Client,
    followers: &[Client],
    label: &str,
    size: usize,
    iterations: usize,
) -> Compared {
    let n = followers.len();
    // A side that cannot even be set up reports its error; the other still runs.
    let mut tk = TkCase::new(writer, followers, label, size).await;
    let mut raw = RawCase::new(&ctx.redis_url, n, 0, label, size).await;
    let mut raw2 = RawCase::new(&ctx.redis_url, n, 2, &format!("{label}+2"), size).await;
    let budget = ctx.budget() / 2;
    let half = iterations.div_ceil(2);
    // This process's CPU while tikaconf's halves ran: its writer and followers
    // (the raw cases' subscribers are idle then), per receipt.
    let mut cpu = Duration::ZERO;
    let mut tk_all = tk
        .as_ref()
        .map(|_| Samples::new())
        .map_err(|e| anyhow::anyhow!("{e:#}"));
    let mut raw_all = raw
        .as_ref()
        .map(|_| Samples::new())
        .map_err(|e| anyhow::anyhow!("{e:#}"));
    let mut raw2_all = raw2
        .as_ref()
        .map(|_| Samples::new())
        .map_err(|e| anyhow::anyhow!("{e:#}"));
    for _ in 0..2 {
        for (all, raw) in [(&mut raw_all, &mut raw), (&mut raw2_all, &mut raw2)] {
            if let (Ok(samples), Ok(raw)) = (&mut *all, raw) {
                match raw.run(half, budget).await {
                    Ok(s) => samples.merge(s),
                    Err(e) => *all = Err(e),
                }
            }
        }
        if let (Ok(all), Ok(tk)) = (&mut tk_all, &mut tk) {
            let before = crate::cpu::this_process();
            let ran = tk.run(half, budget).await;
            if let (Some(before), Some(after)) = (before, crate::cpu::this_process()) {
                cpu += after.saturating_sub(before);
            }
            match ran {
                Ok(s) => all.merge(s),
                Err(e) => tk_all = Err(e),
            }
        }
    }
    let (resyncs, read) = match tk {
        Ok(t) => (t.resyncs, Some(t.read)),
        Err(_) => (0, None),
    };
    let cpu_per_receipt = match &tk_all {
        Ok(samples) if samples.len() > 0 => Some(cpu / samples.len() as u32),
        _ => None,
    };
    Compared {
        cpu_per_receipt,
        tikaconf: tk_all,
        raw: raw_all,
        raw_plus_2: raw2_all,
        resyncs,
        read,
    }
}

/// One case of tikaconf against raw Redis.
#[derive(Debug)]
pub struct Compared {
    pub tikaconf: anyhow::Result<Samples>,
    pub raw: anyhow::Result<Samples>,
    /// Raw Redis with two untimed receivers more ([`RAW_REDIS_PLUS_2`]).
    pub raw_plus_2: anyhow::Result<Samples>,
    /// Receipts that came by re-sync.
    pub resyncs: u64,
    /// Latencies until the followers' `changes()` readers were woken.
    pub read: Option<Samples>,
    /// The benchmark process's CPU per tikaconf receipt (writer and
    /// followers: what bounds a follower's throughput).
    pub cpu_per_receipt: Option<Duration>,
}

/// A note with the latency until the application's `changes()` reader was
/// woken: the table's tikaconf row times the moment the document became
/// visible (what `Config::document` returns), which is the same point as a
/// raw subscriber's receipt; a reader task waiting on the change stream is
/// woken one task hand-off later.
pub fn read_note(case: &str, read: Samples) -> String {
    let m = read.summarize();
    format!(
        "{case}: the followers' changes() readers were woken at p50 {}, p99 {} (one task wake-up after the document swap the row times)",
        fmt_duration(m.p50),
        fmt_duration(m.p99)
    )
}

/// One root, a writer and `n` followers, each follower a client of its own.
pub struct TkCase {
    writer: Config,
    rx: mpsc::UnboundedReceiver<Applied>,
    n: usize,
    value_len: usize,
    seq: u64,
    /// Receipts that came by a re-sync instead of the patch.
    pub resyncs: u64,
    /// Per update: until the last follower applied it.
    pub all: Samples,
    /// Per follower and update: until its `changes()` reader was woken.
    pub read: Samples,
    _tasks: Tasks,
}

impl TkCase {
    pub async fn new(
        writer: &Client,
        followers: &[Client],
        label: &str,
        size: usize,
    ) -> anyhow::Result<TkCase> {
        let root = bench_root("propagation", label);
        let writer = writer.follow(root.clone()).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut tasks = Tasks::default();
        for chunk in followers.chunks(100) {
            let follows = chunk.iter().map(|c| c.follow(root.hash()));
            for config in futures_util::future::try_join_all(follows).await? {
                tasks.push(forward_applied(config, tx.clone()));
            }
        }
        let mut case = TkCase {
            writer,
            rx,
            n: followers.len(),
            value_len: value_len_for_patch(size),
            seq: 0,
            resyncs: 0,
            all: Samples::new(),
            read: Samples::new(),
            _tasks: tasks,
        };
        // Warm-up: the first patch adds /v; a few more fill buffers.
        case.run(5, Duration::from_secs(30)).await?;
        case.all = Samples::new();
        case.read = Samples::new();
        Ok(case)
    }

    /// Up to `iterations` updates within `budget`; one sample per follower each.
    pub async fn run(&mut self, iterations: usize, budget: Duration) -> anyhow::Result<Samples> {
        let mut samples = Samples::new();
        let mut each = Vec::with_capacity(self.n);
        let start = Instant::now();
        for _ in 0..iterations {
            let op = if self.seq == 0 { "add" } else { "replace" };
            let ops = set_ops(op, filler(self.value_len, self.seq));
            self.seq += 1;
            let t0 = Instant::now();
            let (patch, outcome) = self.writer.publish(ops, None).await?;
            each.clear();
            let last = await_applied(
                &mut self.rx,
                patch.hash,
                self.n,
                t0,
                &mut each,
                &mut self.read,
                &mut self.resyncs,
            )
            .await?;
            self.all.push(last - t0);
            for d in &each {
                samples.push(*d);
            }
            samples.add_ops(1);
            wait_head(&self.writer, patch.hash).await?;
            match tokio::time::timeout(RECEIPT_TIMEOUT, outcome).await {
                Ok(Ok(WriteOutcome::Committed)) => {}
                other => anyhow::bail!("an update was not committed: {other:?}"),
            }
            if start.elapsed() > budget {
                break;
            }
        }
        samples.set_wall(start.elapsed());
        Ok(samples)
    }
}

/// One channel, a publisher and `n` subscriber connections.
pub struct RawCase {
    conn: redis::aio::MultiplexedConnection,
    channel: String,
    rx: mpsc::UnboundedReceiver<Instant>,
    n: usize,
    size: usize,
    seq: u64,
    /// Per publish: until the last subscriber received it.
    pub all: Samples,
    _tasks: Tasks,
}

impl RawCase {
    /// `n` timed subscribers and `extra` untimed ones.
    pub async fn new(
        url: &str,
        n: usize,
        extra: usize,
        label: &str,
        size: usize,
    ) -> anyhow::Result<RawCase> {
        let channel = format!("bench:{label}");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut tasks = Tasks(raw_redis::subscribers(url, n, &channel, tx).await?);
        for _ in 0..extra {
            tasks.push(raw_redis::subscriber(url, &channel, None).await?);
        }
        let mut case = RawCase {
            conn: raw_redis::publisher(url).await?,
            channel,
            rx,
            n,
            size,
            seq: 0,
            all: Samples::new(),
            _tasks: tasks,
        };
        case.run(5, Duration::from_secs(30)).await?;
        case.all = Samples::new();
        Ok(case)
    }

    pub async fn run(&mut self, iterations: usize, budget: Duration) -> anyhow::Result<Samples> {
        let mut samples = Samples::new();
        let mut each = Vec::with_capacity(self.n);
        let start = Instant::now();
        for _ in 0..iterations {
            let payload = filler_bytes(self.size, self.seq);
            self.seq += 1;
            let t0 = Instant::now();
            raw_redis::publish(&mut self.conn, &self.channel, &payload).await?;
            each.clear();
            let last = await_receipts(&mut self.rx, self.n, t0, &mut each).await?;
            self.all.push(last - t0);
            for d in &each {
                samples.push(*d);
            }
            samples.add_ops(1);
            if start.elapsed() > budget {
                break;
            }
        }
        samples.set_wall(start.elapsed());
        Ok(samples)
    }
}
