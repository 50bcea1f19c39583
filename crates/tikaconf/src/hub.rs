//! The follower hub: one task that drives every [`Follower`] of a client.
//!
//! All roots a process follows share one subscribed connection (and one for
//! publishing): the hub routes each message to the follower whose root or head
//! channel it came on, runs the follower's commands through the [`Executor`], and
//! hands its events to the application (the current document through a `watch`,
//! changes through a `broadcast`, write outcomes through `oneshot`s).
//!
//! The client also holds one reply channel, `replies:<token>`, on which storage
//! answers a load request that no other node is waiting on with it (see
//! [`ReplyToken`]): the hub subscribes it on every connect, before any
//! follower's request goes out, routes each answer there to the follower of the
//! root it names ([`answer_root`]), and tells the followers to stop naming it if
//! Redis refuses the subscription.
//!
//! Each root's [`Follower`] lives in a [`Shared`] behind the root's lock (see
//! [`crate::shared`]), which the hub takes for every input it feeds it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tikaconf_proto::follower::{Step, SubmitError};
use tikaconf_proto::message::answer_root;
use tikaconf_proto::{
    ChangeCause, ChannelKind, Channels, Current, Follower, FollowerConfig, FollowerEvent, Hash,
    Limits, ReplyToken, SigningKey, Snapshot, TrustSet,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::bus::{Bus, BusError, BusEvent, BusHandle};
use crate::cache::{CacheWriter, HeadCache};
use crate::change::Change;
use crate::connection::{ConnectionState, StateSender};
use crate::executor::Executor;
use crate::metrics::{FollowerCounts, FollowerMetrics};
use crate::root::Root;
use crate::shared::{LoadFailure, Request, Shared};

/// How often the hub looks for due timers (write deadlines, re-syncs).
const TICK: Duration = Duration::from_millis(50);

/// What the hub needs of a client's options: how to make each root's
/// follower. Every follower of a client gets the same ones.
#[derive(Debug, Clone)]
pub(crate) struct HubOptions {
    pub(crate) channels: Channels,
    pub(crate) limits: Limits,
    pub(crate) follower: FollowerConfig,
    pub(crate) trust: TrustSet,
    pub(crate) signer: Option<SigningKey>,
    /// The client's head cache, if it keeps one: each root's heads are
    /// written there, and its follows may start from it (see
    /// [`Request::Follow`]).
    pub(crate) cache: Option<Arc<HeadCache>>,
}

struct Slot {
    shared: Arc<Shared>,
    current_tx: watch::Sender<Option<Current>>,
    /// Follow requests waiting for the first document.
    waiting: Vec<oneshot::Sender<Result<Arc<Shared>, LoadFailure>>>,
    /// The head channel routed to this slot, if any.
    head_channel: Option<Hash>,
    handles: usize,
    /// The cached head this root starts from if storage has not answered by
    /// the deadline, or at once if the connection is lost meanwhile (see
    /// [`Hub::offer_cached`]).
    fallback: Option<(Arc<Snapshot>, std::time::Instant)>,
}

/// When the hub's loop ends (or its task is dropped), the writes still waiting
/// would wait forever: their outcome senders live in each root's [`Core`], which
/// the application's handles keep alive. Dropping the senders ends them as
/// `Timeout` (outcome unknown), and `closed` keeps new ones from starting.
impl Drop for Hub {
    fn drop(&mut self) {
        self.metrics.roots_followed(-(self.slots.len() as f64));
        for slot in self.slots.values() {
            let mut core = slot.shared.core();
            core.closed = true;
            core.writes.clear();
        }
    }
}

pub(crate) struct Hub {
    options: HubOptions,
    /// The jitter seed of the next follower: each gets its own, so that the
    /// followers of one client do not time their retries alike.
    next_seed: u64,
    executor: Executor,
    /// For the roots' writes from the application's task (see [`Shared`]).
    bus: Arc<dyn Bus>,
    connected: bool,
    /// What [`crate::Client::connection_state`] reads.
    connection: StateSender,
    /// Writes each root's new heads to the head cache, if the client keeps one.
    cache_writer: Option<CacheWriter>,
    slots: HashMap<Hash, Slot>,
    /// Head channel -> root, for routing.
    heads: HashMap<Hash, Hash>,
    replies: Replies,
    /// This client's series, registered when the hub starts.
    metrics: FollowerMetrics,
}

/// The client's reply channel.
struct Replies {
    token: ReplyToken,
    channel: String,
    /// False once Redis refused (or failed) this connection's SUBSCRIBE: the
    /// followers then ask for answers on their roots' channels until the next
    /// connect tries again.
    usable: bool,
    /// The answer to the SUBSCRIBE sent on the last connect, until it comes.
    subscribing: Option<oneshot::Receiver<Result<(), BusError>>>,
}

impl Replies {
    /// The token followers should name: `None` while the channel is unusable.
    fn token(&self) -> Option<ReplyToken> {
        self.usable.then(|| self.token.clone())
    }
}

/// The answer to the reply channel's SUBSCRIBE, once it comes; never, while
/// none is outstanding.
async fn subscribed(
    subscribing: &mut Option<oneshot::Receiver<Result<(), BusError>>>,
) -> Result<(), BusError> {
    match subscribing {
        Some(rx) => {
            let result = rx.await.unwrap_or(Err(BusError::Disconnected));
            *subscribing = None;
            result
        }
        None => std::future::pending().await,
    }
}

impl Hub {
    pub(crate) fn spawn(
        bus: BusHandle,
        options: HubOptions,
        connection: StateSender,
    ) -> mpsc::UnboundedSender<Request> {
        let (tx, rx) = mpsc::unbounded_channel();
        let executor = Executor::new(bus.bus.clone());
        let token = ReplyToken::from_random(rand::random());
        let replies = Replies {
            channel: options.channels.replies(&token),
            token,
            usable: true,
            subscribing: None,
        };
        let cache_writer = options.cache.clone().map(CacheWriter::spawn);
        let hub = Hub {
            next_seed: options.follower.jitter_seed,
            options,
            executor,
            bus: bus.bus.clone(),
            connected: false,
            connection,
            cache_writer,
            slots: HashMap::new(),
            heads: HashMap::new(),
            replies,
            metrics: FollowerMetrics::new(),
        };
        tokio::spawn(hub.run(bus.events, rx));
        tx
    }

    async fn run(
        mut self,
        mut events: crate::bus::Events,
        mut requests: mpsc::UnboundedReceiver<Request>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut requests_open = true;
        // A bus connected before the hub started reports that first: take it
        // in before any request, so that a follow made right after connecting
        // is not taken for one made while disconnected (which would answer
        // from the cache at once).
        if let Some(Some(event)) = events.next().now_or_never() {
            self.on_event(event);
        }
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => self.on_event(event),
                    None => return,
                },
                request = requests.recv(), if requests_open => match request {
                    Some(request) => self.on_request(request),
                    // The client is gone; keep serving the configs still held.
                    None => requests_open = false,
                },
                _ = tick.tick() => self.on_tick(),
                result = subscribed(&mut self.replies.subscribing) => self.on_reply_subscription(result),
                () = self.executor.next(), if self.executor.busy() => {}
            }
            if !requests_open && self.slots.is_empty() {
                return;
            }
        }
    }

    fn on_event(&mut self, event: BusEvent) {
        let now = Instant::now().into_std();
        match event {
            BusEvent::Connected => {
                self.connected = true;
                self.connection.send_replace(ConnectionState::Connected);
                self.executor.connected();
                // First, so that the executor holds every request below until
                // Redis has answered it.
                let subscribing = self
                    .executor
                    .subscribe_reporting(self.replies.channel.clone());
                self.replies.subscribing = Some(subscribing);
                let was_usable = std::mem::replace(&mut self.replies.usable, true);
                let roots: Vec<Hash> = self.slots.keys().copied().collect();
                let token = self.replies.token();
                for root in roots {
                    if !was_usable {
                        self.drive(root, |f, out| f.set_reply_token(now, token.clone(), out));
                    }
                    self.drive(root, |f, out| f.handle_connected(now, out));
                }
            }
            BusEvent::Disconnected => {
                self.connected = false;
                self.connection.send_replace(ConnectionState::Disconnected {
                    since: std::time::Instant::now(),
                });
                for slot in self.slots.values_mut() {
                    slot.shared.core().follower.handle_disconnected();
                }
                // Storage is out of reach: the roots still waiting for it
                // start from their cached heads now.
                let waiting: Vec<Hash> = self
                    .slots
                    .iter()
                    .filter(|(_, slot)| slot.fallback.is_some())
                    .map(|(root, _)| *root)
                    .collect();
                for root in waiting {
                    self.load_fallback(root, now);
                }
            }
            BusEvent::Message { channel, payload } => {
                self.metrics.received();
                let on = match self.options.channels.classify(&channel) {
                    Some(ChannelKind::Updates(on)) => on,
                    Some(ChannelKind::Replies) => {
                        match answer_root(&payload).filter(|r| self.slots.contains_key(r)) {
                            Some(root) => {
                                self.drive(root, |f, out| {
                                    f.handle_message(now, &channel, &payload, out)
                                });
                            }
                            // A root unfollowed since it asked, or bytes that name
                            // no root: nothing here can use them.
                            None => tracing::debug!("reply for no root followed here"),
                        }
                        return;
                    }
                    _ => {
                        tracing::debug!("message on a channel that is not ours");
                        return;
                    }
                };
                let Some(root) = self.route(on) else {
                    return; // a channel we already left
                };
                let applied = self.drive(root, |f, out| {
                    f.handle_message(now, &channel, &payload, out)
                });
                if applied {
                    // One clock read per applied patch, none per other message.
                    self.metrics.patch_apply.record(now.elapsed());
                }
            }
            BusEvent::Overflowed { channels, .. } => {
                // The followers that may have missed a message re-sync. An
                // answer lost on the reply channel needs nothing: its follower
                // still waits for it and asks again after `request_timeout`
                // (and making every follower ask at once, under the load that
                // made us drop, would only feed it).
                let mut roots: Vec<Hash> = Vec::new();
                for channel in channels.iter().flatten() {
                    if let Some(ChannelKind::Updates(on)) = self.options.channels.classify(channel)
                    {
                        roots.extend(self.route(on));
                    }
                }
                if channels.is_none() {
                    roots = self.slots.keys().copied().collect();
                }
                roots.sort_unstable();
                roots.dedup();
                for root in roots {
                    self.drive(root, |f, out| f.handle_missed(now, out));
                }
            }
        }
    }

    /// The followed root whose root or head channel is `updates:<on>`.
    fn route(&self, on: Hash) -> Option<Hash> {
        if self.slots.contains_key(&on) {
            Some(on)
        } else {
            self.heads.get(&on).copied()
        }
    }

    fn on_request(&mut self, request: Request) {
        let now = Instant::now().into_std();
        match request {
            Request::Follow {
                root: target,
                cached,
                reply,
            } => {
                let root = target.hash();
                if let Some(slot) = self.slots.get_mut(&root) {
                    slot.handles += 1;
                    if slot.shared.core().follower.current().is_some() {
                        let _ = reply.send(Ok(slot.shared.clone()));
                    } else {
                        slot.waiting.push(reply);
                        if let Some(snapshot) = cached.filter(|_| slot.fallback.is_none()) {
                            self.offer_cached(root, snapshot, now);
                        }
                    }
                    return;
                }
                let HubOptions {
                    channels,
                    limits,
                    follower: config,
                    trust,
                    signer,
                    cache: _,
                } = &self.options;
                let mut config = config.clone();
                config.jitter_seed = self.next_seed;
                self.next_seed = self.next_seed.wrapping_add(0x9e37_79b9);
                let follower = match target {
                    Root::Hash(h) => Follower::by_hash(h, channels.clone(), *limits, config),
                    Root::Config(r) => Follower::by_root(r, channels.clone(), *limits, config),
                }
                .with_trust(trust.clone())
                .with_signer(signer.clone())
                .with_reply_token(self.replies.token());
                let (current_tx, current) = watch::channel(None);
                let shared = Arc::new(Shared::new(
                    root,
                    follower,
                    current,
                    self.bus.clone(),
                    self.executor.settled(),
                ));
                self.metrics.roots_followed(1.0);
                self.slots.insert(
                    root,
                    Slot {
                        shared,
                        current_tx,
                        waiting: vec![reply],
                        head_channel: None,
                        handles: 1,
                        fallback: None,
                    },
                );
                if let Some(snapshot) = cached {
                    self.offer_cached(root, snapshot, now);
                }
                if self.connected {
                    self.drive(root, |f, out| f.handle_connected(now, out));
                }
            }
            Request::Unfollow { root } => {
                let Some(slot) = self.slots.get_mut(&root) else {
                    return;
                };
                slot.handles = slot.handles.saturating_sub(1);
                if slot.handles == 0 {
                    let mut step = Step::default();
                    slot.shared.core().follower.close(&mut step);
                    if let Some(head) = slot.head_channel {
                        self.heads.remove(&head);
                    }
                    self.slots.remove(&root);
                    self.metrics.roots_followed(-1.0);
                    self.executor.send(step.commands);
                }
            }
            Request::Submit {
                root,
                parent,
                ops,
                meta,
                reply,
            } => {
                let Some(slot) = self.slots.get_mut(&root) else {
                    let _ = reply.send(Err(SubmitError::NotLoaded));
                    return;
                };
                // The write path of `Shared::submit_direct`, with the
                // executor publishing: it holds the PUBLISH until the
                // subscription changes before it are confirmed. Sent under the
                // root's lock, as every command of the follower.
                let mut core = slot.shared.core();
                let submitted =
                    core.write(now, parent, ops, meta)
                        .map(|(patch, outcome, commands)| {
                            (patch, outcome, self.executor.send_reporting(commands))
                        });
                drop(core);
                let _ = reply.send(submitted);
            }
        }
    }

    /// Redis answered the reply channel's SUBSCRIBE.
    fn on_reply_subscription(&mut self, result: Result<(), BusError>) {
        let err = match result {
            Ok(()) => return,
            Err(err) => err,
        };
        match &err {
            BusError::Refused(_) => tracing::warn!(
                %err,
                channel = %self.replies.channel,
                "Redis refused the reply channel; load answers will come on the roots' \
                 channels, heard by every follower (grant &[NS:]replies:* to use it, see \
                 docs/SECURITY.md)"
            ),
            // The connection went: the next connect subscribes again.
            _ => tracing::debug!(%err, "subscribing the reply channel failed"),
        }
        self.replies.usable = false;
        let now = Instant::now().into_std();
        let roots: Vec<Hash> = self.slots.keys().copied().collect();
        for root in roots {
            self.drive(root, |f, out| f.set_reply_token(now, None, out));
        }
    }

    /// `root`, not loaded yet, has `snapshot` in the head cache: start from
    /// it at once while disconnected (storage is out of reach; this includes
    /// a client still making its first connection), or if storage has not
    /// answered within the follower's `request_timeout` (the time after which
    /// a load request counts as unanswered), or as soon as the connection is
    /// lost meanwhile. Storage's answer, whenever it comes, replaces it (see
    /// [`Follower::load_cached`]).
    fn offer_cached(&mut self, root: Hash, snapshot: Arc<Snapshot>, now: std::time::Instant) {
        let Some(slot) = self.slots.get_mut(&root) else {
            return;
        };
        if slot.shared.core().follower.current().is_some() {
            return;
        }
        slot.fallback = Some((snapshot, now + self.options.follower.request_timeout));
        if !self.connected {
            self.load_fallback(root, now);
        }
    }

    /// Starts `root` from its cached head, if it is still waiting for one.
    fn load_fallback(&mut self, root: Hash, now: std::time::Instant) {
        let Some((snapshot, _)) = self.slots.get_mut(&root).and_then(|s| s.fallback.take()) else {
            return;
        };
        self.drive(root, |f, out| f.load_cached(now, snapshot, out));
    }

    fn on_tick(&mut self) {
        let now = Instant::now().into_std();
        self.executor.leave_due(now);
        let fallbacks: Vec<Hash> = self
            .slots
            .iter()
            .filter(|(_, s)| s.fallback.as_ref().is_some_and(|(_, due)| *due <= now))
            .map(|(root, _)| *root)
            .collect();
        for root in fallbacks {
            self.load_fallback(root, now);
        }
        let due: Vec<Hash> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                let next = s.shared.core().follower.next_timeout();
                next.is_some_and(|t| t <= now)
            })
            .map(|(root, _)| *root)
            .collect();
        for root in due {
            self.drive(root, |f, out| f.handle_timeout(now, out));
        }
    }

    /// Feeds one input to the follower of `root` and carries out what it says.
    /// Returns whether it applied a patch.
    fn drive(&mut self, root: Hash, input: impl FnOnce(&mut Follower, &mut Step)) -> bool {
        let Some(slot) = self.slots.get_mut(&root) else {
            return false;
        };
        let shared = slot.shared.clone();
        let mut core = shared.core();
        let mut step = Step::default();
        // The follower counts what it sees; the series get what this input
        // added (four integers copied and compared, under the lock already held).
        let before = FollowerCounts::of(core.follower.stats());
        input(&mut core.follower, &mut step);
        self.metrics
            .counted(before, FollowerCounts::of(core.follower.stats()));
        let mut applied = false;
        // Under the lock: see `Shared::submit_direct`.
        self.executor.send(step.commands);
        let new_head = core
            .follower
            .current()
            .map(|c| c.head)
            .filter(|h| *h != root);
        if new_head != slot.head_channel {
            if let Some(old) = slot.head_channel.take() {
                self.heads.remove(&old);
            }
            if let Some(new) = new_head {
                self.heads.insert(new, root);
            }
            slot.head_channel = new_head;
        }
        let mut unknown = false;
        for event in step.events {
            match event {
                FollowerEvent::Changed { current, cause } => {
                    if let ChangeCause::Patch(patch) = &cause {
                        applied = true;
                        // This node's own write back from the bus: one trip
                        // through Redis (a hash lookup only while it writes).
                        if !core.writes.is_empty()
                            && let Some(write) = core.writes.get(&patch.hash)
                        {
                            self.metrics.write_propagation.record(write.since.elapsed());
                        }
                    }
                    // A head from the cache is already there; any other is
                    // written (only the latest of a burst, by the writer).
                    if cause == ChangeCause::Cached {
                        if let Some(cache) = &self.options.cache {
                            cache.stats.loads.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if let Some(writer) = &self.cache_writer {
                        writer.store(root, current.clone());
                    }
                    // Loaded (from storage or the cache): nothing to fall back on.
                    slot.fallback = None;
                    // The document first, then the change: a reader woken by the
                    // change must find the document already there.
                    // (`Change::new` takes `applied_at`, so it is made after the swap.)
                    let changes = slot.shared.changes.get();
                    let seen = changes.map(|_| current.clone());
                    slot.current_tx.send_replace(Some(current));
                    if let (Some(tx), Some(current)) = (changes, seen) {
                        let _ = tx.send(Change::new(&current, cause));
                    }
                    for waiter in slot.waiting.drain(..) {
                        let _ = waiter.send(Ok(slot.shared.clone()));
                    }
                }
                FollowerEvent::UnknownRoot => unknown = true,
                FollowerEvent::WriteEnded { hash, outcome } => {
                    if let Some(write) = core.writes.remove(&hash) {
                        self.metrics.write_ended(&outcome, write.since.elapsed());
                        let _ = write.outcome.send(outcome);
                    }
                }
                FollowerEvent::Ignored { reason } => {
                    self.metrics.ignored(reason.label());
                    tracing::warn!(root = %root, %reason, "ignored a message");
                }
            }
        }
        if unknown {
            for waiter in slot.waiting.drain(..) {
                let _ = waiter.send(Err(LoadFailure::UnknownRoot));
            }
            slot.handles = 0;
            let mut step = Step::default();
            core.follower.close(&mut step);
            drop(core);
            self.slots.remove(&root);
            self.metrics.roots_followed(-1.0);
            self.executor.send(step.commands);
        }
        applied
    }
}
