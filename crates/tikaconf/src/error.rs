//! The library's errors.

use tikaconf_proto::Hash;

/// Why a write has no (known) success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Another patch on the same parent was stored first.
    #[error("conflict: {winner} was stored instead of {attempted}")]
    Conflict { attempted: Hash, winner: Hash },
    /// No outcome in time. The patch may or may not have been stored: follow the
    /// configuration to find out.
    #[error("no outcome in time for {attempted}: it may or may not be stored")]
    Timeout { attempted: Hash },
    /// The patch is invalid or does not apply to the current document.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The document changed between reading it and submitting the patch.
    #[error("the head moved meanwhile")]
    HeadMoved,
    #[error("not connected to the bus")]
    Disconnected,
    #[error("the client is shut down")]
    Closed,
}

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("storage does not know root {0}")]
    UnknownRoot(Hash),
    #[error("no answer from storage within {0:?} (is a storage node running?)")]
    LoadTimeout(std::time::Duration),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("the edit failed: {0}")]
    Edit(String),
    #[error("gave up after repeated conflicts")]
    TooManyConflicts,
    #[error("the client is shut down")]
    Closed,
    #[error("storage: {0}")]
    Storage(String),
}
