//! The Redis Pub/Sub connection pair a node talks through.
//!
//! One connection in subscribed mode carries every subscription of the process
//! (any number of roots, or storage's `updates:*` and `update_requests`), and a
//! second, multiplexed one carries publishes: a connection in subscribed mode cannot
//! publish. The redis crate reads the subscribed connection on its own task into an
//! unbounded queue, so a slow consumer here never makes Redis drop us as a slow
//! pub/sub client; the queue is drained by the node's loop.
//!
//! This module makes no protocol decisions. It reports [`BusEvent::Connected`]
//! and [`BusEvent::Disconnected`] and reconnects with jittered exponential
//! backoff; what to subscribe after a reconnect, and what to re-ask, is the state
//! machines' business (a reconnect is one of their inputs, because Pub/Sub drops
//! whatever was published while we were away).

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use std::sync::{Mutex, PoisonError};

/// What a subscribed connection reports. The in-process bus reports the same
/// events, which is why the type is this plain.
#[derive(Debug, Clone)]
pub enum BusEvent {
    /// A (new) subscribed connection is up, with no subscriptions.
    Connected,
    /// The subscribed connection is gone; a new one is being made. Whatever is
    /// published until the next `Connected` is lost to this connection.
    Disconnected,
    Message {
        channel: Bytes,
        payload: Bytes,
    },
}

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    #[error("not connected to Redis")]
    Disconnected,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl BusError {
    /// Whether Redis answered the command with an error (an ACL's `NOPERM`, `OOM`,
    /// ...) rather than the connection failing: a reconnect will not change the
    /// answer, so it is worth an operator's attention.
    pub fn is_refusal(&self) -> bool {
        match self {
            BusError::Disconnected => false,
            BusError::Redis(err) => matches!(
                err.kind(),
                redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
            ),
        }
    }
}

/// Reconnection timing.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(50),
            // Short: after a Redis restart, every node of the fleet is deaf until it
            // reconnects, and jitter already spreads the attempts out.
            max: Duration::from_millis(500),
        }
    }
}

/// A subscribed connection plus a publishing one, to one Redis server.
#[derive(Clone)]
pub struct RedisBus {
    sink: Arc<Mutex<Option<PubSubSink>>>,
    publisher: ConnectionManager,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus").finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Connects to `url` (`redis://` or `rediss://`, with `user:password@` if the
    /// server wants it). Fails if the first connection cannot be made; later losses
    /// are retried forever and reported as events.
    pub async fn connect(url: &str, backoff: Backoff) -> Result<(RedisBus, RedisEvents), BusError> {
        RedisBus::connect_client(open_client(url, None)?, backoff).await
    }

    /// Like [`RedisBus::connect`], with a client built by [`open_client`] (for a
    /// `rediss://` server whose certificate a private CA signed).
    pub async fn connect_client(
        client: redis::Client,
        backoff: Backoff,
    ) -> Result<(RedisBus, RedisEvents), BusError> {
        // The plain connection first: it fails fast on a refused connection, a bad
        // password or an untrusted certificate, where the connection manager would
        // retry with backoff.
        let first = client.get_async_pubsub().await?;
        let publisher = ConnectionManager::new(client.clone()).await?;
        let sink = Arc::new(Mutex::new(None));
        let events = RedisEvents {
            client,
            sink: sink.clone(),
            backoff,
            delay: backoff.initial,
            state: State::Up(Some(first)),
        };
        Ok((RedisBus { sink, publisher }, events))
    }

    /// The current connection's sink. A plain (not async) lock, held for a clone:
    /// the first poll of a subscribe must send its command without yielding, so
    /// that commands leave in the order they were issued.
    fn sink(&self) -> Result<PubSubSink, BusError> {
        lock(&self.sink).clone().ok_or(BusError::Disconnected)
    }

    /// Subscribes to `channels` and waits until Redis confirms.
    pub async fn subscribe(&self, channels: &[String]) -> Result<(), BusError> {
        if channels.is_empty() {
            return Ok(());
        }
        Ok(self.sink()?.subscribe(channels).await?)
    }

    pub async fn unsubscribe(&self, channels: &[String]) -> Result<(), BusError> {
        if channels.is_empty() {
            return Ok(());
        }
        Ok(self.sink()?.unsubscribe(channels).await?)
    }

