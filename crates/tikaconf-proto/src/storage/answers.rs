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
use crate::message::Have;

/// Who an answer for one root is owed to, and so where it goes.
///
/// Requests that name a reply channel are answered there; a request without one
/// (or more requesters than [`MAX_REPLIES`]) needs the root's channel, where
/// every follower of the root listens. Several requesters due at one flush
/// share one message on the root's channel when one may be sent (see
/// `StorageEngine::flush`: at most one per root per broadcast interval);
/// otherwise the requesters with a reply channel get theirs there and the rest
/// wait for the next broadcast.
///
/// A requester that named the head it has (and a reply channel) is first
/// offered an answer of its own, smaller than the snapshot: a `stored` notice
/// or the patches it lacks (`StorageEngine::answer_having`); only if there is
/// none does it join the others.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Audience {
    /// Distinct reply channels, at most [`MAX_REPLIES`].
    pub(super) replies: Vec<ReplyToken>,
    /// Requesters that named their head, on distinct reply channels none of
    /// `replies` names, at most [`MAX_REPLIES`]: the latest head each named.
    pub(super) having: Vec<(ReplyToken, Have)>,
    /// Someone can only be answered on the root's channel.
    pub(super) everyone: bool,
}

/// The most reply channels one root's answer is sent to separately. Beyond it
/// the answer is a broadcast anyway (a thousand followers reconnecting at once
/// cost one message on the root's channel, not a thousand), and the record of
/// who waits stays bounded.
pub(super) const MAX_REPLIES: usize = 16;

impl Audience {
    pub(super) fn of(reply_to: Option<ReplyToken>, have: Option<Have>) -> Audience {
        match (reply_to, have) {
            (Some(token), Some(have)) => Audience {
                having: vec![(token, have)],
                ..Audience::default()
            },
            (Some(token), None) => Audience {
                replies: vec![token],
                ..Audience::default()
            },
            (None, _) => Audience {
                everyone: true,
                ..Audience::default()
            },
        }
    }

    /// The audience once another audience, answered by the same message, joins.
    pub(super) fn join(mut self, other: Audience) -> Audience {
        self.everyone |= other.everyone;
        for token in other.replies {
            self.add_reply(token);
        }
        for (token, have) in other.having {
            if self.replies.contains(&token) {
                continue; // it also asked without a head: it gets the snapshot
            }
            match self.having.iter().position(|(t, _)| *t == token) {
                Some(at) => self.having[at].1 = have,
                None if self.having.len() < MAX_REPLIES => self.having.push((token, have)),
                None => self.add_reply(token),
            }
        }
        self
    }

    /// Adds a requester on `token` that needs the snapshot.
    pub(super) fn add_reply(&mut self, token: ReplyToken) {
        self.having.retain(|(t, _)| *t != token);
        if self.replies.contains(&token) {
            return;
        }
        if self.replies.len() >= MAX_REPLIES {
            self.everyone = true;
        } else {
            self.replies.push(token);
        }
    }

    /// Whether nobody is left to answer.
    pub(super) fn is_empty(&self) -> bool {
        self.replies.is_empty() && self.having.is_empty() && !self.everyone
    }

    /// The one reply channel this audience listens on, if it is a single
    /// requester's (then no broadcast is needed). Requesters that named a head
    /// are not counted: they are answered, or moved to `replies`, first.
    pub(super) fn single(&self) -> Option<&ReplyToken> {
        match self.replies.as_slice() {
            [token] if !self.everyone => Some(token),
            _ => None,
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
                let joined = std::mem::take(due).join(audience);
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
        let a = || Audience::of(Some(ReplyToken::new("a").unwrap()), None);
        let b = || Audience::of(Some(ReplyToken::new("b").unwrap()), None);
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
        let both = owed.take_due(progress(None, u64::MAX)).unwrap();
        assert_eq!(both, a().join(b()), "two clients share one answer");
        assert_eq!(both.single(), None, "and it needs the root's channel");
    }

    #[test]
    fn an_audience_names_at_most_max_replies_channels() {
        let token = |i: usize| Audience::of(Some(ReplyToken::new(&format!("t{i}")).unwrap()), None);
        let many = (1..MAX_REPLIES + 5).fold(token(0), |joined, i| joined.join(token(i)));
        assert_eq!(many.replies.len(), MAX_REPLIES);
        assert!(
            many.everyone,
            "the others can only be told on the root's channel"
        );
        let again = token(0).join(token(0));
        assert_eq!(again.single(), Some(&ReplyToken::new("t0").unwrap()));
    }

    #[test]
    fn on_a_shared_store_an_answer_waits_for_a_read_issued_after_its_request() {
        let mut owed = Owed::default();
        owed.push(at(0, 5), Audience::of(None, None)); // asked when read 5 was the latest issued
        assert_eq!(
            owed.take_due(progress(None, 5)),
            None,
            "read 5 may predate it"
        );
        assert_eq!(owed.oldest(), Some(at(0, 5)));
        assert_eq!(
            owed.take_due(progress(None, 6)),
            Some(Audience::of(None, None))
        );
        assert_eq!(owed.oldest(), None);
    }

    #[test]
    fn a_requester_with_a_head_keeps_its_latest_unless_it_also_asked_without() {
        let token = ReplyToken::new("t").unwrap();
        let have = |height| Have {
            head: crate::Hash::of_canonical_bytes(&[height as u8]),
            height,
        };
        let with = |h| Audience::of(Some(token.clone()), Some(have(h)));
        let joined = with(1).join(with(2));
        assert_eq!(joined.having, vec![(token.clone(), have(2))]);
        assert!(joined.replies.is_empty() && !joined.is_empty());
        // The same client asking without a head needs the snapshot anyway.
        let plain = Audience::of(Some(token.clone()), None);
        for mixed in [joined.clone().join(plain.clone()), plain.join(joined)] {
            assert!(mixed.having.is_empty());
            assert_eq!(mixed.single(), Some(&token));
        }
        assert!(Audience::default().is_empty());
    }
}
