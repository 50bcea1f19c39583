//! The storage role: applies patches to stored heads and answers load requests.
//!
//! A storage node keeps, per root, what its store holds (the *durable* head) and
//! what it will hold once the accepted patches are persisted (the *tentative*
//! head). The store is the truth: several storage nodes may share one, and a node
//! that was cut off from the bus may have missed what the others stored. So the
//! cache is re-validated whenever it may have fallen behind without the node
//! noticing (see [`StorageEngine::handle_connected`]), and a root is read again
//! whenever a message shows the store moved on: a `stored` notice above the cached
//! height, a patch more than one above it, a load request for a root last read as
//! unknown. No answer is ever sent from a cache that has not been re-validated
//! since the last reconnect.

mod absent;
mod answers;
pub mod presence;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use self::absent::AbsentRoots;
use self::answers::{AskedAt, Audience, Owed, Progress};
use self::presence::{Presence, StoreId};
use crate::channel::{ChannelKind, ReplyToken};
use crate::command::Command;
use crate::limits::DocBound;
use crate::message::{
    AddressedRequest, Have, LoadRequest, Message, Patch, Patches, Rejection, Snapshot, Stored,
    sign_canonical, signed_bytes,
};
use crate::signature::{Signature, SigningKey, TrustSet};
use crate::{Channels, Hash, Limits};

/// What storage holds for one root: its latest head, and the snapshot that takes
/// the root configuration there.
///
/// The seed's key layout is `latest hash -> patch from the root` plus
/// `root hash -> latest hash`; `snapshot` is that patch from the root, kept as the
/// canonical bytes of the `{"type":"snapshot",...}` message so that answering a
/// load request is a publish of stored bytes, with no re-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHead {
    /// The root hash: the key the store files this entry under.
    pub root: Hash,
    /// The latest head stored for the root (the root itself at height 0).
    pub head: Hash,
    /// The head's height.
    pub height: u64,
    /// Canonical JSON of the snapshot message for (`root`, `head`, `height`).
    pub snapshot: Bytes,
}

/// A root's head as a store holds it, without its snapshot: what a batched check
/// of many roots reads ([`StorageCommand::CheckHeads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadRef {
    /// The latest head stored for the root.
    pub head: Hash,
    /// The head's height.
    pub height: u64,
}

impl From<&StoredHead> for HeadRef {
    fn from(stored: &StoredHead) -> HeadRef {
        HeadRef {
            head: stored.head,
            height: stored.height,
        }
    }
}

/// `unsigned`, canonical bytes of a message of type `kind`, with `signer`'s
/// signature for the deployment of `channels` attached, if there is a signer
/// (`to`: the channel of an `unknown`; see [`crate::message::signed_bytes`]).
fn sign_with(
    signer: Option<&SigningKey>,
    channels: &Channels,
    kind: &str,
    unsigned: Bytes,
    to: Option<&str>,
) -> Bytes {
    match signer {
        Some(key) => sign_canonical(key, channels.namespace(), kind, &unsigned, to),
        None => unsigned,
    }
}

/// One compare-and-set a store must carry out: move `new.root` from
/// `expected_head` to `new.head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistCommit {
    /// The head the store must still hold for the commit to apply.
    pub expected_head: Hash,
    /// The head (and its snapshot) to store in its place.
    pub new: StoredHead,
    /// The patch message that leads from `expected_head` to `new.head`, exactly
    /// as this node accepted it off the bus (its `sig` included), for stores
    /// that keep each root's history: so that a later `verify` can recheck its
    /// hash and signature, and a follower that missed a few patches can be sent
    /// those instead of a whole snapshot. The storage engine always fills it;
    /// `None` (a registration, a test, a tool moving heads by hand) logs
    /// nothing. Never part of what the store decides.
    pub patch: Option<Bytes>,
}

/// How the store answered one [`PersistCommit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistOutcome {
    /// The head was `expected_head` and is now `new.head`; the old head's snapshot
    /// was dropped.
    Applied,
    /// The head already was `new.head`: another storage node (or an earlier commit
    /// in the same batch) stored it first. Nothing was written; this is success.
    AlreadyStored,
    /// The head is neither `expected_head` nor `new.head` (or the root is not
    /// registered, `current: None`). Nothing was written; this node's view of the
    /// chain is out of date and it must reload before trying again.
    Stale {
        /// What the store holds for the root, or `None` if it is not registered.
        current: Option<StoredHead>,
    },
}

/// What the storage engine asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageCommand {
    /// A bus operation, carried out in order with the others.
    Bus(Command),
    /// Read the stored head of a root; answer with [`StorageEngine::handle_loaded`].
    Load(Hash),
    /// Register a root at height 0 if absent; answer with
    /// [`StorageEngine::handle_loaded`] (the head the store holds afterwards).
    Register(StoredHead),
    /// Read the heads (not the snapshots) of these roots, in one call; answer with
    /// [`StorageEngine::handle_heads`], one entry per root in the same order.
    CheckHeads(Vec<Hash>),
    /// Carry out these commits in one transaction with one durable sync (group
    /// commit); answer with [`StorageEngine::handle_persisted`].
    Persist {
        /// The batch's number, to give back to
        /// [`StorageEngine::handle_persisted`].
        batch: u64,
        /// The compare-and-sets, in order: a later one may chain on an earlier.
        commits: Vec<PersistCommit>,
    },
    /// Stop the node: it must not go on (see [`StopReason`]).
    Stop(StopReason),
}

/// Why a storage node must stop.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Another store already serves this bus (see [`presence`]).
    ForeignStore {
        /// The store this node serves.
        ours: StoreId,
        /// The store another node announced on the bus.
        theirs: StoreId,
    },
}

/// Counters the storage engine keeps about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Patches applied (tentatively, then persisted).
    pub applied: u64,
    /// `stored` notices published.
    pub stored_notices: u64,
    /// Snapshots published, on a root's channel or a reply channel.
    pub snapshots_sent: u64,
    /// Answers (snapshots and `unknown`) sent on a requester's reply channel
    /// rather than on the root's.
    pub private_answers: u64,
    /// Load requests received on `update_requests`.
    pub load_requests: u64,
    /// Patches whose parent is not a stored head (raced losers, late duplicates).
    pub stale: u64,
    /// Patches dropped because their root is not registered in the store.
    pub unknown_root: u64,
    /// Stored snapshots signed again on reading them, because they carried
    /// another key's signature, an older protocol's, or none.
    pub resigned: u64,
    /// Ignored messages by [`Rejection::label`].
    pub ignored: BTreeMap<&'static str, u64>,
    /// Commits the store refused because another node moved the root first.
    pub persist_stale: u64,
    /// Patches lost because the store failed to persist their batch.
    pub persist_failed: u64,
    /// Cached roots whose head was checked against the store (after a reconnect,
    /// or a patch above the cached height).
    pub heads_checked: u64,
    /// Roots read again because the store held something else than the cache.
    pub reloads: u64,
    /// Messages dropped because too many were already waiting for one root's
    /// store read.
    pub queue_overflow: u64,
    /// Load requests left to the storage node that holds the answerer lease of
    /// a shared store (see [`StorageEngine::handle_answerer`]).
    pub requests_left_to_peers: u64,
    /// `hello`s heard from storage nodes of another store (a misconfiguration:
    /// see [`presence`]).
    pub foreign_stores: u64,
    /// Snapshot broadcasts put off because the root had one within the
    /// broadcast interval (see [`StorageEngine::with_broadcast_interval`]).
    pub broadcasts_deferred: u64,
    /// Requesters that named the durable head, answered with a `stored`
    /// notice instead of the snapshot (since v1.3).
    pub current_answers: u64,
    /// Requesters a few patches behind, answered with those patches instead
    /// of the snapshot (since v1.3).
    pub patches_answers: u64,
}

/// A message for a root whose head is being read from the store.
#[derive(Debug, Clone)]
enum Queued {
    /// A patch, with the message's bytes as received (what the store logs).
    Patch(Arc<Patch>, Bytes),
    /// A load request, with when it came in (what its answer must wait for).
    Request(AddressedRequest, AskedAt),
    Stored(Stored),
}

/// How many messages may wait for one root's store read. A read takes a
/// millisecond or so; anything beyond this is a flood, and whatever is dropped is
/// recovered the usual way (followers re-sync, writers see no notice).
const MAX_QUEUED: usize = 4096;

/// How many roots last read as unknown are remembered (see `absent`).
const ABSENT_CAPACITY: usize = 4096;

/// How many roots one [`StorageCommand::CheckHeads`] names.
const CHECK_BATCH: usize = 512;

/// Requesters waiting for a snapshot on a root's channel.
#[derive(Debug, Default)]
struct Broadcast {
    audience: Audience,
    /// Put off by the broadcast interval: on a shared store, what the cache
    /// holds may have aged meanwhile, so the store is read again before it goes.
    waited: bool,
}

/// The default of [`StorageEngine::with_catch_up_window`]: the default history
/// retention's (`tikaconf_store::Retention`), so that a follower behind by
/// less than what the history keeps is sent patches when they are smaller.
pub const DEFAULT_CATCH_UP_WINDOW: usize = 1000;

/// The default of [`StorageEngine::with_broadcast_interval`].
pub const DEFAULT_BROADCAST_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug)]
enum RootState {
    /// Being read from the store (or registered); messages wait here, in order.
    /// `stale`: the read was issued before the last reconnect, so its result may
    /// predate commits this node missed; it is read again when it arrives.
    /// `read`: the sequence number of the store read.
    Loading {
        queue: Vec<Queued>,
        registering: bool,
        stale: bool,
        read: u64,
    },
    /// The cached state is being compared with the store's head; messages wait,
    /// and are replayed on the cache if it matches, on a fresh read otherwise.
    Checking {
        ready: Box<ReadyRoot>,
        queue: Vec<Queued>,
        stale: bool,
        read: u64,
    },
    Ready(Box<ReadyRoot>),
}

#[derive(Debug)]
struct ReadyRoot {
    /// What the store durably holds: the only state ever sent in an answer.
    durable: StoredHead,
    /// The head after the patches accepted but not yet persisted.
    head: Hash,
    height: u64,
    doc: Value,
    /// Bounds of `doc`'s size and depth (see [`DocBound`]).
    bound: DocBound,
    /// Sequence numbers (see `StorageEngine::accepted`) of this root's commits not
    /// yet settled by the store, oldest first.
    pending: std::collections::VecDeque<u64>,
    /// Reload from the store once the in-flight batch is done.
    reload_after: bool,
    /// Sequence number of the latest store read that found this state current
    /// (the load, a head check, or a compare-and-set of ours that succeeded).
    verified_by: u64,
    /// The latest patches this node applied, oldest first, up to `head`: what a
    /// requester a few patches behind is sent instead of the snapshot (see
    /// [`StorageEngine::answer_having`]). Only those at or below the durable
    /// height are ever sent.
    recent: RecentPatches,
}

impl ReadyRoot {
    fn settled(&self) -> bool {
        self.pending.is_empty()
    }
}

/// A root's latest patches, contiguous, oldest first, within a window.
///
/// Why in memory and not read from the store's history: an answer must not
/// wait for a read, and a batch of patches is only worth sending while it is
/// smaller than the snapshot, so the patches worth keeping never take more
/// room than the document the node holds anyway (and at most
/// [`RECENT_BYTES`]). A root read from the store starts with none: its
/// followers get snapshots until it has been written again.
#[derive(Debug, Default)]
struct RecentPatches {
    patches: std::collections::VecDeque<Arc<Patch>>,
    bytes: usize,
}

/// The most bytes of patches kept per root (see [`RecentPatches`]), whatever
/// the document's size: a requester further behind on a large document gets
/// the snapshot.
const RECENT_BYTES: usize = 256 * 1024;

