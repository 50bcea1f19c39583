//! Workload 4, durable throughput: 16 concurrent writers, each writing
//! sequentially round-robin over its share of 1,000 roots, every write waited
//! for until durable (`Committed`); against etcd puts from 16 clients over 1,000
//! keys. Committed writes per second over the run's wall time.
//!
//! What makes tikaconf's figure is the storage node's group commit: every patch
//! that arrives while a batch is being fsynced joins the next batch, so 16
//! writers should cost far fewer than 16 fsyncs per round.

use std::time::Duration;

use tikaconf::{Config, RootConfig};
use tokio::time::Instant;

use super::{Ctx, ETCD, bench_root, filler, filler_bytes, set_ops, value_len_for_patch};
use crate::baselines::etcd;
use crate::cpu::CpuMeter;
use crate::deploy;
use crate::report::{Kind, Metric, Section, TIKACONF};
use crate::stats::Samples;

const WRITERS: usize = 16;
const SIZE: usize = 200;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let roots = ctx.pick(1000, 160);
    let case = format!("{WRITERS} writers, {roots} roots, 200 B");
    let mut section = Section::new(
        "4. Durable throughput: committed writes/s, 16 concurrent writers",
        Kind::Throughput,
    );
    let budget = ctx.pick(Duration::from_secs(10), Duration::from_millis(1500));
    let cap = ctx.pick(100_000, 10_000);
    match &ctx.etcd {
        Ok(endpoint) => {
            let processes = [("clients", None), ("etcd", ctx.pids.etcd)];
            let result = etcd_writers(endpoint, roots, budget, cap, &processes).await;
            let samples = result.map(|(samples, cpu)| {
                section.note(cpu);
                samples
            });
            section.record(&case, ETCD, samples.map(Samples::summarize));
        }
        Err(why) => section.not_run(&case, ETCD, why.clone()),
    }
    let processes = [
        ("clients", None),
        ("storage", ctx.pids.storage),
        ("redis", ctx.pids.redis),
    ];
    let (samples, setup) =
        match tikaconf_writers(&ctx.redis_url, roots, budget, cap, &processes).await {
            Ok((s, setup, cpu)) => {
                section.note(cpu);
                (Ok(s), Some(setup))
            }
            Err(e) => (Err(e), None),
        };
    section.record(&case, TIKACONF, samples.map(Samples::summarize));
    if let Some(setup) = setup {
        section.note(format!(
            "registering {roots} roots from {WRITERS} clients took {:.2} s (each a store transaction made durable by a write-ahead log append)",
            setup.as_secs_f64()
        ));
    }
    section.ratio_target(&case, ETCD, Metric::Throughput, 2.0);
    Ok(section)
}

/// Returns the samples and a note of the CPU each committed write cost.
async fn etcd_writers(
    endpoint: &str,
    roots: usize,
    budget: Duration,
    cap: usize,
    processes: &[(&'static str, Option<u32>)],
) -> anyhow::Result<(Samples, String)> {
    let mut clients = Vec::new();
    for _ in 0..WRITERS {
        clients.push(etcd::connect(endpoint).await?);
    }
    let cpu = CpuMeter::start(processes);
    let start = Instant::now();
    let deadline = start + budget;
    let tasks = clients.into_iter().enumerate().map(|(w, mut client)| {
        tokio::spawn(async move {
            let keys: Vec<String> = (w..roots)
                .step_by(WRITERS)
                .map(|k| format!("bench/throughput/{k}"))
                .collect();
            let mut samples = Samples::new();
            let mut seq = 0u64;
            while Instant::now() < deadline && seq < (cap / WRITERS) as u64 {
                let key = &keys[seq as usize % keys.len()];
                let value = filler_bytes(SIZE, seq);
                let t0 = Instant::now();
                etcd::put(&mut client, key, &value).await?;
                samples.push(t0.elapsed());
                samples.add_ops(1);
                seq += 1;
            }
            anyhow::Ok(samples)
        })
    });
    let samples = collect(futures_util::future::join_all(tasks).await, start)?;
    let cpu = cpu.per_op(ETCD, "committed write", samples.len() as u64);
    Ok((samples, cpu))
}

/// Returns the samples, how long registering the roots took, and a note of the
/// CPU each committed write cost (registering not included).
async fn tikaconf_writers(
    redis_url: &str,
    roots: usize,
    budget: Duration,
    cap: usize,
    processes: &[(&'static str, Option<u32>)],
) -> anyhow::Result<(Samples, Duration, String)> {
    let clients = deploy::clients(redis_url, WRITERS).await?;
    let registering = Instant::now();
    let follows = clients.iter().enumerate().map(|(w, client)| async move {
        let mine: Vec<RootConfig> = (w..roots)
            .step_by(WRITERS)
            .map(|k| bench_root("throughput", k))
            .collect();
        let follows = mine.into_iter().map(|r| client.follow(r));
        futures_util::future::try_join_all(follows).await
    });
    let configs: Vec<Vec<Config>> = futures_util::future::try_join_all(follows).await?;
    let setup = registering.elapsed();
    let value_len = value_len_for_patch(SIZE);
    let cpu = CpuMeter::start(processes);
    let start = Instant::now();
    let deadline = start + budget;
    let tasks = configs.into_iter().map(|configs| {
        tokio::spawn(async move {
            let mut samples = Samples::new();
            let mut seq = 0u64;
            while Instant::now() < deadline && seq < (cap / WRITERS) as u64 {
                let config = &configs[seq as usize % configs.len()];
                let ops = set_ops("add", filler(value_len, seq));
                let t0 = Instant::now();
                config.submit(ops).await?;
                samples.push(t0.elapsed());
                samples.add_ops(1);
                seq += 1;
            }
            anyhow::Ok(samples)
        })
    });
    let samples = collect(futures_util::future::join_all(tasks).await, start)?;
    let cpu = cpu.per_op(TIKACONF, "committed write", samples.len() as u64);
    drop(clients);
    Ok((samples, setup, cpu))
}

fn collect(
    results: Vec<Result<anyhow::Result<Samples>, tokio::task::JoinError>>,
    start: Instant,
) -> anyhow::Result<Samples> {
    let wall = start.elapsed();
    let mut all = Samples::new();
    for r in results {
        all.merge(r??);
    }
    all.set_wall(wall);
    Ok(all)
}
