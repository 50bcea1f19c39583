//! The metrics tikaconf reports, through the [`metrics`] facade.
//!
//! The library counts; the application chooses the exporter. Install a
//! recorder (for Prometheus, `metrics-exporter-prometheus`) **before** making a
//! [`Client`](crate::Client), a [`StorageNode`](crate::StorageNode) or a
//! [`Live`](crate::Live): each of them registers its series when it is made and
//! keeps the handles, so that the hot path (every message a follower receives)
//! costs an atomic add, with no key lookup or label formatting per message. A
//! recorder installed later sees nothing of the ones made before it. Without a
//! recorder every update is a no-op.
//!
//! The names are the constants of this module, for an application (or
//! `tikaconf serve`) that reuses them; [`describe`] registers their help texts
//! and units, and [`SECONDS_BUCKETS`] are the bucket bounds tikaconf's own
//! exporter gives the [`HISTOGRAMS`] (Prometheus exporters otherwise often
//! expose histograms as summaries, which cannot be aggregated across nodes).
//!
//! Labels are few and bounded: `role` (`follower` or `storage`), `reason`
//! (one of the protocol's static [`Rejection::label`](crate::proto::Rejection::label)s)
//! and `outcome` (`committed`, `conflict`, `timed_out`). No series is ever
//! labelled with a root hash or a JSON Pointer: a node may follow 100,000
//! roots, and one series per root would make every scrape (and Prometheus's
//! memory) grow with them. Per-root counters are
//! [`Config::stats`](crate::Config::stats); per-view failures,
//! [`Live::failures`](crate::Live::failures).
//!
//! The state machines of `tikaconf-proto` keep counting in their own stats
//! (they are sans-IO and know nothing of this facade); the drivers translate
//! what changed in them, and the events they emit, into these series.
//!
//! The list of series, with what each measures exactly, is in
//! docs/ARCHITECTURE.md, section Observability.

use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, Unit};
use tikaconf_proto::WriteOutcome;
use tikaconf_proto::follower::FollowerStats;
use tikaconf_proto::storage::StorageStats;

/// Counter: messages received from the bus, by `role`. A follower counts every
/// message its client's hub reads (root, head and reply channels); a storage
/// node every message it reads.
pub const MESSAGES_RECEIVED: &str = "tikaconf_messages_received_total";
/// Counter: patches applied to a document, by `role` (a writer's own patch
/// counts when it comes back on the bus, like any other).
pub const PATCHES_APPLIED: &str = "tikaconf_patches_applied_total";
/// Counter: messages ignored as invalid, by `role` and `reason` (the protocol's
/// rejection label: `malformed`, `wrong_height`, `bad_signature`, ...).
pub const MESSAGES_IGNORED: &str = "tikaconf_messages_ignored_total";
/// Counter: patches that arrived too late to apply, by `role`: (storage) on a
/// parent that is no longer the stored head; (follower) on the root's channel
/// or a head channel being left, once its follower has moved on (a message on
/// a channel the client has finished leaving is not routed, nor counted).
/// Normal when writers race.
pub const PATCHES_STALE: &str = "tikaconf_patches_stale_total";
/// Counter: times a follower asked storage for the current head because it
/// may have missed something (a lost message, an unconfirmed head, the
/// periodic check, a dropped queue).
pub const RESYNCS: &str = "tikaconf_resyncs_total";
/// Counter: load requests, by `role`: published by followers, received by
/// storage nodes.
pub const LOAD_REQUESTS: &str = "tikaconf_load_requests_total";
/// Counter: writes of this process that ended, by `outcome`: `committed`,
/// `conflict` (another write was stored at the same height: the conflicts),
/// `timed_out` (no outcome in time: may or may not be stored).
pub const WRITES: &str = "tikaconf_writes_total";
/// Counter: `stored` notices a storage node published (a root's new head
/// persisted, or a new root registered).
pub const STORED_NOTICES: &str = "tikaconf_stored_notices_total";
/// Counter: snapshots a storage node published, on a root's or a reply
/// channel (its answers to load requests).
pub const SNAPSHOTS_SENT: &str = "tikaconf_snapshots_sent_total";
/// Counter: answers a storage node sent instead of a snapshot to requesters
/// that named their head (protocol v1.3), by `kind`: `stored` (the requester
/// was current: a notice) or `patches` (it was a few patches behind: those).
pub const CHEAP_ANSWERS: &str = "tikaconf_cheap_answers_total";
/// Counter: store commits that failed (their patches are not stored).
pub const STORE_COMMIT_ERRORS: &str = "tikaconf_store_commit_errors_total";
/// Counter: changes of a typed live value's sub-tree that did not deserialize
/// (each kept the last good value; see [`crate::Live::failures`]).
pub const LIVE_FAILURES: &str = "tikaconf_live_failures_total";

