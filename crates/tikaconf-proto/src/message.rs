//! The wire messages of protocol v1.1, and how bytes become them.
//!
//! Decoding is strict and total: any byte string either decodes to a [`Message`]
//! or yields a [`DecodeError`] naming what is wrong, never a panic. Decoding checks
//! everything that can be checked from the message alone (shape, types, hash
//! syntax, the height/parent relation, the ops' syntax); what depends on a node's
//! state (is the parent my head? do the ops apply?) is checked by the state
//! machines and reported as [`Rejection`].
//!
//! Every message is canonical JSON on the wire: encoders here write RFC 8785 bytes,
//! and a patch's hash is the hash of the canonical form of the whole object, so a
//! patch re-encoded by any conforming implementation keeps its hash.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::channel::{InvalidReplyToken, ReplyToken};
use crate::json::{CanonicalText, JsonError};
use crate::limits::DocBound;
use crate::patch::{ApplyError, Caps, Ops, PatchError};
use crate::root::{RootConfig, RootError};
use crate::signature::{Role, Signature, SigningKey, TrustSet};
use crate::{Hash, Limits, canonical, json};

mod patches;

pub use patches::Patches;

/// Largest integer the protocol carries exactly (2^53).
const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// A message received on an `updates:<hash>` channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A change: ops against `parent`.
    Patch(Arc<Patch>),
    /// Storage's answer to a load request: the root configuration taken to `head`.
    Snapshot(Arc<Snapshot>),
    /// Storage's answer to a load request by hash for a root it does not know.
    Unknown {
        /// The root asked for.
        root: Hash,
    },
    /// Storage's notice that it has durably stored `head`.
    Stored(Stored),
    /// Storage's answer to a load request that named a head a few patches
    /// below storage's: those patches (since v1.3).
    Patches(Arc<Patches>),
}

/// A patch: `{"type":"patch","root":R,"parent":P,"height":N,"ops":[...],"meta":{...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// The root of the configuration it changes.
    pub root: Hash,
    /// The head it applies to: the root hash, or the hash of the patch before it.
    pub parent: Hash,
    /// The parent's height plus one (so at least 1).
    pub height: u64,
    /// The RFC 6902 operations.
    pub ops: Ops,
    /// Free-form information about the change (author, time, message); covered by
    /// the hash, ignored by the state machines.
    pub meta: Option<Map<String, Value>>,
    /// The hash of the whole object: the head this patch creates.
    pub hash: Hash,
    /// The canonical bytes, which is what gets published and hashed.
    pub encoded: Bytes,
}

/// `{"type":"snapshot","root":R,"head":H,"height":N,"config":DOC}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The root of the configuration.
    pub root: Hash,
    /// The head the document is at.
    pub head: Hash,
    /// The head's height (0 when `head` is the root itself).
    pub height: u64,
    /// The document at `head` (at height 0, the root configuration).
    pub config: Value,
    /// The canonical bytes of the message without its signature: what is
    /// published, signed, and stored.
    pub encoded: Bytes,
}

/// `{"type":"stored","root":R,"head":H,"height":N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The root of the configuration.
    pub root: Hash,
    /// The head storage holds now.
    pub head: Hash,
    /// The head's height.
    pub height: u64,
}

/// What a load request says its requester already has (since v1.3): the head
/// `head` at `height`. Storage may then answer with a `stored` notice, if that is
/// its head, or with the patches from there (see [`Patches`]), if they are
/// smaller than the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Have {
    /// The requester's head.
    pub head: Hash,
    /// Its height.
    pub height: u64,
}

/// A load request as it travels on `update_requests`: the request, and what its
/// prefixes add (`@<token> `, then `have <head> <height> `).
#[derive(Debug, Clone, PartialEq)]
pub struct AddressedRequest {
    /// What is asked for.
    pub request: LoadRequest,
    /// The reply channel the answer may go to.
    pub reply_to: Option<ReplyToken>,
    /// The head the requester has. Only with a reply channel: the answer it
    /// allows is for this requester alone.
    pub have: Option<Have>,
}

/// A message on `update_requests`.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadRequest {
    /// 64 hex digits: look this root up.
    ByHash(Hash),
    /// A root configuration's JSON: look it up, registering it if it is new.
    Register(RootConfig),
}

