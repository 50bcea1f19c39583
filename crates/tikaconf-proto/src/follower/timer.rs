//! The follower's timers, as deadlines in one table (as quinn-proto's
//! `TimerTable`).
//!
//! Each timer is set to the instant it fires, computed once when it is armed,
//! so that [`Follower::next_timeout`](super::Follower::next_timeout) is a
//! `min()` over the table and each check in
//! [`Follower::handle_timeout`](super::Follower::handle_timeout) is one
//! comparison, instead of "when it started plus which duration" worked out
//! again at every read. A write's deadline is not here: a follower has any
//! number of writes in flight, and the [`Writer`](crate::Writer) keeps theirs.

use std::time::Instant;

/// One of the follower's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// The outstanding load request went unanswered (`request_timeout` after
    /// it was sent): ask again, on the root's channel. While it is set, a load
    /// request is outstanding and no other one is sent.
    Request = 0,
    /// The head applied was not confirmed stored (`confirm_timeout` after it,
    /// or after the last progress): re-sync.
    Confirm = 1,
    /// Rule 6's grace period (`fork_grace`) ended: ask again, so that an
    /// answer given after the grace period comes. Stopped once that request
    /// went out, while the suspicion itself lasts until it is resolved.
    ForkGrace = 2,
    /// The periodic, jittered re-sync (`resync_interval`).
    Resync = 3,
}

const TIMER_COUNT: usize = 4;

/// When each [`Timer`] fires, if it is set.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TimerTable {
    deadlines: [Option<Instant>; TIMER_COUNT],
}

impl TimerTable {
    pub(super) fn set(&mut self, timer: Timer, deadline: Instant) {
        self.deadlines[timer as usize] = Some(deadline);
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    pub(super) fn is_set(&self, timer: Timer) -> bool {
        self.deadlines[timer as usize].is_some()
    }

    /// Set, and due at `now`.
    pub(super) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.deadlines[timer as usize].is_some_and(|t| t <= now)
    }

    /// The earliest deadline of any timer set.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_next_timeout_is_the_earliest_deadline_set() {
        let now = Instant::now();
        let mut timers = TimerTable::default();
        assert_eq!(timers.next_timeout(), None);
        timers.set(Timer::Resync, now + Duration::from_secs(30));
        timers.set(Timer::Request, now + Duration::from_secs(1));
        assert_eq!(timers.next_timeout(), Some(now + Duration::from_secs(1)));
        assert!(!timers.is_expired(Timer::Request, now));
        assert!(timers.is_expired(Timer::Request, now + Duration::from_secs(1)));
        timers.stop(Timer::Request);
        assert!(!timers.is_set(Timer::Request));
        assert_eq!(timers.next_timeout(), Some(now + Duration::from_secs(30)));
    }
}
