//! Deterministic simulation of followers, writers and storage engines (one, or
//! several sharing one store) over a fake bus that loses connections (and what was
//! in flight on them), duplicates and delays messages, and over a store that is
//! slow.
//!
//! Pub/Sub loses messages in two ways only, and both are modelled: a subscription
//! that has not taken effect yet (the commands of each connection run late, so
//! hop gaps happen all the time), and a dropped connection, which the node learns
//! of (here: a "reset" clears the connection's inbox and subscriptions and tells
//! the node it was disconnected; it reconnects a little later).
//!
//! Every other follower has a reply channel (`replies:f<i>`, subscribed before
//! its requests on every connect), so it is answered there and, once loaded,
//! names its head: storage answers it with a `stored` notice or the patches it
//! lacks (v1.3) as often as with a snapshot, and the runs show both happened.
//!
//! Each run is fixed by its seed (printed on failure). After the faulty phase the
//! bus heals and writes stop; every follower must then converge on storage's head
//! with a byte-identical canonical document, every write reported Committed must be
//! in it, and every write reported Conflict must not.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::json;
use tikaconf_proto::follower::{FollowerConfig, FollowerEvent, Step};
use tikaconf_proto::storage::{HeadRef, PersistOutcome, StorageCommand};
use tikaconf_proto::{
    Channels, Command, Follower, Hash, Limits, ReplyToken, RootConfig, StorageEngine, StoredHead,
    WriteOutcome, canonical,
};

/// A small deterministic generator (the simulation must not depend on a crate's
/// algorithm changing between versions).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy)]
struct Faults {
    /// Per mille chance, per delivery, that the receiving connection is reset.
    reset_permille: u64,
    dup_pct: u64,
}

/// One subscriber connection: what it listens to and what is waiting for it.
#[derive(Default)]
struct Conn {
    channels: HashSet<String>,
    prefixes: Vec<String>,
    inbox: VecDeque<(String, Bytes)>,
    /// Commands not yet carried out (subscriptions take effect late: hop gaps).
    pending: VecDeque<Command>,
    /// Reset and waiting to reconnect until this tick.
    down_until: Option<u64>,
}

struct Sim {
    rng: Rng,
    faults: Faults,
    now: Instant,
    tick: u64,
    resets: u64,
    conns: Vec<Conn>,
    followers: Vec<Follower>,
    /// Storage engines sharing `store`; engine `k` uses connection
    /// `followers.len() + k`.
    storage: Vec<StorageEngine>,
    store: HashMap<Hash, StoredHead>,
    /// Each engine's store calls, carried out one at a time, late.
    store_ops: Vec<VecDeque<StorageCommand>>,
    committed: Vec<String>,
    conflicted: Vec<String>,
    timed_out: Vec<String>,
    /// Hash -> key each pending write sets.
    keys: HashMap<Hash, String>,
    seq: u64,
    /// Answers published by storage engines (each checked by `check_answer`).
    answers: u64,
    /// Of those, `patches` and `stored` answers to requests naming a head.
    patches_answers: u64,
    current_answers: u64,
}

/// Every other follower has a reply channel.
fn reply_token(i: usize) -> Option<ReplyToken> {
    (i % 2 == 1).then(|| ReplyToken::new(&format!("f{i}")).unwrap())
}

impl Sim {
    fn new(seed: u64, n_followers: usize, n_storage: usize, faults: Faults) -> Sim {
        let channels = Channels::new(None);
        let root = RootConfig::twitch("#sim").unwrap();
        let config = FollowerConfig {
            resync_interval: Duration::from_millis(500),
            request_timeout: Duration::from_millis(100),
            confirm_timeout: Duration::from_millis(150),
            fork_grace: Duration::from_millis(100),
            write_timeout: Duration::from_millis(400),
            jitter_seed: seed,
        };
        let followers = (0..n_followers)
            .map(|i| {
                let mut c = config.clone();
                c.jitter_seed = seed ^ i as u64;
                Follower::by_root(root.clone(), channels.clone(), Limits::default(), c)
                    .with_reply_token(reply_token(i))
            })
            .collect();
        let mut sim = Sim {
            rng: Rng(seed),
            faults,
            now: Instant::now(),
            tick: 0,
            resets: 0,
            conns: (0..n_followers + n_storage)
                .map(|_| Conn::default())
                .collect(),
            followers,
            storage: (0..n_storage)
                .map(|_| StorageEngine::new(channels.clone(), Limits::default()))
                .collect(),
            store: HashMap::new(),
            store_ops: (0..n_storage).map(|_| VecDeque::new()).collect(),
            committed: Vec::new(),
            conflicted: Vec::new(),
            timed_out: Vec::new(),
            keys: HashMap::new(),
            seq: 0,
            answers: 0,
            patches_answers: 0,
            current_answers: 0,
        };
        for k in 0..n_storage {
            let mut cmds = Vec::new();
            sim.storage[k].handle_connected(&mut cmds);
            sim.storage_commands(k, cmds);
            sim.run_pending(n_followers + k, usize::MAX);
        }
        for i in 0..n_followers {
            sim.connect_follower(i);
        }
        sim
    }