/// Why bytes are not a valid message. Every node rejects the same bytes for the
/// same reason: these rules depend on nothing but the bytes and the [`Limits`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is longer than [`Limits::max_message_bytes`].
    #[error("message of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The message's length, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// The bytes are not JSON as the protocol accepts it (strict UTF-8, no
    /// duplicate keys, nesting within the limit).
    #[error("not protocol JSON: {0}")]
    Json(#[from] JsonError),
    /// The JSON is not an object.
    #[error("a message is a JSON object")]
    NotAnObject,
    /// There is no string `type` member saying which message this is.
    #[error("field \"type\" is missing or not a string")]
    MissingType,
    /// The `type` names no message of this protocol version.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A required member (named) is absent.
    #[error("field {0:?} is missing")]
    MissingField(&'static str),
    /// A member (named) that this message type does not have: refused, not
    /// ignored, because unknown members would be covered by the hash yet
    /// meaningless to the node.
    #[error("field {0:?} is not allowed in this message")]
    UnknownField(String),
    /// A member (named) that must hold a hash holds something else.
    #[error("field {0:?} is not a hash (64 lowercase hex digits)")]
    BadHash(&'static str),
    /// A member (named) that must hold a height holds something else.
    #[error("field {0:?} is not an integer from 0 to 2^53")]
    BadInteger(&'static str),
    /// A patch's height contradicts its parent: height 1 must be on the root,
    /// and a patch on the root must be height 1.
    #[error("a patch's height is at least 1, and it is 1 exactly when its parent is the root")]
    HeightParentMismatch,
    /// A snapshot at height 0 does not hold the configuration whose hash is its
    /// root, or one above height 0 claims the root as its head.
    #[error("a snapshot at height 0 must hold the root configuration itself")]
    BadRootSnapshot,
    /// The `ops` member is not a valid RFC 6902 operation list.
    #[error("invalid ops: {0}")]
    BadOps(PatchError),
    /// The `meta` member is present but not an object.
    #[error("field \"meta\" must be a JSON object")]
    BadMeta,
    /// A load request's root configuration is not one.
    #[error("invalid root configuration: {0}")]
    BadRoot(#[from] RootError),
    /// A registering load request whose root configuration is larger than
    /// [`Limits::MAX_ROOT_CONFIG_BYTES`] (canonical bytes). A variant of its own
    /// (not [`DecodeError::BadRoot`]) so that it is counted apart: see
    /// [`Rejection::RootConfigTooLarge`].
    #[error("root configuration of {size} canonical bytes exceeds the limit of {max}")]
    RootConfigTooLarge {
        /// The root configuration's canonical size, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// The `sig` member is not a key and a signature in hex.
    #[error("field \"sig\" must be {{\"key\": 64 hex digits, \"sig\": 128 hex digits}}")]
    BadSignature,
    /// A load request's `@<token> ` prefix names no valid reply token.
    #[error("a load request's reply prefix is \"@<token> \": {0}")]
    BadReplyToken(#[from] InvalidReplyToken),
    /// A storage node's `hello` names a store id that is not spelled as one.
    #[error("a store id is 1 to 64 characters from 0-9, a-z, A-Z, '_' and '-'")]
    BadStoreId,
    /// A `patches` answer whose patches are not a chain that ends at its head
    /// (see [`Patches`]); the text says what is wrong.
    #[error("a patches answer must carry a chain of its root ending at its head: {0}")]
    BrokenPatches(&'static str),
    /// A load request's `have <head> <height> ` clause is misspelled, or
    /// follows no reply prefix.
    #[error(
        "a load request's head clause is \"have <64 hex digits> <height> \" after a reply prefix"
    )]
    BadHave,
}

/// Why a well-formed patch or answer is not accepted by a node in its state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The bytes do not decode (see [`DecodeError`]).
    #[error("malformed: {0}")]
    Malformed(DecodeError),
    /// A registering load request over the root configuration cap (see
    /// [`DecodeError::RootConfigTooLarge`], which converts to this, not to
    /// [`Rejection::Malformed`]).
    #[error("root configuration of {size} canonical bytes exceeds the limit of {max}")]
    RootConfigTooLarge {
        /// The root configuration's canonical size, in bytes.
        size: usize,
        /// The limit, in bytes ([`Limits::MAX_ROOT_CONFIG_BYTES`]).
        max: usize,
    },
    /// The channel is none of this node's protocol channels (another
    /// namespace's, another client's reply channel).
    #[error("channel is not a tikaconf channel")]
    ForeignChannel,
    /// The message names a parent (or head) other than the hash of the
    /// `updates:<hash>` channel it came on.
    #[error("message names hash {in_message} but came on the channel of {channel}")]
    ChannelMismatch {
        /// The hash in the channel's name.
        channel: Hash,
        /// The hash the message names.
        in_message: Hash,
    },
    /// The message belongs to another root than the one this node follows
    /// on that channel.
    #[error("message is for root {got}, not {expected}")]
    RootMismatch {
        /// The root this node follows there.
        expected: Hash,
        /// The root the message names.
        got: Hash,
    },
    /// A patch's height is not its parent's height plus one.
    #[error("patch claims height {got}, but its parent is at height {expected_minus_one}", expected_minus_one = expected - 1)]
    WrongHeight {
        /// The parent's height plus one.
        expected: u64,
        /// The height the patch claims.
        got: u64,
    },
    /// An operation failed on the current document (a missing path, a failed
    /// `test`).
    #[error("ops failed: {0}")]
    OpsFailed(PatchError),
    /// The document after some op would be larger than a snapshot can carry
    /// ([`Limits::max_document_bytes`]).
    #[error("resulting document of {size} bytes exceeds the limit of {max}")]
    DocumentTooLarge {
        /// The document's canonical size after that op, in bytes.
        size: usize,
        /// The limit, in canonical bytes.
        max: usize,
    },
    /// The document after some op would nest deeper than a snapshot may
    /// ([`Limits::max_depth`] minus the snapshot's own level).
    #[error("resulting document nests {depth} levels deep, more than {max}")]
    DocumentTooDeep {
        /// The document's nesting depth after that op.
        depth: usize,
        /// The deepest nesting allowed.
        max: usize,
    },
    /// The patch would cost more work to apply than its budget (see
    /// [`Limits::patch_budget`]).
    #[error("applying the ops would cost {cost} work units, more than the budget of {budget}")]
    PatchTooCostly {
        /// The work units charged up to the op that went over.
        cost: u64,
        /// The patch's budget, in work units.
        budget: u64,
    },
    /// A valid message of a kind this channel does not carry (a snapshot on a
    /// patch's channel instead of the root's, a patch on a reply channel).
    #[error("this kind of message does not belong on this channel")]
    WrongChannelKind,
    /// The message carries no signature, and this node's [`TrustSet`] is not
    /// empty.
    #[error("unsigned, and this node accepts only signed messages")]
    Unsigned,
    /// The message is signed by a key outside this node's [`TrustSet`].
    #[error("signed by a key this node does not trust")]
    UntrustedKey,
    /// The signature does not verify against the message and its key.
    #[error("the signature does not match the message")]
    BadSignature,
    /// Another storage node announced a different store on this bus (see
    /// [`crate::storage::presence`]): a misconfiguration that would split what
    /// is stored.
    #[error("a storage node of store {theirs} joined this bus, which store {ours} serves")]
    ForeignStore {
        /// This storage node's store.
        ours: crate::storage::presence::StoreId,
        /// The store the other node announced.
        theirs: crate::storage::presence::StoreId,
    },
}

impl Rejection {
    /// A short stable label, for counters.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Malformed(DecodeError::RootConfigTooLarge { .. })
            | Rejection::RootConfigTooLarge { .. } => "root_config_too_large",
            Rejection::Malformed(_) => "malformed",
            Rejection::ForeignChannel => "foreign_channel",
            Rejection::ChannelMismatch { .. } => "channel_mismatch",
            Rejection::RootMismatch { .. } => "root_mismatch",
            Rejection::WrongHeight { .. } => "wrong_height",
            Rejection::OpsFailed(_) => "ops_failed",
            Rejection::DocumentTooLarge { .. } => "document_too_large",
            Rejection::DocumentTooDeep { .. } => "document_too_deep",
            Rejection::PatchTooCostly { .. } => "patch_too_costly",
            Rejection::WrongChannelKind => "wrong_channel_kind",
            Rejection::Unsigned => "unsigned",
            Rejection::UntrustedKey => "untrusted_key",
            Rejection::BadSignature => "bad_signature",
            Rejection::ForeignStore { .. } => "foreign_store",
        }
    }
}

impl From<DecodeError> for Rejection {
    fn from(e: DecodeError) -> Rejection {
        match e {
            DecodeError::RootConfigTooLarge { size, max } => {
                Rejection::RootConfigTooLarge { size, max }
            }
            e => Rejection::Malformed(e),
        }
    }
}

/// Reads the object's fields one by one, and fails on any that is left over.
struct Fields(Map<String, Value>);

impl Fields {
    fn take(&mut self, name: &'static str) -> Result<Value, DecodeError> {
        self.0.remove(name).ok_or(DecodeError::MissingField(name))
    }

    fn hash(&mut self, name: &'static str) -> Result<Hash, DecodeError> {
        match self.take(name)? {
            Value::String(s) => s.parse().map_err(|_| DecodeError::BadHash(name)),
            _ => Err(DecodeError::BadHash(name)),
        }
    }

    fn height(&mut self, name: &'static str) -> Result<u64, DecodeError> {
        match self.take(name)?.as_u64() {
            Some(n) if n <= MAX_SAFE_INTEGER => Ok(n),
            _ => Err(DecodeError::BadInteger(name)),
        }
    }

    fn finish(self) -> Result<(), DecodeError> {
        match self.0.into_iter().next() {
            Some((k, _)) => Err(DecodeError::UnknownField(k)),
            None => Ok(()),
        }
    }
}

fn check_size(bytes: &[u8], limits: &Limits) -> Result<(), DecodeError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: limits.max_message_bytes,
        });
    }
    Ok(())
}

