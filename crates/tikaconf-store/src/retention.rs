//! How much of each root's history a store keeps: a deployment setting, given
//! when the store is opened, never stored in it.
//!
//! Why not stored: the history is a convenience beside the heads (nodes decide
//! from heads alone), so the setting can change with any restart and the store
//! follows: a larger setting keeps more from then on, a smaller one hides the
//! excess at once (every read filters by the window, see [`Retention::keeps`])
//! and prunes it on the root's next commit. Several storage nodes sharing one
//! Redis store should be given the same setting; if they are not, each prunes
//! to its own on the commits it makes, and reads show what their own allows.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

/// How many of each root's patches a store keeps in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Every patch since the root was registered (or since history was first
    /// kept for it).
    All,
    /// The patches of the last N heights of each root (the default: 1,000).
    Last(NonZeroU32),
    /// No history at all: a store writes exactly what it did before history
    /// existed, at the same cost, and reads of history find nothing.
    None,
}

impl Retention {
    /// The default window.
    pub const DEFAULT_LAST: NonZeroU32 = NonZeroU32::new(1000).expect("non-zero");

    /// Whether a store with this setting writes any history at all.
    pub fn logs(self) -> bool {
        self != Retention::None
    }

    /// Whether the patch that made height `height` is within the window of a
    /// root whose head is at `head_height`: the window is the last N heights,
    /// `head_height - N + 1 ..= head_height`, whatever the store still holds
    /// beyond it (a smaller setting than the one it was written with).
    pub fn keeps(self, height: u64, head_height: u64) -> bool {
        match self {
            Retention::All => height <= head_height,
            Retention::Last(n) => {
                height <= head_height && head_height - height < u64::from(n.get())
            }
            Retention::None => false,
        }
    }

    /// The highest height whose patch falls out of the window once the head is
    /// at `head_height` (what a commit to that height prunes, with everything
    /// below it), or `None` when nothing does.
    pub fn drops_through(self, head_height: u64) -> Option<u64> {
        match self {
            Retention::Last(n) => head_height.checked_sub(u64::from(n.get())),
            Retention::All | Retention::None => None,
        }
    }
}

impl Default for Retention {
    fn default() -> Retention {
        Retention::Last(Retention::DEFAULT_LAST)
    }
}

/// `all`, `none`, or the number of patches (`1000`): what `--retention` takes.
impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::All => f.write_str("all"),
            Retention::None => f.write_str("none"),
            Retention::Last(n) => write!(f, "{n}"),
        }
    }
}

/// A retention setting that is neither `all`, `none` nor a number from 1 to
/// 4,294,967,295.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("retention must be `all`, `none` or a number of patches from 1 up, not {0:?}")]
pub struct ParseRetentionError(String);

impl FromStr for Retention {
    type Err = ParseRetentionError;

    fn from_str(s: &str) -> Result<Retention, ParseRetentionError> {
        match s.trim() {
            "all" => Ok(Retention::All),
            "none" => Ok(Retention::None),
            n => n
                .parse::<NonZeroU32>()
                .map(Retention::Last)
                .map_err(|_| ParseRetentionError(s.to_owned())),
        }
    }
}

/// What a store is opened with, beyond where it is. Non-exhaustive so that
/// later settings do not break callers: build it from
/// [`StoreOptions::default`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// How much history to keep (see [`Retention`]).
    pub retention: Retention,
}

impl StoreOptions {
    /// These options with `retention`.
    pub fn with_retention(mut self, retention: Retention) -> StoreOptions {
        self.retention = retention;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(n: u32) -> Retention {
        Retention::Last(NonZeroU32::new(n).expect("non-zero"))
    }

    #[test]
    fn parses_and_prints_the_flag_values() {
        for (text, value) in [
            ("all", Retention::All),
            ("none", Retention::None),
            ("1000", last(1000)),
            ("1", last(1)),
        ] {
            assert_eq!(text.parse::<Retention>(), Ok(value));
            assert_eq!(value.to_string(), text);
        }
        for bad in ["0", "-1", "", "some", "4294967296"] {
            assert!(bad.parse::<Retention>().is_err(), "{bad:?}");
        }
        assert_eq!(Retention::default(), last(1000));
    }

    #[test]
    fn the_window_is_the_last_n_heights() {
        let two = last(2);
        assert!(two.keeps(10, 10) && two.keeps(9, 10));
        assert!(!two.keeps(8, 10) && !two.keeps(11, 10));
        assert_eq!(two.drops_through(10), Some(8));
        assert_eq!(two.drops_through(2), Some(0));
        assert_eq!(two.drops_through(1), None);
        assert!(Retention::All.keeps(1, u64::MAX));
        assert_eq!(Retention::All.drops_through(u64::MAX), None);
        assert!(!Retention::None.keeps(10, 10));
        assert!(!Retention::None.logs() && Retention::All.logs() && two.logs());
    }
}
