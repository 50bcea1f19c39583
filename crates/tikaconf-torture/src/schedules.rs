//! The named schedules and the engine that runs one: build a deployment, write
//! while injecting faults, heal, measure convergence, then check the invariants.
//!
//! Each schedule stresses one of the fault families (a SIGKILLed storage
//! node, a storage outage, Redis restarts with and without persistence, network
//! faults through the proxies, a shared Redis store, issue 11's storage node
//! partitioned while another commits and then the other killed (on both store
//! kinds), racing writers, the hop gap, followers joining and leaving, a hostile
//! client's flood), and `mixed` draws from all of them. Every run
//! uses the follower's DEFAULT timers, so the convergence it reports is what a
//! deployment with default settings gets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::time::Instant;

use crate::checker::{self, Tally, Violation};
use crate::deploy::{Deployment, Shape};
use crate::faults::{self, FaultKind, Injected};
use crate::history::Outcome;
use crate::node::StoreKind;
use crate::workload::{self, WriterStats};

/// How long followers and storage get to agree after healing before the run fails.
pub const CONVERGENCE_LIMIT: Duration = Duration::from_secs(60);

/// The `client-output-buffer-limit pubsub` of schedules with stalls: a reader
/// 16 KiB behind for a second, or 64 KiB behind at all, is dropped.
const SMALL_PUBSUB_LIMIT: &str = "pubsub 64kb 16kb 1";

/// One named schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: &'static str,
    pub about: &'static str,
    pub shape: Shape,
    /// The kinds of fault drawn at random.
    pub faults: &'static [FaultKind],
    /// The kinds the schedule exists for: injected first, before any random
    /// draw, and each must take effect or the run fails (see
    /// [`checker::check_evidence`]).
    pub required: &'static [FaultKind],
    pub back_to_back: bool,
    /// Pause between one writer's writes.
    pub pace: Duration,
    /// A hostile client floods the deployment while the writers write (see
    /// [`crate::flood`]).
    pub flood: bool,
}

const fn shape(
    store: StoreKind,
    storage_nodes: usize,
    redis_persistence: bool,
    roots: usize,
    followers_per_root: usize,
    writers_per_root: usize,
) -> Shape {
    Shape {
        store,
        storage_nodes,
        redis_persistence,
        roots,
        followers_per_root,
        writers_per_root,
        pubsub_limit: None,
    }
}