impl RecentPatches {
    /// Adds `patch`, the one after the last, keeping at most `window` patches
    /// of at most `max_bytes` in all.
    fn push(&mut self, patch: Arc<Patch>, window: usize, max_bytes: usize) {
        if self
            .patches
            .back()
            .is_some_and(|last| last.hash != patch.parent)
        {
            self.clear(); // not contiguous (cannot happen: the engine chains them)
        }
        self.bytes += patch.encoded.len();
        self.patches.push_back(patch);
        while self.patches.len() > window || self.bytes > max_bytes {
            let Some(old) = self.patches.pop_front() else {
                break;
            };
            self.bytes -= old.encoded.len();
        }
    }

    fn clear(&mut self) {
        self.patches.clear();
        self.bytes = 0;
    }

    /// The patches after `have` up to `height` (inclusive), if `have` is one of
    /// ours (the parent of a kept patch) and all of them are kept.
    fn after(&self, have: Have, height: u64) -> Option<Vec<Arc<Patch>>> {
        let first = self.patches.front()?;
        let from = usize::try_from(have.height.checked_sub(first.height - 1)?).ok()?;
        let to = usize::try_from(height.checked_sub(first.height - 1)?).ok()?;
        let next = self.patches.get(from)?;
        if next.parent != have.head || to <= from || to > self.patches.len() {
            return None;
        }
        Some(self.patches.range(from..to).cloned().collect())
    }
}

#[derive(Debug)]
struct InFlight {
    id: u64,
    /// The batch's sequence number among store reads: a compare-and-set that
    /// succeeds shows the store was where this node believed.
    read: u64,
    roots: Vec<Hash>,
    notices: Vec<StoredHead>,
}

/// An answer smaller than the snapshot, for one requester that named its head.
enum Cheap {
    /// It has the durable head: storage's word that it is current.
    Current(Stored),
    /// It is a few patches behind: those patches.
    Patches(Patches),
}

/// The answer for a requester that has `have`, if one smaller than the snapshot
/// tells it what it lacks: a `stored` notice if `have` is the durable head;
/// the patches from `have` to the durable head if this node still keeps them
/// all, they weigh less than the snapshot, and the message nests within the
/// limits. `None`: send the snapshot.
///
/// Only durable state is ever described, as for snapshots: patches above the
/// durable head are not sent, whatever this node has accepted.
fn answer_having(ready: &ReadyRoot, have: Have, limits: &Limits) -> Option<Cheap> {
    let durable = &ready.durable;
    if have.head == durable.head && have.height == durable.height {
        return Some(Cheap::Current(Stored {
            root: durable.root,
            head: durable.head,
            height: durable.height,
        }));
    }
    let patches = ready.recent.after(have, durable.height)?;
    if Patches::encoded_len(&patches) >= durable.snapshot.len() {
        return None;
    }
    // The patches travel two levels deeper than on their own (in the array, in
    // the message): one that nests near the limit is sent as part of the
    // snapshot instead.
    let deepest = patches
        .iter()
        .map(|p| crate::json::nesting(&p.encoded))
        .max()?;
    if deepest + 2 > limits.max_depth {
        return None;
    }
    Patches::new(durable.root, patches).map(Cheap::Patches)
}

/// The storage role. See the module documentation.
///
/// The driver feeds every message heard on `updates:*` and `update_requests` in
/// the order Redis delivered them, and calls [`StorageEngine::flush`] whenever it
/// has no further input ready: everything accepted since the last flush goes to
/// the store as one batch (group commit), and load requests that came in the
/// meantime are answered together, one snapshot per root, once the patches that
/// preceded them are durable.
///
/// Methods, of four kinds (the same as [`crate::Follower`]'s):
/// - inputs: `handle_connected`, `handle_disconnected`, `handle_message`, the
///   store's answers `handle_loaded`, `handle_heads`, `handle_persisted`, and
///   `flush` (the driver has no further input ready, or `next_timeout` passed);
/// - `next_timeout`, when `flush` is due at the latest;
/// - settings (`with_*`, `handle_answerer`) and state (`stats`, ...).
///
/// Every input appends what the driver must do to the caller's `out` buffer,
/// in order, and returns nothing: a driver may feed several inputs into one
/// buffer before it carries the commands out (which is what lets a storage
/// node read every ready message before one flush).
#[derive(Debug)]
pub struct StorageEngine {
    channels: Channels,
    limits: Limits,
    roots: HashMap<Hash, RootState>,
    absent: AbsentRoots,
    open: Vec<PersistCommit>,
    /// The heads `open` stores, kept to become `durable` once persisted.
    open_notices: Vec<StoredHead>,
    in_flight: Option<InFlight>,
    next_batch: u64,
    /// Patches accepted so far; the sequence number of the latest one.
    accepted: u64,
    /// Store reads issued so far (loads, registrations, head checks, commits); the
    /// sequence number of the latest one.
    reads: u64,
    /// Whether other storage nodes may write the store (see `with_shared_store`).
    shared_store: bool,
    /// The store this node serves, announced on `storage_nodes` (see `presence`).
    store_id: Option<StoreId>,
    /// Whether this node answers load requests (see `handle_answerer`).
    answerer: bool,
    /// Answers owed per root (see `answers`).
    answers_due: BTreeMap<Hash, Owed>,
    /// Answers that are due and need the root's channel, sent by `flush`
    /// subject to `broadcast_interval`.
    broadcasts: BTreeMap<Hash, Broadcast>,
    /// When each root's snapshot last went to its channel (entries older than
    /// the interval are pruned, so this holds only the roots of one interval).
    last_broadcast: HashMap<Hash, Instant>,
    broadcast_interval: Duration,
    /// Whether the bus was connected before: a later connect is a reconnect.
    connected_before: bool,
    /// Roots moved to `Checking` whose check is not sent yet.
    checks_to_send: Vec<Hash>,
    /// True while messages queued during a store read are replayed: they must not
    /// start another read of the same root.
    replaying: bool,
    /// Keys whose signatures patches must carry (empty: none required).
    trust: TrustSet,
    /// The key this node signs its snapshots and notices with, if any.
    signer: Option<SigningKey>,
    /// How many of each root's latest patches are kept to answer requesters
    /// behind (see [`StorageEngine::with_catch_up_window`]).
    catch_up_window: usize,
    stats: StorageStats,
}

impl StorageEngine {
    /// An engine for the deployment whose channels are `channels`, checking
    /// messages against `limits`; with no trust set, no signer, a shared store,
    /// no store id, and answering load requests. The `with_*` methods change
    /// that.
    pub fn new(channels: Channels, limits: Limits) -> StorageEngine {
        StorageEngine {
            channels,
            limits,
            roots: HashMap::new(),
            absent: AbsentRoots::new(ABSENT_CAPACITY),
            open: Vec::new(),
            open_notices: Vec::new(),
            in_flight: None,
            next_batch: 0,
            accepted: 0,
            reads: 0,
            shared_store: true,
            store_id: None,
            answerer: true,
            answers_due: BTreeMap::new(),
            broadcasts: BTreeMap::new(),
            last_broadcast: HashMap::new(),
            broadcast_interval: DEFAULT_BROADCAST_INTERVAL,
            connected_before: false,
            checks_to_send: Vec::new(),
            replaying: false,
            trust: TrustSet::default(),
            signer: None,
            catch_up_window: DEFAULT_CATCH_UP_WINDOW,
            stats: StorageStats::default(),
        }
    }

    /// Requires patches (and other storage nodes' notices) to be signed by a key
    /// of `trust`.
    pub fn with_trust(mut self, trust: TrustSet) -> Self {
        self.trust = trust;
        self
    }

    /// Signs snapshots and notices with `key`, so that followers requiring
    /// signatures accept them.
    pub fn with_signer(mut self, key: Option<SigningKey>) -> Self {
        self.signer = key;
        self
    }

    /// Whether other storage nodes may write the same store (the default: true).
    ///
    /// On a shared store this node's cache can fall behind without its noticing,
    /// so it re-reads heads after a reconnect and before every answer. A store only
    /// this node writes (one node's file) cannot move behind its back: set `false`
    /// to skip those reads.
    pub fn with_shared_store(mut self, shared: bool) -> Self {
        self.shared_store = shared;
        self
    }

    /// The shortest time between two snapshots of one root sent on its channel
    /// (default [`DEFAULT_BROADCAST_INTERVAL`]).
    ///
    /// Why: a snapshot on the root's channel is decoded by every follower of the
    /// root, so a request without a reply channel, a few bytes anyone with a
    /// follower's rights may send, would otherwise cost the whole fleet a
    /// document's parsing each. Within the interval, requesters with a reply
    /// channel are answered there and the others wait for the next broadcast,
    /// which serves them all: the fleet's cost per root is bounded by one
    /// document per interval, whatever the request rate.
    pub fn with_broadcast_interval(mut self, interval: Duration) -> Self {
        self.broadcast_interval = interval;
        self
    }

    /// Keeps each root's latest `window` patches (and never more bytes of
    /// them than its document, nor 256 KiB) to answer a requester
    /// that names a head up to `window` patches behind with those patches,
    /// when they are smaller than the snapshot. 0 keeps none: requesters
    /// behind get snapshots (a requester at the head still gets a `stored`
    /// notice). Default [`DEFAULT_CATCH_UP_WINDOW`]; a storage node sets it
    /// to its store's history retention, so that the window is what the
    /// deployment says it keeps.
    pub fn with_catch_up_window(mut self, window: usize) -> Self {
        self.catch_up_window = window;
        self
    }

    /// The identity of the store this node serves: announced on every connect,
    /// so that a node of another store on the same bus stops (see [`presence`]).
    /// `None` (the default) neither announces nor checks.
    pub fn with_store_id(mut self, id: Option<StoreId>) -> Self {
        self.store_id = id;
        self
    }

    /// Whether this node answers load requests (the default: it does).
    ///
    /// Several storage nodes on one shared store all hear every request; if each
    /// answered, every load would cost the bus one snapshot per node. So the
    /// driver holds a lease in the store, and only its holder answers: the others
    /// still apply, persist and acknowledge every patch, and take over when the
    /// lease passes to them (requesters retry meanwhile). Answers owed when the
    /// lease is lost are dropped: the requesters' retries reach the new holder.
    pub fn handle_answerer(&mut self, answerer: bool) {
        self.answerer = answerer;
        if !answerer {
            self.answers_due.clear();
        }
    }

    /// Whether this node answers load requests (see
    /// [`StorageEngine::handle_answerer`]).
    pub fn is_answerer(&self) -> bool {
        self.answerer
    }

    fn next_read(&mut self) -> u64 {
        self.reads += 1;
        self.reads
    }

    /// `unsigned` canonical bytes as this node publishes them: with its signature.
    fn signed(&self, kind: &str, unsigned: Bytes) -> Bytes {
        sign_with(self.signer.as_ref(), &self.channels, kind, unsigned, None)
    }

    /// The engine's counters.
    pub fn stats(&self) -> &StorageStats {
        &self.stats
    }

    /// How many roots are cached as known to the store, and how many as unknown.
    pub fn cached_roots(&self) -> (usize, usize) {
        (self.roots.len(), self.absent.len())
    }

