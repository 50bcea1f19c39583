//! What the state machines ask their driver to do on the bus.

use bytes::Bytes;

/// A bus operation. A driver carries out commands in the order given, and a
/// [`Command::Subscribe`] must be confirmed by the server before any later
/// [`Command::Publish`] is sent: a load request published before its answer's
/// channel is subscribed could have its answer missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Subscribe(String),
    Unsubscribe(String),
    /// Pattern subscription (storage's `updates:*`).
    PSubscribe(String),
    Publish {
        channel: String,
        payload: Bytes,
    },
}