/// Every schedule, in the order the suite runs them.
pub fn all() -> Vec<Schedule> {
    use FaultKind::*;
    use StoreKind::*;
    let network = Shape {
        pubsub_limit: Some(SMALL_PUBSUB_LIMIT),
        ..shape(Redb, 1, false, 3, 3, 2)
    };
    vec![
        Schedule {
            name: "storage-kill",
            about: "one storage node (redb) SIGKILLed mid-stream and restarted, repeatedly",
            shape: shape(Redb, 1, false, 3, 3, 2),
            faults: &[StorageKill],
            required: &[StorageKill],
            back_to_back: false,
            pace: Duration::from_millis(5),
            flood: false,
        },
        Schedule {
            name: "storage-outage",
            about: "the only storage node (redb) down for seconds while writers keep writing",
            shape: shape(Redb, 1, false, 2, 3, 2),
            faults: &[StorageOutage],
            required: &[StorageOutage],
            back_to_back: false,
            pace: Duration::from_millis(5),
            flood: false,
        },
        Schedule {
            name: "redis-restart",
            about: "redis-server restarted without persistence (storage on redb)",
            shape: shape(Redb, 1, false, 3, 3, 2),
            faults: &[RedisRestart],
            required: &[RedisRestart],
            back_to_back: false,
            pace: Duration::from_millis(5),
            flood: false,
        },
        Schedule {
            name: "redis-restart-aof",
            about: "redis-server restarted with persistence (AOF, fsync always); two storage nodes share the Redis store",
            shape: shape(Redis, 2, true, 3, 3, 2),
            faults: &[RedisRestart],
            required: &[RedisRestart],
            back_to_back: false,
            pace: Duration::from_millis(5),
            flood: false,
        },
        Schedule {
            name: "network",
            about: "per-node proxy faults: latency, resets, partitions, read stalls (small pubsub output limit), refused connections",
            shape: network.clone(),
            faults: &[Latency, Reset, Blackhole, Stall, DropNew],
            required: &[Blackhole],
            back_to_back: false,
            pace: Duration::from_millis(5),
            flood: false,
        },
        Schedule {
            name: "shared-store",
            about: "two storage nodes sharing the Redis store (AOF), one SIGKILLed at random; resets and latency",
            shape: shape(Redis, 2, true, 3, 3, 2),
            faults: &[StorageKill, StorageKill, Reset, Latency],
            required: &[StorageKill],
            back_to_back: false,
            pace: Duration::from_millis(5),
            flood: false,
        },
        Schedule {
            name: "partition-kill",
            about: "issue 11's scenario at random on the shared Redis store (AOF, two storage nodes): one node's link cut (reset and refused, or black-holed) while the other commits, healed, then the other SIGKILLed; the node left must answer loads at the committed head and commit writes before the killed one restarts; resets",
            shape: shape(Redis, 2, true, 3, 3, 2),
            faults: &[PartitionKill, PartitionKill, Reset],
            required: &[PartitionKill],
            back_to_back: false,
            pace: Duration::from_millis(5),
            flood: false,
        },
        Schedule {
            name: "partition-kill-redb",
            about: "the same sequence on redb, whose file no second node can share: the only storage node's link black-holed while writers try to commit, then the node SIGKILLed (after its link healed, or while still cut off) and restarted on its file; loads after the restart at the committed head",
            shape: shape(Redb, 1, false, 2, 3, 2),
            faults: &[PartitionKill],
            required: &[PartitionKill],
            back_to_back: false,
            pace: Duration::from_millis(5),
            flood: false,
        },
        Schedule {
            name: "racing-writers",
            about: "six writers racing on one root (many conflicts), with latency and resets",
            shape: shape(Redb, 1, false, 1, 3, 6),
            faults: &[Latency, Reset],
            required: &[],
            back_to_back: false,
            pace: Duration::ZERO,
            flood: false,
        },
        Schedule {
            name: "hop-gap",
            about: "writers publishing back-to-back without waiting for storage (the hop gap), with latency and resets",
            shape: shape(Redb, 1, false, 2, 4, 2),
            faults: &[Latency, Reset],
            required: &[],
            back_to_back: true,
            pace: Duration::ZERO,
            flood: false,
        },
        Schedule {
            name: "churn",
            about: "followers joining and leaving while writes go on, with resets and storage kills",
            shape: shape(Redb, 1, false, 3, 3, 2),
            faults: &[Churn, Churn, Churn, Reset, StorageKill],
            required: &[Churn],
            back_to_back: false,
            pace: Duration::from_millis(5),
            flood: false,
        },
        Schedule {
            name: "mixed",
            about: "every fault kind at once, back-to-back writers",
            shape: network,
            faults: &[
                StorageKill,
                StorageOutage,
                RedisRestart,
                Latency,
                Reset,
                Blackhole,
                Stall,
                DropNew,
                Churn,
            ],
            required: &[],
            back_to_back: true,
            pace: Duration::from_millis(2),
            flood: false,
        },
        Schedule {
            name: "flood",
            about: "a client with a writer's rights (docs/SECURITY.md's ACL) floods unsigned load requests for random and real roots, registrations of 4 KiB root configurations and worst-case patches (1,000 copy/remove pairs on a 480 KB document) while the normal writers and followers run; every node's memory and CPU per second sampled and bounded",
            shape: shape(Redb, 1, false, 2, 3, 2),
            faults: &[],
            required: &[],
            back_to_back: false,
            pace: Duration::from_millis(5),
            flood: true,
        },
    ]
}

pub fn find(name: &str) -> Result<Schedule> {
    match all().into_iter().find(|s| s.name == name) {
        Some(s) => Ok(s),
        None => {
            let names: Vec<_> = all().iter().map(|s| s.name).collect();
            bail!("no schedule {name:?}; schedules: {}", names.join(", "))
        }
    }
}

