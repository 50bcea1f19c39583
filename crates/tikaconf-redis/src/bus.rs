//! The Redis Pub/Sub connection pair a node talks through.
//!
//! One connection in subscribed mode carries every subscription of the process
//! (any number of roots, or storage's `updates:*` and `update_requests`), and a
//! second one carries publishes, so that a flood of messages arriving never
//! delays the reply to a publish. Both speak RESP3: the redis crate then hands
//! each message to a sender of ours on its own reading task (a bounded queue), which is
//! what lets this module bound what a slow consumer holds (see below), and a
//! subscribed connection may still be sent `PING`.
//!
//! The two connections are one *link*: when either fails, both are dropped and
//! remade together, and the loss is reported once. Three things find a failure:
//!
//! - the redis crate, when the socket reports an error or end of file;
//! - a ping with a deadline ([`BusOptions::ping_interval`],
//!   [`BusOptions::ping_deadline`]): a connection that received nothing for an
//!   interval is sent `PING`, and if no reply comes before the deadline the link
//!   is dropped. This is what finds a *half-open* connection (the peer or a
//!   middlebox gone without a reset): the socket itself would report nothing for
//!   as long as the kernel keeps retrying, hours on a quiet connection, while
//!   the node believes it is subscribed and hears nothing. Every command's reply
//!   has the same deadline, so a publish or subscribe into a dead link fails it
//!   too;
//! - TCP keepalive ([`BusOptions::tcp_keepalive`]), a backstop for a node whose
//!   loop is too busy to ping.
//!
//! The queue between the connection's reading task and the node's loop is
//! bounded ([`QueueLimit`]): a consumer that falls behind never makes the process
//! grow. Messages beyond the bound are dropped and, in their place in the
//! stream, the consumer reads [`BusEvent::Overflowed`] naming the channels that
//! lost messages: like a reconnect, it tells the state machines that Pub/Sub's
//! at-most-once delivery lost something here, and they re-sync as they already
//! do after a reconnect. Load is shed by dropping and re-syncing, never by
//! growing.
//!
//! This module makes no protocol decisions. It reports [`BusEvent::Connected`],
//! [`BusEvent::Disconnected`] and [`BusEvent::Overflowed`] and reconnects with
//! jittered exponential backoff; what to subscribe after a reconnect, and what
//! to re-ask, is the state machines' business (a reconnect is one of their
//! inputs, because Pub/Sub drops whatever was published while we were away).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::task::AtomicWaker;
use redis::aio::{MultiplexedConnection, SendError};
use redis::{PushInfo, PushKind, Value};
use tikaconf_proto::command::{BusEvent, OVERFLOW_CHANNELS};

/// Why a bus operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The link is down and being remade: the command was not sent.
    #[error("not connected to Redis")]
    Disconnected,
    /// The command failed: Redis answered with an error (see
    /// [`BusError::is_refusal`]), or the connection failed or missed its
    /// deadline while the command was in flight.
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
            BusError::Redis(err) => is_server_answer(err),
        }
    }
}

