//! Workload 2, visible to others: how long until another node sees a change,
//! tikaconf (publish -> follower applied) against etcd (put -> watch event) and
//! NATS KV (put -> watch entry), 200 B values, one writer and one watcher each.
//!
//! This is the comparison a user choosing a configuration store makes: etcd and
//! NATS KV order the write durably before anyone sees it; tikaconf lets followers
//! apply first and makes durability a separate acknowledgement (workload 3).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::propagation::{TkCase, read_note};
use super::{Ctx, ETCD, NATS, Tasks, await_receipts, filler_bytes};
use crate::baselines::{etcd, nats};
use crate::deploy;
use crate::report::{Kind, Metric, Section, TIKACONF};
use crate::stats::Samples;

const SIZE: usize = 200;
const CASE: &str = "1 watcher, 200 B";

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "2. Visible to others: write -> another node sees it",
        Kind::Latency,
    );
    let iterations = ctx.pick(1000, 100);
    let budget = ctx.budget();

    match &ctx.etcd {
        Ok(endpoint) => section.record(
            CASE,
            ETCD,
            etcd_put_watch(endpoint, "bench/visibility", iterations, budget)
                .await
                .map(Samples::summarize),
        ),
        Err(why) => section.not_run(CASE, ETCD, why.clone()),
    }
    match &ctx.nats {
        Ok(url) => section.record(
            CASE,
            NATS,
            nats_put_watch(url, iterations, budget)
                .await
                .map(Samples::summarize),
        ),
        Err(why) => section.not_run(CASE, NATS, why.clone()),
    }
    let tk = async {
        let writer = deploy::client(&ctx.redis_url).await?;
        let follower = deploy::clients(&ctx.redis_url, 1).await?;
        let mut case = TkCase::new(&writer, &follower, "visibility", SIZE).await?;
        let samples = case.run(iterations, budget).await?;
        anyhow::Ok((samples, std::mem::take(&mut case.read)))
    };
    let tk = tk.await.map(|(samples, read)| {
        section.note(read_note(CASE, read));
        samples
    });
    section.record(CASE, TIKACONF, tk.map(Samples::summarize));
    section.ratio_target(CASE, ETCD, Metric::P50, 0.3);
    Ok(section)
}

/// etcd put -> watch event at another client, on `key`.
pub async fn etcd_put_watch(
    endpoint: &str,
    key: &'static str,
    iterations: usize,
    budget: Duration,
) -> anyhow::Result<Samples> {
    let writer = etcd::connect(endpoint).await?;
    let mut watcher = etcd::connect(endpoint).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _tasks = Tasks(vec![etcd::watch(&mut watcher, key, tx).await?]);
    timed_puts(iterations, budget, &mut rx, |seq| {
        let mut writer = writer.clone();
        async move {
            etcd::put(&mut writer, key, &filler_bytes(SIZE, seq))
                .await
                .map(drop)
        }
    })
    .await
}

async fn nats_put_watch(url: &str, iterations: usize, budget: Duration) -> anyhow::Result<Samples> {
    let bucket = "visibility";
    let store = nats::store(url, bucket).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _tasks = Tasks(vec![nats::watch(url, bucket, "k", tx).await?]);
    timed_puts(iterations, budget, &mut rx, |seq| {
        let store = store.clone();
        async move {
            store.put("k", filler_bytes(SIZE, seq)).await?;
            anyhow::Ok(())
        }
    })
    .await
}

/// Sequential puts, each timed from the call to the watcher's receipt.
pub async fn timed_puts<F, Fut>(
    iterations: usize,
    budget: Duration,
    rx: &mut mpsc::UnboundedReceiver<Instant>,
    mut put: F,
) -> anyhow::Result<Samples>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut each = Vec::new();
    // Warm-up, not timed.
    for seq in 0..5 {
        let t0 = Instant::now();
        put(seq).await?;
        await_receipts(rx, 1, t0, &mut each).await?;
    }
    let mut samples = Samples::new();
    let start = Instant::now();
    for seq in 5..5 + iterations as u64 {
        each.clear();
        let t0 = Instant::now();
        put(seq).await?;
        await_receipts(rx, 1, t0, &mut each).await?;
        samples.push(each[0]);
        samples.add_ops(1);
        if start.elapsed() > budget {
            break;
        }
    }
    samples.set_wall(start.elapsed());
    Ok(samples)
}
