//! One root's chain with followers, over a real `redis-server` this example
//! starts itself, for instruction counts under callgrind: what one follower
//! spends per update it receives (decode, apply, hop, the stored notice, and
//! the Redis client and runtime around them), which wall time on a shared
//! 2-vCPU machine measures only to within tens of percent.
//!
//! ```text
//! cargo build --release -p tikaconf --example receipt_profile
//! valgrind --tool=callgrind --trace-children=no \
//!     target/release/examples/receipt_profile 10 200
//! callgrind_annotate --inclusive=yes callgrind.out.<pid> | head -60
//! ```
//!
//! Arguments: followers (default 10) and updates (default 200). A writer makes
//! the updates one after another, each waiting for `Committed`, and every
//! follower must have applied the last one before the example ends. The
//! storage node runs in this process too; its functions are apart in the
//! output (`storage_node`, `StorageEngine`, `RedbStore`). The whole run is
//! counted, setup included: compare runs of two builds with the same
//! arguments, or divide a function's inclusive count by followers x updates.
//!
//! With `TIKACONF_PROFILE_METRICS=1` in the environment, a Prometheus recorder
//! (`metrics-exporter-prometheus`, no listener) is installed first, so that
//! every series of `tikaconf::metrics` is really recorded, and rendered once
//! at the end: the difference with a run without it is what metrics cost.

use std::time::Duration;

use serde_json::json;
use tikaconf::bus::BusHandle;
use tikaconf::store::RedbStore;
use tikaconf::{Client, RootConfig, StorageNode, StorageOptions};
use tikaconf_test::RedisServer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let followers: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let updates: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let metrics = match std::env::var_os("TIKACONF_PROFILE_METRICS") {
        Some(_) => Some(
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(tikaconf::metrics::SECONDS_BUCKETS)?
                .install_recorder()?,
        ),
        None => None,
    };

    let redis = RedisServer::start();
    let dir = tempfile::tempdir()?;
    let storage = StorageNode::spawn(
        BusHandle::redis(&redis.url()).await?,
        RedbStore::open(dir.path())?,
        StorageOptions::default(),
    );
    storage.ready().await;

    let root = RootConfig::twitch("#receipt_profile")?;
    let writer = Client::connect(&redis.url())
        .await?
        .follow(root.clone())
        .await?;
    let mut configs = Vec::with_capacity(followers);
    for _ in 0..followers {
        let client = Client::connect(&redis.url()).await?;
        configs.push((client.follow(root.clone()).await?, client));
    }

    for i in 0..updates {
        writer
            .submit(json!([{"op": "add", "path": "/counter", "value": i}]))
            .await?;
    }
    let head = writer.head();
    for (config, _) in &configs {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while config.head() != head {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("a follower is stuck at height {}", config.height()).into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!("{followers} followers applied {updates} updates");
    if let Some(metrics) = metrics {
        metrics.run_upkeep();
        let text = metrics.render();
        let applied = text
            .lines()
            .find(|l| l.starts_with("tikaconf_patches_applied_total{role=\"follower\"}"));
        println!("{}", applied.unwrap_or("no follower series recorded"));
    }
    Ok(())
}