/// Whether `err` is an error *reply* from the server (which proves the
/// connection works) rather than a failure of the connection.
fn is_server_answer(err: &redis::RedisError) -> bool {
    matches!(
        err.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

/// Reconnection timing: the delay before each attempt doubles from `initial` up
/// to `max`, each one jittered to between half and one and a half times itself so
/// that a fleet does not reconnect in step.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The delay before the first attempt after a failed one (default 50 ms).
    pub initial: Duration,
    /// The longest delay between attempts, before jitter (default 500 ms).
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

/// How much the subscribed connection holds for a consumer that has not read it
/// yet. A message that would take the queue past either bound is dropped (one
/// message is always admitted into an empty queue, so no message is too large
/// to ever arrive).
#[derive(Debug, Clone, Copy)]
pub struct QueueLimit {
    /// Messages held (default 65,536).
    pub messages: usize,
    /// Payload and channel bytes held (default 32 MiB).
    pub bytes: usize,
}

impl Default for QueueLimit {
    fn default() -> Self {
        QueueLimit {
            // Redis's own default for a pub/sub client is to disconnect it once
            // 32 MiB of output wait for it (`client-output-buffer-limit pubsub`):
            // a consumer further behind than that has lost messages either way,
            // and 32 MiB still holds 32 snapshots of the largest document.
            bytes: 32 << 20,
            // Bounds the per-message overhead (tens of bytes each) when the
            // messages are tiny: `stored` notices, load requests.
            messages: 65_536,
        }
    }
}

/// The bus's timing and bounds. The defaults detect a dead link within about
/// `ping_interval` x 2 + `ping_deadline` (5 s) on a quiet connection.
#[derive(Debug, Clone, Copy)]
pub struct BusOptions {
    /// How soon the link is remade after a failure.
    pub backoff: Backoff,
    /// A connection that received nothing for this long is sent `PING`. Short,
    /// because a follower of a quiet root receives nothing for hours and a
    /// half-open connection must not leave it deaf for long; a `PING` a second
    /// per connection is nothing to Redis (a fleet of 1,000 nodes adds 2,000
    /// commands/s to a server that serves 100,000 and more). Default 1 s.
    pub ping_interval: Duration,
    /// How long any reply (to a `PING`, a publish, a subscribe) may take before
    /// the link is declared dead and remade. Long against a healthy Redis's
    /// sub-millisecond replies, so that a busy server (a slow script, a fork for
    /// a snapshot) or a node whose loop was busy for a moment is not taken for
    /// a dead one; short enough that a dead link is found within seconds.
    /// Default 3 s.
    pub ping_deadline: Duration,
    /// TCP keepalive probes after this much idleness (then every second, three
    /// times), or `None` to leave the system's setting: a backstop in the
    /// kernel, which works even while the node's loop cannot ping. Default 5 s.
    pub tcp_keepalive: Option<Duration>,
    /// How far the consumer may fall behind the subscribed connection before
    /// messages are dropped (and reported as [`BusEvent::Overflowed`]).
    pub queue: QueueLimit,
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions {
            backoff: Backoff::default(),
            ping_interval: Duration::from_secs(1),
            ping_deadline: Duration::from_secs(3),
            tcp_keepalive: Some(Duration::from_secs(5)),
            queue: QueueLimit::default(),
        }
    }
}

/// Counters of the subscribed connection's queue, kept across reconnects.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Messages waiting now.
    pub len: AtomicUsize,
    /// The most messages that ever waited.
    pub max_len: AtomicUsize,
    /// Messages dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Links declared dead because a `PING` missed its deadline (a command's
    /// reply missing it kills the link too, and is not counted here).
    pub deadlines_missed: AtomicU64,
}

/// The two connections of one link.
#[derive(Clone)]
struct Link {
    subscribed: MultiplexedConnection,
    publisher: MultiplexedConnection,
    queue: Arc<Queue>,
}

