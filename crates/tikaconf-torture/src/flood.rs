//! The flood: a hostile client with a writer's rights sends, at fixed rates
//! while the normal writers and followers run, everything such a client can
//! send that costs the fleet work (issue 11, bullet 3), and every node's memory
//! and CPU is sampled each second and held to a bound.
//!
//! The client connects as a Redis ACL user with the writer rules of
//! docs/SECURITY.md (publish on `updates:*` and `update_requests`, nothing
//! else; checked at the start: a `GET` must be refused) and publishes raw
//! messages, as a hostile program would, not through the library:
//!
//! - unsigned load requests for random hashes ([`RANDOM_LOADS`] per tick), each
//!   a root storage must look up and may not keep for good;
//! - unsigned load requests for real roots ([`REAL_LOADS`] per tick), a quarter of
//!   them for a root whose document is near half the size cap: each plain
//!   request asks storage to publish the whole snapshot to every follower;
//! - registrations of new roots with root configurations of exactly the cap
//!   ([`Limits::MAX_ROOT_CONFIG_BYTES`], 4 KiB), each stored durably
//!   ([`REGISTRATIONS`] per tick);
//! - worst-case patches on that large root's head ([`HOSTILE_PATCHES`] per
//!   tick): [`HOSTILE_PAIRS`] `copy`/`remove` pairs of the whole document, which
//!   every node (storage and the root's followers) must evaluate against the
//!   patch work budget before refusing it.
//!
//! A tick is 100 ms. The large root has followers of its own (the flood's, not
//! members of the run: no normal writer writes it, so that the normal writes
//! stay small) whose change records show that no hostile patch was applied and
//! whose counters show that the hostile patches were evaluated and refused as
//! too costly. Evidence, as everywhere in the suite: a run in which the flood
//! sent nothing of one kind, the hostile patches were never refused for their
//! cost, or a process was not measured, fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use tikaconf::proto::{Channels, Limits, Patch};
use tikaconf::{Client, Config, Hash, RootConfig};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::checker::Violation;
use crate::deploy::Deployment;

/// One tick of the flood.
pub const TICK: Duration = Duration::from_millis(100);
/// Per tick: load requests for random hashes.
pub const RANDOM_LOADS: u64 = 50;
/// Per tick: load requests for real roots (one in four for the large root).
pub const REAL_LOADS: u64 = 20;
/// Per tick: registrations of new roots of the maximum size.
pub const REGISTRATIONS: u64 = 5;
/// Per tick: worst-case patches on the large root's head.
pub const HOSTILE_PATCHES: u64 = 1;
/// `copy`/`remove` pairs in one worst-case patch (about 90 KB of patch).
pub const HOSTILE_PAIRS: usize = 1000;
/// Canonical size of the large root's document: near half the size cap, as in
/// issue 11's worst case.
pub const LARGE_DOCUMENT_BYTES: usize = 480_000;
/// Followers of the large root.
const LARGE_ROOT_FOLLOWERS: usize = 3;

