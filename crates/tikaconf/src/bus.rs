//! The bus a node talks through: Redis Pub/Sub, or an in-process broker.
//!
//! Both carry the same semantics, so everything above this module (the follower
//! hub, the storage node) runs unchanged on either: messages on one channel arrive
//! in publish order, a subscription takes effect when its future resolves, and a
//! disconnect loses whatever was published meanwhile.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

/// The events of a bus's subscribed connection, polled by the node's loop itself.
pub type Events = Pin<Box<dyn Stream<Item = BusEvent> + Send>>;

/// A boxed future, so that [`Bus`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a bus reports to the node that owns it (defined beside the state
/// machines, in `tikaconf-proto`, which both buses and the drivers use).
pub use tikaconf_proto::BusEvent;

/// Why a bus operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The bus is between connections (it reconnects by itself): the operation
    /// was not carried out, and may succeed after the next
    /// [`BusEvent::Connected`].
    #[error("not connected")]
    Disconnected,
    /// The server answered with an error (an ACL's `NOPERM`, say): unlike a lost
    /// connection, a reconnect will not change the answer.
    #[error("refused: {0}")]
    Refused(#[source] tikaconf_redis::bus::BusError),
    /// The Redis bus failed (connecting, or a command on a lost connection).
    #[error(transparent)]
    Backend(tikaconf_redis::bus::BusError),
    /// The in-process bus was asked for a pattern it cannot match: it supports
    /// only a literal prefix followed by `*`, the one form the protocol uses.
    #[error("the in-process bus supports only 'prefix*' patterns, not {0:?}")]
    UnsupportedPattern(String),
}

/// Pub/Sub operations. Each resolves once the server has taken it.
///
/// Implement it to run a node over another transport; what arrives comes out of
/// the [`Events`] stream given to [`BusHandle::new`] beside it, not from these
/// calls.
pub trait Bus: Send + Sync + 'static {
    /// Subscribes the subscribed connection to `channels`: once this resolves,
    /// every message published on them reaches the events stream.
    fn subscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, Result<(), BusError>>;
    /// Unsubscribes from `channels`. Messages already on their way may still
    /// arrive.
    fn unsubscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, Result<(), BusError>>;
    /// Subscribes to every channel matching each of `patterns` (Redis glob
    /// patterns; the protocol only uses `prefix*`).
    fn psubscribe<'a>(&'a self, patterns: &'a [String]) -> BoxFuture<'a, Result<(), BusError>>;
    /// Publishes in order.
    fn publish<'a>(
        &'a self,
        messages: &'a [(String, Bytes)],
    ) -> BoxFuture<'a, Result<(), BusError>>;
}

/// A bus and the events of its subscribed connection: what a node is built from.
pub struct BusHandle {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) events: Events,
}

impl std::fmt::Debug for dyn Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bus")
    }
}

impl std::fmt::Debug for BusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusHandle").finish_non_exhaustive()
    }
}

impl BusHandle {
    /// A handle on any [`Bus`], with the events of its subscribed connection:
    /// the stream must start with [`BusEvent::Connected`] once it is up, and
    /// follow the ordering rules of the module documentation.
    pub fn new(
        bus: Arc<dyn Bus>,
        events: impl Stream<Item = BusEvent> + Send + 'static,
    ) -> BusHandle {
        BusHandle {
            bus,
            events: Box::pin(events),
        }
    }

    /// Connects to Redis at `url` (`redis://` or `rediss://`, `user:password@` as
    /// needed). The first connection must succeed; later losses are retried forever.
    pub async fn redis(url: &str) -> Result<BusHandle, BusError> {
        BusHandle::redis_with_ca(url, None).await
    }

    /// Like [`BusHandle::redis`], checking a `rediss://` server's certificate
    /// against the CA in `ca_pem` (PEM) instead of the platform's web roots.
    pub async fn redis_with_ca(url: &str, ca_pem: Option<&[u8]>) -> Result<BusHandle, BusError> {
        BusHandle::redis_with_options(url, ca_pem, BusOptions::default()).await
    }

    /// Like [`BusHandle::redis_with_ca`], with the bus's timing and bounds (its
    /// ping, its deadline, the bound of the subscribed connection's queue).
    pub async fn redis_with_options(
        url: &str,
        ca_pem: Option<&[u8]>,
        options: BusOptions,
    ) -> Result<BusHandle, BusError> {
        use tikaconf_redis::bus::{RedisBus, open_client};
        let client = open_client(url, ca_pem).map_err(|e| BusError::Backend(e.into()))?;
        let (bus, events) = RedisBus::connect_with(client, options)
            .await
            .map_err(BusError::Backend)?;
        Ok(BusHandle::from_redis(bus, events))
    }

    /// Like [`BusHandle::redis_with_options`], but returns at once and makes
    /// the first connection in the background, retrying until it succeeds
    /// (see [`tikaconf_redis::bus::RedisBus::connect_in_background`]). Fails
    /// only on a malformed URL or TLS setting.
    pub fn redis_in_background(
        url: &str,
        ca_pem: Option<&[u8]>,
        options: BusOptions,
    ) -> Result<BusHandle, BusError> {
        use tikaconf_redis::bus::{RedisBus, open_client};
        let client = open_client(url, ca_pem).map_err(|e| BusError::Backend(e.into()))?;
        let (bus, events) = RedisBus::connect_in_background(client, options);
        Ok(BusHandle::from_redis(bus, events))
    }

    /// A handle on a Redis bus made with [`tikaconf_redis::bus::RedisBus`], whose
    /// events may have passed through the caller's hands (to count or delay
    /// them, in a test).
    pub fn from_redis(
        bus: tikaconf_redis::bus::RedisBus,
        events: impl Stream<Item = BusEvent> + Send + 'static,
    ) -> BusHandle {
        BusHandle::new(Arc::new(RedisAdapter(bus)), events)
    }
}

pub use tikaconf_redis::bus::{BusOptions, QueueLimit};

/// [`Bus`] over [`tikaconf_redis::bus::RedisBus`].
#[derive(Debug)]
struct RedisAdapter(tikaconf_redis::bus::RedisBus);

fn backend(e: tikaconf_redis::bus::BusError) -> BusError {
    match e {
        tikaconf_redis::bus::BusError::Disconnected => BusError::Disconnected,
        other if other.is_refusal() => BusError::Refused(other),
        other => BusError::Backend(other),
    }
}

impl Bus for RedisAdapter {
    fn subscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move { self.0.subscribe(channels).await.map_err(backend) })
    }
    fn unsubscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move { self.0.unsubscribe(channels).await.map_err(backend) })
    }
    fn psubscribe<'a>(&'a self, patterns: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move { self.0.psubscribe(patterns).await.map_err(backend) })
    }
    fn publish<'a>(
        &'a self,
        messages: &'a [(String, Bytes)],
    ) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move { self.0.publish(messages).await.map_err(backend) })
    }
}