/// A subscribed connection plus a publishing one, to one Redis server.
#[derive(Clone)]
pub struct RedisBus {
    link: Arc<Mutex<Option<Link>>>,
    stats: Arc<QueueStats>,
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
        let options = BusOptions {
            backoff,
            ..BusOptions::default()
        };
        RedisBus::connect_with(open_client(url, None)?, options).await
    }

    /// Like [`RedisBus::connect`], with a client built by [`open_client`] (for a
    /// `rediss://` server whose certificate a private CA signed).
    pub async fn connect_client(
        client: redis::Client,
        backoff: Backoff,
    ) -> Result<(RedisBus, RedisEvents), BusError> {
        let options = BusOptions {
            backoff,
            ..BusOptions::default()
        };
        RedisBus::connect_with(client, options).await
    }

    /// Like [`RedisBus::connect_client`], with every option.
    pub async fn connect_with(
        client: redis::Client,
        options: BusOptions,
    ) -> Result<(RedisBus, RedisEvents), BusError> {
        let client = link_client(client, &options);
        let stats = Arc::new(QueueStats::default());
        // Fails fast on a refused connection, a bad password or an untrusted
        // certificate: the first connection is not retried.
        let first = connect_link(client.clone(), options, stats.clone()).await?;
        // Usable at once (a publish needs no event read first), like a later
        // link as soon as its `Connected` is read.
        let slot = Arc::new(Mutex::new(Some(first.clone())));
        let events = RedisEvents {
            client,
            slot: slot.clone(),
            options,
            stats: stats.clone(),
            delay: options.backoff.initial,
            state: State::Up(Some(first)),
            quiet_failures: true,
        };
        Ok((RedisBus { link: slot, stats }, events))
    }

    /// Like [`RedisBus::connect_with`], but returns at once without a
    /// connection and makes the first one in the background, retrying with
    /// the same backoff as after a loss, for a node that must start while
    /// Redis is down (a client answering from its cache). Until the events
    /// report [`BusEvent::Connected`], every command fails with
    /// [`BusError::Disconnected`]. A refused password or certificate is
    /// retried too, and logged, as any failed attempt.
    pub fn connect_in_background(
        client: redis::Client,
        options: BusOptions,
    ) -> (RedisBus, RedisEvents) {
        let client = link_client(client, &options);
        let stats = Arc::new(QueueStats::default());
        let slot = Arc::new(Mutex::new(None));
        let first = connect_link(client.clone(), options, stats.clone());
        let events = RedisEvents {
            client,
            slot: slot.clone(),
            options,
            stats: stats.clone(),
            delay: options.backoff.initial,
            state: State::Connecting(Box::pin(first)),
            quiet_failures: false,
        };
        (RedisBus { link: slot, stats }, events)
    }

    /// The counters of the subscribed connection's queue.
    pub fn queue_stats(&self) -> Arc<QueueStats> {
        self.stats.clone()
    }

    /// The current link. A plain (not async) lock, held for a clone: the first
    /// poll of a subscribe must send its command without yielding, so that
    /// commands leave in the order they were issued.
    fn link(&self) -> Result<Link, BusError> {
        lock(&self.link).clone().ok_or(BusError::Disconnected)
    }

    /// Subscribes to `channels` and waits until Redis confirms.
    pub async fn subscribe(&self, channels: &[String]) -> Result<(), BusError> {
        if channels.is_empty() {
            return Ok(());
        }
        let link = self.link()?;
        let mut conn = link.subscribed.clone();
        link.check(conn.subscribe(channels).await)
    }

    /// Unsubscribes from `channels` and waits until Redis confirms. Messages
    /// already on their way may still arrive.
    pub async fn unsubscribe(&self, channels: &[String]) -> Result<(), BusError> {
        if channels.is_empty() {
            return Ok(());
        }
        let link = self.link()?;
        let mut conn = link.subscribed.clone();
        link.check(conn.unsubscribe(channels).await)
    }

    /// Subscribes to every channel matching each of `patterns` (Redis glob
    /// patterns) and waits until Redis confirms.
    pub async fn psubscribe(&self, patterns: &[String]) -> Result<(), BusError> {
        if patterns.is_empty() {
            return Ok(());
        }
        let link = self.link()?;
        let mut conn = link.subscribed.clone();
        link.check(conn.psubscribe(patterns).await)
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
        let link = self.link()?;
        let mut conn = link.publisher.clone();
        link.check(pipe.query_async::<()>(&mut conn).await)
    }
}

impl Link {
    /// Passes a command's result on; a failure that is not Redis's answer (the
    /// connection failed, or the reply missed its deadline) kills the link, so
    /// that the events report the loss and a new link is made.
    fn check<T>(&self, result: redis::RedisResult<T>) -> Result<(), BusError> {
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                if !is_server_answer(&err) {
                    self.queue.close();
                }
                Err(err.into())
            }
        }
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

/// `client`, speaking RESP3 (see the module documentation) with TCP keepalive.
fn link_client(client: redis::Client, options: &BusOptions) -> redis::Client {
    let info = client.get_connection_info().clone();
    let redis_settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    let mut tcp = info.tcp_settings().clone();
    if let Some(idle) = options.tcp_keepalive {
        let keepalive = redis::io::tcp::socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(Duration::from_secs(1));
        #[cfg(any(target_os = "linux", target_os = "macos", target_os = "android"))]
        let keepalive = keepalive.with_retries(3);
        tcp = tcp.set_keepalive(keepalive);
    }
    let info = info
        .set_redis_settings(redis_settings)
        .set_tcp_settings(tcp);
    // Only the settings changed: the address (and its TLS parameters) is kept.
    redis::Client::open(info).unwrap_or(client)
}

/// Makes both connections of a link, subscribed one first.
async fn connect_link(
    client: redis::Client,
    options: BusOptions,
    stats: Arc<QueueStats>,
) -> redis::RedisResult<Link> {
    let queue = Arc::new(Queue::new(options.queue, stats));
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(options.ping_deadline))
        .set_connection_timeout(Some(options.ping_deadline))
        .set_push_sender(queue.clone());
    let subscribed = client
        .get_multiplexed_async_connection_with_config(
            // Room for a burst of subscription changes, each sent on its first
            // poll (see `RedisBus::link`).
            &config.clone().set_pipeline_buffer_size(1024),
        )
        .await?;
    // The publisher reports only its own loss into the queue.
    let publisher = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    Ok(Link {
        subscribed,
        publisher,
        queue,
    })
}