impl Message {
    /// Decodes a message received on an `updates:<hash>` channel. A `"sig"`
    /// member, if any, is checked for shape and dropped; see
    /// [`Message::decode_signed`].
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Message, DecodeError> {
        Message::decode_signed(bytes, limits).map(|(m, _)| m)
    }

    /// Decodes a message and its signature, if it carries one.
    pub fn decode_signed(
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<(Message, Option<Signature>), DecodeError> {
        check_size(bytes, limits)?;
        // Every node hears a `stored` notice per update of each root it follows,
        // as often as the patches themselves; in canonical form (as every storage
        // node sends them) they are recognized without building a JSON tree.
        if limits.max_depth >= Stored::DEPTH
            && let Some(stored) = Stored::from_canonical(bytes)
        {
            return Ok((Message::Stored(stored), None));
        }
        Message::decode_parsed(bytes, limits)
    }

    /// [`Message::decode_signed`] through the JSON parser, for any message.
    fn decode_parsed(
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<(Message, Option<Signature>), DecodeError> {
        let received = json::parse_received(bytes, limits.max_depth)?;
        Message::from_value_signed(received.value, received.canonical.as_ref())
    }

    /// Builds a message from an already normalized JSON value (see [`json::normalize`]).
    pub fn from_value(value: Value) -> Result<Message, DecodeError> {
        Message::from_value_signed(value, None).map(|(m, _)| m)
    }

    /// `canonical` is the text `value` was parsed from, if that was canonical:
    /// then it provides the canonical bytes that would otherwise be encoded.
    fn from_value_signed(
        value: Value,
        canonical: Option<&CanonicalText<'_>>,
    ) -> Result<(Message, Option<Signature>), DecodeError> {
        let Value::Object(mut map) = value else {
            return Err(DecodeError::NotAnObject);
        };
        // The signature is not part of what it signs: take it out first.
        let signature = match map.remove("sig") {
            None => None,
            Some(v) => Some(Signature::from_value(&v).ok_or(DecodeError::BadSignature)?),
        };
        Message::from_map(map, canonical).map(|m| (m, signature))
    }

    fn from_map(
        map: Map<String, Value>,
        canonical: Option<&CanonicalText<'_>>,
    ) -> Result<Message, DecodeError> {
        let kind = match map.get("type") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(DecodeError::MissingType),
        };
        match kind.as_str() {
            "patch" => Patch::from_map(map, canonical).map(|p| Message::Patch(Arc::new(p))),
            "snapshot" => {
                Snapshot::from_map(map, canonical).map(|s| Message::Snapshot(Arc::new(s)))
            }
            "stored" => {
                let mut f = Fields(map);
                f.take("type")?;
                let stored = Stored {
                    root: f.hash("root")?,
                    head: f.hash("head")?,
                    height: f.height("height")?,
                };
                f.finish()?;
                Ok(Message::Stored(stored))
            }
            "unknown" => {
                let mut f = Fields(map);
                f.take("type")?;
                let root = f.hash("root")?;
                f.finish()?;
                Ok(Message::Unknown { root })
            }
            "patches" => Patches::from_map(map, canonical).map(|p| Message::Patches(Arc::new(p))),
            _ => Err(DecodeError::UnknownType(kind)),
        }
    }

    /// The hash of this message's canonical form without `"sig"` (for a patch,
    /// the patch's own hash): the content part of what a signature signs (see
    /// [`signed_bytes`]).
    pub fn signed_hash(&self) -> Hash {
        match self {
            Message::Patch(p) => p.hash,
            Message::Snapshot(s) => Hash::of_canonical_bytes(&s.encoded),
            Message::Unknown { root } => Hash::of_canonical_bytes(&encode_unknown(*root)),
            Message::Stored(s) => Hash::of_canonical_bytes(&s.encode()),
            Message::Patches(p) => Hash::of_canonical_bytes(&p.encoded),
        }
    }

    /// The message's `"type"` member.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Patch(_) => "patch",
            Message::Snapshot(_) => "snapshot",
            Message::Unknown { .. } => "unknown",
            Message::Stored(_) => "stored",
            Message::Patches(_) => "patches",
        }
    }

    /// Checks the signature against `trust` (nothing to check when it is empty),
    /// for a message heard on `channel` in the deployment with `namespace`: the
    /// signature must sign this message in that context ([`signed_bytes`]).
    pub fn verify(
        &self,
        signature: Option<&Signature>,
        trust: &TrustSet,
        namespace: Option<&str>,
        channel: &[u8],
    ) -> Result<(), Rejection> {
        if trust.is_empty() {
            return Ok(());
        }
        let sig = signature.ok_or(Rejection::Unsigned)?;
        let role = match self {
            Message::Patch(_) => Role::Writer,
            _ => Role::Storage,
        };
        if !trust.trusts(&sig.key, role) {
            return Err(Rejection::UntrustedKey);
        }
        // Only an `unknown` is bound to where it travels; the others carry their
        // channel in their body (a patch's parent, the root) or are published on
        // several (a stored snapshot answers on the root's or a reply channel).
        let to = match self {
            Message::Unknown { .. } => Some(String::from_utf8_lossy(channel)),
            _ => None,
        };
        let signed = signed_bytes(
            namespace,
            self.type_name(),
            &self.signed_hash(),
            to.as_deref(),
        );
        if !sig.verifies_bytes(&signed) {
            return Err(Rejection::BadSignature);
        }
        Ok(())
    }

    /// The root this message is about.
    pub fn root(&self) -> Hash {
        match self {
            Message::Patch(p) => p.root,
            Message::Snapshot(s) => s.root,
            Message::Unknown { root } => *root,
            Message::Stored(s) => s.root,
            Message::Patches(p) => p.root,
        }
    }
}

