//! Workload 3, durable write: one writer, sequential writes of 200 B, each timed
//! until it is durable: tikaconf `submit` -> `Committed` (a storage node stored
//! it in redb, fsynced, and its `stored` notice came back) against etcd put
//! (acknowledged after etcd's WAL fsync).
//!
//! NATS KV put is shown for information: JetStream acknowledges once the message
//! is in its store, which by default is not fsynced per message, so it is not a
//! like-for-like durable write.

use std::time::Duration;

use tokio::time::Instant;

use super::{Ctx, ETCD, NATS, bench_root, filler, filler_bytes, set_ops, value_len_for_patch};
use crate::baselines::{etcd, nats};
use crate::deploy;
use crate::report::{Kind, Metric, Section, TIKACONF};
use crate::stats::Samples;

const SIZE: usize = 200;
const CASE: &str = "1 writer, 200 B";

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "3. Durable write: write -> durably stored, one writer",
        Kind::Latency,
    );
    let iterations = ctx.pick(500, 50);
    let budget = ctx.budget();
    match &ctx.etcd {
        Ok(endpoint) => {
            let r = async {
                let client = etcd::connect(endpoint).await?;
                sequential(iterations, budget, |seq| {
                    let mut client = client.clone();
                    async move {
                        etcd::put(&mut client, "bench/durable", &filler_bytes(SIZE, seq))
                            .await
                            .map(drop)
                    }
                })
                .await
            };
            section.record(CASE, ETCD, r.await.map(Samples::summarize));
        }
        Err(why) => section.not_run(CASE, ETCD, why.clone()),
    }
    match &ctx.nats {
        Ok(url) => {
            let r = async {
                let store = nats::store(url, "durable").await?;
                sequential(iterations, budget, |seq| {
                    let store = store.clone();
                    async move {
                        store.put("k", filler_bytes(SIZE, seq)).await?;
                        anyhow::Ok(())
                    }
                })
                .await
            };
            section.record(
                CASE,
                &format!("{NATS} (no per-write fsync)"),
                r.await.map(Samples::summarize),
            );
        }
        Err(why) => section.not_run(CASE, NATS, why.clone()),
    }
    let tk = durable_submits(ctx, "durable-write", iterations, budget);
    section.record(CASE, TIKACONF, tk.await.map(Samples::summarize));
    section.ratio_target(CASE, ETCD, Metric::P50, 1.0);
    Ok(section)
}

/// Sequential `submit`s of 200 B patches on the root of `workload`, each timed
/// until `Committed`.
pub async fn durable_submits(
    ctx: &Ctx,
    workload: &str,
    iterations: usize,
    budget: Duration,
) -> anyhow::Result<Samples> {
    let client = deploy::client(&ctx.redis_url).await?;
    let config = client.follow(bench_root(workload, 0)).await?;
    let value_len = value_len_for_patch(SIZE);
    sequential(iterations, budget, |seq| {
        let config = config.clone();
        async move {
            let op = if seq == 0 { "add" } else { "replace" };
            config.submit(set_ops(op, filler(value_len, seq))).await?;
            anyhow::Ok(())
        }
    })
    .await
}

/// Runs `op(seq)` one after another (5 untimed warm-ups first), timing each.
pub async fn sequential<F, Fut>(
    iterations: usize,
    budget: Duration,
    mut op: F,
) -> anyhow::Result<Samples>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for seq in 0..5 {
        op(seq).await?;
    }
    let mut samples = Samples::new();
    let start = Instant::now();
    for seq in 5..5 + iterations as u64 {
        let t0 = Instant::now();
        op(seq).await?;
        samples.push(t0.elapsed());
        samples.add_ops(1);
        if start.elapsed() > budget {
            break;
        }
    }
    samples.set_wall(start.elapsed());
    Ok(samples)
}
