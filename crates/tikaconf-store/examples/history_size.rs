//! What a root's history costs on disk in a redb store: R roots, each moved
//! through P heights (one commit per root per batch, so consecutive inserts
//! land at scattered places of the `patches` B-tree, as real traffic does),
//! each commit with a 1 KiB snapshot and a patch of S bytes, under the
//! retentions `none`, `all` and `last P/10`. Prints the file's size and
//! redb's accounting of the `patches` table for each.
//!
//! ```sh
//! cargo run --release -p tikaconf-store --example history_size -- 100 1000 200
//! ```

use std::num::NonZeroU32;

use bytes::Bytes;
use redb::ReadableTableMetadata;
use tikaconf_store::conformance::{genesis, next, step, unique_root};
use tikaconf_store::{RedbStore, Retention, Store, StoreOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| -> Result<usize, std::num::ParseIntError> {
        std::env::args().nth(i).map_or(Ok(default), |a| a.parse())
    };
    let (roots, heights, patch_len) = (arg(1, 100)?, arg(2, 1000)?, arg(3, 200)?);
    let window = NonZeroU32::new(u32::try_from(heights / 10)?.max(1)).expect("non-zero");
    let filler = "x".repeat(1024);
    for retention in [Retention::None, Retention::All, Retention::Last(window)] {
        let dir = tempfile::tempdir()?;
        let options = StoreOptions::default().with_retention(retention);
        let store = RedbStore::open_with(dir.path(), options)?;
        let mut heads = Vec::with_capacity(roots);
        for i in 0..roots {
            let g = genesis(unique_root(&format!("history-{i}")));
            store.register(g.clone()).await?;
            heads.push(g);
        }
        for h in 1..=heights {
            let mut commits = Vec::with_capacity(roots);
            for head in &mut heads {
                let mut new = next(head, &h.to_string());
                new.snapshot = Bytes::from(format!(
                    "{}{filler}",
                    String::from_utf8_lossy(&new.snapshot)
                ));
                let mut commit = step(head, &new);
                commit.patch = Some(Bytes::from(vec![b'p'; patch_len]));
                commits.push(commit);
                *head = new;
            }
            store.commit(commits).await?;
        }
        let path = store.path().to_path_buf();
        drop(store);
        let size = std::fs::metadata(&path)?.len();
        let db = redb::Database::open(&path)?;
        let txn = db.begin_write()?;
        let stats = txn.stats()?;
        let def: redb::TableDefinition<([u8; 32], u64), &[u8]> =
            redb::TableDefinition::new("patches");
        let patches = txn.open_table(def)?;
        let table = patches.stats()?;
        println!(
            "retention {retention}: {roots} roots x {heights} heights, {patch_len}-byte patches: \
             file {:.1} MB, {} entries, patches table stored {:.1} MB + metadata {:.1} MB + \
             fragmented {:.1} MB; whole file fragmented {:.1} MB",
            size as f64 / 1e6,
            patches.len()?,
            table.stored_bytes() as f64 / 1e6,
            table.metadata_bytes() as f64 / 1e6,
            table.fragmented_bytes() as f64 / 1e6,
            stats.fragmented_bytes() as f64 / 1e6,
        );
    }
    Ok(())
}
