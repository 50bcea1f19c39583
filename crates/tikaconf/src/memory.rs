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
    /// Messages held back while the connection's [`Gate`] is closed, in order.
    held: Option<Vec<BusEvent>>,
}

impl Broker {
    /// A broker with no connections yet (the same as [`Broker::default`]).
    pub fn new() -> Broker {
        Broker::default()
    }

    /// A new connection, already connected.
    pub fn connect(&self) -> BusHandle {
        self.connect_gated().0
    }

    /// A new connection, and a [`Gate`] that can hold back what is delivered
    /// to it: a node that has not heard yet what others published, so that a
    /// test can stage a race (two writers on one head, a follower behind)
    /// deterministically rather than hope for it.
    pub fn connect_gated(&self) -> (BusHandle, Gate) {
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
                held: None,
            },
        );
        drop(state);
        let bus = MemoryBus {
            broker: self.clone(),
            id,
        };
        let mut events = events;
        let stream = futures_util::stream::poll_fn(move |cx| events.poll_recv(cx));
        let gate = Gate {
            broker: self.clone(),
            id,
        };
        (BusHandle::new(Arc::new(bus), stream), gate)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BrokerState> {
        // A panic elsewhere while holding the lock leaves the maps consistent
        // (every mutation is a single insert or remove), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, channel: &str, payload: &Bytes) {
        let mut state = self.lock();
        let channel_bytes = Bytes::copy_from_slice(channel.as_bytes());
        for conn in state.connections.values_mut() {
            let matches = conn.channels.contains(channel)
                || conn
                    .prefixes
                    .iter()
                    .any(|p| channel.starts_with(p.as_str()));
            if matches {
                let event = BusEvent::Message {
                    channel: channel_bytes.clone(),
                    payload: payload.clone(),
                };
                match &mut conn.held {
                    Some(held) => held.push(event),
                    None => {
                        let _ = conn.sender.send(event);
                    }
                }
            }
        }
    }
}

/// Holds back, or releases, what a [`Broker`] delivers to one connection
/// (see [`Broker::connect_gated`]). Open when made.
#[derive(Debug, Clone)]
pub struct Gate {
    broker: Broker,
    id: u64,
}

impl Gate {
    /// From now on, messages to this connection wait (in order).
    pub fn hold(&self) {
        if let Some(conn) = self.broker.lock().connections.get_mut(&self.id) {
            conn.held.get_or_insert_with(Vec::new);
        }
    }

    /// Delivers what waited, in order, and lets messages through again.
    pub fn release(&self) {
        if let Some(conn) = self.broker.lock().connections.get_mut(&self.id)
            && let Some(held) = conn.held.take()
        {
            for event in held {
                let _ = conn.sender.send(event);
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
    use futures_util::StreamExt;

    use super::*;

    /// What a held connection is sent waits, and arrives in order on release;
    /// other connections are not held.
    #[tokio::test]
    async fn a_gate_holds_then_releases_in_order() {
        let broker = Broker::new();
        let (mut held, gate) = broker.connect_gated();
        let mut open = broker.connect();
        for handle in [&held, &open] {
            handle.bus.subscribe(&["c".to_owned()]).await.unwrap();
        }
        let publisher = broker.connect();
        let message = |n: u8| ("c".to_owned(), Bytes::from(vec![n]));
        let payload = |event: Option<BusEvent>| match event {
            Some(BusEvent::Message { payload, .. }) => payload,
            other => panic!("expected a message, got {other:?}"),
        };
        assert!(matches!(
            held.events.next().await,
            Some(BusEvent::Connected)
        ));
        assert!(matches!(
            open.events.next().await,
            Some(BusEvent::Connected)
        ));
        gate.hold();
        publisher
            .bus
            .publish(&[message(1), message(2)])
            .await
            .unwrap();
        assert_eq!(payload(open.events.next().await), Bytes::from(vec![1]));
        assert_eq!(payload(open.events.next().await), Bytes::from(vec![2]));
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), held.events.next());
        assert!(waited.await.is_err(), "nothing arrives while held");
        gate.release();
        assert_eq!(payload(held.events.next().await), Bytes::from(vec![1]));
        assert_eq!(payload(held.events.next().await), Bytes::from(vec![2]));
        publisher.bus.publish(&[message(3)]).await.unwrap();
        assert_eq!(payload(held.events.next().await), Bytes::from(vec![3]));
    }

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