/// Counter: broken links a storage node's check of its store's chains found
/// (see [`crate::verify`]), by `reason` (a
/// [`Break::label`](crate::proto::chain::Break::label): `wrong_parent`,
/// `head_mismatch`, ...). Any increase is worth a look: a stored patch, head
/// or document was altered or damaged.
pub const CHAIN_BREAKS: &str = "tikaconf_chain_breaks_total";
/// Counter: stored patches a storage node's check of its store's chains
/// verified (see [`crate::verify`]).
pub const CHAIN_PATCHES_VERIFIED: &str = "tikaconf_chain_patches_verified_total";

/// Gauge: roots followed by the process's clients.
pub const ROOTS_FOLLOWED: &str = "tikaconf_roots_followed";
/// Gauge: roots a storage node holds in its cache as known to its store.
pub const STORAGE_ROOTS_CACHED: &str = "tikaconf_storage_roots_cached";
/// Gauge: clients connected to the server's Server-Sent Events streams. Not
/// set by this library: defined here so that every exporter names it alike.
pub const SSE_CLIENTS: &str = "tikaconf_sse_clients";

/// Histogram, seconds, by `outcome`: at the writer, from its patch being built
/// (right before its `PUBLISH`) to the write's outcome: for `committed`, to
/// storage's `stored` notice coming back (publish, storage's commit, notice).
pub const WRITE_DURATION: &str = "tikaconf_write_duration_seconds";
/// Histogram, seconds: at the writer, from its patch being built (right
/// before its `PUBLISH`) to the same patch coming back from the bus and being
/// applied to the writer's own document: one trip through Redis, the part of
/// a write's propagation every node shares. A remote node's own lag is this
/// plus its network distance; a message carries no send time to measure it
/// there (nodes' clocks are not assumed to agree).
pub const WRITE_PROPAGATION: &str = "tikaconf_write_propagation_seconds";
/// Histogram, seconds: at a follower, from its client reading a patch off the
/// bus to the new document being visible to readers (decoding, signature
/// check, applying, hashing). Waiting in the bus's queue before that is not
/// included.
pub const PATCH_APPLY: &str = "tikaconf_patch_apply_seconds";
/// Histogram, seconds: a storage node's store commits, each one batch (group
/// commit: every patch read since the last flush), from the call to its result.
pub const STORE_COMMIT: &str = "tikaconf_store_commit_seconds";

/// Every histogram of this module, for an exporter that sets their buckets.
pub const HISTOGRAMS: &[&str] = &[WRITE_DURATION, WRITE_PROPAGATION, PATCH_APPLY, STORE_COMMIT];

/// Bucket bounds, in seconds, for the [`HISTOGRAMS`]: from 10 µs (a patch
/// applied to a small document) to 10 s (a write's timeout), about three per
/// decade.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Label: which node's part counted (`follower` or `storage`).
pub const ROLE: &str = "role";
/// Label: why a message was ignored.
pub const REASON: &str = "reason";
/// Label: how a write ended.
pub const OUTCOME: &str = "outcome";
/// Label: which kind of answer (`stored` or `patches`; see [`CHEAP_ANSWERS`]).
pub const KIND: &str = "kind";

const FOLLOWER: &str = "follower";
const STORAGE: &str = "storage";