impl Patch {
    /// Builds a patch on `parent` (at `parent_height`) from ops and optional meta.
    /// The ops are normalized to protocol JSON first, so a patch built here hashes
    /// the same as the one every receiver decodes.
    pub fn build(
        root: Hash,
        parent: Hash,
        parent_height: u64,
        ops: Value,
        meta: Option<Map<String, Value>>,
    ) -> Result<Patch, DecodeError> {
        let mut map = Map::new();
        map.insert("type".into(), Value::String("patch".into()));
        map.insert("root".into(), Value::String(root.to_hex()));
        map.insert("parent".into(), Value::String(parent.to_hex()));
        map.insert(
            "height".into(),
            Value::from(parent_height.saturating_add(1)),
        );
        map.insert("ops".into(), ops);
        if let Some(meta) = meta {
            map.insert("meta".into(), Value::Object(meta));
        }
        let value = json::normalize(Value::Object(map), crate::Limits::MAX_DEPTH_CEILING)?;
        match Message::from_value(value)? {
            Message::Patch(p) => Ok(Arc::unwrap_or_clone(p)),
            _ => Err(DecodeError::MissingType),
        }
    }

    fn from_map(
        map: Map<String, Value>,
        received: Option<&CanonicalText<'_>>,
    ) -> Result<Patch, DecodeError> {
        // The hash covers the whole object as received (canonicalized, without
        // its signature), so take the canonical bytes before the fields are taken
        // apart: the received ones if they are canonical, else encode them.
        let (map, encoded) = match received {
            Some(text) => (map, Bytes::from(text.without_member("sig").into_owned())),
            None => {
                let value = Value::Object(map);
                let encoded = Bytes::from(canonical::to_vec(&value));
                let Value::Object(map) = value else {
                    unreachable!("wrapped as an object above")
                };
                (map, encoded)
            }
        };
        let hash = Hash::of_canonical_bytes(&encoded);
        let mut f = Fields(map);
        f.take("type")?;
        let root = f.hash("root")?;
        let parent = f.hash("parent")?;
        let height = f.height("height")?;
        let ops = Ops::from_parsed(f.take("ops")?).map_err(DecodeError::BadOps)?;
        let meta = match f.0.remove("meta") {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(DecodeError::BadMeta),
        };
        f.finish()?;
        if height == 0 || (height == 1) != (parent == root) {
            return Err(DecodeError::HeightParentMismatch);
        }
        Ok(Patch {
            root,
            parent,
            height,
            ops,
            meta,
            hash,
            encoded,
        })
    }
}

impl Snapshot {
    /// The snapshot message for `config` at (`root`, `head`, `height`).
    pub fn new(root: Hash, head: Hash, height: u64, config: Value) -> Snapshot {
        let mut map = Map::new();
        map.insert("type".into(), Value::String("snapshot".into()));
        map.insert("root".into(), Value::String(root.to_hex()));
        map.insert("head".into(), Value::String(head.to_hex()));
        map.insert("height".into(), Value::from(height));
        map.insert("config".into(), config);
        let value = Value::Object(map);
        let encoded = Bytes::from(canonical::to_vec(&value));
        let Value::Object(mut map) = value else {
            unreachable!("built as an object above")
        };
        let config = map.remove("config").unwrap_or(Value::Null);
        Snapshot {
            root,
            head,
            height,
            config,
            encoded,
        }
    }

    /// The exact canonical size and nesting depth of `config`. The size is read
    /// off `encoded`, which is the document's canonical bytes inside an envelope
    /// that depends only on the hashes and the height, so only the depth takes
    /// a walk over the document.
    pub fn config_bound(&self) -> DocBound {
        let mut envelope = Map::new();
        envelope.insert("type".into(), Value::String("snapshot".into()));
        envelope.insert("root".into(), Value::String(self.root.to_hex()));
        envelope.insert("head".into(), Value::String(self.head.to_hex()));
        envelope.insert("height".into(), Value::from(self.height));
        envelope.insert("config".into(), Value::Null);
        let envelope = canonical::encoded_len(&Value::Object(envelope)) - "null".len();
        let bytes = self.encoded.len().saturating_sub(envelope);
        debug_assert_eq!(
            bytes,
            canonical::encoded_len(&self.config),
            "encoded is canonical"
        );
        DocBound {
            bytes,
            depth: json::depth(&self.config),
        }
    }

    /// The snapshot at height 0: the root configuration itself.
    pub fn of_root(root: &RootConfig) -> Snapshot {
        Snapshot::new(root.hash(), root.hash(), 0, root.value().clone())
    }

    fn from_map(
        map: Map<String, Value>,
        received: Option<&CanonicalText<'_>>,
    ) -> Result<Snapshot, DecodeError> {
        let mut f = Fields(map);
        f.take("type")?;
        let root = f.hash("root")?;
        let head = f.hash("head")?;
        let height = f.height("height")?;
        let config = f.take("config")?;
        f.finish()?;
        if height == 0 && head != root {
            return Err(DecodeError::BadRootSnapshot);
        }
        if height == 0 {
            let config_hash = match received.and_then(|text| text.member_value("config")) {
                Some(bytes) => Hash::of_canonical_bytes(bytes),
                None => Hash::of_value(&config),
            };
            if config_hash != root {
                return Err(DecodeError::BadRootSnapshot);
            }
        }
        if height > 0 && head == root {
            return Err(DecodeError::BadRootSnapshot);
        }
        Ok(match received {
            Some(text) => Snapshot {
                root,
                head,
                height,
                config,
                encoded: Bytes::from(text.without_member("sig").into_owned()),
            },
            None => Snapshot::new(root, head, height, config),
        })
    }
}

impl Stored {
    /// The depth of a notice's JSON, as the parser counts it: a limit below it
    /// rejects every notice, so the shortcut of [`Stored::from_canonical`] must
    /// not accept one.
    const DEPTH: usize = 2;

