//! A whole deployment on loopback: one redis-server, storage node processes,
//! followers and writers, each node behind its own [`FaultProxy`].
//!
//! Giving every node its own proxy is what lets a fault hit one node at a time (a
//! partitioned follower, a storage node whose reads stall) while the others carry
//! on, which is the situation the protocol's re-sync rules exist for. Followers and
//! writers run in this process, each with its own `tikaconf::Client` (so its own
//! connections); storage nodes run as child processes so they can be SIGKILLed.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tikaconf::proto::{FollowerConfig, canonical};
use tikaconf::{Client, ClientOptions, Config, Hash, RootConfig};
use tikaconf_test::{FaultProxy, RedisServer};
use tokio::task::JoinHandle;

use crate::checker::View;
use crate::history::{DownWindow, LoadRecord, Observation, Recorder};
use crate::node::{REDIS_PREFIX, StorageSlot, StoreKind};

/// How long a probe load may take: storage answers within a second or two;
/// after a kill on a shared store the node left alone first waits for the dead
/// node's answerer lease (3 s) to lapse, and a follower asks again after its
/// request timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// How many times a storage node restart is tried before the run fails.
const START_ATTEMPTS: usize = 40;

/// A follower or writer: its own proxy, client and followed configuration.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub root: usize,
    pub writer: bool,
    pub proxy: Arc<FaultProxy>,
    pub config: Config,
    /// Kept so the connection lives as long as the member.
    _client: Client,
    reader: JoinHandle<()>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One storage node and its proxy.
#[derive(Debug)]
pub struct StorageNode {
    pub proxy: Arc<FaultProxy>,
    pub slot: tokio::sync::Mutex<StorageSlot>,
}

/// The running deployment of one schedule run.
#[derive(Debug)]
pub struct Deployment {
    pub redis: Arc<Mutex<RedisServer>>,
    pub redis_addr: SocketAddr,
    pub redis_url: String,
    pub dir: tempfile::TempDir,
    pub storage: Vec<StorageNode>,
    pub roots: Vec<RootConfig>,
    pub members: tokio::sync::Mutex<Vec<Member>>,
    pub recorder: Recorder,
    pub seed: u64,
    /// Storage nodes running now; a down window opens when it reaches zero.
    running: AtomicU64,
    down_since: Mutex<Option<Duration>>,
    next_member: AtomicU64,
    /// Set when a storage node is found to have exited on its own.
    pub crashed: AtomicBool,
    /// While set, writers start no new write (see `faults::partition_kill`'s
    /// quiet heal).
    pub writes_held: Arc<AtomicBool>,
    /// Quiet partition-then-kill passes begun (the first pass is always one).
    pub quiet_passes: AtomicU64,
    /// Failed storage start attempts (e.g. while its proxy refused connections).
    pub start_retries: AtomicU64,
    /// Members that left with a change record that has gaps (their change
    /// stream skipped changes): `(name, changes skipped)`.
    pub left_incomplete: Mutex<Vec<(String, u64)>>,
}

/// What a deployment is made of.
#[derive(Debug, Clone)]
pub struct Shape {
    pub store: StoreKind,
    pub storage_nodes: usize,
    pub redis_persistence: bool,
    pub roots: usize,
    pub followers_per_root: usize,
    pub writers_per_root: usize,
    /// `client-output-buffer-limit pubsub` of the server, small so that a stalled
    /// reader is disconnected as a slow client.
    pub pubsub_limit: Option<&'static str>,
}

