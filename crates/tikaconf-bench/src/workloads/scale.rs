//! Workload 7, scale: 100,000 roots of about 1 KiB in one storage node (store
//! size, restart to ready, RSS), and one process following 10,000 of them over
//! one connection (time until all are loaded, RSS).
//!
//! The store is filled through the `Store` trait (register, then one batched
//! compare-and-set per 1,000 roots to a height-1 head holding ~1 KiB), on tmpfs
//! so that filling does not take 100,000 fsyncs, then copied to the real disk
//! where the storage node runs. Filling is setup, not measured. This workload
//! has a Redis server of its own: the shared storage node would answer
//! "unknown" to load requests for roots only this store holds.
//!
//! Both measured processes are children (storage node, `follow-many` role), so
//! their RSS is theirs alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tikaconf::proto::{Patch, Snapshot, StoredHead};
use tikaconf::store::{PersistCommit, RedbStore, Store};
use tikaconf::{Client, Hash};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use super::{Ctx, bench_root};
use crate::deploy::{self, Storage, rss_bytes};
use crate::report::{Kind, Section};
use crate::servers;
use crate::stats::{Samples, fmt_duration};

const MB: f64 = 1024.0 * 1024.0;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let roots = ctx.pick(100_000, 10_000);
    let followed = ctx.pick(10_000, 1_000);
    let mut section = Section::new(
        format!("7. Scale: {roots} roots in one storage node, {followed} followed by one process"),
        Kind::Latency,
    );
    let redis = servers::redis::start();
    let url = redis.url();

    // Fill a store on tmpfs, then move it to the disk.
    let fill_started = Instant::now();
    let shm = tempfile::Builder::new()
        .prefix("tikaconf-bench-fill-")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })?;
    let (hashes, doc_bytes, filled) = fill(shm.path(), roots).await?;
    let data = deploy::data_dir("tikaconf-bench-scale-")?;
    let file = data.path().join("store.redb");
    // The database and its write-ahead log go together: the log may hold the
    // last batches, and a database whose log is missing refuses to open.
    std::fs::copy(&filled, &file)?;
    let log = |db: &Path| {
        let mut name = db.as_os_str().to_owned();
        name.push(tikaconf::store::LOG_SUFFIX);
        PathBuf::from(name)
    };
    std::fs::copy(log(&filled), log(&file))?;
    drop(shm);
    let store_size = std::fs::metadata(&file)?.len();
    section.note(format!(
        "filled {roots} roots ({:.1} MB of canonical documents) in {:.1} s (setup, on tmpfs)",
        doc_bytes as f64 / MB,
        fill_started.elapsed().as_secs_f64()
    ));

    // First start (cache warm from the copy), then a kill and a restart.
    let (storage, first) = Storage::spawn(&url, &file).await?;
    storage.kill().await;
    let (storage, restart) = Storage::spawn(&url, &file).await?;
    let probe = deploy::client(&url).await?;
    let t0 = Instant::now();
    let _first = probe.follow(hashes[roots / 2]).await?;
    let first_load = t0.elapsed();
    let storage_pid = storage.pid().context("storage pid")?;
    let storage_rss = rss_bytes(storage_pid).unwrap_or(0);

    let case = format!("{roots} roots");
    let mut restarts = Samples::new();
    restarts.push(restart);
    section.ran(
        &format!("{case}: restart -> ready"),
        "tikaconf",
        restarts.summarize(),
    );
    section.note(format!(
        "store file {:.1} MB ({:.2}x the canonical documents); first start -> ready {}; restart -> first load answered {}; storage RSS after restart {:.1} MB",
        store_size as f64 / MB,
        store_size as f64 / doc_bytes as f64,
        fmt_duration(first),
        fmt_duration(restart + first_load),
        storage_rss as f64 / MB,
    ));
    section.absolute_target(
        "storage restart -> ready <= 2 s",
        fmt_duration(restart),
        restart <= Duration::from_secs(2),
    );

    // One process following `followed` roots over one connection.
    let list = data.path().join("roots.txt");
    let step = (roots / followed).max(1);
    let chosen: Vec<String> = hashes
        .iter()
        .step_by(step)
        .take(followed)
        .map(Hash::to_hex)
        .collect();
    std::fs::write(&list, chosen.join("\n"))?;
    let report = follow_many(&url, &list).await?;
    let loaded = Duration::from_secs_f64(report["seconds"].as_f64().unwrap_or(f64::NAN));
    let rss = report["rss"].as_u64().unwrap_or(0);
    let docs = report["doc_bytes"].as_u64().unwrap_or(0);
    let mut loads = Samples::new();
    loads.push(loaded);
    loads.add_ops(report["loaded"].as_u64().unwrap_or(0));
    loads.set_wall(loaded);
    section.ran(
        &format!("{followed} roots: all loaded"),
        "tikaconf",
        loads.summarize(),
    );
    let storage_rss_after = rss_bytes(storage_pid).unwrap_or(0);
    section.note(format!(
        "follower: {} roots, {:.1} MB of canonical documents, RSS {:.1} MB; storage RSS after answering {:.1} MB",
        report["loaded"],
        docs as f64 / MB,
        rss as f64 / MB,
        storage_rss_after as f64 / MB,
    ));
    let rss_limit = 3.0 * docs as f64 + 50.0 * MB;
    section.absolute_target(
        format!(
            "follower RSS <= 3x documents + 50 MB ({:.1} MB)",
            rss_limit / MB
        ),
        format!("{:.1} MB", rss as f64 / MB),
        (rss as f64) <= rss_limit,
    );
    section.absolute_target(
        format!("all {followed} loaded <= 5 s"),
        fmt_duration(loaded),
        loaded <= Duration::from_secs(5),
    );
    drop(probe);
    storage.kill().await;
    Ok(section)
}