/// Where the subscribed connection's reading task puts messages, bounded (see
/// [`QueueLimit`]), and how either connection reports its loss.
struct Queue {
    state: Mutex<QueueState>,
    waker: AtomicWaker,
    limit: QueueLimit,
    stats: Arc<QueueStats>,
}

#[derive(Default)]
struct QueueState {
    entries: VecDeque<Entry>,
    /// Messages (not gaps) in `entries`, and their bytes.
    messages: usize,
    bytes: usize,
    /// Pushes received, of any kind: proof that the connection is alive.
    heard: u64,
    /// A connection of the link failed.
    closed: bool,
}

enum Entry {
    Message {
        channel: Bytes,
        payload: Bytes,
    },
    /// Messages dropped at this point of the stream.
    Gap {
        dropped: u64,
        channels: Option<Vec<Bytes>>,
    },
}

impl Queue {
    fn new(limit: QueueLimit, stats: Arc<QueueStats>) -> Queue {
        stats.len.store(0, Ordering::Relaxed);
        Queue {
            state: Mutex::new(QueueState::default()),
            waker: AtomicWaker::new(),
            limit,
            stats,
        }
    }

    /// A plain lock: each side holds it for a push or a pop. Every update leaves
    /// the state whole, so a panic elsewhere cannot leave it half-written.
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.waker.wake();
    }

    fn push(&self, channel: Bytes, payload: Bytes) {
        let size = channel.len() + payload.len();
        let mut state = self.lock();
        state.heard += 1;
        let full = state.messages > 0
            && (state.messages >= self.limit.messages || state.bytes + size > self.limit.bytes);
        if full {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            match state.entries.back_mut() {
                Some(Entry::Gap { dropped, channels }) => {
                    *dropped += 1;
                    note_channel(channels, channel);
                }
                _ => state.entries.push_back(Entry::Gap {
                    dropped: 1,
                    channels: Some(vec![channel]),
                }),
            }
            return;
        }
        state.messages += 1;
        state.bytes += size;
        self.stats.len.store(state.messages, Ordering::Relaxed);
        self.stats
            .max_len
            .fetch_max(state.messages, Ordering::Relaxed);
        state.entries.push_back(Entry::Message { channel, payload });
        drop(state);
        self.waker.wake();
    }

    fn pop(&self) -> Option<Entry> {
        let mut state = self.lock();
        let entry = state.entries.pop_front()?;
        if let Entry::Message { channel, payload } = &entry {
            state.messages -= 1;
            state.bytes -= channel.len() + payload.len();
            self.stats.len.store(state.messages, Ordering::Relaxed);
        }
        Some(entry)
    }
}

fn note_channel(channels: &mut Option<Vec<Bytes>>, channel: Bytes) {
    if let Some(list) = channels {
        if list.contains(&channel) {
            return;
        }
        if list.len() >= OVERFLOW_CHANNELS {
            *channels = None;
        } else {
            list.push(channel);
        }
    }
}

impl redis::aio::AsyncPushSender for Queue {
    /// Called on the connection's reading task, for every push; never blocks.
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        let mut data = info.data.into_iter();
        match info.kind {
            PushKind::Message => {
                if let (Some(channel), Some(payload)) = (data.next(), data.next()) {
                    self.push(bytes_of(channel), bytes_of(payload));
                }
            }
            PushKind::PMessage => {
                if let (Some(_pattern), Some(channel), Some(payload)) =
                    (data.next(), data.next(), data.next())
                {
                    self.push(bytes_of(channel), bytes_of(payload));
                }
            }
            PushKind::Disconnection => self.close(),
            // Subscription confirmations (also answered to the command that
            // asked) and whatever else the server pushes: alive, nothing to do.
            _ => self.lock().heard += 1,
        }
        Ok(())
    }
}

/// The bytes of a bulk string, without copying them.
fn bytes_of(value: Value) -> Bytes {
    match value {
        Value::BulkString(bytes) => Bytes::from(bytes),
        Value::SimpleString(s) => Bytes::from(s.into_bytes()),
        _ => Bytes::new(),
    }
}