    /// The bus is (again) connected: listen to everything, on one connection, so
    /// that this node sees Redis's single order of messages.
    ///
    /// On a reconnect the cache may be behind: while this node was away, another
    /// storage node on the same store may have committed patches it never heard.
    /// So every cached root is checked against the store before it serves another
    /// answer (heads only, many roots per store read), reads still in flight
    /// are repeated, and roots read as unknown are forgotten. Roots with commits of
    /// their own not yet sent need no check: the compare-and-set is one.
    pub fn handle_connected(&mut self, out: &mut Vec<StorageCommand>) {
        out.extend([
            StorageCommand::Bus(Command::PSubscribe(self.channels.updates_pattern())),
            StorageCommand::Bus(Command::Subscribe(self.channels.update_requests())),
            StorageCommand::Bus(Command::Subscribe(self.channels.storage_nodes())),
        ]);
        if let Some(id) = &self.store_id {
            out.push(StorageCommand::Bus(Command::Publish {
                channel: self.channels.storage_nodes(),
                payload: Presence::Hello(id.clone()).encode(),
            }));
        }
        let reconnect = std::mem::replace(&mut self.connected_before, true);
        if !reconnect || !self.shared_store {
            return;
        }
        self.absent.clear();
        // Broadcasts still waiting for their interval were due from a cache not
        // checked since the reconnect: they wait for the check, like a request
        // that came in now.
        let now_asked = AskedAt {
            accepted: self.accepted,
            read: self.reads,
        };
        for (root, waiting) in std::mem::take(&mut self.broadcasts) {
            self.answers_due
                .entry(root)
                .or_default()
                .push(now_asked, waiting.audience);
        }
        let in_flight: Vec<Hash> = self
            .in_flight
            .as_ref()
            .map_or(Vec::new(), |f| f.roots.clone());
        let mut check = Vec::new();
        for (root, state) in self.roots.iter_mut() {
            match state {
                RootState::Ready(ready) if in_flight.contains(root) => {
                    // Its batch may have run before what we missed: read it again
                    // once the batch settles.
                    ready.reload_after = true;
                }
                // Its open commits' compare-and-set checks the head.
                RootState::Ready(ready) if !ready.settled() => {}
                RootState::Ready(_) => check.push(*root),
                RootState::Loading { stale, .. } | RootState::Checking { stale, .. } => {
                    *stale = true;
                }
            }
        }
        check.sort_unstable();
        for root in check {
            self.begin_check(root, Vec::new());
        }
        self.push_checks(out);
    }

    /// Moves a settled `Ready` root to `Checking`; its check goes out with the
    /// next [`Self::push_checks`].
    fn begin_check(&mut self, root: Hash, queue: Vec<Queued>) {
        let Some(RootState::Ready(ready)) = self.roots.remove(&root) else {
            return;
        };
        self.roots.insert(
            root,
            RootState::Checking {
                ready,
                queue,
                stale: false,
                read: 0, // set when the check is sent
            },
        );
        self.checks_to_send.push(root);
    }

    /// Sends the head checks begun since the last call, in batches of
    /// [`CHECK_BATCH`], each one store read.
    fn push_checks(&mut self, out: &mut Vec<StorageCommand>) {
        let roots = std::mem::take(&mut self.checks_to_send);
        self.stats.heads_checked += roots.len() as u64;
        for chunk in roots.chunks(CHECK_BATCH) {
            let seq = self.next_read();
            for root in chunk {
                if let Some(RootState::Checking { read, .. }) = self.roots.get_mut(root) {
                    *read = seq;
                }
            }
            out.push(StorageCommand::CheckHeads(chunk.to_vec()));
        }
    }

    /// The bus lost its connection. Nothing changes until it is back: what this
    /// node may have missed meanwhile is checked on [`Self::handle_connected`].
    pub fn handle_disconnected(&mut self) {}

    /// A message heard on `channel`. Problems are counted and returned for logging.
    pub fn handle_message(
        &mut self,
        channel: &[u8],
        payload: &[u8],
        out: &mut Vec<StorageCommand>,
    ) -> Result<(), Rejection> {
        let result = self.on_message(channel, payload, out);
        if let Err(reason) = &result {
            *self.stats.ignored.entry(reason.label()).or_default() += 1;
        }
        result
    }

    fn on_message(
        &mut self,
        channel: &[u8],
        payload: &[u8],
        out: &mut Vec<StorageCommand>,
    ) -> Result<(), Rejection> {
        match self.channels.classify(channel) {
            None => Err(Rejection::ForeignChannel),
            Some(ChannelKind::StorageNodes) => {
                let presence = Presence::decode(payload, &self.limits)?;
                self.on_presence(presence, out)
            }
            Some(ChannelKind::UpdateRequests) => {
                let request = AddressedRequest::decode(payload, &self.limits)?;
                self.stats.load_requests += 1;
                if !self.answerer {
                    self.stats.requests_left_to_peers += 1;
                    return Ok(());
                }
                let asked = AskedAt {
                    accepted: self.accepted,
                    read: self.reads,
                };
                let root = request.request.root();
                self.dispatch(root, Queued::Request(request, asked), out);
                Ok(())
            }
            // Storage does not listen to reply channels; a driver that hears one
            // anyway has nothing to do with it.
            Some(ChannelKind::Replies) => Err(Rejection::WrongChannelKind),
            // Snapshots are answers, storage's own among them (it hears everything it
            // publishes): they need nothing from storage, and can be a megabyte
            // each, so they are recognized by their canonical ending ("type" sorts
            // last) and never parsed. Anything else ending so is ignored too.
            Some(ChannelKind::Updates(_)) if payload.ends_with(br#","type":"snapshot"}"#) => Ok(()),
            Some(ChannelKind::Updates(on)) => match self.decode_verified(channel, payload)? {
                Message::Patch(patch) => {
                    if patch.parent != on {
                        return Err(Rejection::ChannelMismatch {
                            channel: on,
                            in_message: patch.parent,
                        });
                    }
                    // The bytes as received, for the store's history: the
                    // canonical encoding itself (shared, no copy) when that is
                    // what came, else a copy (a signed patch carries its `sig`).
                    let received = if payload == &patch.encoded[..] {
                        patch.encoded.clone()
                    } else {
                        Bytes::copy_from_slice(payload)
                    };
                    self.dispatch(patch.root, Queued::Patch(patch, received), out);
                    Ok(())
                }
                Message::Stored(stored) if on == stored.root => {
                    self.dispatch(stored.root, Queued::Stored(stored), out);
                    Ok(())
                }
                // Answers (ours and other storage nodes') need nothing from us.
                Message::Snapshot(s) if on == s.root => Ok(()),
                Message::Unknown { root } if on == root => Ok(()),
                _ => Err(Rejection::WrongChannelKind),
            },
        }
    }

    /// Another storage node said which store it serves (see [`presence`]).
    fn on_presence(
        &mut self,
        presence: Presence,
        out: &mut Vec<StorageCommand>,
    ) -> Result<(), Rejection> {
        let Some(ours) = self.store_id.clone() else {
            return Ok(());
        };
        let theirs = presence.store().clone();
        if theirs == ours {
            return Ok(());
        }
        match presence {
            // A node of another store joined: tell it this bus is taken.
            Presence::Hello(_) => {
                self.stats.foreign_stores += 1;
                out.push(StorageCommand::Bus(Command::Publish {
                    channel: self.channels.storage_nodes(),
                    payload: Presence::Here(ours.clone()).encode(),
                }));
                Err(Rejection::ForeignStore { ours, theirs })
            }
            // We joined a bus another store serves: stop.
            Presence::Here(_) => {
                self.stats.foreign_stores += 1;
                out.push(StorageCommand::Stop(StopReason::ForeignStore {
                    ours,
                    theirs,
                }));
                Ok(())
            }
        }
    }

    /// Decodes a message on an `updates:` channel; with a trust set, patches and
    /// `stored` notices must carry a trusted signature (answers are ignored anyway).
    fn decode_verified(&self, channel: &[u8], payload: &[u8]) -> Result<Message, Rejection> {
        let (message, signature) = Message::decode_signed(payload, &self.limits)?;
        if matches!(message, Message::Patch(_) | Message::Stored(_)) {
            let namespace = self.channels.namespace();
            message.verify(signature.as_ref(), &self.trust, namespace, channel)?;
        }
        Ok(message)
    }

    fn dispatch(&mut self, root: Hash, item: Queued, out: &mut Vec<StorageCommand>) {
        match self.roots.get_mut(&root) {
            None => {
                if self.absent.contains(&root) {
                    match item {
                        Queued::Patch(..) => {
                            self.stats.unknown_root += 1;
                            return;
                        }
                        // Registered by another storage node: the next message
                        // reads it.
                        Queued::Stored(_) => {
                            self.absent.remove(&root);
                            return;
                        }
                        // Perhaps registered since: read it again.
                        Queued::Request(..) => {
                            self.absent.remove(&root);
                        }
                    }
                } else if let Queued::Stored(_) = item {
                    return; // about a root we do not hold in memory: nothing to refresh
                }
                self.start_load(root, vec![item], out);
            }
            Some(RootState::Loading { queue, .. }) | Some(RootState::Checking { queue, .. }) => {
                if queue.len() >= MAX_QUEUED {
                    self.stats.queue_overflow += 1;
                } else {
                    queue.push(item);
                }
            }
            Some(RootState::Ready(_)) => self.on_ready(root, item, out),
        }
    }

    fn start_load(&mut self, root: Hash, queue: Vec<Queued>, out: &mut Vec<StorageCommand>) {
        let read = self.next_read();
        self.roots.insert(
            root,
            RootState::Loading {
                queue,
                registering: false,
                stale: false,
                read,
            },
        );
        out.push(StorageCommand::Load(root));
    }

    /// A message for `root`, which the store was just read not to hold.
    fn on_absent(&mut self, root: Hash, item: Queued, out: &mut Vec<StorageCommand>) {
        match item {
            Queued::Request(
                AddressedRequest {
                    request: LoadRequest::Register(config),
                    reply_to,
                    ..
                },
                asked,
            ) => {
                let snapshot = Snapshot::of_root(&config);
                // Whatever head the requester named, it cannot be this new root's.
                self.owe_answer(root, reply_to, None, asked);
                let head = StoredHead {
                    root,
                    head: root,
                    height: 0,
                    snapshot: self.signed("snapshot", snapshot.encoded),
                };
                let read = self.next_read();
                self.roots.insert(
                    root,
                    RootState::Loading {
                        queue: Vec::new(),
                        registering: true,
                        stale: false,
                        read,
                    },
                );
                out.push(StorageCommand::Register(head));
            }
            Queued::Request(
                AddressedRequest {
                    request: LoadRequest::ByHash(_),
                    reply_to,
                    ..
                },
                _,
            ) => {
                // Signed for the channel it answers on (see `signed_bytes`). A
                // few bytes, and only requesters listen on an unknown root's
                // channel: not subject to the broadcast interval.
                let to = match &reply_to {
                    Some(token) => {
                        self.stats.private_answers += 1;
                        self.channels.replies(token)
                    }
                    None => self.channels.updates(&root),
                };
                let unknown = crate::message::encode_unknown(root);
                let payload = sign_with(
                    self.signer.as_ref(),
                    &self.channels,
                    "unknown",
                    unknown,
                    Some(&to),
                );
                out.push(StorageCommand::Bus(Command::Publish {
                    channel: to,
                    payload,
                }));
            }
            Queued::Patch(..) => self.stats.unknown_root += 1,
            // Another storage node registered it after our read: read it again.
            Queued::Stored(_) => self.start_load(root, Vec::new(), out),
        }
    }

    fn on_ready(&mut self, root: Hash, item: Queued, out: &mut Vec<StorageCommand>) {
        let in_flight = self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.roots.contains(&root));
        let replaying = self.replaying;
        let Some(RootState::Ready(ready)) = self.roots.get_mut(&root) else {
            return;
        };
        match item {
            Queued::Request(AddressedRequest { reply_to, have, .. }, asked) => {
                self.owe_answer(root, reply_to, have, asked)
            }
            Queued::Stored(stored) => {
                if stored.height > ready.height {
                    // Another storage node is ahead of us on a shared store.
                    if in_flight || !ready.settled() {
                        ready.reload_after = true;
                    } else {
                        self.reload(root, out);
                    }
                }
            }
            Queued::Patch(patch, received) => {
                if patch.parent != ready.head {
                    // A patch more than one above our head: the store may have
                    // moved on without us (a peer on a shared store committed what
                    // we missed). Compare heads before calling it stale; our own
                    // pending compare-and-set will tell if we have commits open.
                    let above = patch.height > ready.height.saturating_add(1);
                    if above && self.shared_store && !replaying {
                        if in_flight || !ready.settled() {
                            ready.reload_after = true;
                        } else {
                            self.begin_check(root, vec![Queued::Patch(patch, received)]);
                            self.push_checks(out);
                            return;
                        }
                    }
                    self.stats.stale += 1;
                    return;
                }
                let applied = patch.apply_with_bound(
                    root,
                    ready.height,
                    &ready.doc,
                    ready.bound,
                    &self.limits,
                );
                let (doc, bound) = match applied {
                    Ok(pair) => pair,
                    Err(reason) => {
                        *self.stats.ignored.entry(reason.label()).or_default() += 1;
                        return;
                    }
                };
                let snapshot = Snapshot::new(root, patch.hash, patch.height, doc);
                let new = StoredHead {
                    root,
                    head: patch.hash,
                    height: patch.height,
                    snapshot: sign_with(
                        self.signer.as_ref(),
                        &self.channels,
                        "snapshot",
                        snapshot.encoded,
                        None,
                    ),
                };
                self.open_notices.push(new.clone());
                self.open.push(PersistCommit {
                    expected_head: ready.head,
                    new,
                    patch: Some(received),
                });
                self.accepted += 1;
                ready.head = patch.hash;
                ready.height = patch.height;
                ready.doc = snapshot.config;
                ready.bound = bound;
                // Patches are kept while they weigh less than the document
                // (and its envelope): a batch heavier than the snapshot is
                // never sent.
                let max_bytes = RECENT_BYTES.min(bound.bytes + 256);
                ready.recent.push(patch, self.catch_up_window, max_bytes);
                ready.pending.push_back(self.accepted);
                self.stats.applied += 1;
            }
        }
    }

