//! The invariants of issue 3, decided from a [`History`] and the final state.
//!
//! Kept apart from the code that injects faults so that each rule can be tested on
//! hand-made histories: a checker that never fails proves nothing, so the unit
//! tests below feed it each kind of violation and expect it to be caught.
//!
//! 1. Every Committed write is in the final document; every Conflict (and every
//!    write never sent) is absent; an indeterminate one is present or absent but
//!    never half-applied (its two keys come together).
//! 2. After healing, every follower and every storage node of a root hold the same
//!    head and byte-identical canonical documents (checked by [`check_final`];
//!    the time it took is measured by the run).
//! 3. A follower's height never decreases, except by a change marked `dropped`.
//! 4. Nothing is acknowledged while no storage node runs (and, checked by the run,
//!    no panic, no hang).
//!
//! And one rule about the record itself ([`check_evidence`]): a run that proves
//! nothing fails. Every rule above holds trivially when nothing was written or no
//! fault was injected, so a run must show at least one Committed write, every fault
//! its schedule plans and requires, and a write in flight during every fault.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tikaconf::Hash;

use crate::faults::FaultKind;
use crate::history::{
    DownWindow, FaultWindow, FollowerLog, History, LoadRecord, Outcome, PartitionKill, Refusal,
    WriteRecord,
};

/// How long after a fault that cut a writer's connection the writer may still be
/// refused as not connected: the bus reconnects with a backoff of at most 500 ms
/// (`tikaconf_redis::bus::Backoff`), then subscribes again; 5 s is ten times that.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(5);

/// Faults that can leave a node without a connection: a Redis restart (every
/// node), and on one node's proxy a reset, refused connections, a stall (Redis
/// drops the slow client) or a black hole (once the node notices it).
fn disconnects(kind: FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::RedisRestart
            | FaultKind::Reset
            | FaultKind::DropNew
            | FaultKind::Stall
            | FaultKind::Blackhole
    )
}

/// One broken invariant, described for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant: "lost-write", "conflict-present", ...
    pub kind: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

fn violation(kind: &'static str, detail: String) -> Violation {
    Violation { kind, detail }
}

/// Counts of what the checker saw, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Committed writes missing from the final document.
    pub lost: u64,
    /// Indeterminate writes that made it.
    pub indeterminate_present: u64,
    /// Changes by which a follower dropped unstored patches (allowed decreases).
    pub dropped_changes: u64,
    /// Writes started while no storage node ran (none may be acknowledged before
    /// one runs again).
    pub started_while_down: u64,
    /// Refusals a fault explains (the writer's link was cut, or Redis restarted).
    pub refused_expected: u64,
    /// Refusals nothing explains (each is also a violation).
    pub refused_unexpected: u64,
}

/// Invariant 1 over the final document of each root (`finals[root]`).
pub fn check_writes(writes: &[WriteRecord], finals: &[Value], tally: &mut Tally) -> Vec<Violation> {
    let mut out = Vec::new();
    for w in writes {
        *tally.outcomes.entry(w.outcome).or_default() += 1;
        let Some(doc) = finals.get(w.root) else {
            out.push(violation(
                "no-final-document",
                format!("root {} of write {}", w.root, w.key),
            ));
            continue;
        };
        let key = doc.get(&w.key).is_some();
        let twin = doc.get(w.twin()).is_some();
        if key != twin {
            out.push(violation(
                "half-applied",
                format!(
                    "write {} on root {} ({:?}): key present {key}, twin present {twin}",
                    w.key, w.root, w.outcome
                ),
            ));
            continue;
        }
        match (w.outcome, key) {
            (Outcome::Committed, false) => {
                tally.lost += 1;
                out.push(violation(
                    "lost-write",
                    format!(
                        "write {} on root {} was Committed at {:?} but is not in the final document",
                        w.key, w.root, w.ended
                    ),
                ));
            }
            (Outcome::Conflict, true) => out.push(violation(
                "conflict-present",
                format!(
                    "write {} on root {} was told Conflict at {:?} but is in the final document",
                    w.key, w.root, w.ended
                ),
            )),
            (Outcome::Refused(_), true) => out.push(violation(
                "unsent-present",
                format!(
                    "write {} on root {} was refused before publishing but is in the final document",
                    w.key, w.root
                ),
            )),
            (Outcome::Indeterminate, true) => tally.indeterminate_present += 1,
            _ => {}
        }
    }
    out
}

