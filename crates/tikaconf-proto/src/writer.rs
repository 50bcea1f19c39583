//! The writer role: patches this node published, waiting for their outcome.
//!
//! A write is only known to have happened when storage says it durably stored it
//! (a `stored` notice for the patch's hash, or for a later head whose chain, as this
//! node applied it, contains the patch: a head's hash commits to its whole
//! ancestry). Seeing another patch win the parent is *not* enough to report a
//! conflict, because storage may have missed that patch and stored ours; a
//! conflict is reported only on positive proof that storage holds another head at
//! the patch's height (our confirmed chain, or a `stored` notice, names it).
//! Absence proves nothing, because notices can be lost (a dropped connection on
//! either side): a write with no proof either way ends as timed out, outcome
//! unknown.

use std::time::Instant;

use crate::Hash;

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Storage durably stored the patch (or a descendant of it).
    Committed,
    /// Storage stored `winner` at this patch's height instead.
    Conflict {
        /// The head storage holds at the patch's height.
        winner: Hash,
    },
    /// No outcome in time: the patch may or may not be stored.
    TimedOut,
}

#[derive(Debug, Clone)]
struct PendingWrite {
    hash: Hash,
    height: u64,
    deadline: Instant,
}

/// The writes of one follower that await their outcome.
#[derive(Debug, Clone, Default)]
pub struct Writer {
    pending: Vec<PendingWrite>,
}

impl Writer {
    pub(crate) fn track(&mut self, hash: Hash, height: u64, deadline: Instant) {
        self.pending.push(PendingWrite {
            hash,
            height,
            deadline,
        });
    }

    /// Number of writes awaiting an outcome.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|w| w.deadline).min()
    }

    /// Storage confirmed `head` directly.
    pub(crate) fn stored(&mut self, head: Hash, out: &mut Vec<(Hash, WriteOutcome)>) {
        self.pending.retain(|w| {
            let done = w.hash == head;
            if done {
                out.push((w.hash, WriteOutcome::Committed));
            }
            !done
        });
    }

    /// Storage holds the chain up to `confirmed_height`; `at_height(h)` is the
    /// stored head at height `h` where this node knows it.
    pub(crate) fn confirmed(
        &mut self,
        confirmed_height: u64,
        at_height: impl Fn(u64) -> Option<Hash>,
        out: &mut Vec<(Hash, WriteOutcome)>,
    ) {
        self.pending.retain(|w| {
            if w.height > confirmed_height {
                return true;
            }
            let outcome = match at_height(w.height) {
                Some(h) if h == w.hash => WriteOutcome::Committed,
                Some(winner) => WriteOutcome::Conflict { winner },
                None => return true,
            };
            out.push((w.hash, outcome));
            false
        });
    }

    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<(Hash, WriteOutcome)>) {
        self.pending.retain(|w| {
            let expired = w.deadline <= now;
            if expired {
                out.push((w.hash, WriteOutcome::TimedOut));
            }
            !expired
        });
    }
}