impl Deployment {
    pub async fn start(shape: &Shape, seed: u64, label: &str) -> Result<Arc<Deployment>> {
        let mut builder = RedisServer::builder().persistence(shape.redis_persistence);
        if let Some(limit) = shape.pubsub_limit {
            builder = builder.extra_args(["--client-output-buffer-limit", limit]);
        }
        let redis = tokio::task::spawn_blocking(move || builder.start()).await?;
        let redis_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, redis.port()));
        let redis_url = redis.url();
        let dir = tempfile::Builder::new()
            .prefix("tikaconf-torture-")
            .tempdir()?;
        let mut storage = Vec::new();
        for i in 0..shape.storage_nodes {
            let proxy = Arc::new(FaultProxy::start(redis_addr));
            let slot = StorageSlot {
                name: format!("storage{i}"),
                data: dir.path().join(format!("storage{i}")),
                log: dir.path().join(format!("storage{i}.log")),
                store: shape.store,
                process: None,
            };
            storage.push(StorageNode {
                proxy,
                slot: tokio::sync::Mutex::new(slot),
            });
        }
        let roots = (0..shape.roots)
            .map(|i| {
                RootConfig::from_connection(json!({
                    "platform": "torture", "run": label, "seed": seed, "root": i
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let deployment = Arc::new(Deployment {
            redis: Arc::new(Mutex::new(redis)),
            redis_addr,
            redis_url,
            dir,
            storage,
            roots,
            members: tokio::sync::Mutex::new(Vec::new()),
            recorder: Recorder::new(),
            seed,
            running: AtomicU64::new(0),
            down_since: Mutex::new(None),
            next_member: AtomicU64::new(0),
            crashed: AtomicBool::new(false),
            writes_held: Arc::new(AtomicBool::new(false)),
            quiet_passes: AtomicU64::new(0),
            start_retries: AtomicU64::new(0),
            left_incomplete: Mutex::new(Vec::new()),
        });
        for i in 0..deployment.storage.len() {
            deployment.start_storage(i).await?;
        }
        // Register every root once, directly, so members can follow by hash.
        let setup = Client::connect(&deployment.redis_url).await?;
        for root in &deployment.roots {
            setup
                .follow(root.clone())
                .await
                .context("registering a root")?;
        }
        for root in 0..shape.roots {
            for _ in 0..shape.writers_per_root {
                deployment.join(root, true).await?;
            }
            for _ in 0..shape.followers_per_root {
                deployment.join(root, false).await?;
            }
        }
        Ok(deployment)
    }

    /// Client options with default timers (invariant 2 is measured with them) and
    /// a jitter seed of the member's own.
    fn options(&self, member: u64) -> ClientOptions {
        ClientOptions {
            follower: FollowerConfig {
                jitter_seed: self.seed ^ member.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ..FollowerConfig::default()
            },
            ..ClientOptions::default()
        }
    }

    /// Adds a follower (or writer) of `root` behind a proxy of its own; returns
    /// its name.
    pub async fn join(&self, root: usize, writer: bool) -> Result<String> {
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}{n}", if writer { "writer" } else { "follower" });
        let proxy = Arc::new(FaultProxy::start(self.redis_addr));
        let client = Client::connect_with(&proxy.url(), self.options(n))
            .await
            .with_context(|| format!("{name} cannot connect"))?;
        let config = client
            .follow(self.roots[root].hash())
            .await
            .with_context(|| format!("{name} cannot load root {root}"))?;
        let mut changes = config.changes();
        let first = Observation {
            height: config.height(),
            head: config.head(),
            dropped: false,
            at: self.recorder.now(),
        };
        let index = self.recorder.follower(name.clone(), root, first);
        let recorder = self.recorder.clone();
        let reader = tokio::spawn(async move {
            while let Some(change) = changes.next().await {
                recorder.observe(
                    index,
                    Observation {
                        height: change.height,
                        head: change.head,
                        dropped: change.dropped,
                        at: recorder.now(),
                    },
                );
            }
        });
        self.members.lock().await.push(Member {
            name: name.clone(),
            root,
            writer,
            proxy,
            config,
            _client: client,
            reader,
        });
        Ok(name)
    }

    /// Removes a follower (not a writer), picked by `pick`: its client and proxy
    /// go away. Returns its name, or `None` if no follower could be spared.
    pub async fn leave(&self, pick: usize) -> Option<String> {
        let mut members = self.members.lock().await;
        let followers: Vec<usize> = (0..members.len()).filter(|&i| !members[i].writer).collect();
        // Keep at least one follower per root that is not a writer.
        if followers.len() <= self.roots.len() {
            return None;
        }
        let i = followers[pick % followers.len()];
        let root = members[i].root;
        if members
            .iter()
            .filter(|m| !m.writer && m.root == root)
            .count()
            <= 1
        {
            return None;
        }
        let gone = members.remove(i);
        // Its record ends here: it must be complete up to here.
        let skipped = gone.config.stats().changes_skipped;
        if skipped > 0 {
            self.left_incomplete
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((gone.name.clone(), skipped));
        }
        Some(gone.name.clone())
    }

    /// Every proxy a fault may hit: members' and storage nodes'.
    pub async fn proxies(&self) -> Vec<(String, Arc<FaultProxy>)> {
        let mut out: Vec<_> = self
            .members
            .lock()
            .await
            .iter()
            .map(|m| (m.name.clone(), m.proxy.clone()))
            .collect();
        for s in &self.storage {
            out.push((s.slot.lock().await.name.clone(), s.proxy.clone()));
        }
        out
    }

    /// The name of storage node `i`.
    pub async fn storage_name(&self, i: usize) -> String {
        self.storage[i].slot.lock().await.name.clone()
    }

    /// Starts storage node `i` (after a kill, or at the beginning).
    pub async fn start_storage(&self, i: usize) -> Result<()> {
        let node = &self.storage[i];
        let mut slot = node.slot.lock().await;
        if slot.process.is_some() {
            return Ok(());
        }
        let retries = slot.start(&node.proxy.url(), START_ATTEMPTS).await?;
        self.start_retries.fetch_add(retries, Ordering::Relaxed);
        if self.running.fetch_add(1, Ordering::SeqCst) == 0 {
            let since = self
                .down_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(from) = since {
                self.recorder.down(DownWindow {
                    from,
                    to: self.recorder.now(),
                });
            }
        }
        Ok(())
    }

    /// SIGKILLs storage node `i`. Returns false if it was not running.
    pub async fn kill_storage(&self, i: usize) -> bool {
        let mut slot = self.storage[i].slot.lock().await;
        let Some(process) = slot.process.as_mut() else {
            return false;
        };
        if process.exited().is_some() {
            self.crashed.store(true, Ordering::SeqCst);
            tracing::error!(node = %slot.name, "storage node exited on its own");
        }
        slot.kill().await;
        if self.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.down_since.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.recorder.now());
        }
        true
    }

    /// Whether any storage node exited by itself.
    pub async fn check_crashes(&self) {
        for node in &self.storage {
            let mut slot = node.slot.lock().await;
            if let Some(p) = slot.process.as_mut()
                && p.exited().is_some()
            {
                self.crashed.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Panic lines in the storage nodes' logs.
    pub async fn storage_panics(&self) -> Vec<String> {
        let mut out = Vec::new();
        for node in &self.storage {
            out.extend(node.slot.lock().await.panics());
        }
        out
    }

    /// Kills redis-server and starts it again on the same port after `down`.
    pub async fn restart_redis(&self, down: Duration) -> Result<()> {
        let redis = self.redis.clone();
        tokio::task::spawn_blocking(move || {
            let mut r = redis.lock().unwrap_or_else(|e| e.into_inner());
            r.kill();
            std::thread::sleep(down);
            r.restart();
        })
        .await
        .context("restarting redis-server")
    }

    /// Turns every fault off and starts every storage node that is down.
    pub async fn heal(&self) -> Result<()> {
        for (_, proxy) in self.proxies().await {
            proxy.heal();
        }
        for i in 0..self.storage.len() {
            self.start_storage(i).await?;
        }
        Ok(())
    }

    /// The current (head, height, canonical document) of every member, by root.
    pub async fn member_views(&self) -> Vec<Vec<View>> {
        let mut out = vec![Vec::new(); self.roots.len()];
        for m in self.members.lock().await.iter() {
            out[m.root].push(View {
                node: m.name.clone(),
                head: m.config.head(),
                height: m.config.height(),
                canonical: canonical::to_vec(&m.config.document()),
            });
        }
        out
    }

    /// Loads every root with a fresh client straight on Redis (no proxy, so no
    /// fault of its own) and records each answer, or why there was none within
    /// [`PROBE_TIMEOUT`], for [`crate::checker::check_loads`].
    pub async fn probe_loads(&self) {
        let client =
            match tokio::time::timeout(PROBE_TIMEOUT, Client::connect(&self.redis_url)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    self.probe_failed(format!("cannot connect: {e}"));
                    return;
                }
                Err(_) => {
                    self.probe_failed(format!("cannot connect within {PROBE_TIMEOUT:?}"));
                    return;
                }
            };
        for (i, root) in self.roots.iter().enumerate() {
            let started = self.recorder.now();
            let answer = match tokio::time::timeout(PROBE_TIMEOUT, client.follow(root.hash())).await
            {
                Ok(Ok(config)) => Ok((*config.document()).clone()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            self.recorder.load(LoadRecord {
                root: i,
                started,
                ended: self.recorder.now(),
                answer,
            });
        }
    }

    fn probe_failed(&self, why: String) {
        let now = self.recorder.now();
        self.recorder.load(LoadRecord {
            root: 0,
            started: now,
            ended: now,
            answer: Err(why),
        });
    }

    /// The pid of every storage node running now, by name.
    pub async fn storage_pids(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for node in &self.storage {
            let slot = node.slot.lock().await;
            if let Some(p) = slot.process.as_ref() {
                out.push((slot.name.clone(), p.pid()));
            }
        }
        out
    }

    /// Storage's current head of each root, as a fresh client loads it.
    pub async fn probe_heads(&self) -> Result<Vec<Hash>> {
        let client = Client::connect(&self.redis_url).await?;
        let mut out = Vec::new();
        for root in &self.roots {
            out.push(client.follow(root.hash()).await?.head());
        }
        Ok(out)
    }

    /// Stops every storage node and reads what each one's store holds: one view per
    /// storage node per root, plus the documents (from the first node).
    pub async fn stored_views(&self) -> Result<(Vec<Vec<View>>, Vec<Value>)> {
        let mut views = vec![Vec::new(); self.roots.len()];
        let mut docs = vec![Value::Null; self.roots.len()];
        for node in &self.storage {
            let mut slot = node.slot.lock().await;
            slot.kill().await;
            let name = slot.name.clone();
            let heads = match slot.store {
                StoreKind::Redb => {
                    let dir = slot.data.clone();
                    let store =
                        tokio::task::spawn_blocking(move || tikaconf::store::RedbStore::open(&dir))
                            .await??;
                    load_all(&store, &self.roots).await?
                }
                StoreKind::Redis => {
                    let store =
                        tikaconf_redis::RedisStore::connect(&self.redis_url, REDIS_PREFIX).await?;
                    load_all(&store, &self.roots).await?
                }
            };
            for (root, (head, height, doc)) in heads.into_iter().enumerate() {
                views[root].push(View {
                    node: name.clone(),
                    head,
                    height,
                    canonical: canonical::to_vec(&doc),
                });
                if docs[root].is_null() {
                    docs[root] = doc;
                }
            }
        }
        self.running.store(0, Ordering::SeqCst);
        Ok((views, docs))
    }
}

async fn load_all(
    store: &impl tikaconf::store::Store,
    roots: &[RootConfig],
) -> Result<Vec<(Hash, u64, Value)>> {
    let mut out = Vec::new();
    for root in roots {
        let Some(stored) = store.load(root.hash()).await? else {
            bail!("the store does not know root {}", root.hash());
        };
        let snapshot: Value = serde_json::from_slice(&stored.snapshot)?;
        let doc = snapshot
            .get("config")
            .cloned()
            .context("a stored snapshot without config")?;
        out.push((stored.head, stored.height, doc));
    }
    Ok(out)
}
