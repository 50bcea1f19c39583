//! Writing results to stdout without panicking.
//!
//! `println!` panics when stdout is a closed pipe (`tikaconf watch ROOT | head -1`);
//! a command should instead end with an ordinary failure, so every result line
//! goes through here.

use std::io::Write;

use crate::failure::Failure;

/// Writes `text` and a newline to stdout, and flushes, so that a reader sees each
/// line as soon as it is written.
pub fn line(text: impl AsRef<[u8]>) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| Failure::other(e).context("cannot write to stdout"))
}
