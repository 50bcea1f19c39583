//! What happened during a run, recorded as it happens and judged afterwards.
//!
//! The invariants are about outcomes as the application saw them (a write told
//! Committed, a follower's heights over time), so the suite records exactly that:
//! every write with its writer, unique key and outcome, every follower's sequence
//! of (height, head) from `Config::changes()`, the windows in which no storage
//! node ran, and every fault the injector actually injected (with whom it hit and
//! when). The checker then decides on the record alone, which is what makes it
//! unit-testable without Redis, including the check that the run did what it was
//! meant to do: writes committed, faults injected, writes in flight during them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tikaconf::Hash;

use crate::faults::FaultKind;

/// How a write ended, as its writer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Storage stored it: it must be in the final document.
    Committed,
    /// Another patch was proven stored instead: it must be absent.
    Conflict,
    /// No outcome in time: either present or absent, never half-applied.
    Indeterminate,
    /// Refused before publishing: never on the bus, so it must be absent. Only a
    /// refusal the run's faults explain is expected (see [`Refusal`]).
    Refused(Refusal),
}

/// Why a write was refused before it was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// The writer was not connected to the bus (`WriteError::Disconnected`):
    /// expected while a fault cuts its link or Redis restarts, and briefly after.
    Disconnected,
    /// The patch was refused as invalid (`WriteError::Rejected`): the workload's
    /// patches are always valid, so never expected.
    Rejected,
    /// The head moved meanwhile (`WriteError::HeadMoved`): the workload never
    /// names a parent, so never expected.
    HeadMoved,
    /// The client was shut down under the writer (`WriteError::Closed`): never
    /// expected while the run goes on.
    Closed,
}

impl Refusal {
    /// What the refusal means, for the report.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Disconnected => "not connected",
            Refusal::Rejected => "rejected as invalid",
            Refusal::HeadMoved => "head moved",
            Refusal::Closed => "client closed",
        }
    }

    /// The refusal of a write that failed with `e` before it was published.
    pub fn of(e: &tikaconf::WriteError) -> Refusal {
        use tikaconf::WriteError::*;
        match e {
            Disconnected => Refusal::Disconnected,
            HeadMoved => Refusal::HeadMoved,
            Closed => Refusal::Closed,
            // Rejected, and anything a later version adds.
            _ => Refusal::Rejected,
        }
    }
}

/// One write: `key` and its twin key are added by one patch, so a half-applied
/// patch shows as one without the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    pub writer: usize,
    pub root: usize,
    pub key: String,
    pub outcome: Outcome,
    /// Since the start of the run.
    pub started: Duration,
    pub ended: Duration,
}

impl WriteRecord {
    /// The second key the same patch adds.
    pub fn twin(&self) -> String {
        twin_of(&self.key)
    }
}

/// The writer's key for its `seq`-th write.
pub fn key_of(writer: usize, seq: u64) -> String {
    format!("w{writer}-{seq}")
}

/// The key the same patch adds alongside `key`.
pub fn twin_of(key: &str) -> String {
    format!("t{}", &key[1..])
}

/// One change a follower saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub height: u64,
    pub head: Hash,
    /// The follower went back to drop patches storage never stored.
    pub dropped: bool,
    /// When the change reached the application, since the start of the run.
    pub at: Duration,
}

impl FollowerLog {
    /// When this follower came to hold `head` for good: the time of the first
    /// observation of the run of observations at `head` that ends the log.
    pub fn reached(&self, head: Hash) -> Option<Duration> {
        let mut at = None;
        for o in self.observations.iter().rev() {
            if o.head != head {
                break;
            }
            at = Some(o.at);
        }
        at
    }
}

/// Everything one follower saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerLog {
    pub follower: String,
    pub root: usize,
    pub observations: Vec<Observation>,
}

/// A span in which no storage node of the deployment was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownWindow {
    pub from: Duration,
    pub to: Duration,
}

/// One fault as injected: what, whom it hit (a member's or storage node's name;
/// `None` for the whole deployment, e.g. a Redis restart) and while it was in
/// effect. An instantaneous fault (a reset) has `from == to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultWindow {
    pub kind: FaultKind,
    pub target: Option<String>,
    pub from: Duration,
    pub to: Duration,
}

/// A load by a fresh client during the run (a probe), and what it returned.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRecord {
    pub root: usize,
    /// Since the start of the run: when the request was made, and answered.
    pub started: Duration,
    pub ended: Duration,
    /// The document loaded, or why the load failed.
    pub answer: Result<Value, String>,
}