    /// The store answered a [`StorageCommand::Load`] or [`StorageCommand::Register`].
    /// On an error the root is forgotten; requesters will ask again.
    pub fn handle_loaded(
        &mut self,
        root: Hash,
        result: Result<Option<StoredHead>, String>,
        out: &mut Vec<StorageCommand>,
    ) {
        let Some(RootState::Loading {
            queue,
            registering,
            stale,
            read,
        }) = self.roots.remove(&root)
        else {
            return;
        };
        if stale && result.is_ok() {
            // Read before the last reconnect: possibly older than what we missed.
            self.start_load(root, queue, out);
            return;
        }
        match result {
            Ok(Some(head)) => {
                let Some(ready) = self.ready_from(head, read) else {
                    self.answers_due.remove(&root);
                    return;
                };
                if registering && ready.height == 0 {
                    // Tell peers on a shared store, which may have read this root
                    // as unknown and would otherwise drop its patches.
                    self.publish_stored(root, root, 0, out);
                }
                self.roots.insert(root, RootState::Ready(Box::new(ready)));
                self.replay(root, queue, out);
            }
            Ok(None) => {
                self.replaying = true;
                for item in queue {
                    if self.roots.contains_key(&root) {
                        self.dispatch(root, item, out);
                    } else {
                        self.on_absent(root, item, out);
                    }
                }
                self.replaying = false;
                if !self.roots.contains_key(&root) {
                    self.absent.insert(root);
                    self.answers_due.remove(&root);
                }
            }
            Err(_) => {
                self.answers_due.remove(&root);
            }
        }
        self.flush_answers(out);
    }

    /// The store answered a [`StorageCommand::CheckHeads`]: `heads[i]` is the head
    /// of `roots[i]`. A root whose cache matches goes on from it; any other is read
    /// again. On an error every root checked is read again.
    pub fn handle_heads(
        &mut self,
        roots: Vec<Hash>,
        result: Result<Vec<Option<HeadRef>>, String>,
        out: &mut Vec<StorageCommand>,
    ) {
        let heads = match result {
            Ok(heads) if heads.len() == roots.len() => heads.into_iter().map(Some).collect(),
            _ => vec![None; roots.len()],
        };
        let mut again = Vec::new();
        for (root, head) in roots.into_iter().zip(heads) {
            let Some(RootState::Checking {
                mut ready,
                queue,
                stale,
                read,
            }) = self.roots.remove(&root)
            else {
                continue;
            };
            if stale {
                // Sent before the last reconnect: check again.
                self.roots.insert(root, RootState::Ready(ready));
                again.push((root, queue));
                continue;
            }
            if head == Some(Some(HeadRef::from(&ready.durable))) {
                ready.verified_by = read;
                self.roots.insert(root, RootState::Ready(ready));
                self.replay(root, queue, out);
            } else {
                self.stats.reloads += 1;
                self.start_load(root, queue, out);
            }
        }
        for (root, queue) in again {
            self.begin_check(root, queue);
        }
        self.push_checks(out);
        self.flush_answers(out);
    }

    /// Handles the messages that waited for a store read of `root`, in order.
    fn replay(&mut self, root: Hash, queue: Vec<Queued>, out: &mut Vec<StorageCommand>) {
        self.replaying = true;
        for item in queue {
            self.dispatch(root, item, out);
        }
        self.replaying = false;
    }

    fn ready_from(&mut self, head: StoredHead, read: u64) -> Option<ReadyRoot> {
        let relaxed = Limits {
            max_message_bytes: usize::MAX,
            max_depth: Limits::MAX_DEPTH_CEILING,
        };
        let Ok((Message::Snapshot(snapshot), signature)) =
            Message::decode_signed(&head.snapshot, &relaxed)
        else {
            return None;
        };
        let head = self.resigned(head, &snapshot, signature.as_ref());
        let bound = snapshot.config_bound();
        Some(ReadyRoot {
            head: head.head,
            height: head.height,
            // Decoded just above, so ours alone: the document moves, uncopied.
            doc: Arc::unwrap_or_clone(snapshot).config,
            bound,
            durable: head,
            pending: std::collections::VecDeque::new(),
            reload_after: false,
            verified_by: read,
            recent: RecentPatches::default(),
        })
    }

    /// `stored` as this node answers with it: as the store holds it when it carries
    /// this node's signature, made as this protocol version signs (or when the
    /// node signs nothing), else signed again with the node's key.
    ///
    /// Why: a snapshot keeps the signature it was stored with, by whichever
    /// storage node, key and protocol version made it. After a storage key is
    /// rotated or revoked, or signatures are switched on, or the deployment
    /// moves to v1.2's signed bytes, followers would reject every root not
    /// written since. The store is this node's own trusted state, so vouching for
    /// what it holds is what a storage signature means. Done once per read of the
    /// root (not per answer), and never written back: the next commit of the root
    /// replaces the stored snapshot with one signed by the current key anyway,
    /// a read stays a read, and two nodes sharing a store with different keys do
    /// not rewrite each other's snapshots.
    fn resigned(
        &mut self,
        mut stored: StoredHead,
        snapshot: &Snapshot,
        signature: Option<&Signature>,
    ) -> StoredHead {
        let Some(key) = &self.signer else {
            return stored;
        };
        let namespace = self.channels.namespace();
        let current = signature.is_some_and(|sig| {
            sig.key == key.public_key()
                && sig.verifies_bytes(&signed_bytes(
                    namespace,
                    "snapshot",
                    &Hash::of_canonical_bytes(&snapshot.encoded),
                    None,
                ))
        });
        if !current {
            stored.snapshot = sign_canonical(key, namespace, "snapshot", &snapshot.encoded, None);
            self.stats.resigned += 1;
        }
        stored
    }

    /// Called by the driver when it has no further input ready, and at
    /// [`Self::next_timeout`]: starts the next batch if none is in flight, and
    /// sends the answers that are due.
    pub fn flush(&mut self, now: Instant, out: &mut Vec<StorageCommand>) {
        self.begin_batch(out);
        self.flush_answers(out);
        self.send_broadcasts(now, out);
    }

    /// Sends what was accepted since the last batch to the store as one batch,
    /// unless a batch is in flight (group commit).
    fn begin_batch(&mut self, out: &mut Vec<StorageCommand>) {
        if self.in_flight.is_none() && !self.open.is_empty() {
            let id = self.next_batch;
            self.next_batch += 1;
            let read = self.next_read();
            let commits = std::mem::take(&mut self.open);
            let notices = std::mem::take(&mut self.open_notices);
            let mut roots: Vec<Hash> = commits.iter().map(|c| c.new.root).collect();
            roots.sort_unstable();
            roots.dedup();
            self.in_flight = Some(InFlight {
                id,
                read,
                roots,
                notices,
            });
            out.push(StorageCommand::Persist { batch: id, commits });
        }
    }

    /// The store finished batch `batch`.
    pub fn handle_persisted(
        &mut self,
        batch: u64,
        result: Result<Vec<PersistOutcome>, String>,
        out: &mut Vec<StorageCommand>,
    ) {
        let Some(flight) = self.in_flight.take_if(|f| f.id == batch) else {
            return;
        };
        let outcomes = match result {
            Ok(outcomes) if outcomes.len() == flight.notices.len() => outcomes,
            _ => {
                // Nothing of the batch is known to be stored: go back to what is.
                self.stats.persist_failed += flight.notices.len() as u64;
                for root in &flight.roots {
                    self.reload(*root, out);
                }
                self.begin_batch(out);
                self.flush_answers(out);
                return;
            }
        };
        let mut stale_roots = Vec::new();
        for (notice, outcome) in flight.notices.iter().zip(outcomes) {
            if stale_roots.contains(&notice.root) {
                continue;
            }
            let Some(RootState::Ready(ready)) = self.roots.get_mut(&notice.root) else {
                continue;
            };
            ready.pending.pop_front();
            match outcome {
                PersistOutcome::Applied | PersistOutcome::AlreadyStored => {
                    ready.durable = notice.clone();
                    ready.verified_by = ready.verified_by.max(flight.read);
                    self.publish_stored(notice.root, notice.head, notice.height, out);
                }
                PersistOutcome::Stale { .. } => {
                    self.stats.persist_stale += 1;
                    stale_roots.push(notice.root);
                }
            }
        }
        for root in flight.roots {
            let reload = stale_roots.contains(&root)
                || matches!(self.roots.get(&root), Some(RootState::Ready(r)) if r.reload_after);
            if reload {
                self.reload(root, out);
            }
        }
        self.begin_batch(out);
        self.flush_answers(out);
    }

    fn publish_stored(
        &mut self,
        root: Hash,
        head: Hash,
        height: u64,
        out: &mut Vec<StorageCommand>,
    ) {
        let stored = Stored { root, head, height };
        self.stats.stored_notices += 1;
        out.push(StorageCommand::Bus(Command::Publish {
            channel: self.channels.updates(&root),
            payload: self.signed("stored", stored.encode()),
        }));
    }

    /// Forgets what this node believed about `root` and reads it from the store.
    fn reload(&mut self, root: Hash, out: &mut Vec<StorageCommand>) {
        let before = self.open.len();
        self.open.retain(|c| c.new.root != root);
        self.open_notices.retain(|n| n.root != root);
        self.stats.persist_failed += (before - self.open.len()) as u64;
        self.stats.reloads += 1;
        self.start_load(root, Vec::new(), out);
    }

