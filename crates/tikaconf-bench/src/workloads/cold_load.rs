//! Workload 6, cold load: `follow(root)` until the document is ready, for
//! documents of about 1 KiB, 100 KiB and 1 MiB; against the raw floor: subscribe
//! to a channel, publish a request, and receive the same number of bytes from a
//! responder that holds them in memory.
//!
//! tikaconf's path adds, on the storage side, a store read (redb) and, on the
//! follower's, strict parsing and validation of the snapshot (one pass, which
//! also finds the bytes canonical, so they are kept rather than re-encoded),
//! and the adoption rule. The raw floor has none of these, so the
//! ratio shows what loading costs beyond moving the bytes.
//!
//! Each tikaconf sample is a load of a root the reader does not follow: the
//! reader unfollows it after each load. Tearing that follower down (freeing a
//! document of up to a megabyte, some 20,000 allocations) is the previous
//! load's cost, not the next one's, so the loop waits for the reader's hub to
//! have done it before it starts the clock again: a `follow` of a small root
//! the reader keeps, which the hub answers only after the unfollow queued
//! before it.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Map, Value, json};
use tikaconf::proto::{Limits, Message, Snapshot, canonical};
use tokio::time::Instant;

use super::{Ctx, RAW_REDIS, RECEIPT_TIMEOUT, Tasks, bench_root};
use crate::baselines::raw_redis;
use crate::deploy;
use crate::report::{Kind, Metric, Section, TIKACONF};
use crate::stats::Samples;

/// Largest document tried: just under what a 1 MiB message can carry.
const ONE_MIB_DOC: usize = 1_040_000;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "6. Cold load: follow(root) -> document ready",
        Kind::Latency,
    );
    let writer = deploy::client(&ctx.redis_url).await?;
    let reader = deploy::client(&ctx.redis_url).await?;
    let barrier = bench_root("cold-load", "barrier");
    let _kept = reader.follow(barrier.clone()).await?;
    let cases = [
        ("1 KiB", 1024usize, ctx.pick(300, 30)),
        ("100 KiB", 100 * 1024, ctx.pick(200, 20)),
        ("1 MiB", ONE_MIB_DOC, ctx.pick(60, 6)),
    ];
    for (name, size, iterations) in cases {
        let root = bench_root("cold-load", name);
        // Make the document: one patch adding a map of ~100-byte commands.
        let config = writer.follow(root.clone()).await?;
        config
            .submit(json!([{"op": "add", "path": "/commands", "value": commands(size)}]))
            .await?;
        let doc_len = canonical::encoded_len(&config.document());
        let snapshot = Snapshot::new(
            root.hash(),
            config.head(),
            config.height(),
            (*config.document()).clone(),
        );
        let case = format!("{name} document");
        section.note(format!(
            "{case}: canonical document {doc_len} B, snapshot message {} B; decoding and \
             validating it into a document takes p50 {} in a hot loop (what a follower does \
             that the raw floor does not)",
            snapshot.encoded.len(),
            crate::stats::fmt_duration(decode_time(&snapshot.encoded)),
        ));
        let budget = ctx.budget();
        section.record(
            &case,
            RAW_REDIS,
            raw_floor(
                &ctx.redis_url,
                name,
                snapshot.encoded.clone(),
                iterations,
                budget,
            )
            .await
            .map(Samples::summarize),
        );
        let tk = async {
            let mut samples = Samples::new();
            let expected = config.head();
            let start = Instant::now();
            for i in 0..iterations + 3 {
                let t0 = Instant::now();
                let loaded = reader.follow(root.hash()).await?;
                let took = t0.elapsed();
                anyhow::ensure!(loaded.head() == expected, "loaded a different head");
                drop(loaded);
                drop(reader.follow(barrier.hash()).await?);
                if i >= 3 {
                    samples.push(took);
                    samples.add_ops(1);
                }
                if start.elapsed() > budget {
                    break;
                }
            }
            samples.wall_from_latencies();
            anyhow::Ok(samples)
        };
        section.record(&case, TIKACONF, tk.await.map(Samples::summarize));
    }
    for (name, _, _) in cases {
        section.ratio_target(&format!("{name} document"), RAW_REDIS, Metric::P50, 1.5);
    }
    section.note("throughput = sequential loads per second");
    Ok(section)
}

/// The median time of `Message::decode` of `snapshot` (freeing the result
/// not included: a cold load has no document to free).
fn decode_time(snapshot: &[u8]) -> Duration {
    let limits = Limits::default();
    let mut times: Vec<Duration> = (0..21)
        .map(|_| {
            let t0 = std::time::Instant::now();
            let decoded = std::hint::black_box(Message::decode(snapshot, &limits));
            let took = t0.elapsed();
            drop(decoded);
            took
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

/// `{"!cmd00000": "...", ...}` of about `size` canonical bytes.
fn commands(size: usize) -> Value {
    let mut map = Map::new();
    let mut total = 2;
    let mut i = 0;
    while total + 110 < size {
        let key = format!("!cmd{i:06}");
        let text: String = (0..95)
            .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
            .collect();
        total += key.len() + text.len() + 6;
        map.insert(key, Value::String(text));
        i += 1;
    }
    Value::Object(map)
}

/// Subscribe, request, receive `bytes` from an in-memory responder.
async fn raw_floor(
    url: &str,
    name: &str,
    bytes: bytes::Bytes,
    iterations: usize,
    budget: Duration,
) -> anyhow::Result<Samples> {
    let request_channel = format!("coldreq:{name}");
    let mut tasks = Tasks::default();
    let mut responder = raw_redis::hopper(url).await?;
    responder.sink.subscribe(&request_channel).await?;
    let mut answer = raw_redis::publisher(url).await?;
    tasks.push(responder.task);
    tasks.push(tokio::spawn(async move {
        let _sink = responder.sink;
        while let Some((_channel, reply_to, _at)) = responder.rx.recv().await {
            let reply_to = String::from_utf8_lossy(&reply_to).into_owned();
            if raw_redis::publish(&mut answer, &reply_to, &bytes)
                .await
                .is_err()
            {
                return;
            }
        }
    }));
    let mut me = raw_redis::hopper(url).await?;
    let mut requests = raw_redis::publisher(url).await?;
    tasks.push(me.task);
    let mut samples = Samples::new();
    let start = Instant::now();
    for i in 0..iterations + 3 {
        let channel = format!("coldload:{name}:{i}");
        let t0 = Instant::now();
        me.sink.subscribe(&channel).await?;
        raw_redis::publish(&mut requests, &request_channel, channel.as_bytes()).await?;
        let (_on, payload, at) = tokio::time::timeout(RECEIPT_TIMEOUT, me.rx.recv())
            .await
            .context("the raw responder did not answer")?
            .context("raw subscriber closed")?;
        let took = at - t0;
        anyhow::ensure!(!payload.is_empty(), "empty answer");
        me.sink.unsubscribe(&channel).await?;
        if i >= 3 {
            samples.push(took);
            samples.add_ops(1);
        }
        if start.elapsed() > budget {
            break;
        }
    }
    samples.wall_from_latencies();
    Ok(samples)
}