/// Registers the help text and unit of every series with the installed
/// recorder. Optional (the series work without it); call it once after
/// installing the recorder.
pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        MESSAGES_RECEIVED,
        Unit::Count,
        "Messages received from the bus, by role (follower: every message the client read; storage: every message the node read)."
    );
    describe_counter!(
        PATCHES_APPLIED,
        Unit::Count,
        "Patches applied to a document, by role."
    );
    describe_counter!(
        MESSAGES_IGNORED,
        Unit::Count,
        "Messages ignored as invalid, by role and reason."
    );
    describe_counter!(
        PATCHES_STALE,
        Unit::Count,
        "Patches that came too late to apply (a channel already left, a parent no longer stored), by role."
    );
    describe_counter!(
        RESYNCS,
        Unit::Count,
        "Times a follower asked storage for the current head because it may have missed something."
    );
    describe_counter!(
        LOAD_REQUESTS,
        Unit::Count,
        "Load requests, by role (follower: published; storage: received)."
    );
    describe_counter!(
        WRITES,
        Unit::Count,
        "Writes of this process that ended, by outcome (committed, conflict, timed_out)."
    );
    describe_counter!(
        STORED_NOTICES,
        Unit::Count,
        "Stored notices a storage node published."
    );
    describe_counter!(
        SNAPSHOTS_SENT,
        Unit::Count,
        "Snapshots a storage node published."
    );
    describe_counter!(
        STORE_COMMIT_ERRORS,
        Unit::Count,
        "Store commits that failed."
    );
    describe_counter!(
        LIVE_FAILURES,
        Unit::Count,
        "Changes of a typed live value that did not deserialize (the last good value was kept)."
    );
    describe_counter!(
        CHAIN_BREAKS,
        Unit::Count,
        "Broken links a storage node's check of its store's chains found at start-up, by reason."
    );
    describe_counter!(
        CHAIN_PATCHES_VERIFIED,
        Unit::Count,
        "Stored patches a storage node's check of its store's chains verified at start-up."
    );
    describe_gauge!(
        ROOTS_FOLLOWED,
        Unit::Count,
        "Roots followed by this process's clients."
    );
    describe_gauge!(
        STORAGE_ROOTS_CACHED,
        Unit::Count,
        "Roots a storage node caches as known to its store."
    );
    describe_gauge!(
        SSE_CLIENTS,
        Unit::Count,
        "Clients connected to Server-Sent Events streams."
    );
    describe_histogram!(
        WRITE_DURATION,
        Unit::Seconds,
        "At the writer, from a patch built (before its PUBLISH) to its outcome, by outcome."
    );
    describe_histogram!(
        WRITE_PROPAGATION,
        Unit::Seconds,
        "At the writer, from a patch built (before its PUBLISH) to the same patch back from the bus and applied."
    );
    describe_histogram!(
        PATCH_APPLY,
        Unit::Seconds,
        "At a follower, from a patch read off the bus to the new document visible to readers."
    );
    describe_histogram!(
        STORE_COMMIT,
        Unit::Seconds,
        "A storage node's store commits (one batch each), from the call to its result."
    );
}

/// The `outcome` label of a write's outcome.
fn outcome_label(outcome: &WriteOutcome) -> usize {
    match outcome {
        WriteOutcome::Committed => 0,
        WriteOutcome::Conflict { .. } => 1,
        WriteOutcome::TimedOut => 2,
    }
}

const OUTCOMES: [&str; 3] = ["committed", "conflict", "timed_out"];

/// Counters by the protocol's static rejection labels, registered on first use.
///
/// A label is a `&'static str` from a small fixed set, so the lookup is a short
/// scan; only ignored messages (rare, or a flood of bad input that costs far
/// more to decode) reach it.
#[derive(Debug)]
struct ByReason {
    role: &'static str,
    counters: Vec<(&'static str, Counter)>,
}

impl ByReason {
    fn new(role: &'static str) -> ByReason {
        ByReason {
            role,
            counters: Vec::new(),
        }
    }

    fn increment(&mut self, reason: &'static str, by: u64) {
        if let Some((_, counter)) = self.counters.iter().find(|(r, _)| *r == reason) {
            counter.increment(by);
            return;
        }
        let counter = ::metrics::counter!(MESSAGES_IGNORED, ROLE => self.role, REASON => reason);
        counter.increment(by);
        self.counters.push((reason, counter));
    }
}

/// The counters of a follower's stats that the hub exports, as they were
/// before an input, to export what the input added.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FollowerCounts {
    applied: u64,
    stale: u64,
    resyncs: u64,
    load_requests: u64,
}

impl FollowerCounts {
    pub(crate) fn of(stats: &FollowerStats) -> FollowerCounts {
        FollowerCounts {
            applied: stats.applied,
            stale: stats.stale,
            resyncs: stats.resyncs,
            load_requests: stats.load_requests,
        }
    }
}

