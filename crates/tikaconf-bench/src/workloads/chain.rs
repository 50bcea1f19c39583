//! Workload 5, one root's chain: sequential updates of one root, each waiting
//! for `Committed` before the next, with 1 and 10 followers; against etcd
//! compare-and-swap from one client (with as many watchers as followers), and
//! against the raw hop-and-acknowledge chain on Redis.
//!
//! The raw chain is the floor of tikaconf's design: every update goes on a new
//! channel (`updates:<parent>`), so the writer and every follower must
//! re-subscribe after each one, and the writer waits for an acknowledgement from
//! a responder that listens on a pattern (storage's `updates:*`). It does no
//! fsync; the distance between it and tikaconf is decoding, applying, hashing,
//! and storage's durable commit.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::durable_write::sequential;
use super::{Ctx, ETCD, RAW_REDIS, RECEIPT_TIMEOUT, Tasks, bench_root, filler, filler_bytes};
use super::{set_ops, value_len_for_patch};
use crate::baselines::{etcd, raw_redis};
use crate::deploy;
use crate::report::{Kind, Metric, Section, TIKACONF};
use crate::stats::Samples;

const SIZE: usize = 200;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "5. One root's chain: sequential updates, each waiting for Committed",
        Kind::Throughput,
    );
    let iterations = ctx.pick(1000, 100);
    let budget = ctx.budget();
    for followers in [1usize, 10] {
        let case = format!(
            "{followers} follower{}",
            if followers == 1 { "" } else { "s" }
        );
        match &ctx.etcd {
            Ok(endpoint) => section.record(
                &case,
                &format!("{ETCD} cas"),
                etcd_cas(endpoint, followers, iterations, budget)
                    .await
                    .map(Samples::summarize),
            ),
            Err(why) => section.not_run(&case, &format!("{ETCD} cas"), why.clone()),
        }
        section.record(
            &case,
            &format!("{RAW_REDIS} hop+ack"),
            raw_chain(&ctx.redis_url, followers, iterations, budget)
                .await
                .map(Samples::summarize),
        );
        section.record(
            &case,
            TIKACONF,
            tikaconf_chain(&ctx.redis_url, followers, iterations, budget)
                .await
                .map(Samples::summarize),
        );
        section.ratio_target(&case, &format!("{ETCD} cas"), Metric::Throughput, 1.2);
    }
    section.note("throughput = sequential updates per second on one root; latency = one update until durable (tikaconf, etcd) or acknowledged (raw)");
    Ok(section)
}

async fn tikaconf_chain(
    redis_url: &str,
    followers: usize,
    iterations: usize,
    budget: Duration,
) -> anyhow::Result<Samples> {
    let root = bench_root("chain", followers);
    let writer = deploy::client(redis_url).await?;
    let config = writer.follow(root.clone()).await?;
    let others = deploy::clients(redis_url, followers).await?;
    let follows = others.iter().map(|c| c.follow(root.hash()));
    let _followers = futures_util::future::try_join_all(follows).await?;
    let value_len = value_len_for_patch(SIZE);
    sequential(iterations, budget, |seq| {
        let config = config.clone();
        async move {
            config
                .submit(set_ops("add", filler(value_len, seq)))
                .await?;
            anyhow::Ok(())
        }
    })
    .await
}

async fn etcd_cas(
    endpoint: &str,
    watchers: usize,
    iterations: usize,
    budget: Duration,
) -> anyhow::Result<Samples> {
    let key = format!("bench/chain/{watchers}");
    let mut tasks = Tasks::default();
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut watch_clients = Vec::new();
    for _ in 0..watchers {
        let mut client = etcd::connect(endpoint).await?;
        tasks.push(etcd::watch(&mut client, &key, tx.clone()).await?);
        watch_clients.push(client);
    }
    let client = etcd::connect(endpoint).await?;
    let revision = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    sequential(iterations, budget, |seq| {
        let mut client = client.clone();
        let (key, revision) = (key.clone(), revision.clone());
        async move {
            let expected = revision.load(std::sync::atomic::Ordering::Relaxed);
            let new = etcd::cas(&mut client, &key, expected, &filler_bytes(SIZE, seq))
                .await?
                .context("etcd compare-and-swap lost with a single writer")?;
            revision.store(new, std::sync::atomic::Ordering::Relaxed);
            anyhow::Ok(())
        }
    })
    .await
}

