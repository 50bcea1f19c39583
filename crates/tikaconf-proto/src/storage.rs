//! The storage role: applies patches to stored heads and answers load requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::channel::{ChannelKind, ReplyToken};
use crate::command::Command;
use crate::limits::DocBound;
use crate::message::{LoadRequest, Message, Patch, Rejection, Snapshot, Stored, attach_signature};
use crate::signature::{SigningKey, TrustSet};
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
    pub root: Hash,
    pub head: Hash,
    pub height: u64,
    /// Canonical JSON of the snapshot message for (`root`, `head`, `height`).
    pub snapshot: Bytes,
}

/// `unsigned` canonical bytes with `signer`'s signature attached, if there is one.
fn sign_with(signer: Option<&SigningKey>, unsigned: Bytes) -> Bytes {
    match signer {
        Some(key) => {
            let sig = key.sign(&Hash::of_canonical_bytes(&unsigned));
            attach_signature(&unsigned, &sig)
        }
        None => unsigned,
    }
}

/// One compare-and-set a store must carry out: move `new.root` from
/// `expected_head` to `new.head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistCommit {
    pub expected_head: Hash,
    pub new: StoredHead,
}

/// How the store answered one [`PersistCommit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistOutcome {
    /// The head moved to the new one.
    Applied,
    /// The store already held the new head (another storage node stored it).
    AlreadyStored,
    /// The store holds another head: this node's view of the root was stale.
    Stale { current: Option<StoredHead> },
}

/// What the storage engine asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageCommand {
    Bus(Command),
    /// Read the stored head of a root; answer with [`StorageEngine::handle_loaded`].
    Load(Hash),
    /// Register a root at height 0 if absent; answer with
    /// [`StorageEngine::handle_loaded`] (the head the store holds afterwards).
    Register(StoredHead),
    /// Carry out these commits in one transaction with one durable sync (group
    /// commit); answer with [`StorageEngine::handle_persisted`].
    Persist {
        batch: u64,
        commits: Vec<PersistCommit>,
    },
}

/// Counters the storage engine keeps about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Patches applied (tentatively, then persisted).
    pub applied: u64,
    pub stored_notices: u64,
    pub snapshots_sent: u64,
    /// Answers (snapshots and `unknown`) sent on a requester's reply channel
    /// rather than on the root's.
    pub private_answers: u64,
    pub load_requests: u64,
    /// Patches whose parent is not a stored head (raced losers, late duplicates).
    pub stale: u64,
    pub unknown_root: u64,
    /// Ignored messages by [`Rejection::label`].
    pub ignored: BTreeMap<&'static str, u64>,
    /// Commits the store refused because another node moved the root first.
    pub persist_stale: u64,
    /// Patches lost because the store failed to persist their batch.
    pub persist_failed: u64,
}

/// A message for a root whose head is being read from the store.
#[derive(Debug, Clone)]
enum Queued {
    Patch(Arc<Patch>),
    Request(LoadRequest, Option<ReplyToken>),
    Stored(Stored),
}

/// Who an answer for one root is owed to, and so where it goes.
///
/// A request that names a reply channel is answered there when it is the only
/// one due for its root at the flush; as soon as a second requester (or one
/// without a reply channel) waits for the same root, the answer goes to the
/// root's channel, where every requester listens: one message still serves all.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Audience {
    One(ReplyToken),
    All,
}

impl Audience {
    fn of(reply_to: Option<ReplyToken>) -> Audience {
        reply_to.map_or(Audience::All, Audience::One)
    }

    /// The audience once another request, answered by the same message, joins.
    fn join(self, reply_to: Option<ReplyToken>) -> Audience {
        match (self, reply_to) {
            (Audience::One(mine), Some(theirs)) if mine == theirs => Audience::One(mine),
            _ => Audience::All,
        }
    }
}

#[derive(Debug)]
enum RootState {
    /// Being read from the store (or registered); messages wait here, in order.
    Loading {
        queue: Vec<Queued>,
    },
    /// The store does not know this root.
    Absent,
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
    /// Commits of this root not yet acknowledged by the store.
    unpersisted: usize,
    /// Reload from the store once the in-flight batch is done.
    reload_after: bool,
}