    /// Connects follower `i`: its reply channel first (a client subscribes to it
    /// before its followers' requests), then whatever the follower asks.
    fn connect_follower(&mut self, i: usize) {
        if let Some(token) = reply_token(i) {
            let channel = Channels::new(None).replies(&token);
            self.conns[i].pending.push_back(Command::Subscribe(channel));
        }
        let mut step = Step::default();
        self.followers[i].handle_connected(self.now, &mut step);
        self.follower_step(i, step);
    }

    fn publish(&mut self, channel: String, payload: Bytes) {
        for idx in 0..self.conns.len() {
            let conn = &self.conns[idx];
            let hears = conn.channels.contains(&channel)
                || conn
                    .prefixes
                    .iter()
                    .any(|p| channel.starts_with(p.as_str()));
            if !hears {
                continue;
            }
            if self.rng.next() % 1000 < self.faults.reset_permille {
                self.reset(idx);
                continue;
            }
            let copies = if self.rng.chance(self.faults.dup_pct) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                self.conns[idx]
                    .inbox
                    .push_back((channel.clone(), payload.clone()));
            }
        }
    }

    /// Drops connection `idx`: what it had not read is lost, and its node is told.
    fn reset(&mut self, idx: usize) {
        self.resets += 1;
        let conn = &mut self.conns[idx];
        conn.inbox.clear();
        conn.channels.clear();
        conn.prefixes.clear();
        conn.pending.clear();
        conn.down_until = Some(self.tick + 5 + self.rng.below(30));
        match idx.checked_sub(self.followers.len()) {
            Some(k) => self.storage[k].handle_disconnected(),
            None => self.followers[idx].handle_disconnected(),
        }
    }

    fn reconnect_due(&mut self, idx: usize) -> bool {
        match self.conns[idx].down_until {
            Some(t) if t <= self.tick => {
                self.conns[idx].down_until = None;
                true
            }
            Some(_) => false,
            None => false,
        }
    }

    fn is_down(&self, idx: usize) -> bool {
        self.conns[idx].down_until.is_some()
    }

    /// Carries out up to `max` queued commands of connection `idx`.
    fn run_pending(&mut self, idx: usize, max: usize) {
        for _ in 0..max {
            let Some(cmd) = self.conns[idx].pending.pop_front() else {
                return;
            };
            match cmd {
                Command::Subscribe(c) => {
                    self.conns[idx].channels.insert(c);
                }
                Command::Unsubscribe(c) => {
                    self.conns[idx].channels.remove(&c);
                }
                Command::PSubscribe(p) => self.conns[idx]
                    .prefixes
                    .push(p.trim_end_matches('*').to_owned()),
                Command::Publish { channel, payload } => self.publish(channel, payload),
            }
        }
    }

    fn follower_step(&mut self, i: usize, step: tikaconf_proto::follower::Step) {
        self.conns[i].pending.extend(step.commands);
        for event in step.events {
            if let FollowerEvent::WriteEnded { hash, outcome } = event {
                let key = self.keys.remove(&hash).expect("a write we made");
                match outcome {
                    WriteOutcome::Committed => self.committed.push(key),
                    WriteOutcome::Conflict { .. } => self.conflicted.push(key),
                    WriteOutcome::TimedOut => self.timed_out.push(key),
                }
            }
        }
    }

    fn storage_commands(&mut self, k: usize, cmds: Vec<StorageCommand>) {
        let conn = self.followers.len() + k;
        for c in cmds {
            if let StorageCommand::Bus(Command::Publish { channel, payload }) = &c {
                self.check_answer(k, channel, payload);
            }
            match c {
                StorageCommand::Bus(cmd) => self.conns[conn].pending.push_back(cmd),
                other => self.store_ops[k].push_back(other),
            }
        }
    }

    /// No storage engine ever tells an older head than its store holds when it
    /// decides to answer (in this simulation store calls complete at once, so an
    /// engine that answers right after reading its store has nothing newer to
    /// miss). Without that, an engine that missed a peer's commits while cut off
    /// serves its stale cache, and followers drop committed patches to adopt it.
    ///
    /// The same holds for the answers to requests that named a head (v1.3):
    /// a `stored` notice on a reply channel, and `patches`.
    fn check_answer(&mut self, k: usize, channel: &str, payload: &Bytes) {
        use tikaconf_proto::Message;
        let (root, height) = match Message::decode(payload, &Limits::default()) {
            Ok(Message::Snapshot(s)) => (s.root, s.height),
            Ok(Message::Patches(p)) => {
                self.patches_answers += 1;
                (p.root, p.height)
            }
            Ok(Message::Stored(s)) if channel.starts_with("replies:") => {
                self.current_answers += 1;
                (s.root, s.height)
            }
            _ => return,
        };
        self.answers += 1;
        if let Some(stored) = self.store.get(&root) {
            assert!(
                height >= stored.height,
                "storage engine {k} answered height {height} while the store held {}",
                stored.height
            );
        }
    }

    fn run_store_op(&mut self, k: usize) {
        let Some(op) = self.store_ops[k].pop_front() else {
            return;
        };
        let mut out = Vec::new();
        match op {
            StorageCommand::Load(root) => {
                let head = self.store.get(&root).cloned();
                self.storage[k].handle_loaded(root, Ok(head), &mut out);
            }
            StorageCommand::Register(head) => {
                let current = self.store.entry(head.root).or_insert(head).clone();
                self.storage[k].handle_loaded(current.root, Ok(Some(current)), &mut out);
            }
            StorageCommand::CheckHeads(roots) => {
                let heads = roots
                    .iter()
                    .map(|r| self.store.get(r).map(HeadRef::from))
                    .collect();
                self.storage[k].handle_heads(roots, Ok(heads), &mut out);
            }
            StorageCommand::Persist { batch, commits } => {
                let outcomes = commits
                    .into_iter()
                    .map(|c| {
                        let cur = self.store.get(&c.new.root).cloned();
                        match cur {
                            Some(h) if h.head == c.expected_head => {
                                self.store.insert(c.new.root, c.new);
                                PersistOutcome::Applied
                            }
                            Some(h) if h.head == c.new.head => PersistOutcome::AlreadyStored,
                            current => PersistOutcome::Stale { current },
                        }
                    })
                    .collect();
                self.storage[k].handle_persisted(batch, Ok(outcomes), &mut out);
            }
            StorageCommand::Bus(_) => unreachable!("bus commands are not queued here"),
            StorageCommand::Stop(reason) => panic!("storage engine {k} stopped: {reason:?}"),
        }
        // As the driver does: flush after the store's results, so that what
        // they made due goes out before anything else happens.
        self.storage[k].flush(self.now, &mut out);
        self.storage_commands(k, out);
    }

    fn write(&mut self, i: usize) {
        let Some(current) = self.followers[i].current() else {
            return;
        };
        let doc = current.doc.clone();
        self.seq += 1;
        let key = format!("w{i}_{}", self.seq);
        // A unique marker key, so a lost or forked write is visible, plus one random
        // op that may touch (or fail on) anything already in the document.
        let mut ops = vec![json!({"op": "add", "path": format!("/{key}"), "value": self.seq})];
        ops.push(self.random_op(&doc));
        let mut step = Step::default();
        if let Ok(patch) = self.followers[i].submit(self.now, None, json!(ops), None, &mut step) {
            self.keys.insert(patch.hash, key);
            self.follower_step(i, step);
        }
    }

    /// A hostile or buggy writer: a patch on a live head whose ops cannot apply.
    /// Every node must reject it the same way and keep waiting on that channel.
    fn publish_failing_patch(&mut self) {
        let i = self.rng.below(self.followers.len() as u64) as usize;
        let Some(current) = self.followers[i].current() else {
            return;
        };
        let ops = json!([{"op": "remove", "path": "/does/not/exist"}]);
        let root = self.followers[i].root();
        let patch = tikaconf_proto::Patch::build(root, current.head, current.height, ops, None)
            .expect("well-formed");
        let channel = Channels::new(None).updates(&current.head);
        self.publish(channel, patch.encoded.clone());
    }

    /// A random RFC 6902 op against `doc`: on the shared `/data` area, on paths
    /// that exist or not, so some ops fail (and the whole patch with them).
    fn random_op(&mut self, doc: &serde_json::Value) -> serde_json::Value {
        let data = doc.get("data");
        let existing: Vec<String> = match data {
            Some(serde_json::Value::Object(m)) => m.keys().map(|k| format!("/data/{k}")).collect(),
            _ => Vec::new(),
        };
        let fresh = format!("/data/f{}", self.rng.below(20));
        let pick = |rng: &mut Rng, fallback: &str| -> String {
            if existing.is_empty() || rng.chance(30) {
                fallback.to_owned()
            } else {
                existing[rng.below(existing.len() as u64) as usize].clone()
            }
        };
        let value = match self.rng.below(4) {
            0 => json!(self.rng.below(1000)),
            1 => json!(format!("s{}", self.rng.below(100))),
            2 => json!([1, 2.5, {"n": null}]),
            _ => json!({"nested": {"x": self.rng.below(10)}}),
        };
        if data.is_none() {
            return json!({"op": "add", "path": "/data", "value": {}});
        }
        match self.rng.below(6) {
            0 => json!({"op": "add", "path": fresh, "value": value}),
            1 => json!({"op": "remove", "path": pick(&mut self.rng, &fresh)}),
            2 => json!({"op": "replace", "path": pick(&mut self.rng, &fresh), "value": value}),
            3 => json!({"op": "move", "from": pick(&mut self.rng, &fresh), "path": fresh}),
            4 => json!({"op": "copy", "from": pick(&mut self.rng, &fresh), "path": fresh}),
            _ => json!({"op": "test", "path": pick(&mut self.rng, &fresh), "value": value}),
        }
    }

    /// One tick: every connection runs some commands and reads some messages.
    fn tick(&mut self, writes: bool) {
        self.now += Duration::from_millis(1);
        self.tick += 1;
        let n = self.followers.len();
        for i in 0..n {
            if self.reconnect_due(i) {
                self.connect_follower(i);
            }
        }
        for k in 0..self.storage.len() {
            if self.reconnect_due(n + k) {
                let mut cmds = Vec::new();
                self.storage[k].handle_connected(&mut cmds);
                self.storage_commands(k, cmds);
            }
        }
        if writes && self.rng.chance(30) {
            let i = self.rng.below(n as u64) as usize;
            self.write(i);
        }
        if writes && self.rng.chance(2) {
            self.publish_failing_patch();
        }
        for i in 0..n {
            if self.is_down(i) {
                continue;
            }
            let budget = self.rng.below(3) as usize;
            self.run_pending(i, budget);
            for _ in 0..self.rng.below(4) {
                let Some((ch, payload)) = self.conns[i].inbox.pop_front() else {
                    break;
                };
                let mut step = Step::default();
                self.followers[i].handle_message(self.now, ch.as_bytes(), &payload, &mut step);
                self.follower_step(i, step);
            }
            if self.followers[i]
                .next_timeout()
                .is_some_and(|t| t <= self.now)
            {
                let mut step = Step::default();
                self.followers[i].handle_timeout(self.now, &mut step);
                self.follower_step(i, step);
            }
        }
        for k in 0..self.storage.len() {
            let s = n + k;
            if !self.is_down(s) {
                self.run_pending(s, usize::MAX);
            }
            let mut out = Vec::new();
            for _ in 0..self.rng.below(6) {
                let Some((ch, payload)) = self.conns[s].inbox.pop_front() else {
                    break;
                };
                let _ = self.storage[k].handle_message(ch.as_bytes(), &payload, &mut out);
            }
            self.storage[k].flush(self.now, &mut out);
            self.storage_commands(k, out);
            if self.rng.chance(50) {
                self.run_store_op(k);
            }
        }
    }
}