/// How much a storage node's resident size may grow over the flood, besides
/// [`STORAGE_RSS_PER_REGISTRATION`] per registration sent.
///
/// What a storage node legitimately holds beyond its start: the large root (its
/// document as a `serde_json::Value`, a few times its 480 KB, and its encoded
/// snapshot), the bounded set of roots read as unknown, its queues (bounded),
/// redb's page cache for what was written, and what the allocator keeps of the
/// freed copies the hostile patches made (a few 480 KB copies per patch, all
/// freed). 64 MiB is several times that; a queue or cache that keeps what the
/// flood sends (50 random hashes, 20 snapshots of up to 480 KB per 100 ms) grows
/// past it within seconds.
pub const STORAGE_RSS_GROWTH: u64 = 64 << 20;
/// Per registration: a new root is kept for good, durably and in the cache (its
/// configuration of at most 4 KiB canonical, parsed as a `Value` and encoded as
/// a snapshot, the cache's entries and redb's pages for it). Measured: about
/// 20 KiB per registration (30 MiB over 1,505 registrations in 30 s); 32 KiB is
/// eight times the configuration. Without the 4 KiB cap one registration could
/// be about a message's size (1 MiB), kept twice.
pub const STORAGE_RSS_PER_REGISTRATION: u64 = 32 << 10;
/// How much the followers' process may grow over the flood: the per-schedule
/// bound of every run ([`crate::schedules::RSS_GROWTH_LIMIT`]).
pub const FOLLOWERS_RSS_GROWTH: u64 = crate::schedules::RSS_GROWTH_LIMIT;
/// The most CPU a storage node may use on average over the flood, in seconds
/// per second.
///
/// A storage node runs on one thread, so 1.0 is saturation: a node that parsed
/// the large snapshot for every plain request, or did ops x document work per
/// hostile patch (1,000 copies of 480 KB, about half a gigabyte, ten times a
/// second), would sit at 1.0 and fall behind. With every cost bounded, the
/// flood's rates cost a fraction of that (see the report for the measured
/// figures: 0.15 to 0.27); 0.6 leaves the node 40 % of a core for the normal
/// writes.
pub const STORAGE_CPU_BOUND: f64 = 0.6;
/// The same for the followers' process, which also runs the flood itself, the
/// normal writers and followers and the large root's followers, on a runtime
/// with one thread per core: at most 1.6 of the machine's 2 cores on average.
/// Its use follows the normal writes' rate more than the flood (measured 0.46
/// to 0.49 with 1,400 to 2,000 writes Committed in 30 s, 0.83 with 4,300 in
/// 45 s); each follower of the large root that evaluated the hostile patches
/// without a budget, or parsed a 480 KB snapshot per plain request, would take
/// a core of its own and the process would sit at 2.0.
pub const FOLLOWERS_CPU_BOUND: f64 = 1.6;

/// What the flood sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    pub random_loads: u64,
    pub real_loads: u64,
    pub registrations: u64,
    pub hostile_patches: u64,
    /// Publishes Redis refused or that failed.
    pub errors: u64,
}

/// One process's readings, one a second.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    /// Resident size in bytes, and CPU time used (user + system) in seconds,
    /// with the time of the reading since the flood began.
    pub samples: Vec<(Duration, u64, f64)>,
    /// The largest the resident size may get, and the mean CPU bound; `None`:
    /// reported, not bounded (redis-server is not a tikaconf node).
    pub rss_limit: Option<u64>,
    pub cpu_limit: Option<f64>,
}

