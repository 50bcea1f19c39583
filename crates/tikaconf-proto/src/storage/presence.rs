//! Storage nodes saying which store they serve, so that two stores never share a
//! bus.
//!
//! Two storage nodes on one bus with *independent* stores (two redb files, two
//! Redis key prefixes) would each acknowledge every patch into a store of its own:
//! a write would count as Committed when one of them stored it, and a load could
//! be answered from the other, which may have missed it. tikaconf does not make
//! such nodes replicas of each other (a shared store already gives storage without
//! a single point of failure); it refuses the set-up instead.
//!
//! Every store has an identity ([`StoreId`], made when the store is created and
//! kept in it). On every connect a storage node says `hello` with its store's id
//! on `[NS:]storage_nodes`; a node that hears a `hello` for another store answers
//! `here` with its own, and logs the misconfiguration; a node that hears `here`
//! from another store stops with a clear error. So a node joining a bus served by
//! another store stops within one round trip, the node already serving goes on,
//! and two such nodes starting at once both stop. Nodes of one shared store say
//! `hello` to each other and move on.
//!
//! The messages are canonical JSON: `{"store":"<id>","type":"hello"}` and
//! `{"store":"<id>","type":"here"}`; nothing else is accepted.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::json;
use crate::message::DecodeError;
use crate::{Limits, canonical};

/// The identity of one store: 1 to 64 characters from `0-9`, `a-z`, `A-Z`, `_`
/// and `-` (stores draw 128 random bits, as 32 lowercase hex digits).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreId(Arc<str>);

impl StoreId {
    /// Checks `id`'s spelling.
    pub fn new(id: &str) -> Result<StoreId, DecodeError> {
        if !crate::channel::is_token(id.as_bytes()) {
            return Err(DecodeError::BadStoreId);
        }
        Ok(StoreId(id.into()))
    }

    /// A new store's identity, from 128 random bits (the caller's randomness:
    /// this crate does no I/O).
    pub fn from_random(bits: u128) -> StoreId {
        StoreId(format!("{bits:032x}").into())
    }

    /// The id itself, as announced on the bus.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreId({})", self.0)
    }
}

/// A message on `[NS:]storage_nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// "I (re)joined this bus, serving this store."
    Hello(StoreId),
    /// "I serve this store here": the answer to another store's `hello`.
    Here(StoreId),
}

impl Presence {
    /// The store the sender serves.
    pub fn store(&self) -> &StoreId {
        match self {
            Presence::Hello(id) | Presence::Here(id) => id,
        }
    }

    /// The canonical bytes to publish.
    pub fn encode(&self) -> Bytes {
        let kind = match self {
            Presence::Hello(_) => "hello",
            Presence::Here(_) => "here",
        };
        let mut map = serde_json::Map::new();
        map.insert("store".into(), Value::from(self.store().as_str()));
        map.insert("type".into(), Value::from(kind));
        Bytes::from(canonical::to_vec(&Value::Object(map)))
    }

    /// Decodes a message heard on `[NS:]storage_nodes`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Presence, DecodeError> {
        if bytes.len() > limits.max_message_bytes {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: limits.max_message_bytes,
            });
        }
        let Value::Object(mut map) = json::parse_strict(bytes, limits.max_depth)? else {
            return Err(DecodeError::NotAnObject);
        };
        let kind = match map.remove("type") {
            Some(Value::String(kind)) => kind,
            _ => return Err(DecodeError::MissingType),
        };
        let store = match map.remove("store") {
            Some(Value::String(id)) => StoreId::new(&id)?,
            Some(_) => return Err(DecodeError::BadStoreId),
            None => return Err(DecodeError::MissingField("store")),
        };
        if let Some((field, _)) = map.into_iter().next() {
            return Err(DecodeError::UnknownField(field));
        }
        match kind.as_str() {
            "hello" => Ok(Presence::Hello(store)),
            "here" => Ok(Presence::Here(store)),
            _ => Err(DecodeError::UnknownType(kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_round_trips_and_rejects_anything_else() {
        let id = StoreId::from_random(0x5eed);
        let limits = Limits::default();
        for p in [Presence::Hello(id.clone()), Presence::Here(id.clone())] {
            assert_eq!(Presence::decode(&p.encode(), &limits), Ok(p));
        }
        assert_eq!(
            &Presence::Hello(id).encode()[..],
            br#"{"store":"00000000000000000000000000005eed","type":"hello"}"#
        );
        for (bytes, want) in [
            (
                &br#"{"store":"a","type":"bye"}"#[..],
                "unknown message type",
            ),
            (br#"{"store":"a b","type":"here"}"#, "store id"),
            (br#"{"store":"","type":"here"}"#, "store id"),
            (br#"{"store":1,"type":"here"}"#, "store id"),
            (br#"{"type":"here"}"#, "missing"),
            (br#"{"store":"a","type":"here","x":1}"#, "not allowed"),
            (br#"["here"]"#, "object"),
            (br#"{"store":"a","store":"b","type":"here"}"#, "JSON"),
        ] {
            let err = Presence::decode(bytes, &limits).unwrap_err().to_string();
            assert!(err.contains(want), "{bytes:?}: {err}");
        }
    }
}