/// A client's series: registered when its hub starts, updated by the hub.
#[derive(Debug)]
pub(crate) struct FollowerMetrics {
    received: Counter,
    applied: Counter,
    stale: Counter,
    resyncs: Counter,
    load_requests: Counter,
    ignored: ByReason,
    writes: [Counter; 3],
    write_duration: [Histogram; 3],
    pub(crate) write_propagation: Histogram,
    pub(crate) patch_apply: Histogram,
    roots: Gauge,
}

impl FollowerMetrics {
    pub(crate) fn new() -> FollowerMetrics {
        use ::metrics::{counter, gauge, histogram};
        FollowerMetrics {
            received: counter!(MESSAGES_RECEIVED, ROLE => FOLLOWER),
            applied: counter!(PATCHES_APPLIED, ROLE => FOLLOWER),
            stale: counter!(PATCHES_STALE, ROLE => FOLLOWER),
            resyncs: counter!(RESYNCS),
            load_requests: counter!(LOAD_REQUESTS, ROLE => FOLLOWER),
            ignored: ByReason::new(FOLLOWER),
            writes: OUTCOMES.map(|o| counter!(WRITES, OUTCOME => o)),
            write_duration: OUTCOMES.map(|o| histogram!(WRITE_DURATION, OUTCOME => o)),
            write_propagation: histogram!(WRITE_PROPAGATION),
            patch_apply: histogram!(PATCH_APPLY),
            roots: gauge!(ROOTS_FOLLOWED),
        }
    }

    /// A message came from the bus.
    #[inline]
    pub(crate) fn received(&self) {
        self.received.increment(1);
    }

    /// Exports what one input added to a follower's counters.
    #[inline]
    pub(crate) fn counted(&self, before: FollowerCounts, after: FollowerCounts) {
        // Most inputs move one counter, or none: skip the others' atomic adds.
        if after.applied != before.applied {
            self.applied.increment(after.applied - before.applied);
        }
        if after.stale != before.stale {
            self.stale.increment(after.stale - before.stale);
        }
        if after.resyncs != before.resyncs {
            self.resyncs.increment(after.resyncs - before.resyncs);
        }
        if after.load_requests != before.load_requests {
            self.load_requests
                .increment(after.load_requests - before.load_requests);
        }
    }

    /// A message was ignored for `reason` (a rejection label).
    pub(crate) fn ignored(&mut self, reason: &'static str) {
        self.ignored.increment(reason, 1);
    }

    /// A write of this client ended, `elapsed` after it was built.
    pub(crate) fn write_ended(&self, outcome: &WriteOutcome, elapsed: Duration) {
        let i = outcome_label(outcome);
        self.writes[i].increment(1);
        self.write_duration[i].record(elapsed);
    }

    /// `n` roots more (or fewer) are followed.
    pub(crate) fn roots_followed(&self, n: f64) {
        self.roots.increment(n);
    }
}

/// A storage node's series: registered when the node starts, updated from its
/// engine's stats after each turn of its loop.
#[derive(Debug)]
pub(crate) struct StorageMetrics {
    received: Counter,
    applied: Counter,
    stale: Counter,
    load_requests: Counter,
    stored_notices: Counter,
    snapshots_sent: Counter,
    current_answers: Counter,
    patches_answers: Counter,
    ignored: ByReason,
    pub(crate) commit: Histogram,
    pub(crate) commit_errors: Counter,
    roots_cached: Gauge,
    /// What was exported so far: the stats as of the last update.
    last: StorageStats,
    last_cached: usize,
}

impl StorageMetrics {
    pub(crate) fn new() -> StorageMetrics {
        use ::metrics::{counter, gauge, histogram};
        StorageMetrics {
            received: counter!(MESSAGES_RECEIVED, ROLE => STORAGE),
            applied: counter!(PATCHES_APPLIED, ROLE => STORAGE),
            stale: counter!(PATCHES_STALE, ROLE => STORAGE),
            load_requests: counter!(LOAD_REQUESTS, ROLE => STORAGE),
            stored_notices: counter!(STORED_NOTICES),
            snapshots_sent: counter!(SNAPSHOTS_SENT),
            current_answers: counter!(CHEAP_ANSWERS, KIND => "stored"),
            patches_answers: counter!(CHEAP_ANSWERS, KIND => "patches"),
            ignored: ByReason::new(STORAGE),
            commit: histogram!(STORE_COMMIT),
            commit_errors: counter!(STORE_COMMIT_ERRORS),
            roots_cached: gauge!(STORAGE_ROOTS_CACHED),
            last: StorageStats::default(),
            last_cached: 0,
        }
    }

