//! The follower role: one root's chain, held in memory and kept current.
//!
//! A follower is subscribed to `updates:<root>` for its whole life (storage's
//! answers and `stored` notices arrive there) and to `updates:<head>` for its
//! current head. The first valid patch on the head's channel is applied; then the
//! follower moves to the new head's channel.
//!
//! Pub/Sub delivers at most once, so a follower can miss a patch: one published on
//! the new head's channel before the follower's SUBSCRIBE took effect (the *hop
//! gap*), or anything sent while it was disconnected. Storage's `stored` notices on
//! the root channel reveal the gap (a stored height above ours), and the follower
//! re-syncs by a load request; it also re-syncs on a jittered interval, on every
//! reconnect, and when its head stays unconfirmed for too long.
//!
//! A snapshot never moves a follower backwards except to drop patches that storage
//! never stored. The adoption rule (normative, see `docs/PROTOCOL.md`) for a
//! snapshot at (height N, head H) received at (height n, head h):
//!
//! 1. not yet loaded: adopt;
//! 2. H = h: our head is stored; nothing to do;
//! 3. N > n: adopt (we were behind);
//! 4. N = n, H ≠ h: adopt: storage holds another head at our height, so it can
//!    never store ours;
//! 5. N < n and H is not on our chain at height N (and our recent chain reaches
//!    down to N): adopt: storage's chain forked from ours and can never reach h;
//! 6. N < n and H is our ancestor (or beyond what we remember): storage is behind,
//!    or it missed our later patches. If our head is confirmed stored, the snapshot
//!    is stale: ignore it. Otherwise the follower becomes *suspicious* and sends a
//!    fresh load request at once (and another when `fork_grace` has passed); it
//!    adopts a disagreeing snapshot received once `fork_grace` has passed since
//!    the suspicion began. Any confirmation of the height we were at when the
//!    suspicion began ends it.

mod timer;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use serde_json::{Map, Value};

use crate::channel::{ChannelKind, ReplyToken};
use crate::command::Command;
use crate::jitter::Jitter;
use crate::limits::DocBound;
use crate::message::{
    Have, LoadRequest, Message, Patch, Patches, Rejection, Snapshot, Stored, sign_canonical,
};
use crate::signature::{Role, SigningKey, TrustSet};
use crate::writer::{WriteOutcome, Writer};
use crate::{Channels, Hash, Limits, RootConfig};
use timer::{Timer, TimerTable};

/// How many recent heads a follower remembers, to tell an ancestor from a fork.
const CHAIN_MEMORY: usize = 256;

/// Timers and knobs of a follower. Every duration is a default that suits a
/// loopback or LAN Redis; all of them can be changed.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// Re-sync by a load request about this often (jittered ±25 %), so that a lost
    /// notice heals by itself.
    pub resync_interval: Duration,
    /// Send a load request again when no snapshot answered within this time.
    pub request_timeout: Duration,
    /// Re-sync when the head applied has not been confirmed stored within this time.
    pub confirm_timeout: Duration,
    /// How long a follower stays suspicious before it drops patches storage does
    /// not hold (rule 6 of the adoption rule).
    pub fork_grace: Duration,
    /// How long a write waits for its outcome.
    pub write_timeout: Duration,
    /// Seed of the timer jitter; give each follower its own.
    pub jitter_seed: u64,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        FollowerConfig {
            resync_interval: Duration::from_secs(30),
            // Storage answers and acknowledges within milliseconds on a LAN; these
            // bound how long a node can sit on a stale or unstored head after a
            // fault heals (about a second in all).
            request_timeout: Duration::from_secs(1),
            confirm_timeout: Duration::from_millis(500),
            fork_grace: Duration::from_millis(500),
            write_timeout: Duration::from_secs(5),
            jitter_seed: 0,
        }
    }
}

impl FollowerConfig {
    /// Timers scaled down about fourfold, for loopback deployments and tests where
    /// healing should show within seconds: re-sync every 2 s, ask again after
    /// 500 ms, give up on a write after `write_timeout`.
    pub fn quick(write_timeout: Duration) -> FollowerConfig {
        FollowerConfig {
            resync_interval: Duration::from_secs(2),
            request_timeout: Duration::from_millis(500),
            confirm_timeout: Duration::from_millis(500),
            fork_grace: Duration::from_millis(300),
            write_timeout,
            jitter_seed: 0,
        }
    }
}

/// The document at one head.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    /// The hash the document is at: the root hash, or the last patch's hash.
    pub head: Hash,
    /// How many patches the head is from the root (the root is height 0).
    pub height: u64,
    /// The document itself, shared, never modified in place.
    pub doc: Arc<Value>,
}

/// Why the document changed.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeCause {
    /// The first document, from storage's answer to the initial load request.
    Loaded,
    /// The first document, from the node's own cache of the last head it had
    /// (see [`Follower::load_cached`]), because storage had not answered. Not
    /// vouched for by storage: its answer replaces it by the adoption rule.
    Cached,
    /// A patch applied on the head's channel.
    Patch(Arc<Patch>),
    /// A snapshot adopted after missed messages. `dropped` is true when the
    /// follower went back to drop patches storage never stored.
    Resync {
        /// Whether the follower went back to drop patches storage never stored.
        dropped: bool,
    },
}

/// What a follower tells its application.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowerEvent {
    /// The document moved to a new head.
    Changed {
        /// The document at its new head.
        current: Current,
        /// Why it changed.
        cause: ChangeCause,
    },
    /// Storage does not know this root (asked by hash). A follower that follows
    /// by root configuration never reports it: its requests register the root.
    UnknownRoot,
    /// A write submitted from this follower ended.
    WriteEnded {
        /// The hash of the patch [`Follower::submit`] returned.
        hash: Hash,
        /// How it ended.
        outcome: WriteOutcome,
    },
    /// A received message was ignored, and why. Patches on a channel the follower
    /// has already left are not reported here, only counted (see [`FollowerStats`]).
    Ignored {
        /// What was wrong with it.
        reason: Rejection,
    },
}

/// A follower's output buffer: commands for the driver, events for the
/// application, appended by each input in order (see [`Follower`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Step {
    /// Bus operations for the driver, to carry out in order.
    pub commands: Vec<Command>,
    /// What happened, for the application, in order.
    pub events: Vec<FollowerEvent>,
}

/// Counters a follower keeps about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerStats {
    /// Patches applied to the document from the bus (this node's own included).
    pub applied: u64,
    /// Patches that arrived on a channel already left (normal when writers race).
    pub stale: u64,
    /// Ignored messages by [`Rejection::label`].
    pub ignored: BTreeMap<&'static str, u64>,
    /// Load requests published (initial loads, retries and re-syncs).
    pub load_requests: u64,
    /// Times the follower asked storage for the current head because it may
    /// have missed something: a lost message, an unconfirmed head, the
    /// periodic check.
    pub resyncs: u64,
    /// Times the follower went back to drop patches storage never stored.
    pub dropped: u64,
    /// Changes that readers of the driver's change stream skipped because they
    /// fell further behind than its buffer (`tikaconf`'s `Config::changes`).
    /// The state machine never sees those readers and leaves this at 0; the
    /// driver fills it in. A record built from the stream is complete only
    /// while it stays 0.
    pub changes_skipped: u64,
    /// `unknown` answers ignored: heard while following by root configuration
    /// (our requests register the root), or not answering our outstanding
    /// request where it asked to be answered.
    pub unknown_ignored: u64,
    /// Re-syncs answered with the patches the follower lacked rather than a
    /// snapshot (since v1.3: the request named the follower's head).
    pub caught_up: u64,
}

/// Why a write could not be submitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// Storage has not answered the first load request yet: there is no
    /// document to build a patch on.
    #[error("the configuration is not loaded yet")]
    NotLoaded,
    /// The bus is disconnected, so a published patch would be lost.
    #[error("not connected to the bus")]
    Disconnected,
    /// The ops are not a valid patch, or it is too large.
    #[error("invalid patch: {0}")]
    Invalid(#[from] crate::DecodeError),
    /// The ops are valid but do not apply to the current document.
    #[error("the patch does not apply to the current document: {0}")]
    Rejected(Rejection),
    /// The caller named a parent that is no longer the head.
    #[error("the head moved from {expected} to {actual} meanwhile")]
    HeadMoved {
        /// The parent the caller named.
        expected: Hash,
        /// The current head.
        actual: Hash,
    },
}