/// Invariant 3: heights never decrease except by a `dropped` change.
pub fn check_heights(logs: &[FollowerLog], tally: &mut Tally) -> Vec<Violation> {
    let mut out = Vec::new();
    for log in logs {
        for pair in log.observations.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            if after.dropped {
                tally.dropped_changes += 1;
                continue;
            }
            if after.height < before.height {
                out.push(violation(
                    "height-decreased",
                    format!(
                        "follower {} of root {} went from height {} ({}) to {} ({}) without dropping",
                        log.follower, log.root, before.height, before.head, after.height, after.head
                    ),
                ));
            }
        }
    }
    out
}

/// Invariant 4, the part the record shows: no write started while no storage node
/// ran may be reported Committed before one runs again.
pub fn check_down_windows(
    writes: &[WriteRecord],
    down: &[DownWindow],
    tally: &mut Tally,
) -> Vec<Violation> {
    let mut out = Vec::new();
    tally.started_while_down += writes
        .iter()
        .filter(|w| down.iter().any(|d| w.started >= d.from && w.started < d.to))
        .count() as u64;
    for w in writes.iter().filter(|w| w.outcome == Outcome::Committed) {
        if let Some(d) = down.iter().find(|d| w.started >= d.from && w.ended < d.to) {
            out.push(violation(
                "acknowledged-while-down",
                format!(
                    "write {} on root {} was Committed at {:?}, with no storage node running from {:?} to {:?}",
                    w.key, w.root, w.ended, d.from, d.to
                ),
            ));
        }
    }
    out
}

/// One node's view of a root at the end: a follower's or a storage node's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub node: String,
    pub head: Hash,
    pub height: u64,
    /// Canonical bytes of the document.
    pub canonical: Vec<u8>,
}

/// Invariant 2 at the end: every view of each root (storage first) agrees with the
/// first storage view on head, height and canonical bytes.
pub fn check_final(roots: &[Vec<View>]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (root, views) in roots.iter().enumerate() {
        let Some(reference) = views.first() else {
            out.push(violation("no-storage-view", format!("root {root}")));
            continue;
        };
        for v in &views[1..] {
            if v.head != reference.head || v.height != reference.height {
                out.push(violation(
                    "diverged",
                    format!(
                        "root {root}: {} holds {} at height {}, {} holds {} at height {}",
                        v.node, v.head, v.height, reference.node, reference.head, reference.height
                    ),
                ));
            } else if v.canonical != reference.canonical {
                out.push(violation(
                    "document-differs",
                    format!(
                        "root {root}: {} and {} hold head {} with different canonical documents",
                        v.node, reference.node, v.head
                    ),
                ));
            }
        }
    }
    out
}

/// A write refused before publishing is only acceptable when a fault explains
/// it: "not connected" while (or up to [`RECONNECT_GRACE`] after) a fault that
/// cuts that writer's link, or a Redis restart, or at any time in a run whose
/// server drops slow pub/sub clients (its small output limit is itself the
/// fault: it can drop a writer that only fell behind). Any other refusal, or one outside
/// those windows, is a violation: the writer could not do its job and the run
/// would otherwise count it as a harmless "not sent".
pub fn check_refusals(history: &History, tally: &mut Tally) -> Vec<Violation> {
    let mut out = Vec::new();
    for w in &history.writes {
        let Outcome::Refused(refusal) = w.outcome else {
            continue;
        };
        let name = history.writer_names.get(&w.writer);
        let explained = refusal == Refusal::Disconnected
            && (history.slow_clients_dropped
                || history.faults.iter().any(|f| {
                    disconnects(f.kind)
                        && (f.target.is_none() || f.target.as_ref() == name)
                        && w.started >= f.from
                        && w.started <= f.to + RECONNECT_GRACE
                }));
        if explained {
            tally.refused_expected += 1;
        } else {
            tally.refused_unexpected += 1;
            let faults: Vec<String> = history
                .faults
                .iter()
                .filter(|f| f.target.is_none() || f.target.as_ref() == name)
                .map(describe)
                .collect();
            out.push(violation(
                "unexpected-refusal",
                format!(
                    "write {} on root {} by {} was refused ({}) at {:?} with no fault to explain it (faults on it: {})",
                    w.key,
                    w.root,
                    name.map_or("an unnamed writer", String::as_str),
                    refusal.label(),
                    w.started,
                    if faults.is_empty() { "none".to_owned() } else { faults.join("; ") }
                ),
            ));
        }
    }
    out
}

