//! The faults the suite injects, and the seeded loop that injects them.
//!
//! A schedule names the kinds of fault it allows; the injector draws, from a
//! generator seeded with the run's seed, which fault comes next, whom it hits, how
//! long it lasts and how long the quiet between faults is. The seed fixes that
//! schedule (printed with every failure, so it can be run again); it cannot fix
//! the interleaving of real processes, which is the point of running them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::deploy::Deployment;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL a storage node, restart it within a second.
    StorageKill,
    /// SIGKILL a storage node and keep it down for seconds while writes go on.
    StorageOutage,
    /// Kill redis-server and start it again.
    RedisRestart,
    /// Add latency to one node's link for a while.
    Latency,
    /// Close every connection of one node.
    Reset,
    /// Partition one node: nothing flows, sockets stay open.
    Blackhole,
    /// Stop reading Redis's output for one node, so Redis may drop it as a slow
    /// pub/sub client.
    Stall,
    /// Close one node's connections and refuse new ones for a while.
    DropNew,
    /// A follower joins, or one leaves.
    Churn,
}

impl FaultKind {
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::StorageKill => "storage SIGKILL + restart",
            FaultKind::StorageOutage => "storage down for seconds",
            FaultKind::RedisRestart => "redis-server restart",
            FaultKind::Latency => "proxy latency",
            FaultKind::Reset => "proxy connection reset",
            FaultKind::Blackhole => "proxy partition (black hole)",
            FaultKind::Stall => "proxy read stall (slow pub/sub client)",
            FaultKind::DropNew => "proxy refuses connections",
            FaultKind::Churn => "follower join/leave",
        }
    }
}

/// What the injector did.
#[derive(Debug, Clone, Default)]
pub struct Injected {
    pub by_kind: BTreeMap<FaultKind, u64>,
    /// Stalls after which Redis had disconnected the stalled node.
    pub stalls_disconnected: u64,
    pub joins: u64,
    pub leaves: u64,
    pub join_failures: u64,
    /// Failures of the injector itself (a restart that did not come back).
    pub errors: Vec<String>,
}

fn ms(rng: &mut StdRng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.random_range(lo..=hi))
}

/// Injects faults of `kinds` until `until`, then returns what it did. Every fault
/// it starts it also ends (the caller heals everything afterwards anyway).
pub async fn inject(
    deployment: Arc<Deployment>,
    kinds: &[FaultKind],
    seed: u64,
    until: Instant,
) -> Injected {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut done = Injected::default();
    if kinds.is_empty() {
        tokio::time::sleep_until(until).await;
        return done;
    }
    loop {
        let pause = ms(&mut rng, 200, 1500);
        if Instant::now() + pause >= until {
            tokio::time::sleep_until(until).await;
            return done;
        }
        tokio::time::sleep(pause).await;
        let kind = kinds[rng.random_range(0..kinds.len())];
        *done.by_kind.entry(kind).or_default() += 1;
        if let Err(e) = one(&deployment, kind, &mut rng, &mut done).await {
            done.errors.push(format!("{}: {e:#}", kind.label()));
        }
    }
}

async fn one(
    d: &Deployment,
    kind: FaultKind,
    rng: &mut StdRng,
    done: &mut Injected,
) -> anyhow::Result<()> {
    match kind {
        FaultKind::StorageKill | FaultKind::StorageOutage => {
            let i = rng.random_range(0..d.storage.len());
            let down = if kind == FaultKind::StorageKill {
                ms(rng, 0, 1000)
            } else {
                ms(rng, 2000, 5000)
            };
            d.kill_storage(i).await;
            tokio::time::sleep(down).await;
            d.start_storage(i).await?;
        }
        FaultKind::RedisRestart => {
            let down = ms(rng, 0, 1500);
            d.restart_redis(down).await?;
        }
        FaultKind::Churn => {
            if rng.random_bool(0.5) {
                let root = rng.random_range(0..d.roots.len());
                let join = tokio::time::timeout(Duration::from_secs(20), d.join(root, false));
                match join.await {
                    Ok(Ok(())) => done.joins += 1,
                    // Joining under other faults may fail; that is the joiner's
                    // problem, not an invariant.
                    _ => done.join_failures += 1,
                }
            } else if d.leave(rng.random_range(0..usize::MAX)).await {
                done.leaves += 1;
            }
        }
        proxy_fault => {
            let targets = d.proxies().await;
            let (_, proxy) = &targets[rng.random_range(0..targets.len())];
            match proxy_fault {
                FaultKind::Latency => {
                    proxy.set_latency(ms(rng, 5, 400));
                    tokio::time::sleep(ms(rng, 500, 3000)).await;
                    proxy.set_latency(Duration::ZERO);
                }
                FaultKind::Reset => proxy.reset_all(),
                FaultKind::Blackhole => {
                    proxy.blackhole(true);
                    tokio::time::sleep(ms(rng, 500, 4000)).await;
                    proxy.blackhole(false);
                }
                FaultKind::Stall => {
                    let before = proxy.stats().closed_by_peer;
                    proxy.stall_reads(true);
                    tokio::time::sleep(ms(rng, 1000, 4000)).await;
                    proxy.stall_reads(false);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if proxy.stats().closed_by_peer > before {
                        done.stalls_disconnected += 1;
                    }
                }
                FaultKind::DropNew => {
                    proxy.drop_new(true);
                    proxy.reset_all();
                    tokio::time::sleep(ms(rng, 300, 2000)).await;
                    proxy.drop_new(false);
                }
                _ => unreachable!("handled above"),
            }
        }
    }
    Ok(())
}