/// One pass of issue 11's sequence: storage node `partitioned` cut off for
/// `partition`, its link healed, then storage node `killed` SIGKILLed at
/// `killed_at` and restarted at `restarted_at`. On a shared store the two are
/// different nodes and the partitioned one is the only node left while the other
/// is down; on redb they are the one node, killed after (or while) its link was
/// cut and restarted on its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKill {
    pub partitioned: String,
    pub killed: String,
    /// Another storage node (the partitioned one) ran while `killed` was down.
    pub survivor: bool,
    /// The partition was a black hole (else: connections reset and refused).
    pub blackhole: bool,
    /// No write from just before the heal until the survivor answered a load
    /// after the kill: issue 11's exact sequence.
    pub quiet: bool,
    pub partition: (Duration, Duration),
    pub killed_at: Duration,
    pub restarted_at: Duration,
}

/// The record of one run.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub writes: Vec<WriteRecord>,
    pub followers: Vec<FollowerLog>,
    pub down: Vec<DownWindow>,
    /// Every fault that took effect (a churn that could not leave, say, is not one).
    pub faults: Vec<FaultWindow>,
    /// The kinds the schedule draws from: if any, at least one must be injected.
    pub planned: Vec<FaultKind>,
    /// The kinds the schedule exists for: each must be injected at least once.
    pub required: Vec<FaultKind>,
    /// Each writer's member name, by writer number (to match faults to writers).
    pub writer_names: BTreeMap<usize, String>,
    /// The server runs with a small `client-output-buffer-limit pubsub`: Redis
    /// drops any subscriber that falls behind, at any time, not only one the
    /// injector stalled (a node slowed by a fault elsewhere, or by the machine).
    pub slow_clients_dropped: bool,
    /// Probe loads made during the run (see [`LoadRecord`]).
    pub loads: Vec<LoadRecord>,
    /// Every pass of the partition-then-kill sequence that was carried out.
    pub partition_kills: Vec<PartitionKill>,
}

/// A shared, append-only [`History`] with the run's clock.
#[derive(Debug, Clone)]
pub struct Recorder {
    start: Instant,
    history: Arc<Mutex<History>>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            history: Arc::default(),
        }
    }

    /// Time since the run started.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn write(&self, record: WriteRecord) {
        self.lock().writes.push(record);
    }

    pub fn load(&self, record: LoadRecord) {
        self.lock().loads.push(record);
    }

    pub fn partition_kill(&self, record: PartitionKill) {
        self.lock().partition_kills.push(record);
    }

    /// Writes Committed that ended at or after `since`.
    pub fn committed_since(&self, since: Duration) -> usize {
        self.lock()
            .writes
            .iter()
            .filter(|w| w.outcome == Outcome::Committed && w.ended >= since)
            .count()
    }

    /// Writes started at or after `since`, whatever their outcome.
    pub fn started_since(&self, since: Duration) -> usize {
        self.lock()
            .writes
            .iter()
            .filter(|w| w.started >= since)
            .count()
    }

    pub fn down(&self, window: DownWindow) {
        self.lock().down.push(window);
    }

    pub fn fault(&self, window: FaultWindow) {
        self.lock().faults.push(window);
    }

    /// Records what the schedule plans to inject (see [`History::planned`]).
    pub fn plan(&self, planned: &[FaultKind], required: &[FaultKind]) {
        let mut h = self.lock();
        h.planned = planned.to_vec();
        h.required = required.to_vec();
    }

    /// Records that Redis drops slow pub/sub clients in this run.
    pub fn slow_clients_dropped(&self) {
        self.lock().slow_clients_dropped = true;
    }

    /// Records writer number `writer`'s member name.
    pub fn writer(&self, writer: usize, name: String) {
        self.lock().writer_names.insert(writer, name);
    }

    /// Registers a follower; returns its index for [`Recorder::observe`].
    pub fn follower(&self, follower: String, root: usize, first: Observation) -> usize {
        let mut h = self.lock();
        h.followers.push(FollowerLog {
            follower,
            root,
            observations: vec![first],
        });
        h.followers.len() - 1
    }

    pub fn observe(&self, index: usize, observation: Observation) {
        self.lock().followers[index].observations.push(observation);
    }

    pub fn snapshot(&self) -> History {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        // A panic elsewhere must not hide the record: take it even if poisoned.
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}