/// What one run did and found.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub schedule: &'static str,
    pub seed: u64,
    pub duration: Duration,
    pub injected: Injected,
    pub tally: Tally,
    /// Followers' convergence: per follower not yet on its root's final head
    /// when writes had ended and faults healed, how long it took to get there;
    /// and how many were already there.
    pub convergence: checker::Convergence,
    /// Time from healing until every member and storage agreed (storage asked
    /// by a fresh client's load once the members agreed, every 200 ms).
    pub converged_after: Option<Duration>,
    pub violations: Vec<Violation>,
    pub storage_restart_retries: u64,
    pub rss_start: u64,
    pub rss_end: u64,
    pub wall: Duration,
    /// What the flood sent and every node's readings, in a flood schedule.
    pub flood: Option<crate::flood::FloodReport>,
    /// Passes of the partition-then-kill sequence, and how many of them
    /// partitioned by a black hole.
    pub partition_kills: usize,
    pub partition_kills_blackhole: usize,
    /// Passes with no write from just before the heal until the survivor answered.
    pub partition_kills_quiet: usize,
    /// Probe loads made, and how long each answered one took.
    pub probes: usize,
    pub probe_latencies: Vec<Duration>,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs `schedule` for `duration` of writing under faults, with `seed`.
pub async fn run(schedule: &Schedule, seed: u64, duration: Duration) -> Result<RunResult> {
    let wall = Instant::now();
    let panics_before = crate::panics();
    let d = Deployment::start(&schedule.shape, seed, schedule.name).await?;
    let rss_start = crate::node::rss_bytes(None).unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(WriterStats::default());
    d.recorder.plan(schedule.faults, schedule.required);
    if schedule.shape.pubsub_limit.is_some() {
        d.recorder.slow_clients_dropped();
    }
    let flood = if schedule.flood {
        Some(crate::flood::Flood::start(d.clone()).await?)
    } else {
        None
    };
    let mut writers = Vec::new();
    for (i, m) in d.members.lock().await.iter().enumerate() {
        if m.writer {
            d.recorder.writer(i, m.name.clone());
            writers.push(tokio::spawn(workload::write_loop(
                m.config.clone(),
                i,
                m.root,
                schedule.back_to_back,
                schedule.pace,
                d.recorder.clone(),
                stats.clone(),
                stop.clone(),
                d.writes_held.clone(),
            )));
        }
    }
    let until = Instant::now() + duration;
    let injected = faults::inject(d.clone(), schedule.faults, schedule.required, seed, until).await;
    let mut violations = Vec::new();
    // The flood ends with the writing, before convergence is measured.
    let flood = match flood {
        Some(f) => {
            let report = f.finish().await;
            violations.extend(report.violations());
            Some(report)
        }
        None => None,
    };
    // The injector ends every fault it starts: from here on nothing is injected
    // and no new write starts. Convergence is measured from this moment.
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        // A writer ends within one write (bounded by the hang limit).
        if tokio::time::timeout(workload::HANG * 2, w).await.is_err() {
            violations.push(Violation {
                kind: "hang",
                detail: "a writer did not stop".into(),
            });
        }
    }
    d.check_crashes().await;
    d.heal().await?;
    // Convergence is measured from here: writes have ended and every fault is
    // healed (storage nodes running again, proxies forwarding).
    let healed = Instant::now();
    let healed_at = d.recorder.now();
    let (converged_after, final_heads) = match converge(&d, healed).await {
        Ok(pair) => (Some(pair.0), pair.1),
        Err(v) => {
            violations.push(v);
            (None, Vec::new())
        }
    };
    // Every hub must still answer (a deadlocked one would not), and every
    // member's record must be complete: a change stream that skipped changes
    // (its reader fell behind the stream's buffer) leaves gaps in which a height
    // decrease would go unseen.
    for m in d.members.lock().await.iter() {
        // On the blocking pool: a member whose root lock is stuck (a
        // deadlocked hub holds it) times out here instead of hanging the check.
        let config = m.config.clone();
        let stats = tokio::task::spawn_blocking(move || config.stats());
        match tokio::time::timeout(Duration::from_secs(5), stats).await {
            Err(_) | Ok(Err(_)) => violations.push(Violation {
                kind: "hang",
                detail: format!("{} does not answer for its stats", m.name),
            }),
            Ok(Ok(stats)) if stats.changes_skipped > 0 => {
                violations.push(incomplete(&m.name, stats.changes_skipped))
            }
            Ok(Ok(_)) => {}
        }
    }
    for (name, skipped) in d
        .left_incomplete
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        violations.push(incomplete(name, *skipped));
    }
    let member_views = d.member_views().await;
    d.check_crashes().await;
    let crashed = d.crashed.load(Ordering::SeqCst);
    let (stored_views, finals) = d.stored_views().await?;
    let history = d.recorder.snapshot();
    // Per follower (writers make the head, they do not follow it): how long
    // after its root's reference moment its changes reached the final head.
    let mut convergence = checker::Convergence::default();
    if converged_after.is_some() {
        let from: Vec<Duration> = (0..d.roots.len())
            .map(|root| {
                history
                    .writes
                    .iter()
                    .filter(|w| w.root == root && w.outcome == Outcome::Committed)
                    .map(|w| w.ended)
                    .fold(healed_at, Duration::max)
            })
            .collect();
        let followers: Vec<(String, usize)> = d
            .members
            .lock()
            .await
            .iter()
            .filter(|m| !m.writer)
            .map(|m| (m.name.clone(), m.root))
            .collect();
        let (c, v) = checker::convergence(&history.followers, &followers, &final_heads, &from);
        convergence = c;
        violations.extend(v);
    }
    let mut tally = Tally::default();
    violations.extend(checker::check(&history, &finals, &mut tally));
    let partition_kills = history.partition_kills.len();
    let partition_kills_blackhole = history
        .partition_kills
        .iter()
        .filter(|p| p.blackhole)
        .count();
    let partition_kills_quiet = history.partition_kills.iter().filter(|p| p.quiet).count();
    let probes = history.loads.len();
    let probe_latencies = history
        .loads
        .iter()
        .filter(|l| l.answer.is_ok())
        .map(|l| l.ended - l.started)
        .collect();
    // Invariant 2 at the end: storage nodes first, then every member.
    let views: Vec<_> = stored_views
        .into_iter()
        .zip(member_views)
        .map(|(mut s, m)| {
            s.extend(m);
            s
        })
        .collect();
    if converged_after.is_some() {
        violations.extend(checker::check_final(&views));
    }
    let hangs = stats.hangs.load(Ordering::Relaxed);
    if hangs > 0 {
        violations.push(Violation {
            kind: "hang",
            detail: format!("{hangs} writes had no outcome within {:?}", workload::HANG),
        });
    }
    if crashed {
        violations.push(Violation {
            kind: "crash",
            detail: "a storage node exited on its own".into(),
        });
    }
    for line in d.storage_panics().await {
        violations.push(Violation {
            kind: "panic",
            detail: format!("storage node: {line}"),
        });
    }
    let panics = crate::panics() - panics_before;
    if panics > 0 {
        violations.push(Violation {
            kind: "panic",
            detail: format!("{panics} panics in the followers' process"),
        });
    }
    for e in &injected.errors {
        violations.push(Violation {
            kind: "fault-injection",
            detail: e.clone(),
        });
    }
    let storage_restart_retries = d.start_retries.load(Ordering::Relaxed);
    drop(d);
    let rss_end = crate::node::rss_bytes(None).unwrap_or(0);
    if let Some(v) = check_memory(rss_start, rss_end) {
        violations.push(v);
    }
    Ok(RunResult {
        schedule: schedule.name,
        seed,
        duration,
        injected,
        tally,
        convergence,
        converged_after,
        violations,
        storage_restart_retries,
        rss_start,
        rss_end,
        wall: wall.elapsed(),
        flood,
        partition_kills,
        partition_kills_blackhole,
        partition_kills_quiet,
        probes,
        probe_latencies,
    })
}