    /// A message came from the bus.
    #[inline]
    pub(crate) fn received(&self) {
        self.received.increment(1);
    }

    /// Exports what the engine counted since the last update, and its cache's
    /// size. Deltas, not absolute values: several nodes in one process (tests,
    /// an embedding application) add up instead of overwriting each other.
    pub(crate) fn update(&mut self, stats: &StorageStats, cached: usize) {
        fn add(counter: &Counter, now: u64, last: &mut u64) {
            if now != *last {
                counter.increment(now.saturating_sub(*last));
                *last = now;
            }
        }
        let last = &mut self.last;
        add(&self.applied, stats.applied, &mut last.applied);
        add(&self.stale, stats.stale, &mut last.stale);
        add(
            &self.load_requests,
            stats.load_requests,
            &mut last.load_requests,
        );
        add(
            &self.stored_notices,
            stats.stored_notices,
            &mut last.stored_notices,
        );
        add(
            &self.snapshots_sent,
            stats.snapshots_sent,
            &mut last.snapshots_sent,
        );
        add(
            &self.current_answers,
            stats.current_answers,
            &mut last.current_answers,
        );
        add(
            &self.patches_answers,
            stats.patches_answers,
            &mut last.patches_answers,
        );
        if stats.ignored != last.ignored {
            for (&reason, &now) in &stats.ignored {
                let before = last.ignored.get(reason).copied().unwrap_or(0);
                if now > before {
                    self.ignored.increment(reason, now - before);
                }
            }
            last.ignored.clone_from(&stats.ignored);
        }
        if cached != self.last_cached {
            self.roots_cached
                .increment(cached as f64 - self.last_cached as f64);
            self.last_cached = cached;
        }
    }
}

impl Drop for StorageMetrics {
    /// A stopped node caches nothing: take its roots out of the gauge.
    fn drop(&mut self) {
        self.roots_cached.decrement(self.last_cached as f64);
    }
}

/// The series of a typed live value.
pub(crate) fn live_failures() -> Counter {
    ::metrics::counter!(LIVE_FAILURES)
}

#[cfg(test)]
mod tests {
    //! Each test records into a recorder of its own, set as its thread's
    //! default: the tests run on current-thread runtimes, so the fleet's hub,
    //! storage node and views all register on that thread.

    use std::collections::HashMap;
    use std::time::Duration;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use serde_json::json;

    use super::*;
    use crate::testing::{Fleet, PATIENCE, wait_for};

    /// What a recorder received so far. The debugging recorder hands out what
    /// changed since its last snapshot (it resets counters and drains
    /// histograms), so the totals are kept here.
    struct Recorded {
        snapshotter: Snapshotter,
        counters: HashMap<String, u64>,
        gauges: HashMap<String, f64>,
        samples: HashMap<String, Vec<f64>>,
    }

    /// `name{k=v,...}`, labels sorted.
    fn series(name: &str, labels: &[(&str, &str)]) -> String {
        let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        format!("{name}{{{}}}", labels.join(","))
    }

    impl Recorded {
        fn new(recorder: &DebuggingRecorder) -> Recorded {
            Recorded {
                snapshotter: recorder.snapshotter(),
                counters: HashMap::new(),
                gauges: HashMap::new(),
                samples: HashMap::new(),
            }
        }

        fn take(&mut self) {
            for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
                let key = key.key();
                let labels: Vec<(&str, &str)> =
                    key.labels().map(|l| (l.key(), l.value())).collect();
                let name = series(key.name(), &labels);
                match value {
                    DebugValue::Counter(n) => *self.counters.entry(name).or_default() += n,
                    // Only ever moved up and down here, so the moves add up.
                    DebugValue::Gauge(v) => *self.gauges.entry(name).or_default() += v.0,
                    DebugValue::Histogram(v) => self
                        .samples
                        .entry(name)
                        .or_default()
                        .extend(v.into_iter().map(|f| f.0)),
                }
            }
        }

        fn counter(&mut self, name: &str, labels: &[(&str, &str)]) -> u64 {
            self.take();
            self.counters
                .get(&series(name, labels))
                .copied()
                .unwrap_or(0)
        }

