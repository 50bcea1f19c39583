//! [`ConnectionState`]: whether a client's bus is connected, readable at any
//! time without waiting (a health check, a readiness probe).
//!
//! The hub sets it from the bus's `Connected` and `Disconnected` events, the
//! same ones its followers act on, so it says what the followers see; the
//! client reads it from a `watch`, which never waits on the hub.

use std::time::Instant;

use tokio::sync::watch;

/// Whether a [`crate::Client`] is connected to its bus now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Not connected yet since the client started: only a client made with
    /// [`crate::ClientOptions::retry_on_initial_connect`] is ever seen in this
    /// state for long (it keeps trying in the background).
    Connecting,
    /// Connected: followers are subscribed or subscribing, writes can go out.
    Connected,
    /// The connection was lost at `since`, and the bus is reconnecting by
    /// itself. Followers keep their last document meanwhile; writes fail with
    /// [`crate::WriteError::Disconnected`].
    Disconnected {
        /// When the loss was noticed.
        since: Instant,
    },
}

impl ConnectionState {
    /// Whether this is [`ConnectionState::Connected`].
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected)
    }
}

/// The hub's side: where it records each change of state.
pub(crate) type StateSender = watch::Sender<ConnectionState>;

/// The client's side: read with `borrow`, never waits.
pub(crate) type StateReceiver = watch::Receiver<ConnectionState>;

/// A new state cell, [`ConnectionState::Connecting`] until the hub hears
/// otherwise.
pub(crate) fn channel() -> (StateSender, StateReceiver) {
    watch::channel(ConnectionState::Connecting)
}
