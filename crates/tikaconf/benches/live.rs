//! The read side's hot path: what a bot pays to read its configuration on
//! every chat message, on a document of about 10 KiB (175 commands, a few
//! timers and permissions).
//!
//! - `get` is [`Config::get`]: the whole document deserialized on each call.
//! - `typed_load` is [`Live::load`] of [`Config::typed`]: deserialized once
//!   per change, in the background; a read is one `ArcSwap` load.
//! - `at_load` is [`Live::load`] of [`Config::at`]`("/commands")`, a sub-tree.
//! - `typed_load_while_writing` is `typed_load` while another task commits a
//!   change every millisecond, so that every few reads race a swap: a reader
//!   takes no lock the writer or the view's task holds, so it should cost
//!   about the same.
//!
//! Each read also looks one command up, as a bot would. Run with
//! `cargo bench -p tikaconf --bench live`; docs/PERFORMANCE.md has the ratios.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use serde_json::{Value, json};
use tikaconf::Config;

/// What the bot deserializes: every part of the document.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read by the deserializer, and kept as a bot would
struct Bot {
    commands: BTreeMap<String, String>,
    timers: BTreeMap<String, u64>,
    permissions: BTreeMap<String, Vec<String>>,
}

/// About 10 KiB of canonical JSON.
fn document() -> Value {
    let commands: serde_json::Map<String, Value> = (0..175)
        .map(|i| {
            (
                format!("!command{i:03}"),
                json!(format!("reply number {i} with a few words of text")),
            )
        })
        .collect();
    json!({
        "commands": commands,
        "timers": {"ad": 600, "hydrate": 1800, "discord": 900},
        "permissions": {"mods": ["alice", "bob"], "vips": ["carol"]},
    })
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let doc = document();
    let bytes = tikaconf::proto::canonical::encoded_len(&doc);
    assert!((9_000..12_000).contains(&bytes), "about 10 KiB: {bytes}");
    let config: Config = runtime.block_on(tikaconf::testing::config(doc));
    let _enter = runtime.enter();
    let typed = config.typed::<Bot>().expect("the document is a Bot");
    let commands = config
        .at::<BTreeMap<String, String>>("/commands")
        .expect("a map of commands");

    let mut group = c.benchmark_group("read_10KiB");
    group.bench_function("get", |b| {
        b.iter(|| {
            let bot: Bot = config.get().expect("a Bot");
            black_box(bot.commands.get("!command075").map(String::len))
        })
    });
    group.bench_function("typed_load", |b| {
        b.iter(|| black_box(typed.load().commands.get("!command075").map(String::len)))
    });
    group.bench_function("at_load", |b| {
        b.iter(|| black_box(commands.load().get("!command075").map(String::len)))
    });

    // A writer changing a timer every millisecond meanwhile.
    let writer = config.clone();
    let writing = runtime.spawn(async move {
        let mut n = 0u64;
        loop {
            n += 1;
            let ops = json!([{"op": "replace", "path": "/timers/ad", "value": n}]);
            if writer.submit(ops).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    group.bench_function("typed_load_while_writing", |b| {
        b.iter(|| black_box(typed.load().commands.get("!command075").map(String::len)))
    });
    group.finish();
    writing.abort();
    assert!(
        config.height() > 2,
        "the writer committed changes during the last run (height {})",
        config.height()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