/// What happened in a run, beyond convergence: counts that show the paths
/// under test were taken.
#[derive(Default, Debug)]
struct Paths {
    /// Snapshot broadcasts the storage engines put off for the interval.
    deferred: u64,
    /// `patches` answers published, and batches followers applied.
    patches_answers: u64,
    caught_up: u64,
    /// `stored` notices answering a request that named the durable head.
    current_answers: u64,
}

impl std::ops::AddAssign for Paths {
    fn add_assign(&mut self, other: Paths) {
        self.deferred += other.deferred;
        self.patches_answers += other.patches_answers;
        self.caught_up += other.caught_up;
        self.current_answers += other.current_answers;
    }
}

/// Runs one simulation and checks it; returns which paths it took.
fn run(seed: u64, followers: usize, storage: usize, faults: Faults, ticks: usize) -> Paths {
    let mut sim = Sim::new(seed, followers, storage, faults);
    for _ in 0..ticks {
        sim.tick(true);
    }
    sim.faults = Faults {
        reset_permille: 0,
        dup_pct: 0,
    };
    // Heal: no writes, no faults, time for re-syncs and timeouts.
    for _ in 0..3_000 {
        sim.tick(false);
    }
    let stored = sim.store.values().next().expect("root registered").clone();
    let stored_doc = match tikaconf_proto::Message::decode(&stored.snapshot, &Limits::default()) {
        Ok(tikaconf_proto::Message::Snapshot(s)) => s.config.clone(),
        other => panic!("seed {seed}: bad stored snapshot {other:?}"),
    };
    let stored_bytes = canonical::to_vec(&stored_doc);
    for (i, f) in sim.followers.iter().enumerate() {
        let cur = f
            .current()
            .unwrap_or_else(|| panic!("seed {seed}: follower {i} never loaded"));
        assert_eq!(
            (cur.head, cur.height),
            (stored.head, stored.height),
            "seed {seed}: follower {i} did not converge"
        );
        assert_eq!(
            canonical::to_vec(&cur.doc),
            stored_bytes,
            "seed {seed}: follower {i}"
        );
    }
    let keys: BTreeMap<String, _> = stored_doc
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for k in &sim.committed {
        assert!(keys.contains_key(k), "seed {seed}: committed {k} lost");
    }
    for k in &sim.conflicted {
        assert!(!keys.contains_key(k), "seed {seed}: conflicted {k} present");
    }
    assert!(sim.answers > 0, "seed {seed}: storage never answered");
    assert!(
        !sim.committed.is_empty(),
        "seed {seed}: no write committed at all ({} conflicts, {} timeouts)",
        sim.conflicted.len(),
        sim.timed_out.len()
    );
    Paths {
        deferred: sim
            .storage
            .iter()
            .map(|e| e.stats().broadcasts_deferred)
            .sum(),
        patches_answers: sim.patches_answers,
        caught_up: sim.followers.iter().map(|f| f.stats().caught_up).sum(),
        current_answers: sim.current_answers,
    }
}