    /// Records that a requester (`reply_to`, or the root channel's listeners)
    /// waits for `root`'s snapshot, asked at `asked` (see `answers`).
    fn owe_answer(
        &mut self,
        root: Hash,
        reply_to: Option<ReplyToken>,
        have: Option<Have>,
        asked: AskedAt,
    ) {
        self.answers_due
            .entry(root)
            .or_default()
            .push(asked, Audience::of(reply_to, have));
    }

    /// Sends every answer that is due (see `answers`): those for a single
    /// requester with a reply channel at once, the others to
    /// [`Self::send_broadcasts`]. On a shared store, a root whose answers wait
    /// only for a read of the store after their request gets a head check.
    fn flush_answers(&mut self, out: &mut Vec<StorageCommand>) {
        let shared = self.shared_store;
        let in_flight: &[Hash] = self.in_flight.as_ref().map_or(&[], |f| &f.roots);
        let mut private = Vec::new();
        let mut cheap = Vec::new();
        let mut check = Vec::new();
        let broadcasts = &mut self.broadcasts;
        self.answers_due
            .retain(|root, owed| match self.roots.get(root) {
                Some(RootState::Ready(ready)) => {
                    let progress = Progress {
                        oldest_unsettled: ready.pending.front().copied(),
                        verified_by: if shared { ready.verified_by } else { u64::MAX },
                    };
                    if let Some(mut audience) = owed.take_due(progress) {
                        for (token, have) in std::mem::take(&mut audience.having) {
                            match answer_having(ready, have, &self.limits) {
                                Some(answer) => cheap.push((token, answer)),
                                None => audience.add_reply(token),
                            }
                        }
                        if audience.is_empty() {
                            // Everyone got an answer of their own.
                        } else {
                            match audience.single() {
                                Some(token) => {
                                    private.push((token.clone(), ready.durable.snapshot.clone()))
                                }
                                None => {
                                    let waiting = broadcasts.entry(*root).or_default();
                                    waiting.audience =
                                        std::mem::take(&mut waiting.audience).join(audience);
                                }
                            }
                        }
                    }
                    // Settled, but not read since the oldest request came in: read.
                    // (With commits open or in flight, their outcome will tell.)
                    let unverified =
                        shared && owed.oldest().is_some_and(|a| a.read >= ready.verified_by);
                    if unverified && ready.settled() && !in_flight.contains(root) {
                        check.push(*root);
                    }
                    !owed.is_empty()
                }
                Some(RootState::Loading { .. }) | Some(RootState::Checking { .. }) => true,
                None => false,
            });
        for (token, snapshot) in private {
            self.send_private(&token, snapshot, out);
        }
        for (token, answer) in cheap {
            let (kind, unsigned) = match answer {
                Cheap::Current(stored) => {
                    self.stats.current_answers += 1;
                    ("stored", stored.encode())
                }
                Cheap::Patches(patches) => {
                    self.stats.patches_answers += 1;
                    ("patches", patches.encoded)
                }
            };
            self.stats.private_answers += 1;
            out.push(StorageCommand::Bus(Command::Publish {
                channel: self.channels.replies(&token),
                payload: self.signed(kind, unsigned),
            }));
        }
        if !check.is_empty() {
            for root in check {
                self.begin_check(root, Vec::new());
            }
            self.push_checks(out);
        }
    }

    /// Sends the due answers that need a root's channel: one snapshot per root
    /// when its last went out at least the broadcast interval ago; otherwise
    /// the requesters with a reply channel get theirs there now, and the rest
    /// wait until [`Self::next_timeout`].
    fn send_broadcasts(&mut self, now: Instant, out: &mut Vec<StorageCommand>) {
        let interval = self.broadcast_interval;
        if self.last_broadcast.len() > 1024 {
            self.last_broadcast
                .retain(|_, sent| now.saturating_duration_since(*sent) < interval);
        }
        let waiting = std::mem::take(&mut self.broadcasts);
        let mut recheck = false;
        for (root, Broadcast { audience, waited }) in waiting {
            let Some(RootState::Ready(ready)) = self.roots.get(&root) else {
                // Being read or checked: handle_connected put its requesters
                // back among the owed answers, or the root is gone.
                continue;
            };
            let snapshot = ready.durable.snapshot.clone();
            let allowed = self
                .last_broadcast
                .get(&root)
                .is_none_or(|sent| now.saturating_duration_since(*sent) >= interval);
            if allowed && waited && self.shared_store {
                // Read the store again (a head check), then send at once.
                let asked = AskedAt {
                    accepted: self.accepted,
                    read: self.reads,
                };
                self.answers_due
                    .entry(root)
                    .or_default()
                    .push(asked, audience);
                recheck = true;
                continue;
            }
            if allowed {
                self.last_broadcast.insert(root, now);
                self.stats.snapshots_sent += 1;
                out.push(StorageCommand::Bus(Command::Publish {
                    channel: self.channels.updates(&root),
                    payload: snapshot,
                }));
                continue;
            }
            self.stats.broadcasts_deferred += 1;
            for token in &audience.replies {
                self.send_private(token, snapshot.clone(), out);
            }
            if audience.everyone {
                let audience = Audience {
                    everyone: true,
                    ..Audience::default()
                };
                self.broadcasts.insert(
                    root,
                    Broadcast {
                        audience,
                        waited: true,
                    },
                );
            }
        }
        if recheck {
            self.flush_answers(out);
        }
    }

    fn send_private(&mut self, token: &ReplyToken, snapshot: Bytes, out: &mut Vec<StorageCommand>) {
        self.stats.snapshots_sent += 1;
        self.stats.private_answers += 1;
        out.push(StorageCommand::Bus(Command::Publish {
            channel: self.channels.replies(token),
            payload: snapshot,
        }));
    }

    /// When [`Self::flush`] must be called again although no input came: the
    /// end of the broadcast interval of a root whose requesters wait for it.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.broadcasts
            .keys()
            .filter_map(|root| self.last_broadcast.get(root))
            .map(|sent| *sent + self.broadcast_interval)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::RootConfig;
    use crate::storage::presence::{Presence, StoreId};

