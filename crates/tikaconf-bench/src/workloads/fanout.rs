//! Workload 8, fan-out: 1,000 followers of one root, each a client with its own
//! connections; how long until a patch is applied at every follower (the last
//! one's receipt), against raw Redis publishing to 1,000 subscriber connections.
//!
//! At this width the cost that matters is per follower and per message: Redis
//! writes the message 1,000 times and every follower decodes, validates and
//! applies it on a machine with two cores, so the time to the last follower is
//! the CPU cost of the whole fleet in one place.

use tokio::time::Instant;

use super::propagation::{RawCase, TkCase, read_note};
use super::{Ctx, RAW_REDIS};
use crate::cpu::CpuMeter;
use crate::deploy;
use crate::report::{Kind, Metric, Section, TIKACONF};
use crate::stats::Samples;

const SIZE: usize = 200;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let n = ctx.pick(1000, 200);
    let iterations = ctx.pick(100, 10);
    let mut section = Section::new(
        format!("8. Fan-out: {n} followers of one root, 200 B patches"),
        Kind::Latency,
    );
    let all_case = format!("{n} followers: all applied");
    let each_case = format!("{n} followers: each");
    let budget = ctx.budget();

    let raw = async {
        let mut case = RawCase::new(&ctx.redis_url, n, 0, "fanout", SIZE).await?;
        let start = Instant::now();
        let cpu = CpuMeter::start(&[("receivers and writer", None), ("redis", ctx.pids.redis)]);
        let each = case.run(iterations, budget).await?;
        let cpu = cpu.per_op(
            RAW_REDIS,
            "receipt (one receiver, one update)",
            each.len() as u64,
        );
        let mut all = std::mem::take(&mut case.all);
        all.add_ops(iterations as u64);
        all.set_wall(start.elapsed());
        anyhow::Ok((each, all, cpu))
    };
    let raw = raw.await.map(|(each, all, cpu)| {
        section.note(cpu);
        (each, all)
    });
    record(&mut section, &each_case, &all_case, RAW_REDIS, raw);

    let tk = async {
        let followers = deploy::clients(&ctx.redis_url, n).await?;
        let writer = deploy::client(&ctx.redis_url).await?;
        let mut case = TkCase::new(&writer, &followers, "fanout", SIZE).await?;
        let start = Instant::now();
        let cpu = CpuMeter::start(&[
            ("receivers and writer", None),
            ("storage", ctx.pids.storage),
            ("redis", ctx.pids.redis),
        ]);
        let each = case.run(iterations, budget).await?;
        let cpu = cpu.per_op(
            TIKACONF,
            "receipt (one receiver, one update)",
            each.len() as u64,
        );
        let mut all = std::mem::take(&mut case.all);
        all.add_ops(iterations as u64);
        all.set_wall(start.elapsed());
        anyhow::Ok((each, all, case.resyncs, std::mem::take(&mut case.read), cpu))
    };
    let tk = tk.await.map(|(each, all, resyncs, read, cpu)| {
        section.note(cpu);
        section.note(read_note(&each_case, read));
        if resyncs > 0 {
            section.note(format!(
                "{resyncs} receipts came by re-sync (a missed patch healed from storage)"
            ));
        }
        (each, all)
    });
    record(&mut section, &each_case, &all_case, TIKACONF, tk);

    section.ratio_target(&all_case, RAW_REDIS, Metric::P99, 1.3);
    Ok(section)
}

fn record(
    section: &mut Section,
    each_case: &str,
    all_case: &str,
    system: &str,
    result: anyhow::Result<(Samples, Samples)>,
) {
    match result {
        Ok((each, all)) => {
            section.ran(all_case, system, all.summarize());
            section.ran(each_case, system, each.summarize());
        }
        Err(e) => {
            section.not_run(all_case, system, format!("failed: {e:#}"));
            section.not_run(each_case, system, format!("failed: {e:#}"));
        }
    }
}