/// A follower of one root. See the module documentation.
///
/// Methods, of four kinds (the same as [`crate::StorageEngine`]'s):
/// - inputs: `handle_connected`, `handle_disconnected`, `handle_missed`,
///   `handle_message`, `handle_timeout`, `set_reply_token`, and the
///   application's `submit` and `close`;
/// - `next_timeout`, when `handle_timeout` is due;
/// - settings (`with_*`) and state (`current`, `stats`, `channels`, ...).
///
/// Every input appends what the driver must do, and what the application must
/// hear, to the caller's `out` buffer ([`Step`]), in order, and returns
/// nothing else (`submit` also returns the patch it built): one output style
/// for both state machines, so that a driver feeds and drains them alike.
#[derive(Debug)]
pub struct Follower {
    root: Hash,
    /// Known when following by connection info: load requests then register the
    /// root, so the first write to a new channel is never against an unknown hash.
    register: Option<RootConfig>,
    channels: Channels,
    limits: Limits,
    config: FollowerConfig,
    current: Option<Current>,
    /// Bounds of the current document's size and depth (see [`DocBound`]).
    doc_bound: DocBound,
    /// Recent heads of our chain, ascending and contiguous, ending at the head.
    chain: VecDeque<(u64, Hash)>,
    /// Highest height of our chain that storage confirmed.
    confirmed: Option<u64>,
    /// Recent `stored` notices (height, head): proof of what won each height.
    notices: VecDeque<(u64, Hash)>,
    /// Request, Confirm, ForkGrace and Resync deadlines (see [`Timer`]).
    timers: TimerTable,
    /// The token of this client's reply channel, when its driver has one: see
    /// [`Follower::set_reply_token`]. Only the token, shared by every follower
    /// of the client: the channel's name is made when an answer arrives, which
    /// is rare, rather than kept 10,000 times by a process following 10,000
    /// roots.
    replies: Option<ReplyToken>,
    /// The outstanding request named the reply channel.
    request_private: bool,
    /// Rule 6: when the grace period ends, and at which height of ours, we
    /// suspect storage missed our patches. (The grace period's timer stops once
    /// its fresh request went out; the suspicion lasts until it is resolved.)
    suspect: Option<(Instant, u64)>,
    connected: bool,
    /// The current document came from the node's cache and storage has not
    /// yet answered with it or replaced it (see [`Follower::load_cached`]).
    from_cache: bool,
    writer: Writer,
    /// Keys whose signatures this follower requires (empty: none required).
    trust: TrustSet,
    /// The key this follower's writes are signed with, if any.
    signer: Option<SigningKey>,
    /// This node's latest write, as published and as applied when it was
    /// built: see [`Echo`].
    echo: Option<Echo>,
    jitter: Jitter,
    stats: FollowerStats,
}

/// Where a load request asks for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// On the client's reply channel, if it has one.
    Private,
    /// On the root's channel: a retry after no answer came.
    Public,
}

/// A write of this node, kept until its own copy comes back from Redis.
///
/// The writer's follower hears its own patch like any other, but it already
/// decoded, validated and applied exactly that patch to exactly that document
/// when it built it: a head names its document, so the same parent means the
/// same input. When the payload that arrives is byte for byte the one published,
/// on the parent's channel, while the follower is still at the parent, the
/// stored result is used instead of decoding and applying again. On a 2-core
/// machine the writer's own follower competes with the other followers for the
/// CPU on every write, so this is latency for everyone, not only for the writer.
#[derive(Debug)]
struct Echo {
    payload: Bytes,
    patch: Arc<Patch>,
    applied: (Value, DocBound),
}

impl Follower {
    /// A follower of the root with hash `root`, loaded by hash.
    pub fn by_hash(root: Hash, channels: Channels, limits: Limits, config: FollowerConfig) -> Self {
        Follower::new(root, None, channels, limits, config)
    }

    /// A follower of `root`, registering it with storage if it is new.
    pub fn by_root(
        root: RootConfig,
        channels: Channels,
        limits: Limits,
        config: FollowerConfig,
    ) -> Self {
        Follower::new(root.hash(), Some(root), channels, limits, config)
    }

    fn new(
        root: Hash,
        register: Option<RootConfig>,
        channels: Channels,
        limits: Limits,
        config: FollowerConfig,
    ) -> Self {
        let jitter = Jitter::new(
            config.jitter_seed
                ^ u64::from_le_bytes(root.as_bytes()[..8].try_into().unwrap_or_default()),
        );
        Follower {
            root,
            register,
            channels,
            limits,
            config,
            current: None,
            doc_bound: DocBound::default(),
            chain: VecDeque::new(),
            confirmed: None,
            notices: VecDeque::new(),
            timers: TimerTable::default(),
            replies: None,
            request_private: false,
            suspect: None,
            connected: false,
            from_cache: false,
            writer: Writer::default(),
            echo: None,
            trust: TrustSet::default(),
            signer: None,
            jitter,
            stats: FollowerStats::default(),
        }
    }

    /// Requires every message on `updates:` channels to be signed by a key of
    /// `trust` (see [`crate::signature`]).
    pub fn with_trust(mut self, trust: TrustSet) -> Self {
        self.trust = trust;
        self
    }

    /// Signs this follower's writes with `key`.
    pub fn with_signer(mut self, key: Option<SigningKey>) -> Self {
        self.signer = key;
        self
    }

    /// [`Follower::set_reply_token`] for a follower not yet connected.
    pub fn with_reply_token(mut self, token: Option<ReplyToken>) -> Self {
        self.replies = token;
        self
    }

    /// Sets the client's reply channel `replies:<token>` (or none), on which load
    /// requests ask storage to answer when no other node waits for the same
    /// root: the answer, a whole document, then reaches only this client instead
    /// of every follower of the root. The driver must have the channel
    /// subscribed, and its SUBSCRIBE confirmed, before this follower's next
    /// request goes out (an ordered executor does that when the SUBSCRIBE was
    /// issued first).
    ///
    /// A request that went unanswered is sent again without the reply channel,
    /// so a client whose reply channel Redis refused, or a storage node that
    /// cannot publish there (or predates reply channels), costs one
    /// `request_timeout`, not a load that never ends. A driver that learns the
    /// channel is gone sets `None`: an outstanding private request is then sent
    /// again at once, on the root's channel, and the returned step says so.
    pub fn set_reply_token(&mut self, now: Instant, token: Option<ReplyToken>, out: &mut Step) {
        let lost = token.is_none() && self.replies.is_some();
        self.replies = token;
        if lost && self.request_private && self.timers.is_set(Timer::Request) {
            self.timers.stop(Timer::Request);
            self.send_request(now, Reply::Public, out);
        }
    }

    /// The root this follower follows.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The current document, once loaded.
    pub fn current(&self) -> Option<&Current> {
        self.current.as_ref()
    }

    /// Whether the current document came from the node's cache
    /// ([`Follower::load_cached`]) and storage has neither confirmed its head
    /// nor replaced it yet: an application may want to know that it runs on
    /// the last configuration it knew rather than on storage's.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// Starts a follower that storage has not answered yet from the last head
    /// this node had, kept in its cache by the driver, so that an application
    /// can start while Redis or storage is unreachable. Ignored once the
    /// follower is loaded, and for another root's snapshot.
    ///
    /// The cached head is taken as a head this follower applied and storage
    /// has not confirmed (not as a snapshot of storage's): nothing about it is
    /// trusted beyond what the driver checked. So storage's answer always wins
    /// by the adoption rule: the same head confirms it, a higher one or another
    /// head at the same height replaces it at once (rules 3 and 4), and a lower
    /// one replaces it after `fork_grace` (rule 6: the cached head may be a
    /// patch storage never stored, or storage may be about to store it).
    /// Patches on the cached head's channel apply meanwhile, as on any head.
    /// Following by hash, an `unknown` answer does not end a follow that
    /// started from the cache (it only ends one with no document yet): the
    /// last known document stays, and the follower keeps asking.
    ///
    /// The driver checks the snapshot before handing it here: its encoding
    /// against the hash it was stored with, decoded as strictly as a message.
    pub fn load_cached(&mut self, now: Instant, snapshot: Arc<Snapshot>, out: &mut Step) {
        if self.current.is_some() || snapshot.root != self.root {
            return;
        }
        let mut step = Step::default();
        self.adopt(now, snapshot, ChangeCause::Cached, &mut step);
        self.from_cache = true;
        // Disconnected, the head's SUBSCRIBE waits for the connect, which
        // subscribes every channel of ours.
        if self.connected {
            out.commands.append(&mut step.commands);
        }
        out.events.append(&mut step.events);
    }

    /// The follower's counters.
    pub fn stats(&self) -> &FollowerStats {
        &self.stats
    }

    /// This follower's writes awaiting their outcome.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The channels this follower is subscribed to.
    pub fn channels(&self) -> Vec<String> {
        let mut out = vec![self.channels.updates(&self.root)];
        if let Some(c) = self.current.as_ref().filter(|c| c.head != self.root) {
            out.push(self.channels.updates(&c.head));
        }
        out
    }

    /// The bus is (again) connected. Pub/Sub kept nothing of what was sent while
    /// disconnected, so the follower subscribes afresh and asks storage for the
    /// current head.
    pub fn handle_connected(&mut self, now: Instant, out: &mut Step) {
        self.connected = true;
        for channel in self.channels() {
            out.commands.push(Command::Subscribe(channel));
        }
        self.timers.stop(Timer::Request);
        self.send_request(now, Reply::Private, out);
    }