impl Series {
    /// CPU seconds per second over each interval between readings.
    pub fn cpu_per_second(&self) -> Vec<f64> {
        self.samples
            .windows(2)
            .map(|w| {
                let dt = (w[1].0 - w[0].0).as_secs_f64();
                if dt > 0.0 {
                    (w[1].2 - w[0].2) / dt
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Mean CPU seconds per second over the whole series.
    pub fn cpu_mean(&self) -> Option<f64> {
        let (first, last) = (self.samples.first()?, self.samples.last()?);
        let dt = (last.0 - first.0).as_secs_f64();
        (dt > 0.0).then(|| (last.2 - first.2) / dt)
    }

    pub fn cpu_max(&self) -> f64 {
        self.cpu_per_second().into_iter().fold(0.0, f64::max)
    }

    pub fn rss_start(&self) -> u64 {
        self.samples.first().map_or(0, |s| s.1)
    }

    pub fn rss_max(&self) -> u64 {
        self.samples.iter().map(|s| s.1).max().unwrap_or(0)
    }
}

/// The flood's part of a run's result.
#[derive(Debug, Clone, Default)]
pub struct FloodReport {
    pub sent: Sent,
    pub seconds: f64,
    /// Hostile patches the large root's followers refused as too costly
    /// (`patch_too_costly`), all followers together.
    pub refused_as_costly: u64,
    /// The large root's followers all still at the head the flood made.
    pub large_root_intact: bool,
    /// A command outside the writer's rights was refused.
    pub rights_confined: bool,
    pub series: Vec<Series>,
}

impl FloodReport {
    /// The flood's violations: nothing sent, nothing measured, a bound exceeded.
    pub fn violations(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        let v = |kind, detail: String| Violation { kind, detail };
        let s = &self.sent;
        for (what, n) in [
            ("load requests for random hashes", s.random_loads),
            ("load requests for real roots", s.real_loads),
            ("registrations", s.registrations),
            ("worst-case patches", s.hostile_patches),
        ] {
            if n == 0 {
                out.push(v("flood-not-sent", format!("the flood sent no {what}")));
            }
        }
        if s.errors > 0 {
            out.push(v(
                "flood-not-sent",
                format!("{} of the flood's publishes failed", s.errors),
            ));
        }
        if !self.rights_confined {
            out.push(v(
                "flood-rights",
                "the flooding client could run a command outside a writer's rights".into(),
            ));
        }
        if self.refused_as_costly == 0 {
            out.push(v(
                "flood-patches-not-evaluated",
                "no follower of the large root refused a worst-case patch as too costly: the patches did not reach the work budget".into(),
            ));
        }
        if !self.large_root_intact {
            out.push(v(
                "flood-applied",
                "a follower of the large root left the head the flood made (a hostile patch applied, or it fell behind)".into(),
            ));
        }
        if self.series.is_empty() {
            out.push(v("flood-unmeasured", "no process was measured".into()));
        }
        for series in &self.series {
            if series.samples.len() < 3 || series.rss_start() == 0 {
                out.push(v(
                    "flood-unmeasured",
                    format!(
                        "{}: {} readings (at least 3 needed)",
                        series.name,
                        series.samples.len()
                    ),
                ));
                continue;
            }
            if let Some(limit) = series.rss_limit
                && series.rss_max() > limit
            {
                out.push(v(
                    "flood-memory",
                    format!(
                        "{} grew to {} MiB under the flood (bound {} MiB, from {} MiB)",
                        series.name,
                        series.rss_max() >> 20,
                        limit >> 20,
                        series.rss_start() >> 20
                    ),
                ));
            }
            if let (Some(limit), Some(mean)) = (series.cpu_limit, series.cpu_mean())
                && mean > limit
            {
                out.push(v(
                    "flood-cpu",
                    format!(
                        "{} used {mean:.2} CPU s/s on average under the flood (bound {limit:.2})",
                        series.name
                    ),
                ));
            }
        }
        out
    }
}

/// A running flood.
#[derive(Debug)]
pub struct Flood {
    stop: Arc<AtomicBool>,
    sender: JoinHandle<Sent>,
    sampler: JoinHandle<Vec<Series>>,
    large_head: Hash,
    followers: Vec<(Client, Config)>,
    rights_confined: bool,
    started: Instant,
    _writer: Client,
}

/// The canonical document of about `bytes` the large root is given.
fn large_document(bytes: usize) -> Value {
    let mut map = Map::new();
    let mut i = 0usize;
    let mut size = 0usize;
    while size < bytes {
        let text: String = (0..96)
            .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
            .collect();
        let key = format!("k{i:05}");
        size += key.len() + text.len() + 6;
        map.insert(key, Value::String(text));
        i += 1;
    }
    json!({ "big": Value::Object(map) })
}

/// A root configuration of exactly `Limits::MAX_ROOT_CONFIG_BYTES` canonical
/// bytes, distinct for each `n`.
pub fn max_size_root(seed: u64, n: u64) -> Result<RootConfig> {
    let base =
        RootConfig::from_connection(json!({"platform": "flood", "seed": seed, "n": n, "pad": ""}))?;
    let missing = Limits::MAX_ROOT_CONFIG_BYTES - base.to_canonical().len();
    let root = RootConfig::from_connection(
        json!({"platform": "flood", "seed": seed, "n": n, "pad": "x".repeat(missing)}),
    )?;
    if root.to_canonical().len() != Limits::MAX_ROOT_CONFIG_BYTES {
        bail!("the flood's root configuration is not of the maximum size");
    }
    Ok(root)
}

impl Flood {
    /// Sets the flood up (the flooding user, the large root and its followers)
    /// and starts it, with the readings of every process.
    pub async fn start(d: Arc<Deployment>) -> Result<Flood> {
        let url = d.redis_url.clone();
        let mut admin = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        const USER: &str = "flood";
        const PASSWORD: &str = "flood-password";
        // The writer rules of docs/SECURITY.md, as the acl test runs them.
        let mut set = redis::cmd("ACL");
        set.arg("SETUSER").arg(USER);
        for rule in
            tikaconf_test::acl::writer_rules("", PASSWORD, tikaconf_test::acl::connect_rules())
        {
            set.arg(rule);
        }
        set.query_async::<()>(&mut admin)
            .await
            .context("creating the flooding user")?;
        let flood_url = format!("redis://{USER}:{PASSWORD}@{}", d.redis_addr);
        let mut conn = redis::Client::open(flood_url.as_str())?
            .get_multiplexed_async_connection()
            .await
            .context("connecting as the flooding user")?;
        let rights_confined = redis::cmd("GET")
            .arg("tikaconf:anything")
            .query_async::<Option<String>>(&mut conn)
            .await
            .is_err();

        // The large root: registered and grown to near half the size cap by a
        // writer (its rights allow that), then left to the flood.
        let large = RootConfig::from_connection(
            json!({"platform": "torture-flood", "seed": d.seed, "large": true}),
        )?;
        let writer = Client::connect(&url).await?;
        let config = writer
            .follow(large.clone())
            .await
            .context("registering the large root")?;
        let doc = large_document(LARGE_DOCUMENT_BYTES);
        let ops = json!([{"op": "add", "path": "/big", "value": doc["big"].clone()}]);
        let large_head = tokio::time::timeout(Duration::from_secs(30), config.submit(ops))
            .await
            .context("growing the large root timed out")?
            .context("growing the large root")?;
        let large_height = config.height();
        let mut followers = Vec::new();
        for _ in 0..LARGE_ROOT_FOLLOWERS {
            let client = Client::connect(&url).await?;
            let follower = client
                .follow(large.hash())
                .await
                .context("following the large root")?;
            followers.push((client, follower));
        }

        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut processes = vec![("followers' process".to_owned(), std::process::id(), true)];
        for (name, pid) in d.storage_pids().await {
            processes.push((format!("storage node {name}"), pid, true));
        }
        let redis_pid = d.redis.lock().unwrap_or_else(|e| e.into_inner()).pid();
        if let Some(pid) = redis_pid {
            processes.push(("redis-server".to_owned(), pid, false));
        }
        let sampler = tokio::spawn(sample(processes, started, stop.clone()));
        let real: Vec<Hash> = d.roots.iter().map(RootConfig::hash).collect();
        let sender = tokio::spawn(send(
            conn,
            d.seed,
            real,
            (large.hash(), large_head, large_height),
            stop.clone(),
        ));
        Ok(Flood {
            stop,
            sender,
            sampler,
            large_head,
            followers,
            rights_confined,
            started,
            _writer: writer,
        })
    }

    /// Stops the flood and gathers its report (bounds set from what was sent).
    pub async fn finish(self) -> FloodReport {
        self.stop.store(true, Ordering::SeqCst);
        let seconds = self.started.elapsed().as_secs_f64();
        let sent = self.sender.await.unwrap_or_default();
        let mut series = self.sampler.await.unwrap_or_default();
        // Let the large root's followers take in what is still on its way.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut refused_as_costly = 0;
        let mut large_root_intact = true;
        for (_, f) in &self.followers {
            // On the blocking pool, so that a root whose lock is stuck shows as
            // a timeout here rather than hanging the suite.
            let reader = f.clone();
            let stats = tokio::task::spawn_blocking(move || reader.stats());
            match tokio::time::timeout(Duration::from_secs(5), stats).await {
                Ok(Ok(stats)) => {
                    refused_as_costly += stats.ignored.get("patch_too_costly").copied().unwrap_or(0)
                }
                Ok(Err(_)) | Err(_) => large_root_intact = false,
            }
            large_root_intact &= f.head() == self.large_head;
        }
        for s in &mut series {
            let start = s.rss_start();
            if s.name.starts_with("storage") {
                s.rss_limit = Some(
                    start + STORAGE_RSS_GROWTH + sent.registrations * STORAGE_RSS_PER_REGISTRATION,
                );
                s.cpu_limit = Some(STORAGE_CPU_BOUND);
            } else if s.name.starts_with("followers") {
                s.rss_limit = Some(start + FOLLOWERS_RSS_GROWTH);
                s.cpu_limit = Some(FOLLOWERS_CPU_BOUND);
            }
        }
        FloodReport {
            sent,
            seconds,
            refused_as_costly,
            large_root_intact,
            rights_confined: self.rights_confined,
            series,
        }
    }
}

/// Clock ticks per second of `/proc/PID/stat`'s times (USER_HZ: 100 on Linux
/// whatever the kernel's HZ, as `getconf CLK_TCK` prints).
const USER_HZ: f64 = 100.0;

/// Resident size and CPU time (user + system, seconds) of process `pid`.
pub fn usage(pid: u32) -> Option<(u64, f64)> {
    let rss = crate::node::rss_bytes(Some(pid))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line are the 12th and 13th after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((rss, (utime + stime) as f64 / USER_HZ))
}

async fn sample(
    processes: Vec<(String, u32, bool)>,
    started: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Series> {
    let mut series: Vec<Series> = processes
        .iter()
        .map(|(name, _, _)| Series {
            name: name.clone(),
            ..Series::default()
        })
        .collect();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for ((_, pid, _), s) in processes.iter().zip(series.iter_mut()) {
            if let Some((rss, cpu)) = usage(*pid) {
                s.samples.push((started.elapsed(), rss, cpu));
            }
        }
        if stop.load(Ordering::SeqCst) {
            return series;
        }
    }
}

/// Publishes the flood, one batch per [`TICK`], until `stop`.
async fn send(
    mut conn: redis::aio::MultiplexedConnection,
    seed: u64,
    real: Vec<Hash>,
    (large_root, large_head, large_height): (Hash, Hash, u64),
    stop: Arc<AtomicBool>,
) -> Sent {
    let channels = Channels::new(None);
    let requests = channels.update_requests();
    let patch_channel = channels.updates(&large_head);
    let mut rng = StdRng::seed_from_u64(seed ^ 0xf100d);
    let mut sent = Sent::default();
    let mut next_root = 0u64;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pairs: Vec<Value> = (0..HOSTILE_PAIRS)
        .flat_map(|_| {
            [
                json!({"op": "copy", "from": "/big", "path": "/copy"}),
                json!({"op": "remove", "path": "/copy"}),
            ]
        })
        .collect();
    while !stop.load(Ordering::SeqCst) {
        ticker.tick().await;
        let mut pipe = redis::pipe();
        let mut batch = Sent::default();
        for _ in 0..RANDOM_LOADS {
            let random = Hash::of_canonical_bytes(&rng.random::<[u8; 16]>());
            pipe.cmd("PUBLISH")
                .arg(&requests)
                .arg(random.to_hex())
                .ignore();
            batch.random_loads += 1;
        }
        for i in 0..REAL_LOADS {
            let root = if i % 4 == 0 {
                large_root
            } else {
                real[rng.random_range(0..real.len())]
            };
            pipe.cmd("PUBLISH")
                .arg(&requests)
                .arg(root.to_hex())
                .ignore();
            batch.real_loads += 1;
        }
        for _ in 0..REGISTRATIONS {
            next_root += 1;
            match max_size_root(seed, next_root) {
                Ok(root) => {
                    pipe.cmd("PUBLISH")
                        .arg(&requests)
                        .arg(root.to_canonical())
                        .ignore();
                    batch.registrations += 1;
                }
                Err(_) => sent.errors += 1,
            }
        }
        for _ in 0..HOSTILE_PATCHES {
            let mut meta = Map::new();
            meta.insert(
                "flood".into(),
                json!(sent.hostile_patches + batch.hostile_patches),
            );
            match Patch::build(
                large_root,
                large_head,
                large_height,
                Value::Array(pairs.clone()),
                Some(meta),
            ) {
                Ok(p) => {
                    pipe.cmd("PUBLISH")
                        .arg(&patch_channel)
                        .arg(p.encoded.as_ref())
                        .ignore();
                    batch.hostile_patches += 1;
                }
                Err(_) => sent.errors += 1,
            }
        }
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => {
                sent.random_loads += batch.random_loads;
                sent.real_loads += batch.real_loads;
                sent.registrations += batch.registrations;
                sent.hostile_patches += batch.hostile_patches;
            }
            Err(_) => sent.errors += 1,
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_of_the_maximum_size_and_distinct() {
        let a = max_size_root(1, 0).unwrap();
        let b = max_size_root(1, 1).unwrap();
        assert_eq!(a.to_canonical().len(), Limits::MAX_ROOT_CONFIG_BYTES);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn the_large_document_is_near_half_the_cap() {
        let doc = large_document(LARGE_DOCUMENT_BYTES);
        let n = tikaconf::proto::canonical::encoded_len(&doc);
        assert!(
            (LARGE_DOCUMENT_BYTES..LARGE_DOCUMENT_BYTES + 1000).contains(&n),
            "{n}"
        );
    }

    /// The readings come from /proc: a process's own must be readable, and
    /// its CPU time must grow with work.
    #[test]
    fn this_process_can_be_measured() {
        let (rss, cpu) = usage(std::process::id()).expect("readable");
        assert!(rss > 0);
        let until = std::time::Instant::now() + Duration::from_millis(300);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        let (_, later) = usage(std::process::id()).expect("readable");
        assert!(later >= cpu + 0.1, "{cpu} -> {later}");
    }

    fn report() -> FloodReport {
        let series = |name: &str, rss: u64, cpu_per_s: f64| Series {
            name: name.into(),
            samples: (0..5)
                .map(|i| (Duration::from_secs(i), rss, cpu_per_s * i as f64))
                .collect(),
            rss_limit: Some(rss + (64 << 20)),
            cpu_limit: Some(0.6),
        };
        FloodReport {
            sent: Sent {
                random_loads: 10,
                real_loads: 10,
                registrations: 10,
                hostile_patches: 10,
                errors: 0,
            },
            seconds: 5.0,
            refused_as_costly: 3,
            large_root_intact: true,
            rights_confined: true,
            series: vec![series("storage node storage0", 100 << 20, 0.2)],
        }
    }

    /// A flood that sent nothing, was not measured, or cost beyond the bounds
    /// fails the run.
    #[test]
    fn an_empty_unmeasured_or_costly_flood_fails() {
        assert_eq!(report().violations(), vec![]);
        let mut silent = report();
        silent.sent.registrations = 0;
        silent.refused_as_costly = 0;
        let kinds: Vec<_> = silent.violations().iter().map(|v| v.kind).collect();
        assert_eq!(kinds, ["flood-not-sent", "flood-patches-not-evaluated"]);
        let mut unmeasured = report();
        unmeasured.series[0].samples.truncate(2);
        let kinds: Vec<_> = unmeasured.violations().iter().map(|v| v.kind).collect();
        assert_eq!(kinds, ["flood-unmeasured"]);
        unmeasured.series.clear();
        let kinds: Vec<_> = unmeasured.violations().iter().map(|v| v.kind).collect();
        assert_eq!(kinds, ["flood-unmeasured"]);
        let mut costly = report();
        costly.series[0].samples[3].1 += 65 << 20;
        costly.series[0].samples[4].2 = 4.0;
        let kinds: Vec<_> = costly.violations().iter().map(|v| v.kind).collect();
        assert_eq!(kinds, ["flood-memory", "flood-cpu"]);
        assert!((report().series[0].cpu_mean().unwrap() - 0.2).abs() < 1e-9);
    }
}