/// A member whose change stream skipped changes: its record, on which the
/// height and convergence checks run, is incomplete.
fn incomplete(name: &str, skipped: u64) -> Violation {
    Violation {
        kind: "incomplete-record",
        detail: format!(
            "{name}'s change stream skipped {skipped} changes (its reader fell behind): \
             the heights it went through are not all recorded"
        ),
    }
}

/// How much the followers' process may grow over one schedule: its resident
/// size once the deployment is dropped, against right after it started.
///
/// What a run legitimately leaves behind is its record (about 100 bytes per
/// write and per observation: a few MiB) and what the allocator keeps of the
/// members' freed documents, which grows with the document: measured on full
/// 45 s runs, racing-writers (11,000 writes) grew 22 MiB and hop-gap (4,400
/// writes, documents of 8,800 keys) 29 MiB, so the 7,800-write hop-gap of
/// RELIABILITY.md's last full run should grow about 50 MiB. A queue or cache
/// that grows with the traffic keeps every message: thousands per second for
/// 45 s, hundreds of MiB to GiB. 128 MiB is 2.5 times the largest legitimate
/// growth expected and well under that.
pub const RSS_GROWTH_LIMIT: u64 = 128 << 20;

/// A violation if the process grew more than [`RSS_GROWTH_LIMIT`] (or its size
/// could not be read: a check that cannot measure must not pass).
pub fn check_memory(rss_start: u64, rss_end: u64) -> Option<Violation> {
    if rss_start == 0 || rss_end == 0 {
        return Some(Violation {
            kind: "memory-unmeasured",
            detail: "the followers' process resident size could not be read".into(),
        });
    }
    (rss_end > rss_start + RSS_GROWTH_LIMIT).then(|| Violation {
        kind: "memory-growth",
        detail: format!(
            "the followers' process grew from {} MiB to {} MiB over the run (limit +{} MiB)",
            rss_start >> 20,
            rss_end >> 20,
            RSS_GROWTH_LIMIT >> 20
        ),
    })
}