/// How long a fault's consequences outlast it: a reset node reconnects and
/// re-syncs, a node that left stays gone. Writers write every few milliseconds,
/// so a run whose writers are alive always has one in flight within this; an
/// instantaneous fault (a reset, a leave) is judged on it rather than on the
/// microseconds it took.
pub const FAULT_TAIL: Duration = Duration::from_secs(1);

/// Whether `w` was in flight at some moment of `f` or of the [`FAULT_TAIL`]
/// after it (started before that ended and ended after the fault began).
fn in_flight_during(w: &WriteRecord, f: &FaultWindow) -> bool {
    w.started <= f.to + FAULT_TAIL && w.ended >= f.from
}

fn describe(f: &FaultWindow) -> String {
    format!(
        "{} on {} from {:?} to {:?}",
        f.kind.label(),
        f.target.as_deref().unwrap_or("the deployment"),
        f.from,
        f.to
    )
}

/// The run did what it exists to do, so that the other rules are not passed
/// vacuously:
///
/// - at least one write was Committed (invariant 1 holds trivially otherwise);
/// - a schedule that plans faults injected at least one, and every kind it
///   requires at least once;
/// - a write was in flight during every fault injected, or within
///   [`FAULT_TAIL`] after it (a fault nobody was writing through tests nothing
///   about writes);
/// - during every storage outage at least one write *started* (the outage
///   schedule exists for writes made while no storage node runs).
pub fn check_evidence(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let committed = history
        .writes
        .iter()
        .filter(|w| w.outcome == Outcome::Committed)
        .count();
    if committed == 0 {
        out.push(violation(
            "no-committed-writes",
            format!(
                "none of the {} writes was Committed: nothing shows that committed writes survive",
                history.writes.len()
            ),
        ));
    }
    if !history.planned.is_empty() && history.faults.is_empty() {
        let kinds: Vec<_> = history.planned.iter().map(|k| k.label()).collect();
        out.push(violation(
            "no-faults",
            format!(
                "the schedule injects {} but no fault took effect",
                kinds.join(", ")
            ),
        ));
    }
    let mut required = history.required.clone();
    required.dedup();
    for kind in required {
        if !history.faults.iter().any(|f| f.kind == kind) {
            out.push(violation(
                "fault-not-injected",
                format!(
                    "the schedule exists for {} but it never took effect",
                    kind.label()
                ),
            ));
        }
    }
    for f in &history.faults {
        if !history.writes.iter().any(|w| in_flight_during(w, f)) {
            out.push(violation(
                "no-write-during-fault",
                format!(
                    "no write was in flight during {} (or within {FAULT_TAIL:?} after)",
                    describe(f)
                ),
            ));
        }
        if f.kind == FaultKind::StorageOutage
            && !history
                .writes
                .iter()
                .any(|w| w.started >= f.from && w.started <= f.to)
        {
            out.push(violation(
                "no-write-during-outage",
                format!("no write started during {}", describe(f)),
            ));
        }
    }
    out
}

/// How the followers of a run came to hold their root's final head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Convergence {
    /// Per follower that did not hold its final head yet at its root's
    /// reference moment: how long after that moment it came to hold it.
    pub delays: Vec<Duration>,
    /// Followers that already held their final head at that moment (counted,
    /// not reported as 0 ms: they did not have to converge).
    pub already: usize,
}

/// Measures convergence from each follower's record: `followers` are the
/// members that only follow (`(name, root)`; writers are left out, they make
/// the head rather than follow it), `finals[root]` the final head and
/// `from[root]` the reference moment (the later of the last Committed write on
/// the root and the end of healing). A follower whose record never reaches its
/// final head is a violation: either it never converged or its record is
/// incomplete, and either way the measurement would be a guess.
pub fn convergence(
    logs: &[FollowerLog],
    followers: &[(String, usize)],
    finals: &[Hash],
    from: &[Duration],
) -> (Convergence, Vec<Violation>) {
    let mut c = Convergence::default();
    let mut out = Vec::new();
    for (name, root) in followers {
        let log = logs.iter().find(|l| &l.follower == name);
        let reached = log.and_then(|l| l.reached(finals[*root]));
        match reached {
            None => out.push(violation(
                "no-convergence",
                format!(
                    "follower {name} of root {root}: its changes never reached the final head {}",
                    finals[*root]
                ),
            )),
            Some(at) if at <= from[*root] => c.already += 1,
            Some(at) => c.delays.push(at - from[*root]),
        }
    }
    (c, out)
}

