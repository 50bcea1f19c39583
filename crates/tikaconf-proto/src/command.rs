//! The bus's vocabulary, both ways: the [`Command`]s the state machines ask
//! their driver to carry out on the bus, and the [`BusEvent`]s a bus reports to
//! the driver, which turns them into the machines' inputs.
//!
//! Defined here, beside the machines, and only here (as quinn-proto defines
//! `Transmit` and its events): the Redis bus and the in-process bus produce
//! the same events, and the drivers consume them, without either depending on
//! the other for the type.

use bytes::Bytes;

/// A bus operation. A driver carries out commands in the order given, and a
/// [`Command::Subscribe`] must be confirmed by the server before any later
/// [`Command::Publish`] is sent: a load request published before its answer's
/// channel is subscribed could have its answer missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Subscribe to this channel.
    Subscribe(String),
    /// Leave this channel.
    Unsubscribe(String),
    /// Pattern subscription (storage's `updates:*`).
    PSubscribe(String),
    /// Publish a message.
    Publish {
        /// The full channel name, namespace included.
        channel: String,
        /// The encoded message, as [`crate::Message`]'s encoders made it.
        payload: Bytes,
    },
}

/// What a bus's subscribed connection reports: the Redis bus and the
/// in-process one alike, which is why the type is this plain.
#[derive(Debug, Clone)]
pub enum BusEvent {
    /// A (new) subscribed connection is up, with no subscriptions.
    Connected,
    /// The subscribed connection is gone; a new one is being made. Whatever is
    /// published until the next `Connected` is lost to this connection.
    Disconnected,
    /// A message published on a subscribed channel (or one matching a
    /// subscribed pattern), as received: not yet decoded or checked.
    Message {
        /// The channel it was published on (the channel's own name, not the
        /// pattern it matched).
        channel: Bytes,
        /// The message's bytes.
        payload: Bytes,
    },
    /// Messages were dropped here because the consumer fell more than the
    /// bus's queue bound behind. The subscriptions are intact; only messages
    /// are lost, as during a disconnection.
    Overflowed {
        /// How many messages were dropped.
        dropped: u64,
        /// The channels they came on (each once), or `None` when there were
        /// more than [`OVERFLOW_CHANNELS`]: then any channel may have lost one.
        channels: Option<Vec<Bytes>>,
    },
}

/// The most channels a [`BusEvent::Overflowed`] names; beyond that it names
/// none (every channel may have lost a message), so that the record of what was
/// dropped is itself bounded.
pub const OVERFLOW_CHANNELS: usize = 64;