/// About 1 KiB of commands.
fn kib_of_commands(i: usize) -> Value {
    let mut map = serde_json::Map::new();
    for c in 0..9 {
        let text: String = (0..95)
            .map(|j| (b'a' + ((i + c + j) % 26) as u8) as char)
            .collect();
        map.insert(format!("!cmd{c}"), Value::String(text));
    }
    Value::Object(map)
}

/// Registers `roots` roots and moves each to a height-1 head of ~1 KiB.
/// Returns the root hashes, the total canonical size of the documents and the
/// store's file.
async fn fill(dir: &Path, roots: usize) -> anyhow::Result<(Vec<Hash>, u64, PathBuf)> {
    let file = dir.join("store.redb");
    let path = file.clone();
    let store = tokio::task::spawn_blocking(move || RedbStore::open(&path)).await??;
    let mut hashes = Vec::with_capacity(roots);
    let mut doc_bytes = 0u64;
    for chunk in (0..roots).collect::<Vec<_>>().chunks(1000) {
        let mut commits = Vec::with_capacity(chunk.len());
        let mut registers = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let root = bench_root("scale", i);
            let ops = json!([{"op": "add", "path": "/commands", "value": kib_of_commands(i)}]);
            let patch = Patch::build(root.hash(), root.hash(), 0, ops, None)?;
            let mut doc = root.value().clone();
            patch.ops.apply(&mut doc)?;
            doc_bytes += tikaconf::proto::canonical::encoded_len(&doc) as u64;
            let snapshot = Snapshot::new(root.hash(), patch.hash, 1, doc);
            registers.push(StoredHead {
                root: root.hash(),
                head: root.hash(),
                height: 0,
                snapshot: Snapshot::of_root(&root).encoded,
            });
            commits.push(PersistCommit {
                expected_head: root.hash(),
                new: StoredHead {
                    root: root.hash(),
                    head: patch.hash,
                    height: 1,
                    snapshot: snapshot.encoded,
                },
                // As a storage node passes it: the store keeps it in its
                // history (default retention).
                patch: Some(patch.encoded.clone()),
            });
            hashes.push(root.hash());
        }
        let registering = registers.into_iter().map(|h| store.register(h));
        futures_util::future::try_join_all(registering).await?;
        store.commit(commits).await?;
    }
    drop(store);
    Ok((hashes, doc_bytes, file))
}

/// Runs the `follow-many` role as a child process and reads its report.
async fn follow_many(url: &str, list: &Path) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .arg("follow-many")
        .arg("--redis")
        .arg(url)
        .arg("--roots")
        .arg(list)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("follow-many stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .context("follow-many did not report within 120 s")??
        .context("follow-many exited without a report")?;
    let _ = child.wait().await;
    Ok(serde_json::from_str(&line)?)
}

/// The hidden `follow-many` role: follows every root listed in `roots` over one
/// client, then prints one JSON line: roots loaded, seconds, RSS, document bytes.
pub async fn run_follow_many(redis: &str, roots: &Path) -> anyhow::Result<()> {
    let hashes: Vec<Hash> = std::fs::read_to_string(roots)?
        .lines()
        .map(|l| l.trim().parse::<Hash>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("bad root hash: {e}"))?;
    let client: Client = deploy::client(redis).await?;
    let t0 = Instant::now();
    let follows = hashes.iter().map(|h| client.follow(*h));
    let configs = futures_util::future::try_join_all(follows).await?;
    let seconds = t0.elapsed().as_secs_f64();
    // Let the loads' transient buffers go before reading RSS.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let doc_bytes: usize = configs
        .iter()
        .map(|c| tikaconf::proto::canonical::encoded_len(&c.document()))
        .sum();
    let rss = rss_bytes(std::process::id()).unwrap_or(0);
    println!(
        "{}",
        json!({"loaded": configs.len(), "seconds": seconds, "rss": rss, "doc_bytes": doc_bytes})
    );
    Ok(())
}