/// Loads are answered at the committed head: every probe load was answered,
/// and its document holds every write Committed on its root before the load was
/// requested (both keys) and no write told Conflict by then. A storage node that
/// answers from a stale cache (issue 11: B answered height 3 while the store
/// held 13) fails the first rule; one on a forked chain the second.
pub fn check_loads(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    for load in &history.loads {
        let doc = match &load.answer {
            Ok(doc) => doc,
            Err(e) => {
                out.push(violation(
                    "load-unanswered",
                    format!(
                        "a load of root {} requested at {:?} failed at {:?}: {e}",
                        load.root, load.started, load.ended
                    ),
                ));
                continue;
            }
        };
        let before = |w: &&WriteRecord| w.root == load.root && w.ended <= load.started;
        let has = |w: &WriteRecord| doc.get(&w.key).is_some() && doc.get(w.twin()).is_some();
        let missing: Vec<&WriteRecord> = history
            .writes
            .iter()
            .filter(before)
            .filter(|w| w.outcome == Outcome::Committed && !has(w))
            .collect();
        if let Some(first) = missing.first() {
            out.push(violation(
                "stale-load",
                format!(
                    "a load of root {} requested at {:?} was answered without {} write(s) Committed before it (first: {}, Committed at {:?})",
                    load.root,
                    load.started,
                    missing.len(),
                    first.key,
                    first.ended
                ),
            ));
        }
        if let Some(w) = history
            .writes
            .iter()
            .filter(before)
            .find(|w| w.outcome == Outcome::Conflict && doc.get(&w.key).is_some())
        {
            out.push(violation(
                "conflict-loaded",
                format!(
                    "a load of root {} requested at {:?} was answered with write {}, told Conflict at {:?}",
                    load.root, load.started, w.key, w.ended
                ),
            ));
        }
    }
    out
}

fn answered_within(loads: &[LoadRecord], from: Duration, to: Duration) -> bool {
    loads
        .iter()
        .any(|l| l.answer.is_ok() && l.started >= from && l.started <= to)
}

fn committed_within(writes: &[WriteRecord], from: Duration, to: Duration) -> bool {
    writes
        .iter()
        .any(|w| w.outcome == Outcome::Committed && w.ended >= from && w.ended <= to)
}

/// How long after a restart on redb a load must have been answered for the
/// pass to count (the injector loads right after the restart).
pub const RESTART_LOAD_WINDOW: Duration = Duration::from_secs(30);

/// Issue 11's sequence took place and the fleet was served through it.
///
/// Each pass on a shared store must show the node left alone serving: a load
/// answered and a write Committed while the other node was down (on cdbe9c4
/// the load was answered at a stale height and the next write never
/// acknowledged). Each pass on redb must show a load answered after the
/// restart. And a schedule that exists for the sequence must have carried it
/// out at least once with writes going on: on a shared store, a write
/// Committed (by the other node) while the partitioned node was cut off; on
/// redb, a write started while the only node was cut off. Otherwise the run
/// did not test what it exists for.
pub fn check_partition_kills(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let describe = |p: &PartitionKill| {
        format!(
            "{} partitioned ({}) from {:?} to {:?}, {} killed at {:?}, restarted at {:?}",
            p.partitioned,
            if p.blackhole {
                "black hole"
            } else {
                "reset and refused"
            },
            p.partition.0,
            p.partition.1,
            p.killed,
            p.killed_at,
            p.restarted_at
        )
    };
    for p in &history.partition_kills {
        if p.survivor {
            if !answered_within(&history.loads, p.killed_at, p.restarted_at) {
                out.push(violation(
                    "not-served-after-kill",
                    format!(
                        "no load was answered while only {} ran: {}",
                        p.partitioned,
                        describe(p)
                    ),
                ));
            }
            if !committed_within(&history.writes, p.killed_at, p.restarted_at) {
                out.push(violation(
                    "not-served-after-kill",
                    format!(
                        "no write was Committed while only {} ran: {}",
                        p.partitioned,
                        describe(p)
                    ),
                ));
            }
        } else if !answered_within(
            &history.loads,
            p.restarted_at,
            p.restarted_at + RESTART_LOAD_WINDOW,
        ) {
            out.push(violation(
                "not-served-after-kill",
                format!("no load was answered after the restart: {}", describe(p)),
            ));
        }
    }
    if history.required.contains(&FaultKind::PartitionKill) {
        let tested = history.partition_kills.iter().any(|p| {
            let (from, to) = p.partition;
            if p.survivor {
                committed_within(&history.writes, from, to)
            } else {
                history
                    .writes
                    .iter()
                    .any(|w| w.started >= from && w.started <= to)
            }
        });
        if !tested {
            out.push(violation(
                "no-partition-kill",
                format!(
                    "the schedule exists for a storage node partitioned while writes go on, then a storage node killed, and no such pass took place ({} passes, none with writes during the partition)",
                    history.partition_kills.len()
                ),
            ));
        }
    }
    out
}