        fn gauge(&mut self, name: &str) -> f64 {
            self.take();
            self.gauges.get(&series(name, &[])).copied().unwrap_or(0.0)
        }

        fn samples(&mut self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
            self.take();
            self.samples
                .get(&series(name, labels))
                .cloned()
                .unwrap_or_default()
        }

        /// Waits until the counter reaches `at_least`, for what another task
        /// counts after the test's own action has returned.
        async fn counter_reaches(&mut self, name: &str, labels: &[(&str, &str)], at_least: u64) {
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                let n = self.counter(name, labels);
                if n >= at_least {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} stayed at {n}, below {at_least}",
                    series(name, labels)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    const FOLLOWER_ROLE: &[(&str, &str)] = &[(ROLE, FOLLOWER)];
    const STORAGE_ROLE: &[(&str, &str)] = &[(ROLE, STORAGE)];

    #[tokio::test]
    async fn a_committed_write_moves_the_write_apply_and_commit_series() {
        let recorder = DebuggingRecorder::new();
        let _local = ::metrics::set_default_local_recorder(&recorder);
        let mut recorded = Recorded::new(&recorder);
        let fleet = Fleet::start().await;
        // A fresh root, changed by one committed patch.
        let config = fleet.config(json!({"n": 1})).await;
        config
            .submit(json!([{"op": "replace", "path": "/n", "value": 2}]))
            .await
            .expect("committed");
        assert_eq!(config.document()["n"], 2);

        // Counted before the outcome was handed over: no wait needed.
        let committed = &[(OUTCOME, "committed")];
        assert_eq!(recorded.counter(WRITES, committed), 2);
        assert_eq!(recorded.counter(WRITES, &[(OUTCOME, "conflict")]), 0);
        assert_eq!(recorded.samples(WRITE_DURATION, committed).len(), 2);
        // Each write's own patch came back and was applied before its notice.
        let propagation = recorded.samples(WRITE_PROPAGATION, &[]);
        assert_eq!(propagation.len(), 2, "{propagation:?}");
        let durations = recorded.samples(WRITE_DURATION, committed);
        assert!(
            propagation.iter().zip(&durations).all(|(p, d)| p <= d),
            "a write's patch came back after its outcome: {propagation:?} {durations:?}"
        );
        assert_eq!(recorded.counter(PATCHES_APPLIED, FOLLOWER_ROLE), 2);
        assert_eq!(recorded.samples(PATCH_APPLY, &[]).len(), 2);
        // Each patch, its stored notice and the load answer came on the bus.
        assert!(recorded.counter(MESSAGES_RECEIVED, FOLLOWER_ROLE) >= 5);
        assert!(recorded.counter(LOAD_REQUESTS, FOLLOWER_ROLE) >= 1);
        assert_eq!(recorded.gauge(ROOTS_FOLLOWED), 1.0);

        // The storage node applied and committed both before announcing them.
        assert_eq!(recorded.counter(PATCHES_APPLIED, STORAGE_ROLE), 2);
        assert!(!recorded.samples(STORE_COMMIT, &[]).is_empty());
        assert!(recorded.counter(MESSAGES_RECEIVED, STORAGE_ROLE) >= 3);
        assert!(recorded.counter(LOAD_REQUESTS, STORAGE_ROLE) >= 1);
        recorded.counter_reaches(STORED_NOTICES, &[], 2).await;
        assert!(recorded.counter(SNAPSHOTS_SENT, &[]) >= 1);
        assert_eq!(recorded.counter(STORE_COMMIT_ERRORS, &[]), 0);
        assert_eq!(recorded.gauge(STORAGE_ROOTS_CACHED), 1.0);

        // Unfollowed: the gauge comes back down.
        drop(config);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while recorded.gauge(ROOTS_FOLLOWED) != 0.0 {
            assert!(tokio::time::Instant::now() < deadline, "still followed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        fleet.shutdown().await;
        assert_eq!(recorded.gauge(STORAGE_ROOTS_CACHED), 0.0);
    }

    #[tokio::test]
    async fn racing_writes_count_a_conflict_and_a_stale_patch() {
        let recorder = DebuggingRecorder::new();
        let _local = ::metrics::set_default_local_recorder(&recorder);
        let mut recorded = Recorded::new(&recorder);
        let fleet = Fleet::start().await;
        let a = fleet.config(json!({"n": 0})).await;
        let other = fleet.connect();
        let b = other.follow(a.root()).await.expect("followed");
        wait_for(&b, |b| b.head() == a.head()).await.unwrap();
        let parent = a.head();
        let (ra, rb) = tokio::join!(
            a.submit_on(parent, json!([{"op": "replace", "path": "/n", "value": 1}])),
            b.submit_on(parent, json!([{"op": "replace", "path": "/n", "value": 2}])),
        );
        // One of them won, the other lost to it.
        assert!(ra.is_ok() != rb.is_ok(), "{ra:?} {rb:?}");
        let lost = [ra, rb].into_iter().find_map(Result::err).unwrap();
        assert!(
            matches!(lost, crate::WriteError::Conflict { .. }),
            "{lost:?}"
        );

        // The fleet's first write and the winner committed; the loser conflicted.
        assert_eq!(recorded.counter(WRITES, &[(OUTCOME, "committed")]), 2);
        assert_eq!(recorded.counter(WRITES, &[(OUTCOME, "conflict")]), 1);
        assert_eq!(
            recorded
                .samples(WRITE_DURATION, &[(OUTCOME, "conflict")])
                .len(),
            1
        );
        // The loser's patch reached storage on a parent no longer stored. (The
        // followers had left its channel: the hub drops what comes there
        // unrouted, uncounted by either.)
        recorded
            .counter_reaches(PATCHES_STALE, STORAGE_ROLE, 1)
            .await;
        assert_eq!(recorded.gauge(ROOTS_FOLLOWED), 2.0);
        fleet.shutdown().await;
    }

    #[tokio::test]
    async fn a_malformed_message_is_counted_as_ignored_by_its_reason() {
        let recorder = DebuggingRecorder::new();
        let _local = ::metrics::set_default_local_recorder(&recorder);
        let mut recorded = Recorded::new(&recorder);
        let fleet = Fleet::start().await;
        let config = fleet.config(json!({})).await;
        let malformed = &[(ROLE, FOLLOWER), (REASON, "malformed")];
        assert_eq!(recorded.counter(MESSAGES_IGNORED, malformed), 0);

        let hostile = fleet.broker().connect();
        let channel = tikaconf_proto::Channels::new(None).updates(&config.head());
        hostile
            .bus
            .publish(&[(channel, bytes::Bytes::from_static(b"{not json"))])
            .await
            .expect("published");

        recorded
            .counter_reaches(MESSAGES_IGNORED, malformed, 1)
            .await;
        let storage = &[(ROLE, STORAGE), (REASON, "malformed")];
        recorded.counter_reaches(MESSAGES_IGNORED, storage, 1).await;
        // Counted once each, beside the follower's own count.
        assert_eq!(recorded.counter(MESSAGES_IGNORED, malformed), 1);
        assert_eq!(config.stats().ignored.get("malformed"), Some(&1));
        fleet.shutdown().await;
    }

    #[tokio::test]
    async fn a_value_that_does_not_deserialize_counts_a_live_failure() {
        let recorder = DebuggingRecorder::new();
        let _local = ::metrics::set_default_local_recorder(&recorder);
        let mut recorded = Recorded::new(&recorder);
        let fleet = Fleet::start().await;
        let config = fleet.config(json!({"limit": 3})).await;
        let limit = config.at::<u64>("/limit").expect("a number");
        config
            .submit(json!([{"op": "replace", "path": "/limit", "value": "many"}]))
            .await
            .expect("committed");
        recorded.counter_reaches(LIVE_FAILURES, &[], 1).await;
        assert_eq!(limit.failures(), 1);
        assert_eq!(*limit.load(), 3);
        fleet.shutdown().await;
    }

    #[test]
    fn describe_names_every_series_with_its_unit() {
        let recorder = DebuggingRecorder::new();
        ::metrics::with_local_recorder(&recorder, || {
            describe();
            ::metrics::histogram!(STORE_COMMIT).record(0.001);
        });
        let snapshot = recorder.snapshotter().snapshot().into_vec();
        let (_, unit, help, _) = snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == STORE_COMMIT)
            .expect("recorded");
        assert_eq!(*unit, Some(Unit::Seconds));
        assert!(help.is_some());
        for name in HISTOGRAMS {
            assert!(name.ends_with("_seconds"), "{name}");
        }
        assert!(SECONDS_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