#[derive(Debug)]
struct InFlight {
    id: u64,
    roots: Vec<Hash>,
    notices: Vec<StoredHead>,
}

/// The storage role. See the module documentation.
///
/// The driver feeds every message heard on `updates:*` and `update_requests` in
/// the order Redis delivered them, and calls [`StorageEngine::flush`] whenever it
/// has no further input ready: everything accepted since the last flush goes to
/// the store as one batch (group commit), and load requests that came in the
/// meantime are answered together, one snapshot per root, once the patches that
/// preceded them are durable.
#[derive(Debug)]
pub struct StorageEngine {
    channels: Channels,
    limits: Limits,
    roots: HashMap<Hash, RootState>,
    open: Vec<PersistCommit>,
    /// The heads `open` stores, kept to become `durable` once persisted.
    open_notices: Vec<StoredHead>,
    in_flight: Option<InFlight>,
    next_batch: u64,
    /// Roots whose snapshot is owed to requesters, sent once nothing is unpersisted.
    answers_due: BTreeMap<Hash, Audience>,
    /// Keys whose signatures patches must carry (empty: none required).
    trust: TrustSet,
    /// The key this node signs its snapshots and notices with, if any.
    signer: Option<SigningKey>,
    stats: StorageStats,
}

impl StorageEngine {
    pub fn new(channels: Channels, limits: Limits) -> StorageEngine {
        StorageEngine {
            channels,
            limits,
            roots: HashMap::new(),
            open: Vec::new(),
            open_notices: Vec::new(),
            in_flight: None,
            next_batch: 0,
            answers_due: BTreeMap::new(),
            trust: TrustSet::default(),
            signer: None,
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

    /// `unsigned` canonical bytes as this node publishes them: with its signature.
    fn signed(&self, unsigned: Bytes) -> Bytes {
        sign_with(self.signer.as_ref(), unsigned)
    }

    pub fn stats(&self) -> &StorageStats {
        &self.stats
    }

    /// The bus is (again) connected: listen to everything, on one connection, so
    /// that this node sees Redis's single order of messages.
    pub fn handle_connected(&mut self) -> Vec<StorageCommand> {
        vec![
            StorageCommand::Bus(Command::PSubscribe(self.channels.updates_pattern())),
            StorageCommand::Bus(Command::Subscribe(self.channels.update_requests())),
        ]
    }

    /// The bus lost its connection. Cached heads stay valid (the store is the
    /// truth and only this engine's commits move them, or other storage nodes',
    /// which it detects by a stale commit or a `stored` notice).
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
            Some(ChannelKind::UpdateRequests) => {
                let (request, reply_to) = LoadRequest::decode_addressed(payload, &self.limits)?;
                self.stats.load_requests += 1;
                self.dispatch(request.root(), Queued::Request(request, reply_to), out);
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
            Some(ChannelKind::Updates(on)) => match self.decode_verified(payload)? {
                Message::Patch(patch) => {
                    if patch.parent != on {
                        return Err(Rejection::ChannelMismatch {
                            channel: on,
                            in_message: patch.parent,
                        });
                    }
                    self.dispatch(patch.root, Queued::Patch(patch), out);
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

    /// Decodes a message on an `updates:` channel; with a trust set, patches and
    /// `stored` notices must carry a trusted signature (answers are ignored anyway).
    fn decode_verified(&self, payload: &[u8]) -> Result<Message, Rejection> {
        let (message, signature) = Message::decode_signed(payload, &self.limits)?;
        if matches!(message, Message::Patch(_) | Message::Stored(_)) {
            message.verify(signature.as_ref(), &self.trust)?;
        }
        Ok(message)
    }

    fn dispatch(&mut self, root: Hash, item: Queued, out: &mut Vec<StorageCommand>) {
        match self.roots.get_mut(&root) {
            None => {
                if let Queued::Stored(_) = item {
                    return; // about a root we do not hold in memory: nothing to refresh
                }
                self.roots
                    .insert(root, RootState::Loading { queue: vec![item] });
                out.push(StorageCommand::Load(root));
            }
            Some(RootState::Loading { queue }) => queue.push(item),
            Some(RootState::Absent) => self.on_absent(root, item, out),
            Some(RootState::Ready(_)) => self.on_ready(root, item, out),
        }
    }

    fn on_absent(&mut self, root: Hash, item: Queued, out: &mut Vec<StorageCommand>) {
        match item {
            Queued::Request(LoadRequest::Register(config), reply_to) => {
                let snapshot = Snapshot::of_root(&config);
                self.roots
                    .insert(root, RootState::Loading { queue: Vec::new() });
                self.owe_answer(root, reply_to);
                out.push(StorageCommand::Register(StoredHead {
                    root,
                    head: root,
                    height: 0,
                    snapshot: self.signed(snapshot.encoded),
                }));
            }
            Queued::Request(LoadRequest::ByHash(_), reply_to) => {
                let payload = self.signed(crate::message::encode_unknown(root));
                self.answer(root, Audience::of(reply_to), payload, out);
            }
            Queued::Patch(_) => self.stats.unknown_root += 1,
            Queued::Stored(_) => {
                // Another storage node registered it: read it again.
                self.roots
                    .insert(root, RootState::Loading { queue: Vec::new() });
                out.push(StorageCommand::Load(root));
            }
        }
    }

    fn on_ready(&mut self, root: Hash, item: Queued, out: &mut Vec<StorageCommand>) {
        let in_flight = self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.roots.contains(&root));
        let Some(RootState::Ready(ready)) = self.roots.get_mut(&root) else {
            return;
        };
        match item {
            Queued::Request(_, reply_to) => self.owe_answer(root, reply_to),
            Queued::Stored(stored) => {
                if stored.height > ready.height {
                    // Another storage node is ahead of us on a shared store.
                    if in_flight {
                        ready.reload_after = true;
                    } else if ready.unpersisted == 0 {
                        self.roots
                            .insert(root, RootState::Loading { queue: Vec::new() });
                        out.push(StorageCommand::Load(root));
                    }
                }
            }
            Queued::Patch(patch) => {
                if patch.parent != ready.head {
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
                    snapshot: sign_with(self.signer.as_ref(), snapshot.encoded),
                };
                self.open_notices.push(new.clone());
                self.open.push(PersistCommit {
                    expected_head: ready.head,
                    new,
                });
                ready.head = patch.hash;
                ready.height = patch.height;
                ready.doc = snapshot.config;
                ready.bound = bound;
                ready.unpersisted += 1;
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
        let Some(RootState::Loading { queue }) = self.roots.remove(&root) else {
            return;
        };
        let state = match result {
            Ok(Some(head)) => match self.ready_from(head) {
                Some(ready) => RootState::Ready(Box::new(ready)),
                None => {
                    self.answers_due.remove(&root);
                    return;
                }
            },
            Ok(None) => RootState::Absent,
            Err(_) => {
                self.answers_due.remove(&root);
                return;
            }
        };
        self.roots.insert(root, state);
        for item in queue {
            self.dispatch(root, item, out);
        }
        self.flush_answers(out);
    }

    fn ready_from(&self, head: StoredHead) -> Option<ReadyRoot> {
        let relaxed = Limits {
            max_message_bytes: usize::MAX,
            max_depth: Limits::MAX_DEPTH_CEILING,
        };
        let Ok(Message::Snapshot(snapshot)) = Message::decode(&head.snapshot, &relaxed) else {
            return None;
        };
        let bound = snapshot.config_bound();
        Some(ReadyRoot {
            head: head.head,
            height: head.height,
            // Decoded just above, so ours alone: the document moves, uncopied.
            doc: Arc::unwrap_or_clone(snapshot).config,
            bound,
            durable: head,
            unpersisted: 0,
            reload_after: false,
        })
    }

    /// Called by the driver when it has no further input ready: starts the next
    /// batch if none is in flight, and sends the answers that are due.
    pub fn flush(&mut self, out: &mut Vec<StorageCommand>) {
        if self.in_flight.is_none() && !self.open.is_empty() {
            let id = self.next_batch;
            self.next_batch += 1;
            let commits = std::mem::take(&mut self.open);
            let notices = std::mem::take(&mut self.open_notices);
            let mut roots: Vec<Hash> = commits.iter().map(|c| c.new.root).collect();
            roots.sort_unstable();
            roots.dedup();
            self.in_flight = Some(InFlight { id, roots, notices });
            out.push(StorageCommand::Persist { batch: id, commits });
        }
        self.flush_answers(out);
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
                self.flush(out);
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
            ready.unpersisted = ready.unpersisted.saturating_sub(1);
            match outcome {
                PersistOutcome::Applied | PersistOutcome::AlreadyStored => {
                    let stored = Stored {
                        root: notice.root,
                        head: notice.head,
                        height: notice.height,
                    };
                    ready.durable = notice.clone();
                    self.stats.stored_notices += 1;
                    out.push(StorageCommand::Bus(Command::Publish {
                        channel: self.channels.updates(&notice.root),
                        payload: self.signed(stored.encode()),
                    }));
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
        self.flush(out);
    }

    /// Forgets what this node believed about `root` and reads it from the store.
    fn reload(&mut self, root: Hash, out: &mut Vec<StorageCommand>) {
        let before = self.open.len();
        self.open.retain(|c| c.new.root != root);
        self.open_notices.retain(|n| n.root != root);
        self.stats.persist_failed += (before - self.open.len()) as u64;
        self.roots
            .insert(root, RootState::Loading { queue: Vec::new() });
        out.push(StorageCommand::Load(root));
    }

    /// Records that a requester (`reply_to`, or the root channel's listeners)
    /// waits for `root`'s snapshot.
    fn owe_answer(&mut self, root: Hash, reply_to: Option<ReplyToken>) {
        let audience = match self.answers_due.remove(&root) {
            Some(due) => due.join(reply_to),
            None => Audience::of(reply_to),
        };
        self.answers_due.insert(root, audience);
    }

    /// Publishes an answer about `root` where its audience listens.
    fn answer(&mut self, root: Hash, to: Audience, payload: Bytes, out: &mut Vec<StorageCommand>) {
        let channel = match to {
            Audience::One(token) => {
                self.stats.private_answers += 1;
                self.channels.replies(&token)
            }
            Audience::All => self.channels.updates(&root),
        };
        out.push(StorageCommand::Bus(Command::Publish { channel, payload }));
    }

    fn flush_answers(&mut self, out: &mut Vec<StorageCommand>) {
        let due = std::mem::take(&mut self.answers_due);
        for (root, audience) in due {
            match self.roots.get(&root) {
                Some(RootState::Ready(ready)) if ready.unpersisted == 0 => {
                    let snapshot = ready.durable.snapshot.clone();
                    self.stats.snapshots_sent += 1;
                    self.answer(root, audience, snapshot, out);
                }
                Some(RootState::Ready(_)) | Some(RootState::Loading { .. }) => {
                    self.answers_due.insert(root, audience);
                }
                Some(RootState::Absent) | None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::RootConfig;

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

    /// An engine that holds `root` at height 0.
    fn with_root() -> (StorageEngine, RootConfig) {
        let root = RootConfig::twitch("#store").unwrap();
        let mut e = StorageEngine::new(Channels::new(None), Limits::default());
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
        // The registering request is answered with the height-0 snapshot.
        let answers = publishes(&out);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].1, Snapshot::of_root(&root).encoded);
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
        e.flush(&mut out);
        let [StorageCommand::Persist { batch, commits }] = &out[..] else {
            panic!("expected one batch, got {out:?}");
        };
        assert_eq!(commits.len(), 2);
        assert_eq!(commits[1].expected_head, p1.hash);
        let batch = *batch;
        out.clear();
        e.handle_persisted(
            batch,
            Ok(vec![PersistOutcome::Applied, PersistOutcome::Applied]),
            &mut out,
        );
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
                let bytes = request.encode_addressed(*reply_to);
                e.handle_message(b"update_requests", &bytes, &mut out)
                    .unwrap();
            }
            e.flush(&mut out);
            let sent = publishes(&out);
            assert_eq!(sent.len(), 1, "{requests:?}: {sent:?}");
            assert_eq!(sent[0].0, expected, "{requests:?}");
            assert_eq!(sent[0].1, Snapshot::of_root(&root).encoded);
        }
        assert_eq!(e.stats().private_answers, 2);

        // `unknown` goes to the requester too.
        let nobody = Hash::of_canonical_bytes(b"nobody");
        let mut out = Vec::new();
        let ask = LoadRequest::ByHash(nobody).encode_addressed(Some(&b));
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
}