/// The raw chain: the writer publishes update `n` on `chain:n`, the responder
/// (pattern-subscribed) acknowledges on a fixed channel, and the writer and
/// every follower move their subscription from `chain:n` to `chain:n+1` when
/// they receive update `n`.
async fn raw_chain(
    redis_url: &str,
    followers: usize,
    iterations: usize,
    budget: Duration,
) -> anyhow::Result<Samples> {
    let prefix = format!("chain{followers}:");
    let ack_channel = format!("chainack{followers}");
    let mut tasks = Tasks::default();

    // The responder: storage's role, minus the store.
    let mut responder = raw_redis::hopper(redis_url).await?;
    responder.sink.psubscribe(format!("{}*", prefix)).await?;
    let mut ack_conn = raw_redis::publisher(redis_url).await?;
    let ack = ack_channel.clone();
    tasks.push(responder.task);
    tasks.push(tokio::spawn(async move {
        let _sink = responder.sink;
        while let Some((channel, _payload, _at)) = responder.rx.recv().await {
            let n = channel.rsplit(':').next().unwrap_or("0").to_owned();
            if raw_redis::publish(&mut ack_conn, &ack, n.as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    }));

    // Followers hop along.
    for _ in 0..followers {
        let mut f = raw_redis::hopper(redis_url).await?;
        f.sink.subscribe(format!("{prefix}0")).await?;
        let prefix = prefix.clone();
        tasks.push(f.task);
        tasks.push(tokio::spawn(async move {
            while let Some((channel, _payload, _at)) = f.rx.recv().await {
                let Some(n) = channel
                    .rsplit(':')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                if f.sink
                    .subscribe(format!("{prefix}{}", n + 1))
                    .await
                    .is_err()
                    || f.sink.unsubscribe(&channel).await.is_err()
                {
                    return;
                }
            }
        }));
    }

    // The writer.
    let mut w = raw_redis::hopper(redis_url).await?;
    w.sink.subscribe(&ack_channel).await?;
    w.sink.subscribe(format!("{prefix}0")).await?;
    tasks.push(w.task);
    let mut publisher = raw_redis::publisher(redis_url).await?;
    let mut n = 0u64;
    let mut step = async |seq: u64| -> anyhow::Result<()> {
        let channel = format!("{prefix}{n}");
        raw_redis::publish(&mut publisher, &channel, &filler_bytes(SIZE, seq)).await?;
        let (mut hopped, mut acked) = (false, false);
        while !(hopped && acked) {
            let (on, payload, _at): (String, Bytes, Instant) =
                tokio::time::timeout(RECEIPT_TIMEOUT, w.rx.recv())
                    .await
                    .context("raw chain stalled")?
                    .context("raw chain closed")?;
            if on == channel {
                w.sink.subscribe(format!("{prefix}{}", n + 1)).await?;
                w.sink.unsubscribe(&channel).await?;
                hopped = true;
            } else if on == ack_channel && payload.as_ref() == n.to_string().as_bytes() {
                acked = true;
            }
        }
        n += 1;
        Ok(())
    };
    for seq in 0..5 {
        step(seq).await?;
    }
    let mut samples = Samples::new();
    let start = Instant::now();
    for seq in 5..5 + iterations as u64 {
        let t0 = Instant::now();
        step(seq).await?;
        samples.push(t0.elapsed());
        samples.add_ops(1);
        if start.elapsed() > budget {
            break;
        }
    }
    samples.set_wall(start.elapsed());
    drop(tasks);
    Ok(samples)
}