    /// The bus lost its connection: whatever is published now is lost to us.
    pub fn handle_disconnected(&mut self) {
        self.connected = false;
        self.timers.stop(Timer::Request);
    }

    /// Messages on this follower's channels may have been lost while the
    /// subscriptions stayed in place: its driver dropped them rather than queue
    /// them without bound (see `docs/PROTOCOL.md`, "Follower algorithm"). As after
    /// a reconnect, whatever was lost is recovered by asking storage for the
    /// current head, but nothing needs subscribing again, so a load request is
    /// the whole of it (the cheapest input that recovers every kind of message:
    /// a lost patch shows as a snapshot above our height, a lost notice as a
    /// confirmation, a lost answer by the new answer).
    pub fn handle_missed(&mut self, now: Instant, out: &mut Step) {
        if !self.connected {
            // The reconnect re-syncs anyway.
            return;
        }
        self.stats.resyncs += 1;
        self.timers.stop(Timer::Request);
        self.send_request(now, Reply::Private, out);
    }

    /// The follower is being dropped: the channels to leave.
    pub fn close(&self, out: &mut Step) {
        out.commands
            .extend(self.channels().into_iter().map(Command::Unsubscribe));
    }

    /// When [`Follower::handle_timeout`] should next be called.
    pub fn next_timeout(&self) -> Option<Instant> {
        [self.timers.next_timeout(), self.writer.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passed (call it at [`Follower::next_timeout`]): ends writes past
    /// their deadline as timed out, and asks storage again where a request went
    /// unanswered, a head stayed unconfirmed, or the periodic re-sync is due.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Step) {
        let step = out;
        let mut ended = Vec::new();
        self.writer.expire(now, &mut ended);
        self.push_write_events(ended, step);
        if !self.connected {
            return;
        }
        if self.timers.is_expired(Timer::Request, now) {
            // Unanswered: storage may be down or restarting, or unable to answer
            // on our reply channel. Ask again, on the root's channel.
            self.timers.stop(Timer::Request);
            self.send_request(now, Reply::Public, step);
        }
        if self.timers.is_expired(Timer::Confirm, now) {
            self.timers.stop(Timer::Confirm);
            self.stats.resyncs += 1;
            self.send_request(now, Reply::Private, step);
        }
        if self.timers.is_expired(Timer::ForkGrace, now) {
            // Make sure an answer to a request sent after the grace period comes.
            self.timers.stop(Timer::ForkGrace);
            self.timers.stop(Timer::Request);
            self.send_request(now, Reply::Private, step);
        }
        if self.timers.is_expired(Timer::Resync, now) {
            self.stats.resyncs += 1;
            self.timers.stop(Timer::Request);
            self.send_request(now, Reply::Private, step);
        }
    }

    /// A message arrived on `channel`.
    pub fn handle_message(&mut self, now: Instant, channel: &[u8], payload: &[u8], out: &mut Step) {
        if let Err(reason) = self.on_message(now, channel, payload, out) {
            *self.stats.ignored.entry(reason.label()).or_default() += 1;
            out.events.push(FollowerEvent::Ignored { reason });
        }
    }

    /// Builds a patch of `ops` on the current head (which must be `parent`, when
    /// given: ops computed from one document must not land on another), checks
    /// that it applies, and returns it; the command that publishes it goes to
    /// `out`. Its outcome arrives later as [`FollowerEvent::WriteEnded`].
    pub fn submit(
        &mut self,
        now: Instant,
        parent: Option<Hash>,
        ops: Value,
        meta: Option<Map<String, Value>>,
        out: &mut Step,
    ) -> Result<Arc<Patch>, SubmitError> {
        if !self.connected {
            return Err(SubmitError::Disconnected);
        }
        let current = self.current.as_ref().ok_or(SubmitError::NotLoaded)?;
        if let Some(expected) = parent.filter(|p| *p != current.head) {
            return Err(SubmitError::HeadMoved {
                expected,
                actual: current.head,
            });
        }
        let patch = Patch::build(self.root, current.head, current.height, ops, meta)?;
        let applied = patch
            .apply_with_bound(
                self.root,
                current.height,
                &current.doc,
                self.doc_bound,
                &self.limits,
            )
            .map_err(SubmitError::Rejected)?;
        let patch = Arc::new(patch);
        self.writer
            .track(patch.hash, patch.height, now + self.config.write_timeout);
        let payload = match &self.signer {
            Some(key) => sign_canonical(
                key,
                self.channels.namespace(),
                "patch",
                &patch.encoded,
                None,
            ),
            None => patch.encoded.clone(),
        };
        // Our own patch passes our own trust check without a verification only
        // when none is required or our key is trusted as a writer; otherwise it
        // must take the normal path (and be rejected there, as before).
        let self_trusted = self.trust.is_empty()
            || self
                .signer
                .as_ref()
                .is_some_and(|k| self.trust.trusts(&k.public_key(), Role::Writer));
        self.echo = self_trusted.then(|| Echo {
            payload: payload.clone(),
            patch: patch.clone(),
            applied,
        });
        out.commands.push(Command::Publish {
            channel: self.channels.updates(&patch.parent),
            payload,
        });
        Ok(patch)
    }

    fn on_message(
        &mut self,
        now: Instant,
        channel: &[u8],
        payload: &[u8],
        step: &mut Step,
    ) -> Result<(), Rejection> {
        let on = match self.channels.classify(channel) {
            Some(ChannelKind::Updates(on)) => on,
            // Our reply channel carries answers about any of the client's roots;
            // the driver hands us those that name ours (`message::answer_root`),
            // and they count as heard on the root's channel.
            Some(ChannelKind::Replies)
                if self
                    .replies
                    .as_ref()
                    .is_some_and(|token| self.channels.replies(token).as_bytes() == channel) =>
            {
                let (message, signature) = Message::decode_signed(payload, &self.limits)?;
                if matches!(message, Message::Patch(_)) {
                    return Err(Rejection::WrongChannelKind);
                }
                let namespace = self.channels.namespace();
                message.verify(signature.as_ref(), &self.trust, namespace, channel)?;
                return self.on_decoded(now, self.root, message, true, step);
            }
            _ => return Err(Rejection::ForeignChannel),
        };
        if let Some(echo) = self.take_echo(on, payload) {
            return self.on_patch(now, echo.patch, Some(echo.applied), step);
        }
        let (message, signature) = Message::decode_signed(payload, &self.limits)?;
        let namespace = self.channels.namespace();
        message.verify(signature.as_ref(), &self.trust, namespace, channel)?;
        self.on_decoded(now, on, message, false, step)
    }

    /// `via_reply`: heard on the client's reply channel (`on` is then the root).
    fn on_decoded(
        &mut self,
        now: Instant,
        on: Hash,
        message: Message,
        via_reply: bool,
        step: &mut Step,
    ) -> Result<(), Rejection> {
        if message.root() != self.root {
            return Err(Rejection::RootMismatch {
                expected: self.root,
                got: message.root(),
            });
        }
        match message {
            Message::Patch(patch) => {
                if patch.parent != on {
                    return Err(Rejection::ChannelMismatch {
                        channel: on,
                        in_message: patch.parent,
                    });
                }
                self.on_patch(now, patch, None, step)
            }
            _ if on != self.root => Err(Rejection::WrongChannelKind),
            Message::Snapshot(snapshot) => {
                self.on_snapshot(now, snapshot, step);
                Ok(())
            }
            Message::Stored(stored) => {
                // On our reply channel, a notice answers a request that named
                // our head, which storage holds (since v1.3).
                if via_reply && self.request_private {
                    self.timers.stop(Timer::Request);
                }
                self.on_stored(now, stored, step);
                Ok(())
            }
            // Only ever the answer to a request of ours that named our head.
            Message::Patches(batch) if via_reply => self.on_patches(now, batch, step),
            Message::Patches(_) => Err(Rejection::WrongChannelKind),
            // Following by configuration, our requests register the root, so
            // `unknown` cannot be the answer to one: it answers someone else's
            // request by hash, made before a registration, or it is a replay.
            // Either way it says nothing about our request, which stays
            // outstanding: the request timer sends it again (registering the
            // root) if no snapshot comes.
            Message::Unknown { .. } if self.register.is_some() => {
                self.stats.unknown_ignored += 1;
                Ok(())
            }
            // By hash, `unknown` ends the follow, so it counts only as the answer
            // to our outstanding request, where that request asked for it: an
            // addressed request is answered on our reply channel (storage never
            // coalesces `unknown` answers), a plain one on the root's channel. So
            // an `unknown` answering another client's request, or replayed on the
            // root's channel, does not fail a load that asked privately; and one
            // signed for another reply channel does not verify on ours.
            Message::Unknown { .. }
                if !self.timers.is_set(Timer::Request) || self.request_private != via_reply =>
            {
                self.stats.unknown_ignored += 1;
                Ok(())
            }
            Message::Unknown { .. } => {
                self.timers.stop(Timer::Request);
                if self.current.is_none() {
                    step.events.push(FollowerEvent::UnknownRoot);
                }
                Ok(())
            }
        }
    }

    /// This node's latest write, if `payload` on channel `on` is exactly it and
    /// the follower is still at its parent (see [`Echo`]).
    fn take_echo(&mut self, on: Hash, payload: &[u8]) -> Option<Echo> {
        let echo = self.echo.as_ref()?;
        let at_parent = self
            .current
            .as_ref()
            .is_some_and(|c| c.head == echo.patch.parent);
        if on != echo.patch.parent || !at_parent || echo.payload.as_ref() != payload {
            return None;
        }
        self.echo.take()
    }

    /// Applies `patch`, or takes `applied`, the result of applying it to the
    /// current document computed earlier (an [`Echo`]).
    fn on_patch(
        &mut self,
        now: Instant,
        patch: Arc<Patch>,
        applied: Option<(Value, DocBound)>,
        step: &mut Step,
    ) -> Result<(), Rejection> {
        let Some(current) = &self.current else {
            // Not loaded: the snapshot we asked for will include it.
            self.stats.stale += 1;
            return Ok(());
        };
        if patch.parent != current.head {
            self.stats.stale += 1;
            return Ok(());
        }
        let (doc, bound) = match applied {
            Some(applied) => applied,
            None => patch.apply_with_bound(
                self.root,
                current.height,
                &current.doc,
                self.doc_bound,
                &self.limits,
            )?,
        };
        self.doc_bound = bound;
        let next = Current {
            head: patch.hash,
            height: patch.height,
            doc: Arc::new(doc),
        };
        self.stats.applied += 1;
        self.chain.push_back((next.height, next.head));
        if self.chain.len() > CHAIN_MEMORY {
            self.chain.pop_front();
        }
        if !self.timers.is_set(Timer::Confirm) {
            self.timers
                .set(Timer::Confirm, now + self.config.confirm_timeout);
        }
        self.move_to(next, ChangeCause::Patch(patch), step);
        Ok(())
    }

    /// Storage's answer to a request that named our head: the patches from
    /// there to its durable head. They are applied as if heard live (one
    /// [`FollowerEvent::Changed`] each, so a record of changes stays whole),
    /// with one hop of the head subscription, and the last one is storage's
    /// word that it holds it, as a `stored` notice is. If our head moved
    /// meanwhile to one the batch does not contain, or a patch does not apply,
    /// nothing changes: the request stays outstanding, and its retry asks for
    /// the snapshot.
    fn on_patches(
        &mut self,
        now: Instant,
        batch: Arc<Patches>,
        step: &mut Step,
    ) -> Result<(), Rejection> {
        let Some(current) = &self.current else {
            // We named no head: this answers someone else's request.
            self.stats.stale += 1;
            return Ok(());
        };
        let start = if batch
            .patches
            .first()
            .is_some_and(|p| p.parent == current.head)
        {
            0
        } else if let Some(at) = batch.patches.iter().position(|p| p.hash == current.head) {
            at + 1
        } else {
            self.stats.stale += 1;
            return Ok(());
        };
        // All or nothing: apply every patch before taking any.
        let (mut doc, mut bound) = (Arc::clone(&current.doc), self.doc_bound);
        let mut applied = Vec::with_capacity(batch.patches.len() - start);
        for patch in &batch.patches[start..] {
            let (next, next_bound) =
                patch.apply_with_bound(self.root, patch.height - 1, &doc, bound, &self.limits)?;
            (doc, bound) = (Arc::new(next), next_bound);
            applied.push((Arc::clone(patch), Arc::clone(&doc)));
        }
        if self.request_private {
            self.timers.stop(Timer::Request);
        }
        self.stats.caught_up += 1;
        if let Some((last, _)) = applied.last() {
            let old = current.head;
            self.hop(Some(old), last.hash, step);
            self.doc_bound = bound;
            for (patch, doc) in applied {
                let next = Current {
                    head: patch.hash,
                    height: patch.height,
                    doc,
                };
                self.stats.applied += 1;
                self.chain.push_back((next.height, next.head));
                if self.chain.len() > CHAIN_MEMORY {
                    self.chain.pop_front();
                }
                self.current = Some(next.clone());
                step.events.push(FollowerEvent::Changed {
                    current: next,
                    cause: ChangeCause::Patch(patch),
                });
            }
            if self
                .echo
                .as_ref()
                .is_some_and(|e| e.patch.parent != batch.head)
            {
                self.echo = None;
            }
        }
        let stored = Stored {
            root: batch.root,
            head: batch.head,
            height: batch.height,
        };
        self.on_stored(now, stored, step);
        Ok(())
    }

    fn on_snapshot(&mut self, now: Instant, snap: Arc<Snapshot>, step: &mut Step) {
        self.timers.stop(Timer::Request);
        let Some(current) = &self.current else {
            self.adopt(now, snap, ChangeCause::Loaded, step);
            return;
        };
        let (n, h) = (current.height, current.head);
        let (big_n, big_h) = (snap.height, snap.head);
        if big_h == h {
            self.confirm(now, n, h, step);
            return;
        }
        if big_n >= n {
            // Rules 3 and 4: behind, or storage holds another head at our height.
            let dropped = big_n == n;
            self.adopt(now, snap, ChangeCause::Resync { dropped }, step);
            return;
        }
        let reaches = self.chain.front().is_some_and(|&(lo, _)| lo <= big_n);
        let ancestor = self.at_height(big_n) == Some(big_h);
        if reaches && !ancestor {
            // Rule 5: a fork below our head.
            self.adopt(now, snap, ChangeCause::Resync { dropped: true }, step);
            return;
        }
        // Rule 6.
        if self.confirmed.is_some_and(|c| c >= n) {
            return; // a stale answer to someone's earlier request
        }
        match self.suspect {
            None => {
                let grace_ends = now + self.config.fork_grace;
                self.suspect = Some((grace_ends, n));
                self.timers.set(Timer::ForkGrace, grace_ends);
                self.timers.stop(Timer::Request);
                self.send_request(now, Reply::Private, step);
            }
            Some((grace_ends, _)) if now >= grace_ends => {
                self.adopt(now, snap, ChangeCause::Resync { dropped: true }, step);
            }
            // Wait: one request went out when the suspicion began and another goes
            // out when the grace period ends. Asking again on every answer would
            // flood storage with requests, and slow it down, exactly when it is
            // catching up.
            Some(_) => {}
        }
    }

    fn on_stored(&mut self, now: Instant, stored: Stored, step: &mut Step) {
        let mut ended = Vec::new();
        self.writer.stored(stored.head, &mut ended);
        if self.notices.len() == CHAIN_MEMORY {
            self.notices.pop_front();
        }
        self.notices.push_back((stored.height, stored.head));
        self.writer.confirmed(
            stored.height,
            |h| (h == stored.height).then_some(stored.head),
            &mut ended,
        );
        self.push_write_events(ended, step);
        let Some(current) = &self.current else {
            return;
        };
        let n = current.height;
        if stored.height <= n && self.at_height(stored.height) == Some(stored.head) {
            self.confirm(now, stored.height, stored.head, step);
        } else {
            // Behind (a hop gap or a lost patch), or storage holds another chain:
            // either way, ask for the snapshot.
            self.stats.resyncs += 1;
            self.send_request(now, Reply::Private, step);
        }
    }

    /// Storage holds our chain up to `height` (ending in `head`).
    fn confirm(&mut self, now: Instant, height: u64, head: Hash, step: &mut Step) {
        self.from_cache = false;
        if self.confirmed.is_none_or(|c| c < height) {
            self.confirmed = Some(height);
            // Progress: restart the unconfirmed clock for whatever is still above.
            let at_head = self.current.as_ref().is_some_and(|c| c.height <= height);
            if at_head {
                self.timers.stop(Timer::Confirm);
            } else {
                self.timers
                    .set(Timer::Confirm, now + self.config.confirm_timeout);
            }
        }
        if self.suspect.is_some_and(|(_, at)| at <= height) {
            self.suspect = None;
            self.timers.stop(Timer::ForkGrace);
        }
        let _ = head;
        self.resolve_writes(height, step);
    }

    /// Ends the writes that storage's chain up to `height` decides.
    fn resolve_writes(&mut self, height: u64, step: &mut Step) {
        let mut ended = Vec::new();
        let (chain, notices) = (&self.chain, &self.notices);
        self.writer.confirmed(
            height,
            |h| {
                chain
                    .iter()
                    .chain(notices.iter())
                    .find(|(ch, _)| *ch == h)
                    .map(|&(_, hash)| hash)
            },
            &mut ended,
        );
        self.push_write_events(ended, step);
    }

    fn adopt(&mut self, now: Instant, snap: Arc<Snapshot>, cause: ChangeCause, step: &mut Step) {
        if matches!(cause, ChangeCause::Resync { dropped: true }) {
            self.stats.dropped += 1;
        }
        if matches!(cause, ChangeCause::Resync { .. }) {
            self.stats.resyncs += 1;
        }
        let first = self.current.is_none();
        // Storage's snapshot (`load_cached` sets it again after a cached one).
        self.from_cache = false;
        self.chain.clear();
        self.chain.push_back((snap.height, snap.head));
        self.confirmed = None;
        self.timers.stop(Timer::Confirm);
        self.suspect = None;
        self.timers.stop(Timer::ForkGrace);
        self.doc_bound = snap.config_bound();
        let (head, height) = (snap.head, snap.height);
        // A snapshot just decoded is ours alone: its document moves, uncopied.
        let next = Current {
            head,
            height,
            doc: Arc::new(Arc::unwrap_or_clone(snap).config),
        };
        self.move_to(next, cause, step);
        if first {
            self.schedule_resync(now);
        }
        // A snapshot is storage's word on which writes it holds. It does not
        // confirm our head for rule 6, though: a snapshot nobody can vouch for (a
        // forged one, without signatures) must not make the follower ignore every
        // later answer of storage's. Storage's next answer that matches our head
        // confirms it.
        self.resolve_writes(height, step);
    }

    /// Makes `next` current, moving the head subscription.
    fn move_to(&mut self, next: Current, cause: ChangeCause, step: &mut Step) {
        if self
            .echo
            .as_ref()
            .is_some_and(|e| e.patch.parent != next.head)
        {
            // Our write can no longer apply here: its parent is left behind.
            self.echo = None;
        }
        let old = self.current.as_ref().map(|c| c.head);
        self.hop(old, next.head, step);
        self.current = Some(next.clone());
        step.events.push(FollowerEvent::Changed {
            current: next,
            cause,
        });
    }

    /// Moves the head subscription from `old`'s channel to `new`'s (the root's
    /// channel is always held).
    fn hop(&self, old: Option<Hash>, new: Hash, step: &mut Step) {
        if old == Some(new) {
            return;
        }
        if new != self.root {
            step.commands
                .push(Command::Subscribe(self.channels.updates(&new)));
        }
        if let Some(old) = old.filter(|o| *o != self.root) {
            step.commands
                .push(Command::Unsubscribe(self.channels.updates(&old)));
        }
    }

    fn at_height(&self, height: u64) -> Option<Hash> {
        let &(lo, _) = self.chain.front()?;
        let idx = usize::try_from(height.checked_sub(lo)?).ok()?;
        self.chain.get(idx).map(|&(_, h)| h)
    }

    /// Publishes a load request unless one is already waiting for its answer.
    fn send_request(&mut self, now: Instant, reply: Reply, step: &mut Step) {
        if !self.connected || self.timers.is_set(Timer::Request) {
            return;
        }
        let request = match &self.register {
            Some(root) => LoadRequest::Register(root.clone()),
            None => LoadRequest::ByHash(self.root),
        };
        let reply_to = match reply {
            Reply::Private => self.replies.as_ref(),
            Reply::Public => None,
        };
        self.request_private = reply_to.is_some();
        // Naming our head lets storage answer with what we lack rather than
        // the whole document (since v1.3). Only privately: a storage node that
        // does not know the clause ignores the request, and the retry after
        // `request_timeout` is plain.
        let have = self.current.as_ref().map(|c| Have {
            head: c.head,
            height: c.height,
        });
        step.commands.push(Command::Publish {
            channel: self.channels.update_requests(),
            payload: request.encode_addressed(reply_to, have),
        });
        self.timers
            .set(Timer::Request, now + self.config.request_timeout);
        self.stats.load_requests += 1;
        self.schedule_resync(now);
    }

    fn schedule_resync(&mut self, now: Instant) {
        let interval = self.jitter.spread(self.config.resync_interval);
        self.timers.set(Timer::Resync, now + interval);
    }

    fn push_write_events(&mut self, ended: Vec<(Hash, WriteOutcome)>, step: &mut Step) {
        step.events.extend(
            ended
                .into_iter()
                .map(|(hash, outcome)| FollowerEvent::WriteEnded { hash, outcome }),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::message::Stored;

    fn setup() -> (Follower, RootConfig, Instant) {
        let root = RootConfig::twitch("#unit").unwrap();
        let f = Follower::by_root(
            root.clone(),
            Channels::new(None),
            Limits::default(),
            FollowerConfig::default(),
        );
        (f, root, Instant::now())
    }

    fn ch(h: &Hash) -> String {
        Channels::new(None).updates(h)
    }

    fn patch_on(root: &RootConfig, parent: Hash, height: u64, key: &str) -> Patch {
        let ops = json!([{"op": "add", "path": format!("/{key}"), "value": 1}]);
        Patch::build(root.hash(), parent, height, ops, None).unwrap()
    }

    /// A loaded follower at the root (height 0).
    fn loaded() -> (Follower, RootConfig, Instant) {
        let (mut f, root, now) = setup();
        f.handle_connected(now, &mut Step::default());
        let snap = Snapshot::of_root(&root);
        f.handle_message(
            now,
            ch(&root.hash()).as_bytes(),
            &snap.encoded,
            &mut Step::default(),
        );
        (f, root, now)
    }

    #[test]
    fn connect_subscribes_to_the_root_then_asks_storage() {
        let (mut f, root, now) = setup();
        let mut step = Step::default();
        f.handle_connected(now, &mut step);
        assert_eq!(
            step.commands,
            vec![
                Command::Subscribe(ch(&root.hash())),
                Command::Publish {
                    channel: "update_requests".into(),
                    payload: root.to_canonical().into(),
                },
            ]
        );
    }

    #[test]
    fn missed_messages_make_a_load_request_without_subscribing_again() {
        let (mut f, root, now) = loaded();
        let resyncs = f.stats().resyncs;
        let mut step = Step::default();
        f.handle_missed(now, &mut step);
        assert_eq!(
            step.commands,
            vec![Command::Publish {
                channel: "update_requests".into(),
                payload: root.to_canonical().into(),
            }]
        );
        assert_eq!(f.stats().resyncs, resyncs + 1);

        // Disconnected, there is nothing to ask yet: the reconnect asks.
        f.handle_disconnected();
        let mut step = Step::default();
        f.handle_missed(now, &mut step);
        assert!(step.commands.is_empty());
    }

    /// The load requests in `step`, as published.
    fn requests(step: &Step) -> Vec<Bytes> {
        step.commands
            .iter()
            .filter_map(|c| match c {
                Command::Publish { channel, payload } if channel == "update_requests" => {
                    Some(payload.clone())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn with_a_reply_channel_requests_ask_for_a_private_answer_and_retry_publicly() {
        let (mut f, root, now) = setup();
        let token = ReplyToken::new("tok").unwrap();
        let reply_channel = Channels::new(None).replies(&token);
        let mut step = Step::default();
        f.set_reply_token(now, Some(token.clone()), &mut step);
        assert!(step.commands.is_empty());
        let mut step = Step::default();
        f.handle_connected(now, &mut step);
        let addressed = LoadRequest::Register(root.clone()).encode_addressed(Some(&token), None);
        assert_eq!(requests(&step), vec![addressed.clone()]);

        // Unanswered: the retry goes on the root channel.
        let later = now + FollowerConfig::default().request_timeout;
        let mut step = Step::default();
        f.handle_timeout(later, &mut step);
        assert_eq!(requests(&step), vec![Bytes::from(root.to_canonical())]);

        // Answers on our reply channel count; anything else there does not.
        let other = RootConfig::twitch("#other").unwrap();
        let mut wrong_root = Step::default();
        f.handle_message(
            later,
            reply_channel.as_bytes(),
            &Snapshot::of_root(&other).encoded,
            &mut wrong_root,
        );
        assert!(matches!(
            wrong_root.events[..],
            [FollowerEvent::Ignored {
                reason: Rejection::RootMismatch { .. }
            }]
        ));
        let p = patch_on(&root, root.hash(), 0, "a");
        let mut patch = Step::default();
        f.handle_message(later, reply_channel.as_bytes(), &p.encoded, &mut patch);
        assert!(matches!(
            patch.events[..],
            [FollowerEvent::Ignored {
                reason: Rejection::WrongChannelKind
            }]
        ));
        let snap = Snapshot::of_root(&root);
        let foreign = Channels::new(None).replies(&ReplyToken::new("theirs").unwrap());
        let mut theirs = Step::default();
        f.handle_message(later, foreign.as_bytes(), &snap.encoded, &mut theirs);
        assert!(matches!(
            theirs.events[..],
            [FollowerEvent::Ignored {
                reason: Rejection::ForeignChannel
            }]
        ));
        assert!(f.current().is_none());
        let mut ours = Step::default();
        f.handle_message(later, reply_channel.as_bytes(), &snap.encoded, &mut ours);
        assert!(matches!(
            ours.events[..],
            [FollowerEvent::Changed {
                cause: ChangeCause::Loaded,
                ..
            }]
        ));

        // The next re-sync is private again, and names the head we have;
        // losing the reply channel while it waits sends it again at once,
        // publicly (and without the head).
        let resync = f.next_timeout().unwrap();
        let mut step = Step::default();
        f.handle_timeout(resync, &mut step);
        let have = Have {
            head: root.hash(),
            height: 0,
        };
        assert_eq!(
            requests(&step),
            vec![LoadRequest::Register(root.clone()).encode_addressed(Some(&token), Some(have))]
        );
        assert_ne!(requests(&step), vec![addressed]);
        let mut step = Step::default();
        f.set_reply_token(resync, None, &mut step);
        assert_eq!(requests(&step), vec![Bytes::from(root.to_canonical())]);
        // Nothing outstanding is private any more: losing it again sends nothing.
        let mut step = Step::default();
        f.set_reply_token(resync, None, &mut step);
        assert!(step.commands.is_empty());
    }

    /// v1.3, issue 14: a follower that named its head and is sent the patches
    /// it lacks applies them all as if heard live (an event each), moves its
    /// head subscription once, takes the last as stored, and its request is
    /// answered; a batch that does not start at its head, or does not apply,
    /// changes nothing and leaves the request to its retry.
    #[test]
    fn a_follower_behind_applies_the_patches_it_is_sent_with_one_hop() {
        let (mut f, root, now) = loaded();
        let token = ReplyToken::new("tok").unwrap();
        let reply_channel = Channels::new(None).replies(&token);
        f.set_reply_token(now, Some(token), &mut Step::default());
        let r = root.hash();
        let mut chain: Vec<Arc<Patch>> = Vec::new();
        for key in ["a", "b", "c", "d", "e"] {
            let (parent, height) = chain.last().map_or((r, 0), |p| (p.hash, p.height));
            chain.push(Arc::new(patch_on(&root, parent, height, key)));
        }
        // The re-sync names our head.
        let resync = f.next_timeout().unwrap();
        let mut step = Step::default();
        f.handle_timeout(resync, &mut step);
        assert!(
            requests(&step)[0].starts_with(format!("@tok have {r} 0 ").as_bytes()),
            "{:?}",
            requests(&step)
        );

        // A batch from somewhere else in the chain, and one that does not
        // apply on our document, change nothing.
        let elsewhere = Patches::new(r, chain[2..].to_vec()).unwrap();
        let mut step = Step::default();
        f.handle_message(
            resync,
            reply_channel.as_bytes(),
            &elsewhere.encoded,
            &mut step,
        );
        assert_eq!(step, Step::default());
        let removes = Arc::new(
            Patch::build(r, r, 0, json!([{"op": "remove", "path": "/nothing"}]), None).unwrap(),
        );
        let failing = Patches::new(r, vec![removes]).unwrap();
        let mut step = Step::default();
        f.handle_message(
            resync,
            reply_channel.as_bytes(),
            &failing.encoded,
            &mut step,
        );
        assert!(matches!(
            step.events[..],
            [FollowerEvent::Ignored {
                reason: Rejection::OpsFailed(_)
            }]
        ));
        assert!(step.commands.is_empty());
        assert_eq!(f.current().unwrap().head, r);

        // The five patches: five changes, one hop, confirmed, answered.
        let batch = Patches::new(r, chain.clone()).unwrap();
        let mut step = Step::default();
        f.handle_message(resync, reply_channel.as_bytes(), &batch.encoded, &mut step);
        let heads: Vec<Hash> = step
            .events
            .iter()
            .map(|e| match e {
                FollowerEvent::Changed {
                    current,
                    cause: ChangeCause::Patch(p),
                } => {
                    assert_eq!(current.head, p.hash);
                    p.hash
                }
                other => panic!("unexpected event {other:?}"),
            })
            .collect();
        assert_eq!(heads, chain.iter().map(|p| p.hash).collect::<Vec<_>>());
        let last = chain.last().unwrap();
        assert_eq!(
            step.commands,
            vec![Command::Subscribe(ch(&last.hash))],
            "one hop, from the root's channel (always held)"
        );
        let current = f.current().unwrap();
        assert_eq!((current.head, current.height), (last.hash, 5));
        assert_eq!(
            *current.doc,
            json!({"connection": root.value()["connection"], "a": 1, "b": 1, "c": 1, "d": 1, "e": 1})
        );
        assert_eq!(f.stats().caught_up, 1);
        assert_eq!(f.stats().applied, 5);
        // Answered: no retry once the request timeout has passed.
        let mut step = Step::default();
        f.handle_timeout(
            resync + FollowerConfig::default().request_timeout,
            &mut step,
        );
        assert!(requests(&step).is_empty());

        // At the head, storage's notice on the reply channel answers the next
        // re-sync.
        let resync = f.next_timeout().unwrap();
        let mut step = Step::default();
        f.handle_timeout(resync, &mut step);
        assert_eq!(requests(&step).len(), 1);
        let notice = Stored {
            root: r,
            head: last.hash,
            height: 5,
        };
        let mut step = Step::default();
        f.handle_message(
            resync,
            reply_channel.as_bytes(),
            &notice.encode(),
            &mut step,
        );
        assert_eq!(step, Step::default());
        let mut step = Step::default();
        f.handle_timeout(
            resync + FollowerConfig::default().request_timeout,
            &mut step,
        );
        assert!(
            requests(&step).is_empty(),
            "the notice answered the request"
        );
        // Patches on a root's channel are not an answer.
        let mut step = Step::default();
        f.handle_message(resync, ch(&r).as_bytes(), &batch.encoded, &mut step);
        assert!(matches!(
            step.events[..],
            [FollowerEvent::Ignored {
                reason: Rejection::WrongChannelKind
            }]
        ));
    }

    #[test]
    fn a_patch_on_the_head_moves_the_subscription() {
        let (mut f, root, now) = loaded();
        let p1 = patch_on(&root, root.hash(), 0, "a");
        let mut step = Step::default();
        f.handle_message(now, ch(&root.hash()).as_bytes(), &p1.encoded, &mut step);
        // The root channel is kept for life: only the new head's is added.
        assert_eq!(step.commands, vec![Command::Subscribe(ch(&p1.hash))]);
        let p2 = patch_on(&root, p1.hash, 1, "b");
        let mut step = Step::default();
        f.handle_message(now, ch(&p1.hash).as_bytes(), &p2.encoded, &mut step);
        assert_eq!(
            step.commands,
            vec![
                Command::Subscribe(ch(&p2.hash)),
                Command::Unsubscribe(ch(&p1.hash)),
            ]
        );
        assert_eq!(f.current().unwrap().height, 2);
        assert_eq!(
            *f.current().unwrap().doc,
            json!({"connection": root.value()["connection"], "a": 1, "b": 1})
        );
    }

    /// The payload a follower published for `ops`, via `submit`.
    fn submitted(f: &mut Follower, now: Instant, ops: Value) -> (Arc<Patch>, Bytes) {
        let mut step = Step::default();
        let patch = f.submit(now, None, ops, None, &mut step).unwrap();
        let [Command::Publish { payload, .. }] = step.commands.as_slice() else {
            panic!("submit should publish once: {:?}", step.commands);
        };
        (patch, payload.clone())
    }

    #[test]
    fn our_own_patch_coming_back_ends_where_decoding_it_would() {
        let (mut writer, root, now) = loaded();
        let (mut other, _, _) = loaded();
        let ops = json!([{"op": "add", "path": "/commands", "value": {"!hi": "hello"}}]);
        let (patch, payload) = submitted(&mut writer, now, ops);
        assert!(writer.echo.is_some());
        let on_root = ch(&root.hash());
        let mut mine = Step::default();
        writer.handle_message(now, on_root.as_bytes(), &payload, &mut mine);
        let mut theirs = Step::default();
        other.handle_message(now, on_root.as_bytes(), &payload, &mut theirs);
        assert!(writer.echo.is_none(), "the echo was used");
        assert_eq!(mine.commands, theirs.commands);
        assert_eq!(mine.events.len(), theirs.events.len());
        let (w, o) = (writer.current().unwrap(), other.current().unwrap());
        assert_eq!((w.head, w.height), (patch.hash, 1));
        assert_eq!((w.head, w.height, &w.doc), (o.head, o.height, &o.doc));
        assert_eq!(writer.doc_bound, other.doc_bound);
        assert_eq!(writer.stats().applied, 1);
    }

    #[test]
    fn only_the_exact_bytes_on_the_parent_channel_at_the_parent_count_as_our_echo() {
        let (mut f, root, now) = loaded();
        let ops = json!([{"op": "add", "path": "/a", "value": 1}]);
        let (_, payload) = submitted(&mut f, now, ops);
        // One byte changed: decoded like anything else (and rejected).
        let mut tampered = payload.to_vec();
        let at = tampered.len() - 3;
        tampered[at] ^= 1;
        f.handle_message(
            now,
            ch(&root.hash()).as_bytes(),
            &tampered,
            &mut Step::default(),
        );
        assert!(f.echo.is_some());
        assert_eq!(f.current().unwrap().height, 0);
        // The right bytes on another channel: not ours to apply.
        f.handle_message(
            now,
            ch(&Hash::of_canonical_bytes(b"x")).as_bytes(),
            &payload,
            &mut Step::default(),
        );
        assert!(f.echo.is_some());
        // Someone else's patch wins the root: our echo is stale and forgotten.
        let theirs = patch_on(&root, root.hash(), 0, "theirs");
        f.handle_message(
            now,
            ch(&root.hash()).as_bytes(),
            &theirs.encoded,
            &mut Step::default(),
        );
        assert!(f.echo.is_none());
        f.handle_message(
            now,
            ch(&root.hash()).as_bytes(),
            &payload,
            &mut Step::default(),
        );
        assert_eq!(f.current().unwrap().head, theirs.hash);
        assert_eq!(f.stats().stale, 1);
    }

    #[test]
    fn our_own_patch_is_not_waved_through_a_trust_set_that_excludes_us() {
        let (f, root, now) = loaded();
        let trusted = SigningKey::from_seed([1; 32]);
        let ours = SigningKey::from_seed([2; 32]);
        let mut f = f
            .with_trust(TrustSet::new([trusted.public_key()]))
            .with_signer(Some(ours));
        let ops = json!([{"op": "add", "path": "/a", "value": 1}]);
        let (_, payload) = submitted(&mut f, now, ops);
        assert!(f.echo.is_none());
        f.handle_message(
            now,
            ch(&root.hash()).as_bytes(),
            &payload,
            &mut Step::default(),
        );
        assert_eq!(
            f.current().unwrap().height,
            0,
            "an untrusted signature is refused"
        );
    }

    #[test]
    fn only_the_first_patch_on_a_channel_counts() {
        let (mut f, root, now) = loaded();
        let first = patch_on(&root, root.hash(), 0, "first");
        let second = patch_on(&root, root.hash(), 0, "second");
        f.handle_message(
            now,
            ch(&root.hash()).as_bytes(),
            &first.encoded,
            &mut Step::default(),
        );
        let mut step = Step::default();
        f.handle_message(now, ch(&root.hash()).as_bytes(), &second.encoded, &mut step);
        assert!(step.commands.is_empty() && step.events.is_empty());
        assert_eq!(f.current().unwrap().head, first.hash);
        assert_eq!(f.stats().stale, 1);
    }

    #[test]
    fn bad_messages_are_ignored_and_counted() {
        let (mut f, root, now) = loaded();
        let on_root = ch(&root.hash());
        let wrong_height = {
            let ops = json!([{"op": "add", "path": "/x", "value": 1}]);
            let p1 = patch_on(&root, root.hash(), 0, "a");
            f.handle_message(now, on_root.as_bytes(), &p1.encoded, &mut Step::default());
            // A patch on p1 claiming height 5.
            Patch::build(root.hash(), p1.hash, 4, ops, None).unwrap()
        };
        let head = f.current().unwrap().head;
        for (channel, bytes) in [
            (on_root.clone(), b"not json".to_vec()),
            (on_root.clone(), br#"{"type":"nope"}"#.to_vec()),
            (ch(&head), wrong_height.encoded.to_vec()),
            (ch(&head), patch_on(&root, head, 1, "a").encoded.to_vec()), // "a" exists: add replaces, fine
        ] {
            f.handle_message(now, channel.as_bytes(), &bytes, &mut Step::default());
        }
        assert_eq!(f.stats().ignored.get("malformed"), Some(&2));
        assert_eq!(f.stats().ignored.get("wrong_height"), Some(&1));
    }

    #[test]
    fn a_stored_notice_above_us_triggers_a_resync() {
        let (mut f, root, now) = loaded();
        let later = now + Duration::from_secs(3); // past the initial request's timeout
        f.handle_timeout(later, &mut Step::default());
        let stored = Stored {
            root: root.hash(),
            head: Hash::of_canonical_bytes(b"elsewhere"),
            height: 7,
        };
        let mut step = Step::default();
        f.handle_message(
            later,
            ch(&root.hash()).as_bytes(),
            &stored.encode(),
            &mut step,
        );
        assert!(
            step.commands.iter().any(
                |c| matches!(c, Command::Publish { channel, .. } if channel == "update_requests")
            ),
            "{step:?}"
        );
    }

    #[test]
    fn adoption_rule_forward_equal_height_and_suspicion() {
        let (mut f, root, now) = loaded();
        let on_root = ch(&root.hash());
        let p1 = patch_on(&root, root.hash(), 0, "a");
        let p2 = patch_on(&root, p1.hash, 1, "b");
        f.handle_message(now, on_root.as_bytes(), &p1.encoded, &mut Step::default());
        f.handle_message(
            now,
            ch(&p1.hash).as_bytes(),
            &p2.encoded,
            &mut Step::default(),
        );

        // Rule 6: storage at our ancestor p1 (height 1) while we are at 2, our head
        // unconfirmed: suspicious, not adopted yet.
        let behind = Snapshot::new(root.hash(), p1.hash, 1, json!({"stale": true}));
        f.handle_message(
            now,
            on_root.as_bytes(),
            &behind.encoded,
            &mut Step::default(),
        );
        assert_eq!(f.current().unwrap().head, p2.hash);
        // After the grace period, the same answer is adopted: p2 was never stored.
        let later = now + Duration::from_secs(2);
        let mut step = Step::default();
        f.handle_message(later, on_root.as_bytes(), &behind.encoded, &mut step);
        assert_eq!(f.current().unwrap().head, p1.hash);
        assert!(step.events.iter().any(|e| matches!(
            e,
            FollowerEvent::Changed {
                cause: ChangeCause::Resync { dropped: true },
                ..
            }
        )));
        assert_eq!(f.stats().dropped, 1);

        // Rule 4: another head at our height is adopted at once.
        let other = Snapshot::new(root.hash(), Hash::of_canonical_bytes(b"o"), 1, json!({}));
        f.handle_message(
            later,
            on_root.as_bytes(),
            &other.encoded,
            &mut Step::default(),
        );
        assert_eq!(f.current().unwrap().head, other.head);

        // Rule 3: ahead of us is adopted.
        let ahead = Snapshot::new(root.hash(), Hash::of_canonical_bytes(b"z"), 9, json!({}));
        f.handle_message(
            later,
            on_root.as_bytes(),
            &ahead.encoded,
            &mut Step::default(),
        );
        assert_eq!(f.current().unwrap().height, 9);
    }

    #[test]
    fn a_confirmed_head_ignores_stale_snapshots() {
        let (mut f, root, now) = loaded();
        let on_root = ch(&root.hash());
        let p1 = patch_on(&root, root.hash(), 0, "a");
        f.handle_message(now, on_root.as_bytes(), &p1.encoded, &mut Step::default());
        let stored = Stored {
            root: root.hash(),
            head: p1.hash,
            height: 1,
        };
        f.handle_message(
            now,
            on_root.as_bytes(),
            &stored.encode(),
            &mut Step::default(),
        );
        let old = Snapshot::of_root(&root);
        let later = now + Duration::from_secs(5);
        f.handle_message(
            later,
            on_root.as_bytes(),
            &old.encoded,
            &mut Step::default(),
        );
        f.handle_message(
            later,
            on_root.as_bytes(),
            &old.encoded,
            &mut Step::default(),
        );
        assert_eq!(f.current().unwrap().head, p1.hash, "never moved backwards");
    }

    #[test]
    fn writes_end_committed_or_conflict_only_on_proof() {
        let (mut f, root, now) = loaded();
        let on_root = ch(&root.hash());
        let ops = json!([{"op": "add", "path": "/mine", "value": 1}]);
        let mut step = Step::default();
        let mine = f.submit(now, None, ops.clone(), None, &mut step).unwrap();
        assert_eq!(
            step.commands,
            vec![Command::Publish {
                channel: on_root.clone(),
                payload: mine.encoded.clone()
            }]
        );
        // Someone else's patch wins the channel: not yet a conflict (storage may
        // have missed it).
        let theirs = patch_on(&root, root.hash(), 0, "theirs");
        let mut step = Step::default();
        f.handle_message(now, on_root.as_bytes(), &theirs.encoded, &mut step);
        assert!(
            !step
                .events
                .iter()
                .any(|e| matches!(e, FollowerEvent::WriteEnded { .. }))
        );
        // Storage stored theirs: now it is.
        let stored = Stored {
            root: root.hash(),
            head: theirs.hash,
            height: 1,
        };
        let mut step = Step::default();
        f.handle_message(now, on_root.as_bytes(), &stored.encode(), &mut step);
        assert!(step.events.contains(&FollowerEvent::WriteEnded {
            hash: mine.hash,
            outcome: WriteOutcome::Conflict {
                winner: theirs.hash
            },
        }));

        let second = f
            .submit(now, None, ops, None, &mut Step::default())
            .unwrap();
        let stored = Stored {
            root: root.hash(),
            head: second.hash,
            height: 2,
        };
        let mut step = Step::default();
        f.handle_message(now, on_root.as_bytes(), &stored.encode(), &mut step);
        assert!(step.events.contains(&FollowerEvent::WriteEnded {
            hash: second.hash,
            outcome: WriteOutcome::Committed,
        }));

        let third = f
            .submit(now, None, json!([]), None, &mut Step::default())
            .unwrap();
        let mut step = Step::default();
        f.handle_timeout(now + Duration::from_secs(6), &mut step);
        assert!(step.events.contains(&FollowerEvent::WriteEnded {
            hash: third.hash,
            outcome: WriteOutcome::TimedOut,
        }));
    }

    /// Issue 11: `unknown` cannot answer a request that registers the root, so a
    /// follower by configuration ignores it (a replay, or someone else's answer)
    /// and its request timer asks again; a follower by hash still gives up, on
    /// an `unknown` heard where its outstanding request asked for the answer.
    #[test]
    fn unknown_is_retried_by_configuration_and_final_by_hash() {
        let (mut f, root, now) = setup();
        let mut first = Step::default();
        f.handle_connected(now, &mut first);
        assert_eq!(requests(&first), vec![Bytes::from(root.to_canonical())]);
        let unknown = crate::message::encode_unknown(root.hash());
        let mut step = Step::default();
        f.handle_message(now, ch(&root.hash()).as_bytes(), &unknown, &mut step);
        assert_eq!(step, Step::default());
        assert_eq!(f.stats().unknown_ignored, 1);
        let retry = now + FollowerConfig::default().request_timeout;
        assert_eq!(
            f.next_timeout(),
            Some(retry),
            "the request is still awaited"
        );
        let mut step = Step::default();
        f.handle_timeout(retry, &mut step);
        assert_eq!(requests(&step), vec![Bytes::from(root.to_canonical())]);
        let snap = Snapshot::of_root(&root);
        f.handle_message(
            retry,
            ch(&root.hash()).as_bytes(),
            &snap.encoded,
            &mut Step::default(),
        );
        assert_eq!(f.current().unwrap().height, 0);

        let mut by_hash = Follower::by_hash(
            root.hash(),
            Channels::new(None),
            Limits::default(),
            FollowerConfig::default(),
        );
        by_hash.handle_connected(now, &mut Step::default());
        let mut step = Step::default();
        by_hash.handle_message(now, ch(&root.hash()).as_bytes(), &unknown, &mut step);
        assert_eq!(step.events, vec![FollowerEvent::UnknownRoot]);

        // Asked privately, only an answer on our reply channel counts.
        let token = ReplyToken::new("tok").unwrap();
        let replies = Channels::new(None).replies(&token);
        let mut private = Follower::by_hash(
            root.hash(),
            Channels::new(None),
            Limits::default(),
            FollowerConfig::default(),
        )
        .with_reply_token(Some(token));
        private.handle_connected(now, &mut Step::default());
        let mut step = Step::default();
        private.handle_message(now, ch(&root.hash()).as_bytes(), &unknown, &mut step);
        assert_eq!(
            (step, private.stats().unknown_ignored),
            (Step::default(), 1)
        );
        let mut step = Step::default();
        private.handle_message(now, replies.as_bytes(), &unknown, &mut step);
        assert_eq!(step.events, vec![FollowerEvent::UnknownRoot]);
    }

    /// A follower started from a cached head at height 2 (`p2`, over `p1`),
    /// before any connection: what the cache gives it.
    fn started_from_cache() -> (Follower, RootConfig, Instant, Patch, Patch) {
        let (mut f, root, now) = setup();
        let p1 = patch_on(&root, root.hash(), 0, "a");
        let p2 = patch_on(&root, p1.hash, 1, "b");
        let cached = Snapshot::new(root.hash(), p2.hash, 2, json!({"a": 1, "b": 1}));
        let mut step = Step::default();
        f.load_cached(now, Arc::new(cached), &mut step);
        assert!(
            matches!(
                &step.events[..],
                [FollowerEvent::Changed {
                    cause: ChangeCause::Cached,
                    current,
                }] if current.head == p2.hash && current.height == 2
            ),
            "{step:?}"
        );
        assert!(f.from_cache());
        // Nothing to send before a connection; the connect subscribes to the
        // cached head's channel too, and asks storage.
        assert!(step.commands.is_empty());
        let mut step = Step::default();
        f.handle_connected(now, &mut step);
        assert!(step.commands.contains(&Command::Subscribe(ch(&p2.hash))));
        assert_eq!(requests(&step).len(), 1);
        (f, root, now, p1, p2)
    }

    #[test]
    fn a_cached_head_is_taken_only_before_loading_and_only_for_its_root() {
        let (mut f, root, now) = loaded();
        let other = Snapshot::new(root.hash(), Hash::of_canonical_bytes(b"x"), 5, json!({}));
        let mut step = Step::default();
        f.load_cached(now, Arc::new(other), &mut step);
        assert_eq!(step, Step::default());
        assert_eq!(f.current().unwrap().head, root.hash());
        assert!(!f.from_cache());

        let (mut fresh, _, _) = setup();
        let foreign = RootConfig::twitch("#foreign").unwrap();
        fresh.load_cached(now, Arc::new(Snapshot::of_root(&foreign)), &mut step);
        assert_eq!(step, Step::default());
        assert!(fresh.current().is_none());
    }

    #[test]
    fn storage_confirming_a_cached_head_changes_nothing() {
        let (mut f, root, now, _, p2) = started_from_cache();
        let same = Snapshot::new(root.hash(), p2.hash, 2, json!({"a": 1, "b": 1}));
        let mut step = Step::default();
        f.handle_message(now, ch(&root.hash()).as_bytes(), &same.encoded, &mut step);
        assert!(step.events.is_empty(), "{step:?}");
        assert_eq!(f.current().unwrap().head, p2.hash);
        assert!(!f.from_cache());
    }

    #[test]
    fn storage_ahead_of_a_cached_head_or_forked_at_its_height_replaces_it_at_once() {
        for (height, head) in [
            (7, Hash::of_canonical_bytes(b"later")),
            (2, Hash::of_canonical_bytes(b"fork")),
        ] {
            let (mut f, root, now, _, _) = started_from_cache();
            let storage = Snapshot::new(root.hash(), head, height, json!({"storage": true}));
            let mut step = Step::default();
            f.handle_message(
                now,
                ch(&root.hash()).as_bytes(),
                &storage.encoded,
                &mut step,
            );
            let current = f.current().unwrap();
            assert_eq!((current.head, current.height), (head, height));
            assert_eq!(*current.doc, json!({"storage": true}));
            assert!(!f.from_cache());
        }
    }

    /// The cached head is a patch storage never stored (or lost): storage's
    /// lower head replaces it once the grace period of rule 6 has passed.
    #[test]
    fn storage_behind_a_cached_head_replaces_it_after_the_grace_period() {
        let (mut f, root, now, p1, p2) = started_from_cache();
        let on_root = ch(&root.hash());
        let storage = Snapshot::new(root.hash(), p1.hash, 1, json!({"a": 1}));
        let mut step = Step::default();
        f.handle_message(now, on_root.as_bytes(), &storage.encoded, &mut step);
        assert_eq!(f.current().unwrap().head, p2.hash, "suspicious first");
        assert_eq!(requests(&step).len(), 1, "asks again at once");

        let later = now + FollowerConfig::default().fork_grace;
        let mut step = Step::default();
        f.handle_timeout(later, &mut step);
        assert_eq!(requests(&step).len(), 1, "and when the grace period ends");
        let mut step = Step::default();
        f.handle_message(later, on_root.as_bytes(), &storage.encoded, &mut step);
        assert_eq!(f.current().unwrap().head, p1.hash);
        assert!(step.events.iter().any(|e| matches!(
            e,
            FollowerEvent::Changed {
                cause: ChangeCause::Resync { dropped: true },
                ..
            }
        )));
        assert!(step.commands.contains(&Command::Subscribe(ch(&p1.hash))));
        assert!(step.commands.contains(&Command::Unsubscribe(ch(&p2.hash))));
        assert!(!f.from_cache());
    }

    /// A patch on the cached head applies as on any head; storage's notice
    /// of it confirms the chain, and it is no longer "from the cache".
    #[test]
    fn patches_apply_on_a_cached_head_until_storage_answers() {
        let (mut f, root, now, _, p2) = started_from_cache();
        let p3 = patch_on(&root, p2.hash, 2, "c");
        let mut step = Step::default();
        f.handle_message(now, ch(&p2.hash).as_bytes(), &p3.encoded, &mut step);
        assert_eq!(f.current().unwrap().head, p3.hash);
        assert_eq!(*f.current().unwrap().doc, json!({"a": 1, "b": 1, "c": 1}));
        assert!(f.from_cache(), "storage has not spoken yet");
        let stored = Stored {
            root: root.hash(),
            head: p3.hash,
            height: 3,
        };
        f.handle_message(
            now,
            ch(&root.hash()).as_bytes(),
            &stored.encode(),
            &mut Step::default(),
        );
        assert!(!f.from_cache());
        assert_eq!(f.current().unwrap().head, p3.hash);
    }
}
