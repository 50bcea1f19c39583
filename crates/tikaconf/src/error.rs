//! The library's errors.
//!
//! A variant that wraps another error keeps it as its `source()`, typed, so
//! that a caller can match on it (which decode error, which rejection, which
//! bus failure), and does not repeat it in its own message: a report that
//! walks the chain (`{:#}` of an `anyhow::Error`, as the CLI prints) shows
//! each cause once, as [`WriteError::Refused`] always did.

use tikaconf_proto::{DecodeError, Hash, Rejection};

use crate::bus::BusError;

/// Why a patch was refused before anything was published.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPatch {
    /// The ops are not a valid RFC 6902 patch (or the patch is too large).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The ops do not apply to the current document.
    #[error(transparent)]
    Apply(#[from] Rejection),
    /// The document they would make does not match the client's schema
    /// ([`crate::ClientOptions::schema`]).
    #[cfg(feature = "schema")]
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaViolation),
}

/// Why a write has no (known) success.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Another patch on the same parent was stored first.
    #[error("conflict: {winner} was stored instead of {attempted}")]
    Conflict {
        /// The hash of the patch this write published.
        attempted: Hash,
        /// The hash of the patch stored on the same parent instead.
        winner: Hash,
    },
    /// No outcome in time. The patch may or may not have been stored: follow the
    /// configuration to find out.
    #[error("no outcome in time for {attempted}: it may or may not be stored")]
    Timeout {
        /// The hash of the patch this write published.
        attempted: Hash,
    },
    /// The patch is invalid or does not apply to the current document: the
    /// source says which and why. Nothing was published.
    #[error("rejected")]
    Rejected(#[source] InvalidPatch),
    /// The document changed between reading it and submitting the patch.
    #[error("the head moved meanwhile")]
    HeadMoved,
    /// The bus is between connections: nothing was published (it would have
    /// been lost), and a retry after the reconnect may succeed.
    #[error("not connected to the bus")]
    Disconnected,
    /// The client's background task has stopped (its bus's events ended), so
    /// nothing can be published any more.
    #[error("the client is shut down")]
    Closed,
    /// Redis refused to publish the patch (an ACL that does not let this user
    /// publish on `updates:*`, say): nothing was published, so nothing can be
    /// stored, and retrying will be refused alike.
    #[error("Redis refused to publish {attempted}")]
    Refused {
        /// The hash of the patch Redis would not publish.
        attempted: Hash,
        /// Redis's answer (a [`BusError::Refused`]).
        #[source]
        source: BusError,
    },
}

/// Equal variants with equal fields; two refusals are equal when Redis said
/// the same thing (a bus error has no equality of its own).
impl PartialEq for WriteError {
    fn eq(&self, other: &WriteError) -> bool {
        use WriteError::*;
        match (self, other) {
            (
                Conflict {
                    attempted: a,
                    winner: w,
                },
                Conflict {
                    attempted: b,
                    winner: v,
                },
            ) => a == b && w == v,
            (Timeout { attempted: a }, Timeout { attempted: b }) => a == b,
            (Rejected(a), Rejected(b)) => a == b,
            (HeadMoved, HeadMoved) | (Disconnected, Disconnected) | (Closed, Closed) => true,
            (
                Refused {
                    attempted: a,
                    source: s,
                },
                Refused {
                    attempted: b,
                    source: t,
                },
            ) => a == b && s.to_string() == t.to_string(),
            _ => false,
        }
    }
}

impl Eq for WriteError {}

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The first connection to the bus failed (the source says why); later
    /// losses are retried by the bus itself.
    #[error("cannot connect")]
    Connect(#[source] BusError),
    /// Storage answered that it has never stored this root hash. Following a
    /// [`RootConfig`](crate::RootConfig) instead of its hash registers it.
    #[error("storage does not know root {0}")]
    UnknownRoot(Hash),
    /// No storage node answered the load request within
    /// [`ClientOptions::load_timeout`](crate::ClientOptions::load_timeout)
    /// (the duration it waited).
    #[error("no answer from storage within {0:?} (is a storage node running?)")]
    LoadTimeout(std::time::Duration),
    /// A write of [`Config::update`](crate::Config::update) failed otherwise
    /// than by a conflict it could retry.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The closure given to [`Config::update`](crate::Config::update) returned
    /// an error (its message), or its result could not be made into a patch.
    /// Nothing was published.
    #[error("the edit failed: {0}")]
    Edit(String),
    /// [`crate::Config::update_typed`]: the document does not deserialize as
    /// the type, or the edited value does not serialize (the source says
    /// which and where). Nothing was published.
    #[error("the document does not fit the type")]
    Typed(#[source] serde_json::Error),
    /// [`Config::update`](crate::Config::update) lost the race to other writers
    /// on every one of its attempts.
    #[error("gave up after repeated conflicts")]
    TooManyConflicts,
    /// The client's background task has stopped (its bus's events ended).
    #[error("the client is shut down")]
    Closed,
}
