//! Size of a redb store filled like tikaconf-bench's workload 7 (N roots, each
//! registered then moved to height 1 with a 1 KiB snapshot, 1,000 per batch),
//! and redb's own accounting of where the bytes go (`fragmented_bytes`: pages
//! freed by copy-on-write and not yet reused, which the file's size includes).
//! Issue 13 used it to choose where redb keeps registrations: 312 MB without
//! them, 552-562 MB keyed by root hash, 332 MB appended in order; with
//! `PAD=200` (registrations of ~390 B) 570 MB against 327 MB without them, all
//! of the difference free space at the file's end (see PERFORMANCE.md).
//!
//! ```sh
//! cargo run --release -p tikaconf-store --example fill_size -- 100000
//! ```

use bytes::Bytes;
use tikaconf_store::conformance::{genesis, next, step, unique_root};
use tikaconf_store::{RedbStore, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(100_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let store = RedbStore::open(dir.path())?;
    let filler = "x".repeat(1024);
    // PAD=N makes each registration snapshot N bytes longer (~190 B without).
    let pad: usize = std::env::var("PAD").map_or(Ok(0), |p| p.parse())?;
    let roots: Vec<usize> = (0..n).collect();
    for chunk in roots.chunks(1000) {
        let mut commits = Vec::new();
        let mut registering = tokio::task::JoinSet::new();

        for &i in chunk {
            let mut g = genesis(unique_root(&format!("fill-{i}")));
            g.snapshot = Bytes::from(format!(
                "{}{}",
                String::from_utf8_lossy(&g.snapshot),
                "y".repeat(pad)
            ));
            let mut h1 = next(&g, "1");
            h1.snapshot = Bytes::from(format!("{}{filler}", String::from_utf8_lossy(&h1.snapshot)));
            // Without its patch: the figures above are of heads alone (see
            // the history_size example for what history adds).
            let mut commit = step(&g, &h1);
            commit.patch = None;
            commits.push(commit);
            let store = store.clone();
            registering.spawn(async move { store.register(g).await });
        }
        // Concurrently, as tikaconf-bench's fill does.
        while let Some(registered) = registering.join_next().await {
            registered??;
        }
        store.commit(commits).await?;
    }
    let path = store.path().to_path_buf();
    drop(store);
    println!(
        "{n} roots: file {:.1} MB",
        std::fs::metadata(&path)?.len() as f64 / 1e6
    );
    let db = redb::Database::open(&path)?;
    let txn = db.begin_write()?;
    println!("{:?}", txn.stats()?);
    {
        use redb::ReadableTableMetadata;
        let regs: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("registrations");
        println!("registrations: {:?}", txn.open_table(regs)?.stats()?);
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        println!("meta: {:?}", txn.open_table(meta)?.stats()?);
    }
    for name in ["roots", "snapshots"] {
        let def: redb::TableDefinition<[u8; 32], &[u8]> = redb::TableDefinition::new(name);
        if let Ok(table) = txn.open_table(def) {
            use redb::ReadableTableMetadata;
            println!("{name}: {:?}", table.stats()?);
        }
    }
    Ok(())
}