    pub async fn psubscribe(&self, patterns: &[String]) -> Result<(), BusError> {
        if patterns.is_empty() {
            return Ok(());
        }
        Ok(self.sink()?.psubscribe(patterns).await?)
    }

    /// Publishes `messages` in order, in one pipeline.
    pub async fn publish(&self, messages: &[(String, bytes::Bytes)]) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (channel, payload) in messages {
            pipe.publish(channel, payload.as_ref()).ignore();
        }
        let mut conn = self.publisher.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

/// A Redis client for `url`. For `rediss://`, the server's certificate is checked
/// against the platform's web roots, or against `ca_pem` (PEM) when given.
pub fn open_client(url: &str, ca_pem: Option<&[u8]>) -> Result<redis::Client, redis::RedisError> {
    match ca_pem {
        None => redis::Client::open(url),
        Some(ca) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.to_vec()),
            },
        ),
    }
}

/// The events of the subscribed connection, as a stream the node's loop polls
/// itself (no task in between: each hand-off costs latency on every message).
///
/// It owns the connection: it reports its loss, and makes a new one with jittered
/// exponential backoff. Dropping it closes the subscribed connection.
pub struct RedisEvents {
    client: redis::Client,
    sink: Arc<Mutex<Option<PubSubSink>>>,
    backoff: Backoff,
    delay: Duration,
    state: State,
}

enum State {
    /// Connected; reported as `Connected` on the next poll.
    Up(Option<redis::aio::PubSub>),
    Streaming(PubSubStream),
    Waiting(Pin<Box<tokio::time::Sleep>>),
    Connecting(Pin<Box<dyn Future<Output = redis::RedisResult<redis::aio::PubSub>> + Send>>),
}

impl std::fmt::Debug for RedisEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEvents").finish_non_exhaustive()
    }
}

impl Stream for RedisEvents {
    type Item = BusEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BusEvent>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Up(pubsub) => {
                    let Some(pubsub) = pubsub.take() else {
                        return Poll::Ready(None);
                    };
                    let (sink, stream) = pubsub.split();
                    *lock(&this.sink) = Some(sink);
                    this.delay = this.backoff.initial;
                    this.state = State::Streaming(stream);
                    return Poll::Ready(Some(BusEvent::Connected));
                }
                State::Streaming(stream) => match ready!(stream.poll_next_unpin(cx)) {
                    Some(msg) => {
                        let channel = Bytes::from(msg.get_channel::<Vec<u8>>().unwrap_or_default());
                        let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                        return Poll::Ready(Some(BusEvent::Message { channel, payload }));
                    }
                    None => {
                        *lock(&this.sink) = None;
                        tracing::warn!("redis pub/sub connection lost; reconnecting");
                        this.state =
                            State::Waiting(Box::pin(tokio::time::sleep(jittered(this.delay))));
                        return Poll::Ready(Some(BusEvent::Disconnected));
                    }
                },
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    let client = this.client.clone();
                    this.state =
                        State::Connecting(Box::pin(async move { client.get_async_pubsub().await }));
                }
                State::Connecting(connecting) => match ready!(connecting.as_mut().poll(cx)) {
                    Ok(pubsub) => this.state = State::Up(Some(pubsub)),
                    Err(err) => {
                        tracing::debug!(%err, delay = ?this.delay, "redis pub/sub reconnect failed");
                        this.state =
                            State::Waiting(Box::pin(tokio::time::sleep(jittered(this.delay))));
                        this.delay = (this.delay * 2).min(this.backoff.max);
                    }
                },
            }
        }
    }
}

/// The slot holds an `Option` replaced whole, so a panic elsewhere cannot leave
/// it half-written: poisoning is ignored.
fn lock(slot: &Mutex<Option<PubSubSink>>) -> std::sync::MutexGuard<'_, Option<PubSubSink>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `base` scaled by a factor in [0.5, 1.5), so a fleet that lost Redis at once
/// does not reconnect in lockstep.
fn jittered(base: Duration) -> Duration {
    base.mul_f64(0.5 + rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_is_a_refusal_and_a_lost_connection_is_not() {
        let noperm = redis::RedisError::from((
            redis::ErrorKind::Extension,
            "NOPERM",
            "this user has no permissions to access the channel".to_owned(),
        ));
        assert!(BusError::Redis(noperm).is_refusal());
        let reset = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset by peer",
        ));
        assert!(!BusError::Redis(reset).is_refusal());
        assert!(!BusError::Disconnected.is_refusal());
    }
}
