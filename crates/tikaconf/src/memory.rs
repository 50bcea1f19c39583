//! An in-process bus with Redis Pub/Sub's semantics.
//!
//! For a single process (a bot and its storage in one binary) and for fast tests:
//! one [`Broker`] stands in for a Redis server, and each [`Broker::connect`] is a
//! connection with its own subscriptions. Delivery happens under one lock, so every
//! subscriber sees one global order of messages, as with Redis. Patterns support the
//! one form the protocol uses: a literal prefix followed by `*`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::bus::{BoxFuture, Bus, BusError, BusEvent, BusHandle};

/// An in-process stand-in for a Redis server's Pub/Sub.
#[derive(Debug, Clone, Default)]
pub struct Broker {
    inner: Arc<Mutex<BrokerState>>,
}

#[derive(Debug, Default)]
struct BrokerState {
    next_id: u64,
    connections: HashMap<u64, Connection>,
}

#[derive(Debug)]
struct Connection {
    sender: mpsc::UnboundedSender<BusEvent>,
    channels: HashSet<String>,
    /// Pattern prefixes (the pattern without its trailing `*`).
    prefixes: Vec<String>,
}

impl Broker {
    /// A broker with no connections yet (the same as [`Broker::default`]).
    pub fn new() -> Broker {
        Broker::default()
    }

    /// A new connection, already connected.
    pub fn connect(&self) -> BusHandle {
        let (sender, events) = mpsc::unbounded_channel();
        let _ = sender.send(BusEvent::Connected);
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.connections.insert(
            id,
            Connection {
                sender,
                channels: HashSet::new(),
                prefixes: Vec::new(),
            },
        );
        drop(state);
        let bus = MemoryBus {
            broker: self.clone(),
            id,
        };
        let mut events = events;
        let stream = futures_util::stream::poll_fn(move |cx| events.poll_recv(cx));
        BusHandle::new(Arc::new(bus), stream)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BrokerState> {
        // A panic elsewhere while holding the lock leaves the maps consistent
        // (every mutation is a single insert or remove), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, channel: &str, payload: &Bytes) {
        let state = self.lock();
        let channel_bytes = Bytes::copy_from_slice(channel.as_bytes());
        for conn in state.connections.values() {
            let matches = conn.channels.contains(channel)
                || conn
                    .prefixes
                    .iter()
                    .any(|p| channel.starts_with(p.as_str()));
            if matches {
                let _ = conn.sender.send(BusEvent::Message {
                    channel: channel_bytes.clone(),
                    payload: payload.clone(),
                });
            }
        }
    }
}

/// One connection to a [`Broker`].
#[derive(Debug)]
struct MemoryBus {
    broker: Broker,
    id: u64,
}

impl MemoryBus {
    fn with_connection(&self, f: impl FnOnce(&mut Connection)) -> Result<(), BusError> {
        let mut state = self.broker.lock();
        let conn = state
            .connections
            .get_mut(&self.id)
            .ok_or(BusError::Disconnected)?;
        f(conn);
        Ok(())
    }
}

impl Drop for MemoryBus {
    fn drop(&mut self) {
        self.broker.lock().connections.remove(&self.id);
    }
}

impl Bus for MemoryBus {
    fn subscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(
            async move { self.with_connection(|c| c.channels.extend(channels.iter().cloned())) },
        )
    }

    fn unsubscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            self.with_connection(|c| {
                for ch in channels {
                    c.channels.remove(ch);
                }
            })
        })
    }

    fn psubscribe<'a>(&'a self, patterns: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let prefixes = patterns
                .iter()
                .map(|p| literal_prefix(p).ok_or_else(|| BusError::UnsupportedPattern(p.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            self.with_connection(|c| c.prefixes.extend(prefixes))
        })
    }

    fn publish<'a>(
        &'a self,
        messages: &'a [(String, Bytes)],
    ) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            for (channel, payload) in messages {
                self.broker.publish(channel, payload);
            }
            Ok(())
        })
    }
}

/// The literal prefix of a Redis glob pattern of the form `prefix*` (with `\\`
/// escapes in the prefix), or `None` for any other pattern.
fn literal_prefix(pattern: &str) -> Option<String> {
    let mut prefix = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => prefix.push(chars.next()?),
            '*' => return chars.next().is_none().then_some(prefix),
            '?' | '[' => return None,
            c => prefix.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::literal_prefix;

    #[test]
    fn reads_prefix_patterns_with_escapes() {
        assert_eq!(literal_prefix("updates:*").as_deref(), Some("updates:"));
        assert_eq!(
            literal_prefix("a\\*b:updates:*").as_deref(),
            Some("a*b:updates:")
        );
        assert_eq!(literal_prefix("a*b"), None);
        assert_eq!(literal_prefix("a?*"), None);
        assert_eq!(literal_prefix("exact"), None);
    }
}
