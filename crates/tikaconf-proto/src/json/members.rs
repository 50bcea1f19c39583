//! Collecting an object's members: duplicate keys, and whether they came in
//! canonical order.
//!
//! Members are gathered on a stack shared by all objects being read and turned
//! into a map when the object closes. While the keys come in ascending order,
//! which is how every canonical object arrives, a duplicate can only be the
//! previous key, so one comparison per member finds it, and the finished map is
//! built from sorted members in one linear pass instead of a tree search per
//! insert. The first key out of order moves the object's members into a map,
//! and from then on each key is looked up there: the same answer, just slower,
//! for input no canonical encoder writes.

use std::cmp::Ordering;

use serde_json::map::Entry;
use serde_json::{Map, Value};

use super::JsonError;
use crate::canonical;

/// The members of every object being read, innermost object's last.
#[derive(Debug, Default)]
pub(super) struct Members {
    stack: Vec<(String, Value)>,
}

/// One object being read.
#[derive(Debug)]
pub(super) struct OpenObject {
    /// Where its members start on the stack.
    base: usize,
    /// Its members once a key came out of ascending order.
    spilled: Option<Spilled>,
}

#[derive(Debug)]
struct Spilled {
    map: Map<String, Value>,
    /// The previous key, kept only while the members are still in canonical
    /// order (a key order check needs it, nothing else does).
    last: Option<String>,
}

impl Members {
    pub(super) fn open(&self) -> OpenObject {
        OpenObject {
            base: self.stack.len(),
            spilled: None,
        }
    }

    /// Adds a member, or fails if the object has its key already. Returns whether
    /// the key comes after the previous one in RFC 8785 order (the first always
    /// does).
    pub(super) fn add(
        &mut self,
        object: &mut OpenObject,
        key: String,
        value: Value,
    ) -> Result<bool, JsonError> {
        if let Some(spilled) = &mut object.spilled {
            return spilled.add(key, value);
        }
        let Some((last, _)) = self.stack[object.base..].last() else {
            self.stack.push((key, value));
            return Ok(true);
        };
        match last.as_str().cmp(&key) {
            Ordering::Less => {
                let in_order = canonical::key_order(last, &key) == Ordering::Less;
                self.stack.push((key, value));
                Ok(in_order)
            }
            Ordering::Equal => Err(JsonError::DuplicateKey(key)),
            Ordering::Greater => {
                let last = Some(last.clone());
                let map = self.stack.drain(object.base..).collect();
                object.spilled.insert(Spilled { map, last }).add(key, value)
            }
        }
    }

    /// The finished object's map.
    pub(super) fn close(&mut self, object: OpenObject) -> Map<String, Value> {
        match object.spilled {
            Some(spilled) => spilled.map,
            // Sorted and distinct: the map is built without searching.
            None => self.stack.drain(object.base..).collect(),
        }
    }
}

impl Spilled {
    fn add(&mut self, key: String, value: Value) -> Result<bool, JsonError> {
        let in_order = self
            .last
            .as_deref()
            .is_some_and(|last| canonical::key_order(last, &key) == Ordering::Less);
        match self.map.entry(key) {
            Entry::Occupied(taken) => Err(JsonError::DuplicateKey(taken.key().clone())),
            Entry::Vacant(slot) => {
                self.last = in_order.then(|| slot.key().clone());
                slot.insert(value);
                Ok(in_order)
            }
        }
    }
}