/// Waits until every member of each root holds the same head and that head is
/// what storage answers. Returns the time that took (from `healed`) and the
/// final head of each root.
///
/// Storage is asked (by a fresh client's load request) only once the members
/// agree, because its answer reaches every follower of the root too and would
/// otherwise speed up the convergence being measured.
async fn converge(
    d: &Deployment,
    healed: Instant,
) -> Result<(Duration, Vec<tikaconf::Hash>), Violation> {
    let deadline = healed + CONVERGENCE_LIMIT;
    let mut last_probe = None;
    loop {
        let views = d.member_views().await;
        let agreed: Option<Vec<tikaconf::Hash>> = views
            .iter()
            .map(|vs| {
                let first = vs.first()?.head;
                vs.iter().all(|v| v.head == first).then_some(first)
            })
            .collect();
        if let Some(heads) = agreed {
            let probe_due =
                last_probe.is_none_or(|t: Instant| t.elapsed() > Duration::from_millis(200));
            if probe_due {
                last_probe = Some(Instant::now());
                if let Ok(stored) = d.probe_heads().await
                    && stored == heads
                {
                    return Ok((healed.elapsed(), heads));
                }
            }
        }
        if Instant::now() >= deadline {
            let mut detail = String::new();
            for m in d.members.lock().await.iter() {
                let config = m.config.clone();
                let stats = tokio::task::spawn_blocking(move || config.stats());
                let stats = tokio::time::timeout(Duration::from_secs(2), stats)
                    .await
                    .ok()
                    .and_then(Result::ok);
                detail.push_str(&format!(
                    "\n  {} root {} height {} head {} stats {:?}",
                    m.name,
                    m.root,
                    m.config.height(),
                    m.config.head(),
                    stats
                ));
            }
            if let Ok(stored) = d.probe_heads().await {
                detail.push_str(&format!("\n  storage answers heads {stored:?}"));
            }
            return Err(Violation {
                kind: "no-convergence",
                detail: format!(
                    "followers and storage did not agree within {CONVERGENCE_LIMIT:?} of healing:{detail}"
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On cdbe9c4 the readings were taken and never checked.
    #[test]
    fn memory_growth_beyond_the_bound_fails_a_run() {
        let mib = |n: u64| n << 20;
        assert_eq!(check_memory(mib(100), mib(150)), None);
        assert_eq!(check_memory(mib(100), mib(100) + RSS_GROWTH_LIMIT), None);
        let v = check_memory(mib(100), mib(100) + RSS_GROWTH_LIMIT + 1).expect("a violation");
        assert_eq!(v.kind, "memory-growth");
        assert_eq!(
            check_memory(0, mib(10)).map(|v| v.kind),
            Some("memory-unmeasured")
        );
    }
}