    /// The notice `bytes` are, if they are exactly a notice's canonical encoding
    /// (`{"head":H,"height":N,"root":R,"type":"stored"}`, no `sig`); `None` for
    /// anything else, which then goes through the parser and is accepted or
    /// rejected there. So it accepts nothing the parser would not, with the same
    /// result (a property test holds it to that).
    fn from_canonical(bytes: &[u8]) -> Option<Stored> {
        let rest = bytes.strip_prefix(br#"{"head":""#)?;
        let (head, rest) = hex_hash(rest)?;
        let rest = rest.strip_prefix(br#"","height":"#)?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = rest.split_at(digits);
        let height = canonical_height(digits)?;
        let rest = rest.strip_prefix(br#","root":""#)?;
        let (root, rest) = hex_hash(rest)?;
        (rest == br#"","type":"stored"}"#).then_some(Stored { root, head, height })
    }

    /// The canonical bytes of this notice.
    pub fn encode(&self) -> Bytes {
        let mut map = Map::new();
        map.insert("type".into(), Value::String("stored".into()));
        map.insert("root".into(), Value::String(self.root.to_hex()));
        map.insert("head".into(), Value::String(self.head.to_hex()));
        map.insert("height".into(), Value::from(self.height));
        Bytes::from(canonical::to_vec(&Value::Object(map)))
    }
}

/// A hash's 64 lowercase hex digits at the start of `bytes`, and what follows.
fn hex_hash(bytes: &[u8]) -> Option<(Hash, &[u8])> {
    let (hex, rest) = bytes.split_at_checked(64)?;
    let hash = std::str::from_utf8(hex).ok()?.parse().ok()?;
    Some((hash, rest))
}

/// A height written canonically (decimal digits, no leading zero) and within
/// the protocol's range.
fn canonical_height(digits: &[u8]) -> Option<u64> {
    let leading_zero = digits.len() > 1 && digits[0] == b'0';
    // 2^53 has 16 digits: anything longer is out of range, or not canonical.
    if digits.is_empty() || digits.len() > 16 || leading_zero {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
    (n <= MAX_SAFE_INTEGER).then_some(n)
}

/// The canonical bytes of `{"type":"unknown","root":R}`.
pub fn encode_unknown(root: Hash) -> Bytes {
    let mut map = Map::new();
    map.insert("type".into(), Value::String("unknown".into()));
    map.insert("root".into(), Value::String(root.to_hex()));
    Bytes::from(canonical::to_vec(&Value::Object(map)))
}

/// The root a storage answer (`snapshot` or `unknown`) is about, found without
/// parsing it: the value of its last `"root":` member.
///
/// A client hears the answers to all its roots' requests on one reply channel and
/// must hand each to the right follower before anything decodes it: decoding a
/// megabyte document to learn which follower should decode it would double the
/// cost of a load. In canonical form `root` sorts after `config`, `head` and
/// `height` and before `sig` and `type`, which hold no `"root":` member, so the
/// last one is the top-level one however the document is shaped. Bytes not in
/// canonical form may be routed to the wrong follower, or to none; the follower
/// decodes and checks everything as for any message and rejects it there.
pub fn answer_root(payload: &[u8]) -> Option<Hash> {
    const KEY: &[u8] = b"\"root\":\"";
    let at = payload.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let hex = payload.get(at..at + 64)?;
    std::str::from_utf8(hex).ok()?.parse().ok()
}

impl AddressedRequest {
    /// Decodes a message received on `update_requests`, with or without its
    /// prefixes: `@<token> ` asks for the answer on `replies:<token>` when this
    /// is the only request due for the root (see [`ReplyToken`]); after it,
    /// `have <head> <height> ` says which head the requester has.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<AddressedRequest, DecodeError> {
        check_size(bytes, limits)?;
        let Some(rest) = bytes.strip_prefix(b"@") else {
            return Ok(AddressedRequest {
                request: LoadRequest::decode(bytes, limits)?,
                reply_to: None,
                have: None,
            });
        };
        // The token ends at the first space; one space separates it from the
        // request (a missing space leaves a token with characters no token has).
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let token = ReplyToken::parse(&rest[..end])?;
        let mut request = rest.get(end + 1..).ok_or(InvalidReplyToken)?;
        let mut have = None;
        // No request starts with `h`: a hash is hex digits, a configuration `{`.
        if let Some(clause) = request.strip_prefix(b"have ") {
            let (head, rest) = hex_hash(clause).ok_or(DecodeError::BadHave)?;
            let rest = rest.strip_prefix(b" ").ok_or(DecodeError::BadHave)?;
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let (digits, rest) = rest.split_at(digits);
            let height = canonical_height(digits).ok_or(DecodeError::BadHave)?;
            request = rest.strip_prefix(b" ").ok_or(DecodeError::BadHave)?;
            have = Some(Have { head, height });
        }
        Ok(AddressedRequest {
            request: LoadRequest::decode(request, limits)?,
            reply_to: Some(token),
            have,
        })
    }

    /// The bytes to publish on `update_requests` (see
    /// [`LoadRequest::encode_addressed`]).
    pub fn encode(&self) -> Bytes {
        self.request
            .encode_addressed(self.reply_to.as_ref(), self.have)
    }
}

impl LoadRequest {
    /// The bytes to publish on `update_requests`, asking for the answer on
    /// `replies:<reply_to>` when given, and saying the requester `have`s a head.
    /// A head without a reply channel is left out: its answer could only go to
    /// the root's channel, where it must serve every listener.
    pub fn encode_addressed(&self, reply_to: Option<&ReplyToken>, have: Option<Have>) -> Bytes {
        let request = self.encode();
        let Some(token) = reply_to else {
            return request;
        };
        let mut out = Vec::with_capacity(token.as_str().len() + 96 + request.len());
        out.push(b'@');
        out.extend_from_slice(token.as_str().as_bytes());
        out.push(b' ');
        if let Some(have) = have {
            out.extend_from_slice(b"have ");
            out.extend_from_slice(have.head.to_hex().as_bytes());
            out.push(b' ');
            out.extend_from_slice(have.height.to_string().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&request);
        Bytes::from(out)
    }

    /// Decodes a request without a reply prefix.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<LoadRequest, DecodeError> {
        check_size(bytes, limits)?;
        if let Some(hash) = std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()) {
            return Ok(LoadRequest::ByHash(hash));
        }
        let value = json::parse_strict(bytes, limits.max_depth)?;
        // The root configuration travels inside snapshots, one level deeper and
        // with an envelope: a root that no snapshot could carry is refused here.
        if json::depth(&value) >= limits.max_depth {
            return Err(DecodeError::BadRoot(RootError::TooLarge));
        }
        if canonical::encoded_len(&value) > limits.max_document_bytes() {
            return Err(DecodeError::BadRoot(RootError::TooLarge));
        }
        Ok(LoadRequest::Register(
            RootConfig::from_value(value).map_err(|e| match e {
                RootError::TooLong { size, max } => DecodeError::RootConfigTooLarge { size, max },
                e => DecodeError::BadRoot(e),
            })?,
        ))
    }

    /// The bytes to publish on `update_requests`.
    pub fn encode(&self) -> Bytes {
        match self {
            LoadRequest::ByHash(h) => Bytes::from(h.to_hex()),
            LoadRequest::Register(root) => Bytes::from(root.to_canonical()),
        }
    }

    /// The root this request is about.
    pub fn root(&self) -> Hash {
        match self {
            LoadRequest::ByHash(h) => *h,
            LoadRequest::Register(root) => root.hash(),
        }
    }
}

impl Patch {
    /// Applies this patch to `doc`, the document at (`root`, `self.parent`,
    /// `self.height - 1`), and returns the new document.
    ///
    /// The caller has checked that `self.parent` is its head; everything else that
    /// makes a patch valid in context is checked here, identically on every node.
    pub fn apply_to(
        &self,
        root: Hash,
        parent_height: u64,
        doc: &Value,
        limits: &Limits,
    ) -> Result<Value, Rejection> {
        let bound = DocBound::measure(doc);
        self.apply_with_bound(root, parent_height, doc, bound, limits)
            .map(|(doc, _)| doc)
    }

    /// [`Patch::apply_to`] for a node that tracks bounds of its document's size
    /// and depth (see [`DocBound`]): `bound` is the parent's, and the new
    /// document's comes back with it, which spares measuring the whole document
    /// on every patch.
    pub fn apply_with_bound(
        &self,
        root: Hash,
        parent_height: u64,
        doc: &Value,
        bound: DocBound,
        limits: &Limits,
    ) -> Result<(Value, DocBound), Rejection> {
        if self.root != root {
            return Err(Rejection::RootMismatch {
                expected: root,
                got: self.root,
            });
        }
        if self.height != parent_height + 1 {
            return Err(Rejection::WrongHeight {
                expected: parent_height + 1,
                got: self.height,
            });
        }
        // The document travels inside a snapshot, one level deeper than itself,
        // so it must stay below `max_depth`, and after every op, not only the last.
        let max_bytes = limits.max_document_bytes();
        let caps = Caps {
            max_bytes,
            max_depth: limits.max_depth,
            budget: Limits::patch_budget(bound.bytes, self.encoded.len()),
        };
        self.ops
            .apply_within(doc.clone(), bound, caps)
            .map_err(|e| match e {
                ApplyError::Op(e) => Rejection::OpsFailed(e),
                ApplyError::TooLarge { size } => Rejection::DocumentTooLarge {
                    size,
                    max: max_bytes,
                },
                ApplyError::TooDeep { depth } => Rejection::DocumentTooDeep {
                    depth,
                    max: limits.max_depth.saturating_sub(1),
                },
                ApplyError::TooCostly { cost, budget } => {
                    Rejection::PatchTooCostly { cost, budget }
                }
            })
    }
}

/// The domain separator of protocol v1.2 signatures: the `"context"` member of
/// every signed-bytes object. A later change to what signatures bind changes it,
/// so that no signature is ever read under two meanings.
pub const SIGNATURE_CONTEXT: &str = "tikaconf/v1.2";

/// The bytes an Ed25519 signature of a message signs (protocol v1.2): the
/// canonical form of the object
///
/// `{"context":"tikaconf/v1.2","hash":H,"namespace":NS,"to":TO,"type":T}`
///
/// with `H` the message's [`Message::signed_hash`] (64 hex digits), `NS` the
/// deployment's namespace (`""` for none), `T` the message's `"type"`, and `TO`
/// the full name of the channel an `unknown` is published on (namespace
/// included), `null` for every other type.
///
/// Why each member: the namespace, so that deployments sharing keys (staging
/// and production on one Redis) cannot replay each other's patches; the type, so
/// that no bytes signed as one kind of message ever count as another; the
/// channel of an `unknown`, because "I do not know this root" is true only when
/// said and only to whoever asked: bound to the requester's reply channel, it
/// cannot be replayed on the root's channel to fail every follower's load. A
/// canonical JSON object, rather than a concatenation, because every
/// implementation already has the encoder and it leaves nothing ambiguous
/// whatever characters a namespace holds.
pub fn signed_bytes(namespace: Option<&str>, kind: &str, hash: &Hash, to: Option<&str>) -> Vec<u8> {
    let mut map = Map::new();
    map.insert("context".into(), Value::String(SIGNATURE_CONTEXT.into()));
    map.insert("hash".into(), Value::String(hash.to_hex()));
    map.insert(
        "namespace".into(),
        Value::String(namespace.unwrap_or_default().into()),
    );
    map.insert(
        "to".into(),
        to.map_or(Value::Null, |to| Value::String(to.into())),
    );
    map.insert("type".into(), Value::String(kind.into()));
    canonical::to_vec(&Value::Object(map))
}

/// `unsigned`, the canonical bytes of a message of type `kind`, with `key`'s
/// signature for the deployment with `namespace` attached (see [`signed_bytes`];
/// `to` is the channel of an `unknown`, `None` for the other types).
pub fn sign_canonical(
    key: &SigningKey,
    namespace: Option<&str>,
    kind: &str,
    unsigned: &[u8],
    to: Option<&str>,
) -> Bytes {
    let hash = Hash::of_canonical_bytes(unsigned);
    let sig = key.sign_bytes(&signed_bytes(namespace, kind, &hash, to));
    attach_signature(unsigned, &sig)
}

/// The wire form of a canonical message `unsigned` with `signature` added as its
/// `"sig"` member (still canonical).
pub fn attach_signature(unsigned: &[u8], signature: &Signature) -> Bytes {
    match json::parse_strict(unsigned, Limits::MAX_DEPTH_CEILING) {
        Ok(Value::Object(mut map)) => {
            map.insert("sig".into(), signature.to_value());
            Bytes::from(canonical::to_vec(&Value::Object(map)))
        }
        // Our own canonical output always parses back as an object.
        _ => Bytes::copy_from_slice(unsigned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use crate::json::spelling::{Choices, spell};
    use crate::json::tests::arb_value;
    use proptest::prelude::*;
    use serde_json::json;

    /// Issue 11: what is signed includes the namespace, the type and, for an
    /// `unknown`, the channel it answers on; v1.1's signatures (the raw hash)
    /// no longer verify.
    #[test]
    fn a_signature_verifies_only_in_the_context_it_was_made_for() {
        let key = SigningKey::from_seed([2; 32]);
        let trust = TrustSet::new([key.public_key()]);
        let root = crate::RootConfig::twitch("#ctx").unwrap().hash();
        let patch = Patch::build(root, root, 0, serde_json::json!([]), None).unwrap();
        let on_root = |ns: &str| crate::Channels::new(Some(ns)).updates(&root);
        let check = |bytes: &[u8], ns: Option<&str>, channel: &str| {
            let (m, sig) = Message::decode_signed(bytes, &Limits::default()).unwrap();
            m.verify(sig.as_ref(), &trust, ns, channel.as_bytes())
        };
        let in_a = sign_canonical(&key, Some("a"), "patch", &patch.encoded, None);
        assert_eq!(check(&in_a, Some("a"), &on_root("a")), Ok(()));
        for ns in [Some("b"), None] {
            let channel = crate::Channels::new(ns).updates(&root);
            assert_eq!(check(&in_a, ns, &channel), Err(Rejection::BadSignature));
        }
        let v1_1 = attach_signature(&patch.encoded, &key.sign(&patch.hash));
        assert_eq!(
            check(&v1_1, Some("a"), &on_root("a")),
            Err(Rejection::BadSignature)
        );
        // Signing never changes a chain: the hash is the unsigned patch's.
        let Ok(Message::Patch(decoded)) = Message::decode(&in_a, &Limits::default()) else {
            panic!("a signed patch decodes");
        };
        assert_eq!(decoded.hash, patch.hash);

        // An `unknown` for one reply channel is not an `unknown` for the root's.
        let replies =
            crate::Channels::new(Some("a")).replies(&crate::ReplyToken::new("t").unwrap());
        let unknown = sign_canonical(
            &key,
            Some("a"),
            "unknown",
            &encode_unknown(root),
            Some(&replies),
        );
        assert_eq!(check(&unknown, Some("a"), &replies), Ok(()));
        assert_eq!(
            check(&unknown, Some("a"), &on_root("a")),
            Err(Rejection::BadSignature)
        );
        // No bytes signed as one type count as another.
        let kinds = ["patch", "snapshot", "stored", "unknown"];
        let all: std::collections::HashSet<Vec<u8>> = kinds
            .iter()
            .map(|kind| signed_bytes(Some("a"), kind, &patch.hash, None))
            .collect();
        assert_eq!(all.len(), kinds.len());
    }

    /// `message` (canonical bytes) with a signature member, spelled with `choices`.
    fn respell(message: &[u8], sign: bool, choices: Vec<u8>, rate: u8) -> String {
        let Ok(Value::Object(mut map)) = json::parse_strict(message, Limits::MAX_DEPTH_CEILING)
        else {
            unreachable!("our own messages are objects")
        };
        if sign {
            let key = SigningKey::from_seed([7; 32]);
            map.insert(
                "sig".into(),
                key.sign(&Hash::of_canonical_bytes(message)).to_value(),
            );
        }
        spell(&Value::Object(map), &mut Choices::new(choices, rate))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// However a patch is spelled, signed or not, it decodes to the same
        /// patch: same canonical bytes, same hash (the received bytes are reused
        /// only when they are canonical).
        #[test]
        fn patch_decodes_the_same_in_every_spelling(
            value in arb_value(),
            meta in prop::option::of(arb_value()),
            sign in any::<bool>(),
            choices in prop::collection::vec(any::<u8>(), 1..64),
            rate in prop_oneof![Just(0u8), 2u8..40],
        ) {
            let root = RootConfig::twitch("#spelling").unwrap();
            let ops = json!([{"op": "add", "path": "/x", "value": value}]);
            let meta = meta.map(|m| Map::from_iter([("m".to_owned(), m)]));
            let patch = Patch::build(root.hash(), root.hash(), 0, ops, meta).unwrap();
            let text = respell(&patch.encoded, sign, choices, rate);
            let decoded = Message::decode_signed(text.as_bytes(), &Limits::default());
            prop_assert!(decoded.is_ok(), "{:?}: {:?}", text, decoded);
            let (message, signature) = decoded.unwrap();
            prop_assert_eq!(message, Message::Patch(Arc::new(patch)));
            prop_assert_eq!(signature.is_some(), sign);
        }

        /// The same for snapshots, at height 0 (whose document must hash to the
        /// root) and above.
        #[test]
        fn snapshot_decodes_the_same_in_every_spelling(
            connection in prop::collection::btree_map("[a-z]{1,3}", arb_value(), 0..4),
            doc in arb_value(),
            at_root in any::<bool>(),
            sign in any::<bool>(),
            choices in prop::collection::vec(any::<u8>(), 1..64),
            rate in prop_oneof![Just(0u8), 2u8..40],
        ) {
            let root = RootConfig::from_connection(Value::Object(connection.into_iter().collect()))
                .unwrap();
            let snapshot = if at_root {
                Snapshot::of_root(&root)
            } else {
                Snapshot::new(root.hash(), Hash::of_canonical_bytes(b"head"), 3, doc)
            };
            let text = respell(&snapshot.encoded, sign, choices, rate);
            let decoded = Message::decode_signed(text.as_bytes(), &Limits::default());
            prop_assert!(decoded.is_ok(), "{:?}: {:?}", text, decoded);
            let (message, signature) = decoded.unwrap();
            if let Message::Snapshot(decoded) = &message {
                prop_assert_eq!(decoded.config_bound(), DocBound::measure(&snapshot.config));
            }
            prop_assert_eq!(message, Message::Snapshot(Arc::new(snapshot)));
            prop_assert_eq!(signature.is_some(), sign);
        }
    }

    fn arb_stored() -> impl Strategy<Value = Stored> {
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            prop_oneof![
                0u64..1000,
                Just(MAX_SAFE_INTEGER),
                Just(MAX_SAFE_INTEGER + 1)
            ],
        )
            .prop_map(|(root, head, height)| Stored {
                root: Hash::from_bytes(root),
                head: Hash::from_bytes(head),
                height,
            })
    }

    /// What the shortcut must agree with: the parser's decoding of `bytes`.
    fn parsed(bytes: &[u8], limits: &Limits) -> Result<Message, DecodeError> {
        Message::decode_parsed(bytes, limits).map(|(m, _)| m)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every notice storage sends is recognized without the parser, as the
        /// notice the parser makes of it (and one out of range as nothing).
        #[test]
        fn a_canonical_stored_notice_is_recognized_as_the_parser_reads_it(stored in arb_stored()) {
            let bytes = stored.encode();
            let limits = Limits::default();
            let shortcut = Stored::from_canonical(&bytes);
            // (A height above 2^53 is encoded as the float it rounds to, which
            // the parser may then read as another height: the shortcut must read
            // the same one.)
            match parsed(&bytes, &limits) {
                Ok(message) => prop_assert_eq!(shortcut.map(Message::Stored), Some(message)),
                Err(_) => prop_assert_eq!(shortcut, None),
            }
            if stored.height <= MAX_SAFE_INTEGER {
                prop_assert_eq!(shortcut, Some(stored));
            }
        }

        /// Whatever the bytes (a notice with one byte changed, cut, or grown),
        /// the shortcut accepts only what the parser accepts, as the same notice.
        #[test]
        fn the_stored_shortcut_never_disagrees_with_the_parser(
            stored in arb_stored(),
            at in any::<prop::sample::Index>(),
            byte in prop_oneof![any::<u8>(), prop::sample::select(b"0123456789abcdefABCDEF\\\" ,:{}".to_vec())],
            edit in 0u8..3,
            sig in any::<bool>(),
        ) {
            let mut bytes = stored.encode().to_vec();
            let i = at.index(bytes.len());
            match edit {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
            if sig {
                bytes = attach_signature(&stored.encode(), &SigningKey::from_seed([5; 32]).sign(&stored.head)).to_vec();
            }
            if let Some(shortcut) = Stored::from_canonical(&bytes) {
                prop_assert_eq!(parsed(&bytes, &Limits::default()), Ok(Message::Stored(shortcut)));
            }
            let decoded = Message::decode(&bytes, &Limits::default());
            prop_assert_eq!(decoded, parsed(&bytes, &Limits::default()));
        }
    }

    #[test]
    fn the_stored_shortcut_keeps_the_depth_limit() {
        let bytes = Stored {
            root: Hash::of_canonical_bytes(b"r"),
            head: Hash::of_canonical_bytes(b"h"),
            height: 7,
        }
        .encode();
        for max_depth in 0..=Stored::DEPTH + 1 {
            let limits = Limits {
                max_depth,
                ..Limits::default()
            };
            assert_eq!(
                Message::decode(&bytes, &limits),
                parsed(&bytes, &limits),
                "max_depth {max_depth}"
            );
        }
        assert!(
            parsed(
                &bytes,
                &Limits {
                    max_depth: Stored::DEPTH,
                    ..Limits::default()
                }
            )
            .is_ok()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The routing scan finds the top-level root of any canonical answer,
        /// signed or not, whatever `"root":` members its document holds.
        #[test]
        fn answer_root_finds_the_top_level_root(
            doc in arb_value(),
            decoy in arb_value(),
            sign in any::<bool>(),
        ) {
            let root = RootConfig::twitch("#routing").unwrap().hash();
            let decoy_root = Hash::of_canonical_bytes(b"decoy").to_hex();
            let doc = json!({"root": decoy_root, "z": {"root": decoy_root, "v": doc}, "d": decoy});
            let snapshot = Snapshot::new(root, Hash::of_canonical_bytes(b"h"), 2, doc).encoded;
            let sig_key = SigningKey::from_seed([3; 32]);
            let with_sig = |b: Bytes| {
                if sign {
                    attach_signature(&b, &sig_key.sign(&Hash::of_canonical_bytes(&b)))
                } else {
                    b
                }
            };
            prop_assert_eq!(answer_root(&with_sig(snapshot)), Some(root));
            prop_assert_eq!(answer_root(&with_sig(encode_unknown(root))), Some(root));
        }
    }

    #[test]
    fn answer_root_of_bytes_that_are_no_answer() {
        let root = Hash::of_canonical_bytes(b"r");
        assert_eq!(answer_root(b""), None);
        assert_eq!(answer_root(b"{\"root\":\"abc\"}"), None);
        let cut = format!("{{\"root\":\"{}", &root.to_hex()[..63]);
        assert_eq!(answer_root(cut.as_bytes()), None);
        let upper = format!("{{\"root\":\"{}\"}}", root.to_hex().to_uppercase());
        assert_eq!(answer_root(upper.as_bytes()), None);
    }

    #[test]
    fn load_requests_with_and_without_a_reply_prefix() {
        let limits = Limits::default();
        let root = RootConfig::twitch("#requests").unwrap();
        let token = ReplyToken::new("tok_1").unwrap();
        for request in [
            LoadRequest::ByHash(root.hash()),
            LoadRequest::Register(root),
        ] {
            let plain = request.encode_addressed(None, None);
            assert_eq!(plain, request.encode());
            assert_eq!(
                AddressedRequest::decode(&plain, &limits).map(|a| (a.request, a.reply_to)),
                Ok((request.clone(), None))
            );
            let addressed = request.encode_addressed(Some(&token), None);
            assert!(addressed.starts_with(b"@tok_1 "));
            assert_eq!(
                AddressedRequest::decode(&addressed, &limits).map(|a| (a.request, a.reply_to)),
                Ok((request.clone(), Some(token.clone())))
            );
            // The bare decoder does not take a prefix.
            assert!(LoadRequest::decode(&addressed, &limits).is_err());
            // A head travels after the token, and only with one.
            let have = Have {
                head: Hash::of_canonical_bytes(b"head"),
                height: 12,
            };
            let having = request.encode_addressed(Some(&token), Some(have));
            let text = String::from_utf8(having.to_vec()).unwrap();
            assert!(text.starts_with(&format!("@tok_1 have {} 12 ", have.head)));
            assert_eq!(
                AddressedRequest::decode(&having, &limits),
                Ok(AddressedRequest {
                    request: request.clone(),
                    reply_to: Some(token.clone()),
                    have: Some(have),
                })
            );
            assert_eq!(request.encode_addressed(None, Some(have)), plain);
        }
        let head = Hash::of_canonical_bytes(b"head").to_hex();
        let hash = Hash::of_canonical_bytes(b"x").to_hex();
        for bad in [
            format!("@{hash}"),
            format!("@ {hash}"),
            format!("@tok  {hash}"),
            format!("@t*k {hash}"),
            format!("@{} {hash}", "t".repeat(65)),
            "@tok ".to_owned(),
            format!("@tok @tok {hash}"),
            format!("have {head} 1 {hash}"),
            format!("@tok have {head} 1{hash}"),
            format!("@tok have {head} 01 {hash}"),
            format!("@tok have {head}  1 {hash}"),
            format!("@tok have {} 1 {hash}", &head[1..]),
            format!("@tok have {head} 9007199254740993 {hash}"),
            format!("@tok have {head} {hash}"),
        ] {
            assert!(
                AddressedRequest::decode(bad.as_bytes(), &limits).is_err(),
                "{bad:?}"
            );
        }
        // The size cap covers the prefix.
        let small = Limits {
            max_message_bytes: 70,
            ..limits
        };
        assert!(AddressedRequest::decode(format!("@tok_1 {hash}").as_bytes(), &small).is_err());
    }

    #[test]
    fn a_root_snapshot_with_another_document_is_refused_canonical_or_not() {
        let root = RootConfig::twitch("#spelling").unwrap();
        let other = RootConfig::twitch("#other").unwrap();
        let forged = Snapshot::new(root.hash(), root.hash(), 0, other.value().clone()).encoded;
        let limits = Limits::default();
        assert_eq!(
            Message::decode(&forged, &limits),
            Err(DecodeError::BadRootSnapshot)
        );
        let spaced = format!(" {}", std::str::from_utf8(&forged).unwrap());
        assert_eq!(
            Message::decode(spaced.as_bytes(), &limits),
            Err(DecodeError::BadRootSnapshot)
        );
    }
}