/// The events of the subscribed connection, as a stream the node's loop polls
/// itself (no task in between: each hand-off costs latency on every message).
///
/// It owns the link: it pings it, reports its loss, and makes a new one with
/// jittered exponential backoff. Dropping it closes both connections.
pub struct RedisEvents {
    client: redis::Client,
    slot: Arc<Mutex<Option<Link>>>,
    options: BusOptions,
    stats: Arc<QueueStats>,
    delay: Duration,
    state: State,
    /// Failed attempts are logged at `debug`: a warning already said that the
    /// link is down (the loss's, or the first failed attempt's of a bus made
    /// by [`RedisBus::connect_in_background`]), and one every backoff would
    /// flood the log of a node waiting out a Redis outage.
    quiet_failures: bool,
}

type Connecting = Pin<Box<dyn Future<Output = redis::RedisResult<Link>> + Send>>;
type Ping = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

enum State {
    /// Connected; reported as `Connected` on the next poll.
    Up(Option<Link>),
    Streaming {
        queue: Arc<Queue>,
        /// When to look at whether the link has been quiet.
        check: Pin<Box<tokio::time::Sleep>>,
        /// `heard` at the last check.
        heard: u64,
        ping: Option<Ping>,
    },
    Waiting(Pin<Box<tokio::time::Sleep>>),
    Connecting(Connecting),
}

impl std::fmt::Debug for RedisEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEvents").finish_non_exhaustive()
    }
}

impl RedisEvents {
    /// Drops the link and starts the wait before the next attempt.
    fn lose(&mut self, why: &str) -> BusEvent {
        *lock(&self.slot) = None;
        tracing::warn!(why, "redis pub/sub connection lost; reconnecting");
        self.state = State::Waiting(Box::pin(tokio::time::sleep(jittered(self.delay))));
        BusEvent::Disconnected
    }
}

impl Stream for RedisEvents {
    type Item = BusEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BusEvent>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Up(link) => {
                    let Some(link) = link.take() else {
                        return Poll::Ready(None);
                    };
                    let queue = link.queue.clone();
                    *lock(&this.slot) = Some(link);
                    this.delay = this.options.backoff.initial;
                    this.quiet_failures = true;
                    let heard = queue.lock().heard;
                    this.state = State::Streaming {
                        queue,
                        check: Box::pin(tokio::time::sleep(this.options.ping_interval)),
                        heard,
                        ping: None,
                    };
                    return Poll::Ready(Some(BusEvent::Connected));
                }
                State::Streaming {
                    queue,
                    check,
                    heard,
                    ping,
                } => {
                    queue.waker.register(cx.waker());
                    match queue.pop() {
                        Some(Entry::Message { channel, payload }) => {
                            return Poll::Ready(Some(BusEvent::Message { channel, payload }));
                        }
                        Some(Entry::Gap { dropped, channels }) => {
                            tracing::warn!(
                                dropped,
                                "the node fell behind its subscribed connection; \
                                 dropped messages, re-syncing"
                            );
                            return Poll::Ready(Some(BusEvent::Overflowed { dropped, channels }));
                        }
                        None => {}
                    }
                    if queue.lock().closed {
                        let event = this.lose("a connection failed");
                        return Poll::Ready(Some(event));
                    }
                    if let Some(pending) = ping {
                        match pending.as_mut().poll(cx) {
                            Poll::Ready(Ok(())) => *ping = None,
                            Poll::Ready(Err(why)) => {
                                this.stats.deadlines_missed.fetch_add(1, Ordering::Relaxed);
                                let event = this.lose(&why);
                                return Poll::Ready(Some(event));
                            }
                            Poll::Pending => {}
                        }
                    }
                    ready!(check.as_mut().poll(cx));
                    let interval = this.options.ping_interval;
                    check.as_mut().reset(tokio::time::Instant::now() + interval);
                    let now_heard = queue.lock().heard;
                    let quiet = std::mem::replace(heard, now_heard) == now_heard;
                    if ping.is_none()
                        && let Some(link) = lock(&this.slot).clone()
                    {
                        *ping = Some(Box::pin(ping_link(link, quiet, this.options.ping_deadline)));
                    }
                    // Poll the new ping and the timer once, so both wake us.
                }
                State::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state = State::Connecting(Box::pin(connect_link(
                        this.client.clone(),
                        this.options,
                        this.stats.clone(),
                    )));
                }
                State::Connecting(connecting) => match ready!(connecting.as_mut().poll(cx)) {
                    Ok(link) => this.state = State::Up(Some(link)),
                    Err(err) => {
                        if this.quiet_failures {
                            tracing::debug!(%err, delay = ?this.delay, "redis pub/sub reconnect failed");
                        } else {
                            this.quiet_failures = true;
                            tracing::warn!(
                                %err,
                                "cannot connect to redis yet; retrying in the background"
                            );
                        }
                        this.state =
                            State::Waiting(Box::pin(tokio::time::sleep(jittered(this.delay))));
                        this.delay = (this.delay * 2).min(this.options.backoff.max);
                    }
                },
            }
        }
    }
}

