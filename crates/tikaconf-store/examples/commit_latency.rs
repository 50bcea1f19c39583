//! Time of one `RedbStore::commit`: the storage node's durable cost per batch.
//!
//! ```text
//! cargo run --release -p tikaconf-store --example commit_latency [ITERATIONS] [BATCH] [DIR]
//! ```
//!
//! Each batch holds BATCH commits (default 1), each on its own root, taken
//! round-robin from 1,000 registered roots (as in the benchmark's durable
//! throughput workload), each with a 1 KiB snapshot. The store goes in a temporary
//! directory under DIR (default: the system temporary directory, which must be on
//! a real disk for the figure to mean anything). Prints the median and tail of the
//! per-batch times; no assertion.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tikaconf_store::conformance::{genesis, next, step, unique_root};
use tikaconf_store::{PersistOutcome, RedbStore, Store};

const ROOTS: usize = 1000;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args
        .next()
        .map(|n| n.parse().expect("ITERATIONS is a number"))
        .unwrap_or(500);
    let batch: usize = args
        .next()
        .map(|n| n.parse().expect("BATCH is a number"))
        .unwrap_or(1)
        .clamp(1, ROOTS);
    let base = args.next().map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let store = tokio::task::spawn_blocking({
        let path = dir.path().to_path_buf();
        move || RedbStore::open(path)
    })
    .await
    .expect("open task")
    .expect("open");
    let roots = if batch == 1 { 1 } else { ROOTS };
    let mut heads = Vec::with_capacity(roots);
    for i in 0..roots {
        let root = unique_root(&format!("latency{i}"));
        heads.push(store.register(genesis(root)).await.expect("register"));
    }
    let mut times = Vec::with_capacity(iterations);
    let mut at = 0;
    for i in 0..iterations + 20 {
        let mut commits = Vec::with_capacity(batch);
        let mut news = Vec::with_capacity(batch);
        for _ in 0..batch {
            let k = at % roots;
            at += 1;
            let mut new = next(&heads[k], &format!("{i}"));
            new.snapshot = Bytes::from(vec![b'x'; 1024]);
            commits.push(step(&heads[k], &new));
            news.push((k, new));
        }
        let start = Instant::now();
        let outcomes = store.commit(commits).await.expect("commit");
        let took = start.elapsed();
        assert!(outcomes.iter().all(|o| *o == PersistOutcome::Applied));
        for (k, new) in news {
            heads[k] = new;
        }
        // The first few warm the file and the blocking pool.
        if i >= 20 {
            times.push(took);
        }
    }
    times.sort();
    let q = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "RedbStore::commit, {batch} commit(s) per batch, 1 KiB snapshots, {} runs: median {:?}  p10 {:?}  p90 {:?}  p99 {:?}  mean {:?}",
        times.len(),
        q(0.5),
        q(0.1),
        q(0.9),
        q(0.99),
        mean
    );
}
