//! Deterministic jitter for timers.
//!
//! Periodic re-syncs of a whole fleet must not line up (a fleet restarted at once
//! would otherwise ask storage in lockstep forever). The state machines take no
//! randomness from the outside world, so each one carries this small seeded
//! generator (SplitMix64): the same seed gives the same schedule, which keeps
//! simulations reproducible.

use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `base` scaled by a factor drawn uniformly from [0.75, 1.25).
    pub(crate) fn spread(&mut self, base: Duration) -> Duration {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(0.75 + unit * 0.5)
    }
}
