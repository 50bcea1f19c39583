//! Bytes a redb store writes per commit of a small change to a document of a
//! given size (issue 14, item 6): every commit today writes the whole new
//! snapshot (in the write-ahead log's record and in the database), so a 200 B
//! change to a 1 MiB document costs over a megabyte.
//!
//! One root is moved through `COMMITS` heads, one commit per batch (a storage
//! node under a light load), each with a snapshot of `SIZE` bytes and a patch
//! of 200 B, under the given retention. What the process hands the kernel
//! (`wchar` of `/proc/self/io`: every `write`/`pwrite`, the log's and redb's)
//! is divided by the number of commits. (redb's own commits between
//! checkpoints are not synced and write little: nearly all of it is the
//! write-ahead log's records, each carrying the whole snapshot, and the
//! checkpoints' durable commits.)
//!
//! ```sh
//! cargo run --release -p tikaconf-store --example commit_bytes -- 10240 1000 all
//! cargo run --release -p tikaconf-store --example commit_bytes -- 1048576 200 all
//! ```

use bytes::Bytes;
use tikaconf_store::conformance::{genesis, next, unique_root};
use tikaconf_store::{PersistCommit, RedbStore, Retention, Store, StoreOptions};

/// What this process has written so far (`wchar`), or 0 where `/proc` has no
/// such file (then the figure is not measured, and said so).
fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar: ").and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().map_or(Ok(10 * 1024), |a| a.parse())?;
    let commits: u64 = args.next().map_or(Ok(1000), |a| a.parse())?;
    let retention: Retention = args
        .next()
        .map_or(Ok(Retention::default()), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let store = RedbStore::open_with(
        dir.path(),
        StoreOptions::default().with_retention(retention),
    )?;
    let mut head = genesis(unique_root("commit-bytes"));
    store.register(head.clone()).await?;
    let filler = "x".repeat(size);
    let change = "y".repeat(200);
    let before = written();
    for i in 0..commits {
        let mut new = next(&head, &i.to_string());
        new.snapshot = Bytes::from(format!(
            "{}{filler}",
            String::from_utf8_lossy(&new.snapshot)
        ));
        let commit = PersistCommit {
            expected_head: head.head,
            new: new.clone(),
            patch: Some(Bytes::from(format!(
                "{{\"height\":{},\"v\":\"{change}\"}}",
                new.height
            ))),
        };
        store.commit(vec![commit]).await?;
        head = new;
    }
    let total = written() - before;
    drop(store);
    if total == 0 {
        println!("/proc/self/io not readable here: nothing measured");
        return Ok(());
    }
    println!(
        "document {size} B, {commits} commits of 200 B, retention {retention}: {:.0} B written per \
         commit ({:.1}x the document)",
        total as f64 / commits as f64,
        total as f64 / commits as f64 / size as f64,
    );
    Ok(())
}
