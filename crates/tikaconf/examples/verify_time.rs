//! How long a storage node's start-up check of its store takes (issue 14):
//! R roots in a redb store, each registered and moved through P heights by
//! real patches (one `add` of a short string, with `meta`: author, time,
//! message, as the CLI writes them), under the default retention; then the
//! store is closed, reopened, and every root verified with
//! [`tikaconf::verify::verify_store`], as the node's background check does
//! (store reads inline on the calling thread, as on the node's own
//! blocking thread).
//!
//! ```sh
//! cargo run --release -p tikaconf --example verify_time -- 100000 4
//! ```
//!
//! A third argument, a directory, keeps the store there and reuses it on the
//! next run (filling 100,000 roots takes a while); without it a temporary
//! directory is used. The page cache is warm (the file was just written or
//! read): a cold start reads the file from disk first.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tikaconf::proto::{Hash, Limits, Patch, PersistCommit, RootConfig, Snapshot, StoredHead};
use tikaconf::store::{RedbStore, Store};
use tikaconf::verify::{VerifyMetrics, verify_store};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| -> Result<usize, std::num::ParseIntError> {
        std::env::args().nth(i).map_or(Ok(default), |a| a.parse())
    };
    let (roots, heights) = (arg(1, 100_000)?, arg(2, 4)?);
    let temporary = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(3)
        .map_or_else(|| temporary.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&dir)?;

    let store = RedbStore::open(&dir)?;
    let had = store.root_count().await?;
    if had == 0 {
        let began = Instant::now();
        fill(&store, roots, heights).await?;
        println!(
            "filled {roots} roots x {heights} patches in {:.1} s",
            began.elapsed().as_secs_f64()
        );
    } else {
        println!("reusing the {had} roots in {}", dir.display());
    }
    drop(store);
    let size = std::fs::metadata(dir.join(tikaconf::store::FILE_NAME))?.len();

    let began = Instant::now();
    let store = RedbStore::open(&dir)?;
    let opened = began.elapsed();
    let stop = AtomicBool::new(false);
    let metrics = VerifyMetrics::new();
    let summary = verify_store(
        &store,
        &Limits::default(),
        Duration::from_secs(3600),
        Hash::from_bytes(rand::random()),
        &stop,
        &metrics,
    )
    .await?;
    let seconds = summary.elapsed.as_secs_f64();
    println!(
        "file {:.1} MB, opened in {:.2} s; verified {} roots, {} patches, {} broken, \
         {} gaps in {seconds:.2} s ({:.1} us per root, {:.1} us per patch)",
        size as f64 / 1e6,
        opened.as_secs_f64(),
        summary.roots,
        summary.patches,
        summary.broken,
        summary.gaps,
        seconds * 1e6 / summary.roots.max(1) as f64,
        seconds * 1e6 / summary.patches.max(1) as f64,
    );
    assert_eq!(summary.broken, 0, "a store filled by the rules verifies");
    Ok(())
}

/// Registers `roots` roots and moves each through `heights` patches, a
/// thousand roots per batch (one commit per root per batch).
async fn fill(
    store: &RedbStore,
    roots: usize,
    heights: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let limits = Limits::default();
    let mut chains: Vec<(Hash, Hash, Value)> = Vec::with_capacity(roots);
    for i in 0..roots {
        let config = RootConfig::from_connection(json!({"platform": "verify", "id": i}))?;
        let registered = Snapshot::of_root(&config);
        store
            .register(StoredHead {
                root: config.hash(),
                head: config.hash(),
                height: 0,
                snapshot: registered.encoded,
            })
            .await?;
        chains.push((config.hash(), config.hash(), config.into_value()));
    }
    for height in 1..=heights as u64 {
        for batch in chains.chunks_mut(1000) {
            let mut commits = Vec::with_capacity(batch.len());
            for (root, head, document) in batch.iter_mut() {
                let mut meta = Map::new();
                meta.insert("author".into(), json!("ops@example"));
                meta.insert("time".into(), json!("2025-01-01T00:00:00Z"));
                meta.insert("message".into(), json!(format!("change {height}")));
                let ops = json!([{"op": "add", "path": format!("/k{height}"),
                                  "value": format!("value at height {height}")}]);
                let patch = Patch::build(*root, *head, height - 1, ops, Some(meta))?;
                let next = patch.apply_to(*root, height - 1, document, &limits)?;
                let snapshot = Snapshot::new(*root, patch.hash, height, next.clone()).encoded;
                commits.push(PersistCommit {
                    expected_head: *head,
                    new: StoredHead {
                        root: *root,
                        head: patch.hash,
                        height,
                        snapshot,
                    },
                    patch: Some(patch.encoded.clone()),
                });
                *head = patch.hash;
                *document = next;
            }
            store.commit(commits).await?;
        }
    }
    Ok(())
}
