//! Time of one `RedbStore::commit` of a 1-commit batch with a 1 KiB snapshot, the
//! storage node's per-write durable cost at low load.
//!
//! ```text
//! cargo run --release -p tikaconf-store --example commit_latency [ITERATIONS] [DIR]
//! ```
//!
//! The store goes in a temporary directory under `DIR` (default: the system
//! temporary directory, which must be on a real disk for the figure to mean
//! anything). Prints the median and tail of the per-commit times; no assertion.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tikaconf_store::conformance::{genesis, next, step, unique_root};
use tikaconf_store::{CommitOutcome, RedbStore, Store};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args
        .next()
        .map(|n| n.parse().expect("ITERATIONS is a number"))
        .unwrap_or(500);
    let base = args.next().map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let store = tokio::task::spawn_blocking({
        let path = dir.path().to_path_buf();
        move || RedbStore::open(path)
    })
    .await
    .expect("open task")
    .expect("open");
    let mut head = store
        .register(genesis(unique_root("latency")))
        .await
        .expect("register");
    let mut times = Vec::with_capacity(iterations);
    for i in 0..iterations + 20 {
        let mut new = next(&head, &format!("{i}"));
        new.snapshot = Bytes::from(vec![b'x'; 1024]);
        let start = Instant::now();
        let outcomes = store.commit(vec![step(&head, &new)]).await.expect("commit");
        let took = start.elapsed();
        assert_eq!(outcomes, [CommitOutcome::Applied]);
        head = new;
        // The first few warm the file and the blocking pool.
        if i >= 20 {
            times.push(took);
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "RedbStore::commit, 1 commit, 1 KiB snapshot, {} runs: median {:?}  p10 {:?}  p90 {:?}  p99 {:?}  mean {:?}",
        times.len(),
        at(0.5),
        at(0.1),
        at(0.9),
        at(0.99),
        mean
    );
}
