//! Which load requests a storage node owes an answer, and when each is due.
//!
//! An answer is due once two things hold:
//!
//! - every patch of its root that the node accepted *before the request* is
//!   settled by the store: never before (a requester that saw a patch must not be
//!   told an older head as the truth), and never later (a root written
//!   continuously would otherwise never be answered);
//! - on a store shared with other storage nodes, the node has read the root's head
//!   from the store *after the request came in* (a load, a head check, or a
//!   compare-and-set of its own) and found its cache current: another node may have
//!   stored what this one never heard, and an answer must never be older than what
//!   the store held when it was asked.
//!
//! Each owed answer remembers the sequence numbers of the last patch accepted and
//! of the last store read issued when its request came in; requests due at the
//! same flush share one answer, sent where all their requesters listen.

use crate::channel::ReplyToken;

/// Who an answer for one root is owed to, and so where it goes.
///
/// A request that names a reply channel is answered there when it is the only
/// one due for its root at the flush; as soon as a second requester (or one
/// without a reply channel) waits for the same root, the answer goes to the
/// root's channel, where every requester listens: one message still serves all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Audience {
    One(ReplyToken),
    All,
}

impl Audience {
    pub(super) fn of(reply_to: Option<ReplyToken>) -> Audience {
        reply_to.map_or(Audience::All, Audience::One)
    }

    /// The audience once another audience, answered by the same message, joins.
    pub(super) fn join(self, other: Audience) -> Audience {
        match (self, other) {
            (Audience::One(mine), Audience::One(theirs)) if mine == theirs => Audience::One(mine),
            _ => Audience::All,
        }
    }
}

/// When a request came in: the latest patch accepted and the latest store read
/// issued by then (both sequence numbers only grow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct AskedAt {
    pub(super) accepted: u64,
    pub(super) read: u64,
}

/// What a root's state allows to be answered now.
#[derive(Debug, Clone, Copy)]
pub(super) struct Progress {
    /// Sequence number of the root's oldest unsettled patch (`None`: all settled).
    pub(super) oldest_unsettled: Option<u64>,
    /// Sequence number of the latest store read that found the cache current
    /// (`u64::MAX` where nobody else writes the store).
    pub(super) verified_by: u64,
}

impl Progress {
    fn allows(self, asked: AskedAt) -> bool {
        self.oldest_unsettled.is_none_or(|seq| seq > asked.accepted)
            && self.verified_by > asked.read
    }
}

/// The answers owed for one root, oldest first.
#[derive(Debug, Default)]
pub(super) struct Owed {
    /// Ascending in both fields of `AskedAt`; one entry per distinct `AskedAt`.
    dues: Vec<(AskedAt, Audience)>,
}

impl Owed {
    pub(super) fn push(&mut self, asked: AskedAt, audience: Audience) {
        match self.dues.last_mut() {
            Some((last, due)) if *last == asked => {
                let joined = std::mem::replace(due, Audience::All).join(audience);
                *due = joined;
            }
            _ => self.dues.push((asked, audience)),
        }
    }

    /// Takes the answers `progress` allows, joined into the one audience their
    /// answer goes to. Both conditions only ever get easier along the list, so
    /// what is due is always a prefix.
    pub(super) fn take_due(&mut self, progress: Progress) -> Option<Audience> {
        let ready = self
            .dues
            .partition_point(|(asked, _)| progress.allows(*asked));
        self.dues
            .drain(..ready)
            .map(|(_, audience)| audience)
            .reduce(Audience::join)
    }

    /// The oldest answer still owed, if any.
    pub(super) fn oldest(&self) -> Option<AskedAt> {
        self.dues.first().map(|(asked, _)| *asked)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.dues.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(accepted: u64, read: u64) -> AskedAt {
        AskedAt { accepted, read }
    }

    fn progress(oldest_unsettled: Option<u64>, verified_by: u64) -> Progress {
        Progress {
            oldest_unsettled,
            verified_by,
        }
    }

    #[test]
    fn an_answer_is_due_once_the_patches_before_its_request_are_settled() {
        let a = || Audience::One(ReplyToken::new("a").unwrap());
        let b = || Audience::One(ReplyToken::new("b").unwrap());
        let mut owed = Owed::default();
        owed.push(at(3, 0), a()); // asked after patch 3 was accepted
        owed.push(at(3, 0), a()); // the same client again: still one audience
        owed.push(at(7, 0), b()); // asked after patch 7
        // Patch 3 unsettled: nobody is due.
        assert_eq!(owed.take_due(progress(Some(3), u64::MAX)), None);
        // Patches up to 3 settled, 4 is not: the first requester is due alone.
        assert_eq!(owed.take_due(progress(Some(4), u64::MAX)), Some(a()));
        // Patch 8 accepted after the second request is still unsettled: due anyway.
        assert_eq!(owed.take_due(progress(Some(8), u64::MAX)), Some(b()));
        assert!(owed.is_empty());

        owed.push(at(1, 0), a());
        owed.push(at(2, 0), b());
        let all = owed.take_due(progress(None, u64::MAX));
        assert_eq!(all, Some(Audience::All), "two clients share one answer");
    }

    #[test]
    fn on_a_shared_store_an_answer_waits_for_a_read_issued_after_its_request() {
        let mut owed = Owed::default();
        owed.push(at(0, 5), Audience::All); // asked when read 5 was the latest issued
        assert_eq!(
            owed.take_due(progress(None, 5)),
            None,
            "read 5 may predate it"
        );
        assert_eq!(owed.oldest(), Some(at(0, 5)));
        assert_eq!(owed.take_due(progress(None, 6)), Some(Audience::All));
        assert_eq!(owed.oldest(), None);
    }
}