#[test]
fn converges_on_a_clean_bus() {
    let mut paths = Paths::default();
    for seed in 0..20 {
        paths += run(
            seed,
            3,
            1,
            Faults {
                reset_permille: 0,
                dup_pct: 0,
            },
            2_000,
        );
    }
    // Periodic re-syncs of current followers cost a notice, not a document.
    assert!(paths.current_answers > 0, "{paths:?}");
}

#[test]
fn converges_with_resets_and_duplicates() {
    let mut paths = Paths::default();
    for seed in 100..130 {
        paths += run(
            seed,
            4,
            1,
            Faults {
                reset_permille: 5,
                dup_pct: 5,
            },
            2_000,
        );
    }
    // Resets make followers re-sync together: some answers wait for the
    // broadcast interval, and convergence held through them.
    assert!(
        paths.deferred > 0,
        "no broadcast was ever put off: {paths:?}"
    );
    // Followers cut off for a while were sent the patches they missed, and
    // applied them; convergence held through that too.
    assert!(paths.patches_answers > 0, "{paths:?}");
    assert!(paths.caught_up > 0, "{paths:?}");
    assert!(paths.current_answers > 0, "{paths:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn converges_for_any_seed(
        seed in any::<u64>(),
        followers in 1usize..5,
        storage in 1usize..3,
        resets in 0u64..20,
    ) {
        run(seed, followers, storage, Faults { reset_permille: resets, dup_pct: 3 }, 1_500);
    }
}

/// Two storage engines share one store (as with `--store redis`), and each loses
/// its connection now and then, missing what the other stores meanwhile. Neither
/// may answer from a cache it has not checked since, or drop the patches of the
/// store's real head as stale: the fleet converges on the store's head and no
/// committed write is lost.
#[test]
fn converges_with_two_storage_engines_on_one_store() {
    for seed in 200..215 {
        run(
            seed,
            4,
            2,
            Faults {
                reset_permille: 5,
                dup_pct: 5,
            },
            2_000,
        );
    }
}