/// Pings the publishing connection, and the subscribed one when it has been
/// `quiet` (a connection delivering messages is alive). Any reply in time
/// proves a connection alive, an error reply too (a user whose ACL lacks
/// `+ping` gets `NOPERM`, which still comes from Redis).
///
/// The publisher is pinged every interval because it receives nothing unless
/// the node publishes: a half-open publisher would otherwise be found only by
/// the next write, which would then fail.
async fn ping_link(link: Link, quiet: bool, deadline: Duration) -> Result<(), String> {
    async fn ping(mut conn: MultiplexedConnection) -> redis::RedisResult<()> {
        match redis::cmd("PING").query_async::<Value>(&mut conn).await {
            Err(err) if !is_server_answer(&err) => Err(err),
            _ => Ok(()),
        }
    }
    let subscribed = async {
        match quiet {
            true => ping(link.subscribed.clone()).await,
            false => Ok(()),
        }
    };
    let both = futures_util::future::try_join(subscribed, ping(link.publisher.clone()));
    match tokio::time::timeout(deadline, both).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("ping failed: {err}")),
        Err(_) => Err(format!("no reply to PING within {deadline:?}")),
    }
}

/// The slot holds an `Option` replaced whole, so a panic elsewhere cannot leave
/// it half-written: poisoning is ignored.
fn lock(slot: &Mutex<Option<Link>>) -> MutexGuard<'_, Option<Link>> {
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

    fn queue(messages: usize, bytes: usize) -> Queue {
        Queue::new(
            QueueLimit { messages, bytes },
            Arc::new(QueueStats::default()),
        )
    }

    fn message(q: &Queue, channel: &'static str, payload: &'static str) {
        q.push(
            Bytes::from_static(channel.as_bytes()),
            Bytes::from_static(payload.as_bytes()),
        );
    }

    #[test]
    fn a_full_queue_drops_and_marks_the_gap_where_it_happened() {
        let q = queue(2, 1 << 20);
        message(&q, "a", "1");
        message(&q, "a", "2");
        message(&q, "b", "3");
        message(&q, "c", "4");
        assert_eq!(q.stats.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(q.stats.max_len.load(Ordering::Relaxed), 2);
        assert!(matches!(q.pop(), Some(Entry::Message { .. })));
        message(&q, "a", "5"); // room again: after the gap
        assert!(matches!(q.pop(), Some(Entry::Message { .. })));
        match q.pop() {
            Some(Entry::Gap { dropped, channels }) => {
                assert_eq!(dropped, 2);
                assert_eq!(channels.unwrap(), [Bytes::from("b"), Bytes::from("c")]);
            }
            _ => panic!("expected the gap"),
        }
        assert!(matches!(q.pop(), Some(Entry::Message { payload, .. }) if payload == "5"));
        assert!(q.pop().is_none());
        assert_eq!(q.stats.len.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_byte_bound_drops_but_always_admits_one_message() {
        let q = queue(100, 10);
        message(&q, "a", "0123456789abcdef"); // larger than the bound, queue empty
        message(&q, "a", "x");
        assert_eq!(q.stats.dropped.load(Ordering::Relaxed), 1);
        assert!(matches!(q.pop(), Some(Entry::Message { .. })));
        assert!(matches!(q.pop(), Some(Entry::Gap { dropped: 1, .. })));
    }

    #[test]
    fn a_gap_over_many_channels_names_none() {
        let q = queue(1, 1 << 20);
        message(&q, "first", "x");
        for i in 0..=OVERFLOW_CHANNELS {
            q.push(Bytes::from(format!("c{i}")), Bytes::from_static(b"x"));
        }
        q.pop();
        assert!(matches!(q.pop(), Some(Entry::Gap { channels: None, .. })));
    }
}
