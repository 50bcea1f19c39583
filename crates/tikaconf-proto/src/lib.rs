//! The tikaconf protocol, without I/O.
//!
//! Everything that decides what a message means lives here: the canonical JSON
//! encoding (RFC 8785), hashes, the wire messages, patch application, and the three
//! roles as state machines ([`Follower`], [`Writer`], [`StorageEngine`]). They take
//! inputs (a message received on a channel, a reconnect, the time) and return
//! commands for a driver to carry out (subscribe, publish, persist). No sockets, no
//! clock, no async runtime: the same inputs always give the same outputs, which is
//! what makes every node of a fleet agree and what lets the tests replay any
//! schedule exactly. See `docs/PROTOCOL.md` for the normative wire format.

pub mod canonical;
pub mod chain;
pub mod channel;
pub mod command;
pub mod follower;
pub mod hash;
mod jitter;
pub mod json;
pub mod limits;
pub mod message;
pub mod patch;
pub mod root;
pub mod signature;
pub mod storage;
pub mod writer;

pub use channel::{ChannelKind, Channels, ReplyToken};
pub use command::{BusEvent, Command};
pub use follower::Follower;
pub use follower::{ChangeCause, Current, FollowerConfig, FollowerEvent};
pub use hash::Hash;
pub use limits::Limits;
pub use message::{
    AddressedRequest, DecodeError, Have, LoadRequest, Message, Patch, Patches, Rejection, Snapshot,
    Stored,
};
pub use root::RootConfig;
pub use signature::{PublicKey, Signature, SigningKey, TrustSet};
pub use storage::{PersistCommit, PersistOutcome, StorageCommand, StorageEngine, StoredHead};
pub use writer::{WriteOutcome, Writer};