/// Runs every record-based check.
pub fn check(history: &History, finals: &[Value], tally: &mut Tally) -> Vec<Violation> {
    let mut out = check_writes(&history.writes, finals, tally);
    out.extend(check_heights(&history.followers, tally));
    out.extend(check_down_windows(&history.writes, &history.down, tally));
    out.extend(check_evidence(history));
    out.extend(check_refusals(history, tally));
    out.extend(check_loads(history));
    out.extend(check_partition_kills(history));
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    /// The kinds of `violations`, in order.
    fn kinds_of(violations: &[Violation]) -> Vec<&'static str> {
        violations.iter().map(|v| v.kind).collect()
    }
    use crate::history::{Observation, key_of};

    fn write(writer: usize, seq: u64, outcome: Outcome) -> WriteRecord {
        WriteRecord {
            writer,
            root: 0,
            key: key_of(writer, seq),
            outcome,
            started: Duration::from_secs(seq),
            ended: Duration::from_secs(seq) + Duration::from_millis(10),
        }
    }

    fn hash(n: u8) -> Hash {
        Hash::of_canonical_bytes(&[n])
    }

    fn obs(height: u64, n: u8, dropped: bool) -> Observation {
        Observation {
            height,
            head: hash(n),
            dropped,
            at: Duration::from_secs(height),
        }
    }

    #[test]
    fn committed_present_and_conflict_absent_pass() {
        let writes = [
            write(1, 1, Outcome::Committed),
            write(1, 2, Outcome::Conflict),
            write(2, 1, Outcome::Indeterminate),
            write(2, 2, Outcome::Indeterminate),
            write(2, 3, Outcome::Refused(Refusal::Disconnected)),
        ];
        let doc = json!({"w1-1": 1, "t1-1": 1, "w2-2": 2, "t2-2": 2});
        let mut tally = Tally::default();
        assert_eq!(check_writes(&writes, &[doc], &mut tally), vec![]);
        assert_eq!(tally.outcomes[&Outcome::Indeterminate], 2);
        assert_eq!(tally.indeterminate_present, 1);
        assert_eq!(tally.lost, 0);
    }

    #[test]
    fn a_lost_write_is_caught_and_counted() {
        let writes = [write(1, 1, Outcome::Committed)];
        let mut tally = Tally::default();
        let v = check_writes(&writes, &[json!({})], &mut tally);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, "lost-write");
        assert_eq!(tally.lost, 1);
    }

    #[test]
    fn a_present_conflict_or_unsent_write_is_caught() {
        let writes = [
            write(1, 1, Outcome::Conflict),
            write(1, 2, Outcome::Refused(Refusal::Disconnected)),
        ];
        let doc = json!({"w1-1": 1, "t1-1": 1, "w1-2": 2, "t1-2": 2});
        let v = check_writes(&writes, &[doc], &mut Tally::default());
        let kinds = kinds_of(&v);
        assert_eq!(kinds, ["conflict-present", "unsent-present"]);
    }

    #[test]
    fn a_half_applied_write_is_caught_whatever_its_outcome() {
        let writes = [write(3, 7, Outcome::Indeterminate)];
        let v = check_writes(&writes, &[json!({"w3-7": 1})], &mut Tally::default());
        assert_eq!(v[0].kind, "half-applied");
    }

    #[test]
    fn heights_may_only_drop_with_a_dropped_change() {
        let ok = FollowerLog {
            follower: "f".into(),
            root: 0,
            observations: vec![
                obs(1, 1, false),
                obs(3, 3, false),
                obs(2, 9, true),
                obs(4, 4, false),
            ],
        };
        let mut tally = Tally::default();
        assert_eq!(check_heights(std::slice::from_ref(&ok), &mut tally), vec![]);
        assert_eq!(tally.dropped_changes, 1);
        let bad = FollowerLog {
            observations: vec![obs(5, 5, false), obs(4, 4, false)],
            ..ok
        };
        let v = check_heights(&[bad], &mut Tally::default());
        assert_eq!(v[0].kind, "height-decreased");
    }

    #[test]
    fn a_commit_while_storage_is_down_is_caught() {
        let down = [DownWindow {
            from: Duration::from_secs(10),
            to: Duration::from_secs(20),
        }];
        let before = write(1, 5, Outcome::Committed); // started at 5 s
        let during = write(1, 12, Outcome::Committed); // started and ended inside
        let timed_out = write(1, 13, Outcome::Indeterminate);
        let mut tally = Tally::default();
        let v = check_down_windows(&[before, during, timed_out], &down, &mut tally);
        assert_eq!(tally.started_while_down, 2);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, "acknowledged-while-down");
    }

    fn window(kind: FaultKind, from: u64, to: u64) -> FaultWindow {
        FaultWindow {
            kind,
            target: Some("storage0".into()),
            from: Duration::from_secs(from),
            to: Duration::from_secs(to),
        }
    }

    /// A run in which nothing happened must not pass: the other invariants all
    /// hold on an empty record.
    #[test]
    fn an_empty_history_fails() {
        let v = check(&History::default(), &[], &mut Tally::default());
        let kinds = kinds_of(&v);
        assert_eq!(kinds, ["no-committed-writes"]);
    }

    #[test]
    fn writes_without_a_commit_fail() {
        let history = History {
            writes: vec![
                write(1, 1, Outcome::Indeterminate),
                write(1, 2, Outcome::Conflict),
            ],
            ..History::default()
        };
        let v = check_evidence(&history);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, "no-committed-writes");
        assert!(v[0].detail.contains("none of the 2 writes"), "{}", v[0]);
    }

    #[test]
    fn a_schedule_whose_faults_never_happened_fails() {
        let history = History {
            writes: vec![write(1, 1, Outcome::Committed)],
            planned: vec![FaultKind::StorageKill, FaultKind::Reset],
            required: vec![FaultKind::StorageKill],
            ..History::default()
        };
        let kinds = kinds_of(&check_evidence(&history));
        assert_eq!(kinds, ["no-faults", "fault-not-injected"]);
        // A fault of another kind is not the one the schedule exists for.
        let history = History {
            faults: vec![window(FaultKind::Reset, 1, 1)],
            ..history
        };
        let kinds = kinds_of(&check_evidence(&history));
        assert_eq!(kinds, ["fault-not-injected"]);
    }

    #[test]
    fn a_fault_with_no_write_in_flight_fails() {
        // write(1, 1) runs from 1 s to 1.01 s; write(1, 9) from 9 s to 9.01 s.
        let history = History {
            writes: vec![
                write(1, 1, Outcome::Committed),
                write(1, 9, Outcome::Committed),
            ],
            planned: vec![FaultKind::Reset, FaultKind::Latency],
            faults: vec![
                window(FaultKind::Reset, 1, 1),
                window(FaultKind::Latency, 8, 10),
                window(FaultKind::Latency, 3, 5),
            ],
            ..History::default()
        };
        let v = check_evidence(&history);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].kind, "no-write-during-fault");
        assert!(v[0].detail.contains("from 3s to 5s"), "{}", v[0]);
    }

    #[test]
    fn a_storage_outage_without_a_write_started_during_it_fails() {
        // A write that began before the outage and timed out during it was in
        // flight, but tells nothing about writes made while storage is down.
        let mut long = write(1, 1, Outcome::Indeterminate);
        long.ended = Duration::from_secs(6);
        let history = History {
            writes: vec![long, write(1, 20, Outcome::Committed)],
            planned: vec![FaultKind::StorageOutage],
            required: vec![FaultKind::StorageOutage],
            faults: vec![window(FaultKind::StorageOutage, 2, 8)],
            ..History::default()
        };
        let kinds = kinds_of(&check_evidence(&history));
        assert_eq!(kinds, ["no-write-during-outage"]);
        let mut during = history.clone();
        during.writes.push(write(2, 7, Outcome::Indeterminate));
        assert_eq!(check_evidence(&during), vec![]);
    }

    #[test]
    fn a_refusal_passes_only_when_a_fault_cut_that_writer() {
        let refused = |writer, seq, why| write(writer, seq, Outcome::Refused(why));
        let mut reset = window(FaultKind::Reset, 10, 10);
        reset.target = Some("writer1".into());
        let history = History {
            writes: vec![
                write(1, 1, Outcome::Committed),
                // Right after its own link was reset: expected.
                refused(1, 11, Refusal::Disconnected),
                // Long after: the writer should have reconnected.
                refused(1, 30, Refusal::Disconnected),
                // Another writer, whose link was never cut.
                refused(2, 11, Refusal::Disconnected),
                // Never explained by a fault.
                refused(1, 12, Refusal::Rejected),
                refused(1, 13, Refusal::Closed),
                // Redis restarted: every writer may be refused.
                refused(2, 41, Refusal::Disconnected),
            ],
            faults: vec![reset, {
                let mut r = window(FaultKind::RedisRestart, 40, 41);
                r.target = None;
                r
            }],
            writer_names: [(1, "writer1".into()), (2, "writer2".into())].into(),
            ..History::default()
        };
        let mut tally = Tally::default();
        let v = check_refusals(&history, &mut tally);
        let details: Vec<_> = v.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(v.len(), 4, "{details:#?}");
        // Where Redis drops slow subscribers, "not connected" needs no fault of its
        // own; the other refusals stay unexplained.
        let lenient = History {
            slow_clients_dropped: true,
            ..history.clone()
        };
        let v = check_refusals(&lenient, &mut Tally::default());
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v.iter().all(|v| v.kind == "unexpected-refusal"));
        assert!(details[0].contains("w1-30") && details[0].contains("not connected"));
        assert!(details[1].contains("w2-11") && details[1].contains("writer2"));
        assert!(details[2].contains("rejected as invalid"));
        assert!(details[3].contains("client closed"));
        assert_eq!((tally.refused_expected, tally.refused_unexpected), (2, 4));
    }

    /// On cdbe9c4 a refused write counted as "not sent" and passed.
    #[test]
    fn a_refused_write_with_no_fault_fails_the_run() {
        let history = History {
            writes: vec![
                write(1, 1, Outcome::Committed),
                write(1, 2, Outcome::Refused(Refusal::Disconnected)),
            ],
            ..History::default()
        };
        let v = check(
            &history,
            &[json!({"w1-1": 1, "t1-1": 1})],
            &mut Tally::default(),
        );
        let kinds = kinds_of(&v);
        assert_eq!(kinds, ["unexpected-refusal"]);
    }

    /// On cdbe9c4 a member already on the final head counted as 0 ms, writers
    /// counted as followers, and a follower whose record never reached the
    /// final head was left out silently.
    #[test]
    fn convergence_counts_followers_that_had_to_converge() {
        let log = |name: &str, at: &[(u8, u64)]| FollowerLog {
            follower: name.into(),
            root: 0,
            observations: at
                .iter()
                .map(|&(n, ms)| Observation {
                    height: u64::from(n),
                    head: hash(n),
                    dropped: false,
                    at: Duration::from_millis(ms),
                })
                .collect(),
        };
        let logs = [
            log("early", &[(1, 0), (2, 500)]),
            log("late", &[(1, 0), (2, 1_300)]),
            log("stuck", &[(1, 0)]),
            log("writer0", &[(1, 0), (2, 5_000)]),
        ];
        let followers = [
            ("early".to_owned(), 0),
            ("late".to_owned(), 0),
            ("stuck".to_owned(), 0),
        ];
        let (c, v) = convergence(&logs, &followers, &[hash(2)], &[Duration::from_secs(1)]);
        assert_eq!(c.already, 1);
        assert_eq!(c.delays, [Duration::from_millis(300)]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, "no-convergence");
        assert!(v[0].detail.contains("stuck"), "{}", v[0]);
    }

    #[test]
    fn final_views_must_agree_byte_for_byte() {
        let view = |node: &str, n: u8, doc: &str| View {
            node: node.into(),
            head: hash(n),
            height: 3,
            canonical: doc.as_bytes().to_vec(),
        };
        let same = vec![view("storage", 1, "{}"), view("f1", 1, "{}")];
        assert_eq!(check_final(std::slice::from_ref(&same)), vec![]);
        let diverged = vec![view("storage", 1, "{}"), view("f1", 2, "{}")];
        let differs = vec![view("storage", 1, "{}"), view("f1", 1, "{\"a\":1}")];
        let v = check_final(&[diverged, differs, vec![]]);
        let kinds = kinds_of(&v);
        assert_eq!(kinds, ["diverged", "document-differs", "no-storage-view"]);
    }

    fn load(root: usize, at: u64, answer: Result<Value, String>) -> LoadRecord {
        LoadRecord {
            root,
            started: Duration::from_secs(at),
            ended: Duration::from_secs(at) + Duration::from_millis(5),
            answer,
        }
    }

    /// Issue 11: after the kill, B answered at height 3 while the store held
    /// 13. A load must hold every write Committed before it was requested.
    #[test]
    fn a_load_behind_the_committed_head_or_unanswered_fails() {
        let history = History {
            writes: vec![
                write(1, 1, Outcome::Committed),
                write(1, 2, Outcome::Committed),
                write(1, 3, Outcome::Conflict),
                // Committed after the load was requested: may be missing.
                write(1, 9, Outcome::Committed),
            ],
            loads: vec![
                load(
                    0,
                    5,
                    Ok(json!({"w1-1": 1, "t1-1": 1, "w1-2": 2, "t1-2": 2})),
                ),
                load(0, 6, Ok(json!({"w1-1": 1, "t1-1": 1}))),
                load(
                    0,
                    7,
                    Ok(json!({"w1-1": 1, "t1-1": 1, "w1-2": 2, "t1-2": 2, "w1-3": 3, "t1-3": 3})),
                ),
                load(0, 8, Err("no answer".into())),
            ],
            ..History::default()
        };
        let v = check_loads(&history);
        let kinds = kinds_of(&v);
        assert_eq!(
            kinds,
            ["stale-load", "conflict-loaded", "load-unanswered"],
            "{v:#?}"
        );
        assert!(v[0].detail.contains("without 1 write") && v[0].detail.contains("w1-2"));
    }

    fn pass(survivor: bool) -> PartitionKill {
        PartitionKill {
            partitioned: "storage1".into(),
            killed: if survivor { "storage0" } else { "storage1" }.into(),
            survivor,
            blackhole: false,
            quiet: false,
            partition: (Duration::from_secs(1), Duration::from_secs(3)),
            killed_at: Duration::from_secs(4),
            restarted_at: Duration::from_secs(8),
        }
    }

    #[test]
    fn a_partition_kill_pass_must_be_served_and_must_happen() {
        let required = vec![FaultKind::PartitionKill];
        // Nothing happened: the schedule's reason to exist is missing.
        let none = History {
            required: required.clone(),
            ..History::default()
        };
        let kinds = kinds_of(&check_partition_kills(&none));
        assert_eq!(kinds, ["no-partition-kill"]);
        // Shared store: commits during the partition (by A) and, while A is
        // down, a load answered and a write Committed (by B).
        let served = History {
            required: required.clone(),
            partition_kills: vec![pass(true)],
            writes: vec![
                write(1, 2, Outcome::Committed),
                write(1, 6, Outcome::Committed),
            ],
            loads: vec![load(0, 5, Ok(json!({})))],
            ..History::default()
        };
        assert_eq!(check_partition_kills(&served), vec![]);
        let mut unserved = served.clone();
        unserved.writes.pop();
        unserved.loads[0].answer = Err("no answer".into());
        let kinds = kinds_of(&check_partition_kills(&unserved));
        assert_eq!(kinds, ["not-served-after-kill", "not-served-after-kill"]);
        let mut no_writes_during_partition = served.clone();
        no_writes_during_partition.writes.remove(0);
        let kinds = kinds_of(&check_partition_kills(&no_writes_during_partition));
        assert_eq!(kinds, ["no-partition-kill"]);
        // redb: a write started during the partition, a load after the restart.
        let redb = History {
            required,
            partition_kills: vec![pass(false)],
            writes: vec![
                write(1, 2, Outcome::Indeterminate),
                write(1, 10, Outcome::Committed),
            ],
            loads: vec![load(0, 9, Ok(json!({})))],
            ..History::default()
        };
        assert_eq!(check_partition_kills(&redb), vec![]);
        let mut early = redb.clone();
        early.loads[0].started = Duration::from_secs(5);
        let kinds = kinds_of(&check_partition_kills(&early));
        assert_eq!(kinds, ["not-served-after-kill"]);
    }
}