    fn publishes(out: &[StorageCommand]) -> Vec<(String, Bytes)> {
        out.iter()
            .filter_map(|c| match c {
                StorageCommand::Bus(Command::Publish { channel, payload }) => {
                    Some((channel.clone(), payload.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// A clock for flushes a second apart, so that no test but the broadcast
    /// interval's own meets the interval.
    fn later() -> Instant {
        use std::cell::Cell;
        thread_local! {
            static CLOCK: Cell<Option<Instant>> = const { Cell::new(None) };
        }
        CLOCK.with(|clock| {
            let next = clock
                .get()
                .map_or_else(Instant::now, |t| t + Duration::from_secs(1));
            clock.set(Some(next));
            next
        })
    }

    /// An engine over a store only it writes, holding `root` at height 0.
    fn with_root() -> (StorageEngine, RootConfig) {
        with_root_on(false)
    }

    /// An engine holding `root` at height 0, on a store shared with other nodes
    /// (`shared`) or its own.
    fn with_root_on(shared: bool) -> (StorageEngine, RootConfig) {
        let root = RootConfig::twitch("#store").unwrap();
        let mut e =
            StorageEngine::new(Channels::new(None), Limits::default()).with_shared_store(shared);
        let mut out = Vec::new();
        e.handle_message(b"update_requests", &root.to_canonical(), &mut out)
            .unwrap();
        assert_eq!(out, vec![StorageCommand::Load(root.hash())]);
        out.clear();
        e.handle_loaded(root.hash(), Ok(None), &mut out);
        let [StorageCommand::Register(head)] = &out[..] else {
            panic!("expected a registration, got {out:?}");
        };
        let head = head.clone();
        out.clear();
        e.handle_loaded(root.hash(), Ok(Some(head)), &mut out);
        e.flush(later(), &mut out);
        // The registration is announced to peers (a `stored` notice at height 0),
        // and the registering request is answered with the height-0 snapshot.
        let sent = publishes(&out);
        let channel = Channels::new(None).updates(&root.hash());
        let notice = Stored {
            root: root.hash(),
            head: root.hash(),
            height: 0,
        };
        assert_eq!(
            sent,
            vec![
                (channel.clone(), notice.encode()),
                (channel, Snapshot::of_root(&root).encoded)
            ]
        );
        (e, root)
    }

    #[test]
    fn patches_go_to_the_store_in_one_batch_then_get_their_notices() {
        let (mut e, root) = with_root();
        let chan = |h: &Hash| Channels::new(None).updates(h);
        let p1 = Patch::build(
            root.hash(),
            root.hash(),
            0,
            json!([{"op":"add","path":"/a","value":1}]),
            None,
        )
        .unwrap();
        let p2 = Patch::build(
            root.hash(),
            p1.hash,
            1,
            json!([{"op":"add","path":"/b","value":2}]),
            None,
        )
        .unwrap();
        let mut out = Vec::new();
        e.handle_message(chan(&root.hash()).as_bytes(), &p1.encoded, &mut out)
            .unwrap();
        e.handle_message(chan(&p1.hash).as_bytes(), &p2.encoded, &mut out)
            .unwrap();
        // A request arriving after the patches waits until they are durable.
        e.handle_message(
            b"update_requests",
            root.hash().to_hex().as_bytes(),
            &mut out,
        )
        .unwrap();
        e.handle_message(
            b"update_requests",
            root.hash().to_hex().as_bytes(),
            &mut out,
        )
        .unwrap();
        e.flush(later(), &mut out);
        let [StorageCommand::Persist { batch, commits }] = &out[..] else {
            panic!("expected one batch, got {out:?}");
        };
        assert_eq!(commits.len(), 2);
        assert_eq!(commits[1].expected_head, p1.hash);
        // Each carries its patch as received, for the store's history.
        assert_eq!(commits[0].patch.as_ref(), Some(&p1.encoded));
        assert_eq!(commits[1].patch.as_ref(), Some(&p2.encoded));
        let batch = *batch;
        out.clear();
        e.handle_persisted(
            batch,
            Ok(vec![PersistOutcome::Applied, PersistOutcome::Applied]),
            &mut out,
        );
        e.flush(later(), &mut out);
        let sent = publishes(&out);
        let stored = |p: &Patch| {
            Stored {
                root: root.hash(),
                head: p.hash,
                height: p.height,
            }
            .encode()
        };
        assert_eq!(sent[0], (chan(&root.hash()), stored(&p1)));
        assert_eq!(sent[1], (chan(&root.hash()), stored(&p2)));
        // Two requests, one answer, after the notices, from durable state.
        assert_eq!(sent.len(), 3);
        let expected = Snapshot::new(
            root.hash(),
            p2.hash,
            2,
            json!({
                "connection": root.value()["connection"], "a": 1, "b": 2
            }),
        );
        assert_eq!(sent[2].1, expected.encoded);
    }

    #[test]
    fn an_answer_goes_to_its_one_requester_or_to_the_root_channel() {
        let (mut e, root) = with_root();
        let channels = Channels::new(None);
        let (a, b) = (ReplyToken::new("a").unwrap(), ReplyToken::new("b").unwrap());
        let by_hash = LoadRequest::ByHash(root.hash());
        let register = LoadRequest::Register(root.clone());
        // The requests due at one flush, and the channel their one answer goes to.
        type Case<'a> = (Vec<(&'a LoadRequest, Option<&'a ReplyToken>)>, String);
        let cases: [Case; 5] = [
            (vec![(&by_hash, Some(&a))], channels.replies(&a)),
            // One client asking twice (by hash, then by configuration) is one requester.
            (
                vec![(&by_hash, Some(&a)), (&register, Some(&a))],
                channels.replies(&a),
            ),
            (
                vec![(&by_hash, Some(&a)), (&by_hash, Some(&b))],
                channels.updates(&root.hash()),
            ),
            (
                vec![(&by_hash, Some(&a)), (&by_hash, None)],
                channels.updates(&root.hash()),
            ),
            (
                vec![(&by_hash, None), (&by_hash, Some(&a))],
                channels.updates(&root.hash()),
            ),
        ];
        for (requests, expected) in cases {
            let mut out = Vec::new();
            for (request, reply_to) in &requests {
                let bytes = request.encode_addressed(*reply_to, None);
                e.handle_message(b"update_requests", &bytes, &mut out)
                    .unwrap();
            }
            e.flush(later(), &mut out);
            let sent = publishes(&out);
            assert_eq!(sent.len(), 1, "{requests:?}: {sent:?}");
            assert_eq!(sent[0].0, expected, "{requests:?}");
            assert_eq!(sent[0].1, Snapshot::of_root(&root).encoded);
        }
        assert_eq!(e.stats().private_answers, 2);

        // `unknown` goes to the requester too.
        let nobody = Hash::of_canonical_bytes(b"nobody");
        let mut out = Vec::new();
        let ask = LoadRequest::ByHash(nobody).encode_addressed(Some(&b), None);
        e.handle_message(b"update_requests", &ask, &mut out)
            .unwrap();
        out.clear();
        e.handle_loaded(nobody, Ok(None), &mut out);
        assert_eq!(
            publishes(&out),
            vec![(channels.replies(&b), crate::message::encode_unknown(nobody))]
        );

        // A message on a reply channel is not for storage.
        let heard = e.handle_message(channels.replies(&a).as_bytes(), b"{}", &mut out);
        assert_eq!(heard, Err(Rejection::WrongChannelKind));
    }

    #[test]
    fn unknown_roots_and_losing_patches() {
        let (mut e, root) = with_root();
        let mut out = Vec::new();
        let nobody = Hash::of_canonical_bytes(b"nobody");
        e.handle_message(b"update_requests", nobody.to_hex().as_bytes(), &mut out)
            .unwrap();
        assert_eq!(out, vec![StorageCommand::Load(nobody)]);
        out.clear();
        e.handle_loaded(nobody, Ok(None), &mut out);
        assert_eq!(
            publishes(&out),
            vec![(
                Channels::new(None).updates(&nobody),
                crate::message::encode_unknown(nobody),
            )]
        );

        // Two patches on one parent: the first counts, the second is stale.
        out.clear();
        let chan = Channels::new(None).updates(&root.hash());
        for key in ["x", "y"] {
            let p = Patch::build(
                root.hash(),
                root.hash(),
                0,
                json!([{"op":"add","path":format!("/{key}"),"value":1}]),
                None,
            )
            .unwrap();
            e.handle_message(chan.as_bytes(), &p.encoded, &mut out)
                .unwrap();
        }
        assert_eq!(e.stats().applied, 1);
        assert_eq!(e.stats().stale, 1);
        // The first one heard is the one going to the store.
        assert_eq!(e.open.len(), 1);
        let winner = Patch::build(
            root.hash(),
            root.hash(),
            0,
            json!([{"op":"add","path":"/x","value":1}]),
            None,
        )
        .unwrap();
        assert_eq!(e.open[0].new.head, winner.hash);
        assert_eq!(e.open[0].expected_head, root.hash());
        // A patch whose ops fail is counted, never stored.
        let head = e.open_notices[0].head;
        let bad = Patch::build(
            root.hash(),
            head,
            1,
            json!([{"op":"remove","path":"/nope"}]),
            None,
        )
        .unwrap();
        let on_head = Channels::new(None).updates(&head);
        e.handle_message(on_head.as_bytes(), &bad.encoded, &mut out)
            .unwrap();
        assert_eq!(e.stats().applied, 1);
        assert_eq!(e.stats().ignored.get("ops_failed"), Some(&1));
    }

    /// A patch adding `/key` on `parent` (at `parent_height`).
    fn patch_on(root: &RootConfig, parent: Hash, parent_height: u64, key: &str) -> Arc<Patch> {
        Arc::new(
            Patch::build(
                root.hash(),
                parent,
                parent_height,
                json!([{"op":"add","path":format!("/{key}"),"value":1}]),
                None,
            )
            .unwrap(),
        )
    }

    /// The snapshot a store holds after `patches` on `root`, as `StoredHead`.
    fn stored_after(root: &RootConfig, patches: &[&Patch]) -> StoredHead {
        let last = patches.last().unwrap();
        // Replays the chain as a follower would, to get the document.
        let mut doc = root.value().clone();
        let mut bound = DocBound::measure(&doc);
        for (height, p) in patches.iter().enumerate() {
            (doc, bound) = p
                .apply_with_bound(root.hash(), height as u64, &doc, bound, &Limits::default())
                .unwrap();
        }
        StoredHead {
            root: root.hash(),
            head: last.hash,
            height: last.height,
            snapshot: Snapshot::new(root.hash(), last.hash, last.height, doc).encoded,
        }
    }

    fn on_channel(e: &mut StorageEngine, p: &Patch, out: &mut Vec<StorageCommand>) {
        let chan = Channels::new(None).updates(&p.parent);
        e.handle_message(chan.as_bytes(), &p.encoded, out).unwrap();
    }

    /// Issue 11: a request without a reply channel is a few bytes that would
    /// make every follower of the root decode the document. However many come,
    /// the root's channel carries at most one snapshot per interval; requesters
    /// with a reply channel are answered there meanwhile, the others by the
    /// next broadcast.
    #[test]
    fn a_roots_channel_carries_at_most_one_snapshot_per_interval() {
        let (mut e, root) = with_root();
        let channels = Channels::new(None);
        let on_root = channels.updates(&root.hash());
        let interval = DEFAULT_BROADCAST_INTERVAL;
        let sent_before = e.stats().snapshots_sent;
        let t0 = later();
        let mut out = Vec::new();
        request(&mut e, root.hash(), &mut out);
        e.flush(t0, &mut out);
        assert_eq!(publishes(&out).len(), 1);
        assert_eq!(publishes(&out)[0].0, on_root, "the first goes out at once");
        // A flood within the interval, two requesters with reply channels among it.
        out.clear();
        let (a, b) = (ReplyToken::new("a").unwrap(), ReplyToken::new("b").unwrap());
        for _ in 0..1000 {
            request(&mut e, root.hash(), &mut out);
        }
        for token in [&a, &b] {
            let ask = LoadRequest::ByHash(root.hash()).encode_addressed(Some(token), None);
            e.handle_message(b"update_requests", &ask, &mut out)
                .unwrap();
        }
        e.flush(t0 + interval / 10, &mut out);
        let sent: Vec<String> = publishes(&out).into_iter().map(|(c, _)| c).collect();
        assert_eq!(sent, vec![channels.replies(&a), channels.replies(&b)]);
        assert_eq!(e.stats().broadcasts_deferred, 1);
        assert_eq!(e.next_timeout(), Some(t0 + interval));
        // Nothing before the interval ends, however often the driver flushes.
        out.clear();
        e.flush(t0 + interval / 2, &mut out);
        assert_eq!(out, vec![]);
        // Then one snapshot serves the thousand.
        e.flush(t0 + interval, &mut out);
        assert_eq!(
            publishes(&out),
            vec![(on_root, Snapshot::of_root(&root).encoded)]
        );
        assert_eq!(e.next_timeout(), None);
        assert_eq!(e.stats().snapshots_sent - sent_before, 4);
    }

    /// On a shared store, a broadcast that waited for its interval reads the
    /// store's head again before it goes: a peer may have committed meanwhile.
    #[test]
    fn on_a_shared_store_a_deferred_broadcast_checks_the_head_first() {
        let (mut e, root) = with_root_on(true);
        let t0 = later();
        let mut out = Vec::new();
        e.flush(t0, &mut out); // the registration's answer went out at t0 - 1 s
        // Two answers due within one interval: the second waits.
        let mut answers = Vec::new();
        for at in [t0, t0 + Duration::from_millis(1)] {
            out.clear();
            request(&mut e, root.hash(), &mut out);
            e.flush(at, &mut out);
            let [StorageCommand::CheckHeads(roots)] = &out[..] else {
                panic!("expected a head check, got {out:?}");
            };
            let roots = roots.clone();
            out.clear();
            let head0 = HeadRef {
                head: root.hash(),
                height: 0,
            };
            e.handle_heads(roots, Ok(vec![Some(head0)]), &mut out);
            e.flush(at, &mut out);
            answers.push(answered(&out));
        }
        assert_eq!(answers[0], vec![(0, root.hash())]);
        assert_eq!(answers[1], vec![], "the second waits for the interval");
        let deadline = e.next_timeout().expect("a broadcast waits");
        // Meanwhile a peer stored p1 (this node missed its notice).
        let p1 = patch_on(&root, root.hash(), 0, "a");
        let truth = stored_after(&root, &[&p1]);
        out.clear();
        e.flush(deadline, &mut out);
        assert_eq!(out, vec![StorageCommand::CheckHeads(vec![root.hash()])]);
        let out = check_finds_and_reads(&mut e, truth, deadline);
        assert_eq!(
            answered(&out),
            vec![(1, p1.hash)],
            "the store's head, not the cache's"
        );
    }

    /// A head check of `truth.root` finds the store at `truth`, not at the
    /// cache's head: the node reads the root again, and the flush at `now`
    /// after the read answers what is owed. Returns that flush's commands.
    fn check_finds_and_reads(
        e: &mut StorageEngine,
        truth: StoredHead,
        now: Instant,
    ) -> Vec<StorageCommand> {
        let root = truth.root;
        let mut out = Vec::new();
        e.handle_heads(vec![root], Ok(vec![Some(HeadRef::from(&truth))]), &mut out);
        assert_eq!(
            out,
            vec![StorageCommand::Load(root)],
            "the check reads it again"
        );
        out.clear();
        e.handle_loaded(root, Ok(Some(truth)), &mut out);
        e.flush(now, &mut out);
        out
    }

    /// Feeds `chain` to the engine and persists it all: the store applies
    /// every commit.
    fn commit_all(e: &mut StorageEngine, chain: &[Arc<Patch>]) {
        let mut out = Vec::new();
        for p in chain {
            on_channel(e, p, &mut out);
        }
        e.flush(later(), &mut out);
        let Some(StorageCommand::Persist { batch, commits }) = out
            .iter()
            .find(|c| matches!(c, StorageCommand::Persist { .. }))
            .cloned()
        else {
            panic!("no batch to persist in {out:?}");
        };
        assert_eq!(commits.len(), chain.len());
        let applied = vec![PersistOutcome::Applied; commits.len()];
        e.handle_persisted(batch, Ok(applied), &mut out);
    }

    /// v1.3, issue 14: a requester that names its head is told only what it
    /// lacks, on its reply channel: a `stored` notice at the head, the patches
    /// when they weigh less than the snapshot and are all within the window,
    /// the snapshot otherwise.
    #[test]
    fn a_requester_naming_its_head_gets_a_notice_or_the_patches_it_lacks() {
        let (e, root) = with_root();
        let mut e = e.with_catch_up_window(5);
        let r = root.hash();
        // A large first patch, so that the document outweighs a few small ones.
        let big = json!([{"op": "add", "path": "/big", "value": "x".repeat(4000)}]);
        let mut chain = vec![Arc::new(Patch::build(r, r, 0, big, None).unwrap())];
        for i in 0..6 {
            let last = chain.last().unwrap().clone();
            chain.push(patch_on(&root, last.hash, last.height, &format!("k{i}")));
        }
        commit_all(&mut e, &chain);
        let head = chain.last().unwrap();
        let token = ReplyToken::new("t").unwrap();
        let channels = Channels::new(None);
        let mut ask = |have: Have| {
            let mut out = Vec::new();
            let bytes = LoadRequest::ByHash(r).encode_addressed(Some(&token), Some(have));
            e.handle_message(b"update_requests", &bytes, &mut out)
                .unwrap();
            e.flush(later(), &mut out);
            let sent = publishes(&out);
            assert_eq!(sent.len(), 1, "one answer: {sent:?}");
            assert_eq!(sent[0].0, channels.replies(&token), "on the reply channel");
            let answer = Message::decode(&sent[0].1, &Limits::default()).unwrap();
            (answer, sent[0].1.len())
        };
        let have = |p: &Patch| Have {
            head: p.hash,
            height: p.height,
        };

        // At the head: the notice.
        let (answer, notice_bytes) = ask(have(head));
        let stored = Stored {
            root: r,
            head: head.hash,
            height: head.height,
        };
        assert_eq!(answer, Message::Stored(stored));
        // Five behind, within the window of five: the five patches.
        let (answer, patches_bytes) = ask(have(&chain[1]));
        let Message::Patches(batch) = answer else {
            panic!("expected patches, got a {}", answer.type_name());
        };
        assert_eq!(batch.patches, chain[2..].to_vec());
        assert_eq!((batch.head, batch.height), (head.hash, head.height));
        // Six behind, beyond the window: the snapshot.
        let (answer, snapshot_bytes) = ask(have(&chain[0]));
        assert!(matches!(answer, Message::Snapshot(s) if s.head == head.hash));
        assert!(notice_bytes < patches_bytes && patches_bytes < snapshot_bytes);
        // A head storage never had (another chain): the snapshot.
        let elsewhere = patch_on(&root, chain[2].hash, chain[2].height, "fork");
        assert!(matches!(ask(have(&elsewhere)).0, Message::Snapshot(_)));
        // A height that does not match the head: the snapshot.
        let wrong = Have {
            head: head.hash,
            height: head.height - 1,
        };
        assert!(matches!(ask(wrong).0, Message::Snapshot(_)));
        assert_eq!(e.stats().current_answers, 1);
        assert_eq!(e.stats().patches_answers, 1);

        // Patches that outweigh the document: the snapshot.
        let (mut small, root) = with_root();
        let mut chain = vec![patch_on(&root, root.hash(), 0, "a")];
        let next = patch_on(&root, chain[0].hash, 1, "b");
        chain.push(next);
        commit_all(&mut small, &chain);
        let mut out = Vec::new();
        let bytes = LoadRequest::ByHash(root.hash()).encode_addressed(
            Some(&token),
            Some(Have {
                head: root.hash(),
                height: 0,
            }),
        );
        small
            .handle_message(b"update_requests", &bytes, &mut out)
            .unwrap();
        small.flush(later(), &mut out);
        assert_eq!(answered(&out), vec![(2, chain[1].hash)]);
        assert_eq!(small.stats().patches_answers, 0);
    }

    /// A request that names a head, from a client that also asked without one
    /// in the same flush, or from a storage node's point of view unanswerable
    /// cheaply, joins the others: one snapshot for all where the rules say so.
    #[test]
    fn requesters_without_a_cheap_answer_share_the_snapshot() {
        let (mut e, root) = with_root();
        let r = root.hash();
        let p1 = patch_on(&root, r, 0, "a");
        commit_all(&mut e, std::slice::from_ref(&p1));
        let (a, b) = (ReplyToken::new("a").unwrap(), ReplyToken::new("b").unwrap());
        let mut out = Vec::new();
        // `a` is current; `b` names a head storage does not have; someone asks
        // plainly.
        let current = Have {
            head: p1.hash,
            height: 1,
        };
        let unknown = Have {
            head: Hash::of_canonical_bytes(b"elsewhere"),
            height: 1,
        };
        for bytes in [
            LoadRequest::ByHash(r).encode_addressed(Some(&a), Some(current)),
            LoadRequest::ByHash(r).encode_addressed(Some(&b), Some(unknown)),
            LoadRequest::ByHash(r).encode(),
        ] {
            e.handle_message(b"update_requests", &bytes, &mut out)
                .unwrap();
        }
        e.flush(later(), &mut out);
        let channels = Channels::new(None);
        let sent = publishes(&out);
        let to = |channel: &str| sent.iter().filter(|(c, _)| c == channel).count();
        assert_eq!(to(&channels.replies(&a)), 1, "the notice, alone: {sent:?}");
        assert_eq!(to(&channels.replies(&b)), 0, "b shares the broadcast");
        assert_eq!(
            to(&channels.updates(&r)),
            1,
            "one snapshot on the root's channel"
        );
        assert_eq!(answered(&out), vec![(1, p1.hash)]);
    }

    fn request(e: &mut StorageEngine, root: Hash, out: &mut Vec<StorageCommand>) {
        e.handle_message(b"update_requests", root.to_hex().as_bytes(), out)
            .unwrap();
    }

    /// The snapshot answers in `out`, as (height, head).
    fn answered(out: &[StorageCommand]) -> Vec<(u64, Hash)> {
        publishes(out)
            .into_iter()
            .filter_map(
                |(_, bytes)| match Message::decode(&bytes, &Limits::default()) {
                    Ok(Message::Snapshot(s)) => Some((s.height, s.head)),
                    _ => None,
                },
            )
            .collect()
    }

    /// Issue 11's scenario, pure: a node cut off while a peer on the same store
    /// commits must not answer from its cache after it reconnects. It checks the
    /// heads, reads the root again, answers at the store's height, and applies the
    /// next patch on the real head.
    #[test]
    fn after_a_reconnect_no_answer_comes_from_an_unchecked_cache() {
        let (mut e, root) = with_root_on(true);
        let mut out = Vec::new();
        e.handle_connected(&mut Vec::new()); // the first connect: nothing cached to check
        let p1 = patch_on(&root, root.hash(), 0, "a");
        on_channel(&mut e, &p1, &mut out);
        e.flush(later(), &mut out);
        out.clear();
        e.handle_persisted(0, Ok(vec![PersistOutcome::Applied]), &mut out);

        // Cut off; meanwhile a peer stores p2 and p3, which this node never hears.
        e.handle_disconnected();
        let p2 = patch_on(&root, p1.hash, 1, "b");
        let p3 = patch_on(&root, p2.hash, 2, "c");
        let truth = stored_after(&root, &[&p1, &p2, &p3]);

        let mut commands = Vec::new();

        e.handle_connected(&mut commands);
        assert_eq!(
            commands[3..],
            [StorageCommand::CheckHeads(vec![root.hash()])],
            "every cached root is checked, heads only"
        );
        // A request before the check's answer waits for it.
        out.clear();
        request(&mut e, root.hash(), &mut out);
        e.flush(later(), &mut out);
        assert_eq!(answered(&out), vec![], "no answer from the unchecked cache");
        e.handle_heads(
            vec![root.hash()],
            Ok(vec![Some(HeadRef::from(&truth))]),
            &mut out,
        );
        assert_eq!(out, vec![StorageCommand::Load(root.hash())]);
        out.clear();
        e.handle_loaded(root.hash(), Ok(Some(truth.clone())), &mut out);
        e.flush(later(), &mut out);
        assert_eq!(answered(&out), vec![(3, p3.hash)]);
        assert_eq!(e.stats().reloads, 1);

        // The next write on the real head goes to the store.
        out.clear();
        let p4 = patch_on(&root, p3.hash, 3, "d");
        on_channel(&mut e, &p4, &mut out);
        e.flush(later(), &mut out);
        let [StorageCommand::Persist { commits, .. }] = &out[..] else {
            panic!("expected p4's commit, got {out:?}");
        };
        assert_eq!(commits[0].expected_head, p3.hash);
        assert_eq!(commits[0].new.head, p4.hash);
    }

    /// A check that finds the cache current goes on from it, with no read of the
    /// document; a read issued before the reconnect is repeated.
    #[test]
    fn a_current_cache_is_kept_and_reads_from_before_a_reconnect_are_repeated() {
        let (mut e, root) = with_root_on(true);
        e.handle_connected(&mut Vec::new());
        let mut out = Vec::new();
        // Another root is being read when the connection drops.
        let other = RootConfig::twitch("#other").unwrap();
        request(&mut e, other.hash(), &mut out);
        assert_eq!(out, vec![StorageCommand::Load(other.hash())]);
        let mut commands = Vec::new();
        e.handle_connected(&mut commands);
        assert_eq!(
            commands[3..],
            [StorageCommand::CheckHeads(vec![root.hash()])]
        );
        let head0 = HeadRef {
            head: root.hash(),
            height: 0,
        };
        out.clear();
        e.handle_heads(vec![root.hash()], Ok(vec![Some(head0)]), &mut out);
        assert_eq!(out, vec![], "the cache is current: nothing to read");
        // A request is answered after a read of the store issued after it: a
        // head check, not a read of the document.
        request(&mut e, root.hash(), &mut out);
        e.flush(later(), &mut out);
        assert_eq!(out, vec![StorageCommand::CheckHeads(vec![root.hash()])]);
        out.clear();
        e.handle_heads(vec![root.hash()], Ok(vec![Some(head0)]), &mut out);
        e.flush(later(), &mut out);
        assert_eq!(answered(&out), vec![(0, root.hash())]);
        assert_eq!(e.stats().reloads, 0);
        // The stale read's result does not count: the root is read again.
        out.clear();
        e.handle_loaded(other.hash(), Ok(None), &mut out);
        assert_eq!(out, vec![StorageCommand::Load(other.hash())]);
        out.clear();
        e.handle_loaded(other.hash(), Ok(None), &mut out);
        assert_eq!(
            publishes(&out),
            vec![(
                Channels::new(None).updates(&other.hash()),
                crate::message::encode_unknown(other.hash())
            )]
        );
    }

    /// A patch more than one above the cached head shows that the store moved on
    /// without this node: it checks, reads the root again and applies the patch.
    #[test]
    fn a_patch_above_the_cached_head_makes_the_node_read_the_store() {
        let (mut e, root) = with_root_on(true);
        let mut out = Vec::new();
        let p1 = patch_on(&root, root.hash(), 0, "a");
        let p2 = patch_on(&root, p1.hash, 1, "b");
        on_channel(&mut e, &p2, &mut out);
        assert_eq!(out, vec![StorageCommand::CheckHeads(vec![root.hash()])]);
        out.clear();
        let truth = stored_after(&root, &[&p1]);
        e.handle_heads(
            vec![root.hash()],
            Ok(vec![Some(HeadRef::from(&truth))]),
            &mut out,
        );
        assert_eq!(out, vec![StorageCommand::Load(root.hash())]);
        out.clear();
        e.handle_loaded(root.hash(), Ok(Some(truth)), &mut out);
        e.flush(later(), &mut out);
        let [StorageCommand::Persist { commits, .. }] = &out[..] else {
            panic!("expected p2's commit, got {out:?}");
        };
        assert_eq!(commits[0].new.head, p2.hash);

        // A forged one on a store that has not moved: one check, then stale.
        let (mut e, root) = with_root_on(true);
        let bogus = patch_on(&root, p1.hash, 41, "z");
        out.clear();
        on_channel(&mut e, &bogus, &mut out);
        let head0 = HeadRef {
            head: root.hash(),
            height: 0,
        };
        out.clear();
        e.handle_heads(vec![root.hash()], Ok(vec![Some(head0)]), &mut out);
        e.flush(later(), &mut out);
        assert_eq!(out, vec![], "no read, nothing stored");
        assert_eq!(e.stats().stale, 1);
        assert_eq!(e.stats().heads_checked, 1);

        // On a store only this node writes, the store cannot have moved: stale.
        let (mut e, _) = with_root_on(false);
        out.clear();
        on_channel(&mut e, &bogus, &mut out);
        assert_eq!((out, e.stats().stale), (vec![], 1));
    }

    /// A registration is announced; a peer that read the root as unknown forgets
    /// that on the notice, and a load request for a root it remembers as unknown
    /// reads the store again.
    #[test]
    fn a_root_read_as_unknown_is_read_again_when_it_may_exist() {
        let root = RootConfig::twitch("#late").unwrap();
        let mut peer = StorageEngine::new(Channels::new(None), Limits::default());
        let mut out = Vec::new();
        request(&mut peer, root.hash(), &mut out);
        out.clear();
        peer.handle_loaded(root.hash(), Ok(None), &mut out);
        assert_eq!(peer.cached_roots(), (0, 1));
        // A patch for it costs no store read while it is remembered as unknown.
        out.clear();
        let p1 = patch_on(&root, root.hash(), 0, "a");
        on_channel(&mut peer, &p1, &mut out);
        assert_eq!(out, vec![]);
        assert_eq!(peer.stats().unknown_root, 1);
        // A request reads it again.
        request(&mut peer, root.hash(), &mut out);
        assert_eq!(out, vec![StorageCommand::Load(root.hash())]);
        out.clear();
        peer.handle_loaded(root.hash(), Ok(None), &mut out);
        // Another node registers it and says so: the peer forgets its "unknown",
        // and the next patch makes it read the root.
        let notice = Stored {
            root: root.hash(),
            head: root.hash(),
            height: 0,
        };
        let chan = Channels::new(None).updates(&root.hash());
        out.clear();
        peer.handle_message(chan.as_bytes(), &notice.encode(), &mut out)
            .unwrap();
        assert_eq!(peer.cached_roots(), (0, 0));
        on_channel(&mut peer, &p1, &mut out);
        assert_eq!(out, vec![StorageCommand::Load(root.hash())]);
        out.clear();
        let registered = StoredHead {
            root: root.hash(),
            head: root.hash(),
            height: 0,
            snapshot: Snapshot::of_root(&root).encoded,
        };
        peer.handle_loaded(root.hash(), Ok(Some(registered)), &mut out);
        peer.flush(later(), &mut out);
        assert!(
            matches!(&out[..], [StorageCommand::Persist { commits, .. }] if commits[0].new.head == p1.hash),
            "{out:?}"
        );
    }

    /// A root written continuously is still answered: a request waits only for
    /// the patches accepted before it, not for those that keep coming after.
    #[test]
    fn answers_wait_for_the_patches_before_the_request_only() {
        let (mut e, root) = with_root_on(false);
        let mut out = Vec::new();
        let mut parent = (root.hash(), 0);
        let mut next = |e: &mut StorageEngine, out: &mut Vec<StorageCommand>, key: &str| {
            let p = patch_on(&root, parent.0, parent.1, key);
            on_channel(e, &p, out);
            parent = (p.hash, p.height);
            p
        };
        let p1 = next(&mut e, &mut out, "a");
        e.flush(later(), &mut out); // batch 0: p1
        request(&mut e, root.hash(), &mut out);
        let _p2 = next(&mut e, &mut out, "b"); // accepted after the request
        e.flush(later(), &mut out);
        assert_eq!(answered(&out), vec![]);
        out.clear();
        e.handle_persisted(0, Ok(vec![PersistOutcome::Applied]), &mut out);
        e.flush(later(), &mut out);
        // p2 is now in flight (batch 1) and unsettled, but the request came before
        // it: the answer goes out now, at p1.
        assert_eq!(answered(&out), vec![(1, p1.hash)]);
    }

    /// On a shared store a peer may have moved the head: an answer waits for a
    /// read of the store issued after its request, and the store's head, not the
    /// cache, is what it tells.
    #[test]
    fn on_a_shared_store_an_answer_follows_a_read_issued_after_its_request() {
        let (mut e, root) = with_root_on(true);
        let mut out = Vec::new();
        request(&mut e, root.hash(), &mut out);
        e.flush(later(), &mut out);
        assert_eq!(out, vec![StorageCommand::CheckHeads(vec![root.hash()])]);
        // Meanwhile a peer stored p1, which this node missed (its notice is lost).
        let p1 = patch_on(&root, root.hash(), 0, "a");
        let truth = stored_after(&root, &[&p1]);
        out = check_finds_and_reads(&mut e, truth, later());
        assert_eq!(answered(&out), vec![(1, p1.hash)]);
        // Under writes, the commits themselves are the reads: no extra check.
        out.clear();
        let p2 = patch_on(&root, p1.hash, 1, "b");
        request(&mut e, root.hash(), &mut out);
        on_channel(&mut e, &p2, &mut out);
        e.flush(later(), &mut out);
        let [StorageCommand::Persist { batch, .. }] = &out[..] else {
            panic!("expected p2's commit, got {out:?}");
        };
        let batch = *batch;
        out.clear();
        e.handle_persisted(batch, Ok(vec![PersistOutcome::Applied]), &mut out);
        e.flush(later(), &mut out);
        assert_eq!(answered(&out), vec![(2, p2.hash)]);
        assert!(
            !out.iter()
                .any(|c| matches!(c, StorageCommand::CheckHeads(_)))
        );
    }

    /// A node joining a bus that another store serves stops; the node serving it
    /// tells it so and goes on; nodes of one store ignore each other.
    #[test]
    fn two_stores_never_share_a_bus() {
        let channels = Channels::new(None);
        let ours = StoreId::from_random(1);
        let theirs = StoreId::from_random(2);
        let mut e = StorageEngine::new(channels.clone(), Limits::default())
            .with_store_id(Some(ours.clone()));
        let hello = Presence::Hello(ours.clone()).encode();
        let mut connect = Vec::new();
        e.handle_connected(&mut connect);
        assert!(connect.contains(&StorageCommand::Bus(Command::Subscribe(
            channels.storage_nodes()
        ))));
        assert_eq!(
            connect.last(),
            Some(&StorageCommand::Bus(Command::Publish {
                channel: channels.storage_nodes(),
                payload: hello.clone()
            }))
        );
        let on = channels.storage_nodes();
        let mut out = Vec::new();
        // Our own hello, and a peer of the same store: nothing to do.
        e.handle_message(on.as_bytes(), &hello, &mut out).unwrap();
        let same = Presence::Here(ours.clone()).encode();
        e.handle_message(on.as_bytes(), &same, &mut out).unwrap();
        assert_eq!(out, vec![]);
        // Another store says hello: answer "here", refuse the message, go on.
        let heard = e.handle_message(
            on.as_bytes(),
            &Presence::Hello(theirs.clone()).encode(),
            &mut out,
        );
        assert_eq!(heard.unwrap_err().label(), "foreign_store");
        assert_eq!(
            out,
            vec![StorageCommand::Bus(Command::Publish {
                channel: on.clone(),
                payload: Presence::Here(ours.clone()).encode()
            })]
        );
        // Another store says it is here: stop.
        out.clear();
        e.handle_message(
            on.as_bytes(),
            &Presence::Here(theirs.clone()).encode(),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![StorageCommand::Stop(StopReason::ForeignStore {
                ours,
                theirs
            })]
        );
        assert_eq!(e.stats().foreign_stores, 2);
    }

    /// Only the holder of the answerer lease answers; the others still store.
    #[test]
    fn a_node_without_the_answerer_lease_leaves_requests_to_its_peer() {
        let (mut e, root) = with_root_on(true);
        e.handle_answerer(false);
        let mut out = Vec::new();
        request(&mut e, root.hash(), &mut out);
        e.flush(later(), &mut out);
        assert_eq!(out, vec![], "no read, no answer");
        assert_eq!(e.stats().requests_left_to_peers, 1);
        // It still applies and persists patches.
        let p1 = patch_on(&root, root.hash(), 0, "a");
        on_channel(&mut e, &p1, &mut out);
        e.flush(later(), &mut out);
        assert!(
            matches!(&out[..], [StorageCommand::Persist { .. }]),
            "{out:?}"
        );
        // Taking the lease over, it answers again.
        e.handle_answerer(true);
        out.clear();
        request(&mut e, root.hash(), &mut out);
        assert_eq!(e.stats().requests_left_to_peers, 1);
        assert_eq!(e.stats().load_requests, 3);
    }

    /// Issue 11: a stored snapshot is answered with this node's v1.2 signature,
    /// whatever it was stored with: nothing (signatures switched on later),
    /// another key (rotation), this key the v1.1 way (raw hash) or for another
    /// namespace. One already carrying it is published as stored.
    #[test]
    fn stored_snapshots_are_signed_again_unless_they_carry_our_signature() {
        use crate::message::attach_signature;
        let root = RootConfig::twitch("#resign").unwrap();
        let ours = SigningKey::from_seed([1; 32]);
        let other = SigningKey::from_seed([3; 32]);
        let unsigned = Snapshot::of_root(&root).encoded;
        let hash = Hash::of_canonical_bytes(&unsigned);
        let signed = |key: &SigningKey, ns| sign_canonical(key, ns, "snapshot", &unsigned, None);
        let current = signed(&ours, Some("ns"));
        let cases = [
            (unsigned.clone(), 1),
            (signed(&other, Some("ns")), 1),
            (attach_signature(&unsigned, &ours.sign(&hash)), 1),
            (signed(&ours, None), 1),
            (current.clone(), 0),
        ];
        for (stored, resigned) in cases {
            let mut e = StorageEngine::new(Channels::new(Some("ns")), Limits::default())
                .with_signer(Some(ours.clone()));
            let mut out = Vec::new();
            e.handle_message(
                b"ns:update_requests",
                root.hash().to_hex().as_bytes(),
                &mut out,
            )
            .unwrap();
            assert_eq!(out, vec![StorageCommand::Load(root.hash())]);
            out.clear();
            let head = StoredHead {
                root: root.hash(),
                head: root.hash(),
                height: 0,
                snapshot: stored,
            };
            e.handle_loaded(root.hash(), Ok(Some(head)), &mut out);
            e.flush(later(), &mut out);
            assert_eq!(
                publishes(&out),
                vec![(format!("ns:updates:{}", root.hash()), current.clone())]
            );
            assert_eq!(e.stats().resigned, resigned);
        }
        let (message, sig) = Message::decode_signed(&current, &Limits::default()).unwrap();
        let trust = TrustSet::new([ours.public_key()]);
        let channel = format!("ns:updates:{}", root.hash());
        assert_eq!(
            message.verify(sig.as_ref(), &trust, Some("ns"), channel.as_bytes()),
            Ok(())
        );
    }

    /// Issue 14: the store logs a patch exactly as it came, its `sig` included,
    /// so that `verify` can later recheck the signature from the log.
    #[test]
    fn a_signed_patch_goes_to_the_store_with_its_signature() {
        let (mut e, root) = with_root();
        let channel = Channels::new(None).updates(&root.hash());
        let p1 = Patch::build(
            root.hash(),
            root.hash(),
            0,
            json!([{"op":"add","path":"/a","value":1}]),
            None,
        )
        .unwrap();
        let key = SigningKey::from_seed([5; 32]);
        let signed = sign_canonical(&key, None, "patch", &p1.encoded, Some(&channel));
        assert_ne!(signed, p1.encoded);
        let mut out = Vec::new();
        e.handle_message(channel.as_bytes(), &signed, &mut out)
            .unwrap();
        e.flush(later(), &mut out);
        let [StorageCommand::Persist { commits, .. }] = &out[..] else {
            panic!("expected one batch, got {out:?}");
        };
        assert_eq!(commits[0].new.head, p1.hash);
        assert_eq!(commits[0].patch.as_ref(), Some(&signed));
    }
}
