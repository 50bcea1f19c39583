//! `{"type":"patches",...}`: the patches a follower missed, as one answer.
//!
//! A follower that re-syncs names the head it has (see [`super::Have`]). When
//! storage holds that head a few patches below its own, the patches in between
//! are usually far smaller than the document: a re-sync after a short
//! disconnect, or the periodic one that found a lost message, then costs what
//! changed rather than the whole document, and the follower applies them as if
//! it had heard them live. The batch is storage's word (signed by storage,
//! like a snapshot), so the patches inside carry no signature of their own.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::{DecodeError, Fields, Patch};
use crate::Hash;
use crate::json::CanonicalText;

/// `{"type":"patches","root":R,"head":H,"height":N,"patches":[P1,...,Pk]}`:
/// the patches that take a follower from `P1`'s parent to `head` at `height`.
///
/// Decoding checks everything the bytes alone can show: at least one patch;
/// each element a patch of `root` (without `sig`); each one's parent the
/// previous one's hash and its height the previous one's plus one; the last one's
/// hash and height `head` and `height`. Whether the ops apply is for the
/// follower to find out, on its own document.
#[derive(Debug, Clone, PartialEq)]
pub struct Patches {
    /// The root of the configuration.
    pub root: Hash,
    /// The head the last patch makes: storage's durable head when it answered.
    pub head: Hash,
    /// That head's height.
    pub height: u64,
    /// The patches, oldest first: a chain.
    pub patches: Vec<Arc<Patch>>,
    /// The canonical bytes of the message without its signature.
    pub encoded: Bytes,
}

impl Patches {
    /// The answer carrying `patches`, a chain of `root`'s patches (each one on
    /// the previous one's hash; see [`Patches::is_chain`]), oldest first; `None`
    /// if there are none.
    ///
    /// The bytes are put together from the patches' own canonical bytes, not
    /// encoded again: every member is canonical, and `head`, `height`,
    /// `patches`, `root`, `type` is the canonical order of the members.
    pub fn new(root: Hash, patches: Vec<Arc<Patch>>) -> Option<Patches> {
        let last = patches.last()?;
        debug_assert!(Patches::is_chain(root, &patches), "a chain of the root");
        let (head, height) = (last.hash, last.height);
        let size: usize = patches.iter().map(|p| p.encoded.len() + 1).sum();
        let mut out = Vec::with_capacity(size + 256);
        out.extend_from_slice(b"{\"head\":\"");
        out.extend_from_slice(head.to_hex().as_bytes());
        out.extend_from_slice(b"\",\"height\":");
        out.extend_from_slice(height.to_string().as_bytes());
        out.extend_from_slice(b",\"patches\":[");
        for (i, patch) in patches.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&patch.encoded);
        }
        out.extend_from_slice(b"],\"root\":\"");
        out.extend_from_slice(root.to_hex().as_bytes());
        out.extend_from_slice(b"\",\"type\":\"patches\"}");
        Some(Patches {
            root,
            head,
            height,
            patches,
            encoded: Bytes::from(out),
        })
    }

    /// The size in bytes of the message [`Patches::new`] would make of these
    /// patches, without making it: what storage weighs against a snapshot.
    pub fn encoded_len(patches: &[Arc<Patch>]) -> usize {
        let Some(last) = patches.last() else {
            return 0;
        };
        // The envelope: two hashes, the height's digits, members and brackets.
        let envelope = r#"{"head":"","height":,"patches":[],"root":"","type":"patches"}"#.len();
        let separators = patches.len() - 1;
        let body: usize = patches.iter().map(|p| p.encoded.len()).sum();
        envelope + 2 * 64 + last.height.to_string().len() + separators + body
    }

    /// Whether `patches` are patches of `root` each on the hash of the one
    /// before, one height up.
    pub fn is_chain(root: Hash, patches: &[Arc<Patch>]) -> bool {
        patches.iter().all(|p| p.root == root)
            && patches
                .windows(2)
                .all(|w| w[1].parent == w[0].hash && w[1].height == w[0].height + 1)
    }

    pub(super) fn from_map(
        map: Map<String, Value>,
        received: Option<&CanonicalText<'_>>,
    ) -> Result<Patches, DecodeError> {
        let mut f = Fields(map);
        f.take("type")?;
        let root = f.hash("root")?;
        let head = f.hash("head")?;
        let height = f.height("height")?;
        let Value::Array(items) = f.take("patches")? else {
            return Err(DecodeError::BrokenPatches("\"patches\" is not an array"));
        };
        f.finish()?;
        let mut patches = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(map) = item else {
                return Err(DecodeError::BrokenPatches("an element is not an object"));
            };
            if map.get("type") != Some(&Value::String("patch".into())) {
                return Err(DecodeError::BrokenPatches("an element is not a patch"));
            }
            // An element is a patch without `sig`: `Patch::from_map` refuses
            // any member a patch does not have, `sig` included.
            patches.push(Arc::new(Patch::from_map(map, None)?));
        }
        let Some(last) = patches.last() else {
            return Err(DecodeError::BrokenPatches("no patches"));
        };
        if !Patches::is_chain(root, &patches) {
            return Err(DecodeError::BrokenPatches(
                "the patches are not a chain of the root",
            ));
        }
        if last.hash != head || last.height != height {
            return Err(DecodeError::BrokenPatches(
                "the last patch does not make the head",
            ));
        }
        let encoded = match received {
            Some(text) => Bytes::from(text.without_member("sig").into_owned()),
            None => Patches::new(root, patches.clone())
                .map(|p| p.encoded)
                .unwrap_or_default(),
        };
        Ok(Patches {
            root,
            head,
            height,
            patches,
            encoded,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::message::Message;
    use crate::{Limits, RootConfig};

    fn chain(k: usize) -> (Hash, Vec<Arc<Patch>>) {
        let root = RootConfig::from_value(json!({"connection": {"channel": "catchup"}})).unwrap();
        let (mut parent, mut height) = (root.hash(), 0);
        let mut out = Vec::new();
        for i in 0..k {
            let ops = json!([{"op": "add", "path": format!("/k{i}"), "value": i}]);
            let p = Patch::build(root.hash(), parent, height, ops, None).unwrap();
            parent = p.hash;
            height = p.height;
            out.push(Arc::new(p));
        }
        (root.hash(), out)
    }

    #[test]
    fn a_chain_encodes_canonically_and_decodes_to_itself() {
        let limits = Limits::default();
        for k in 1..5 {
            let (root, patches) = chain(k);
            let batch = Patches::new(root, patches.clone()).unwrap();
            assert_eq!(batch.encoded.len(), Patches::encoded_len(&patches));
            let value: Value = serde_json::from_slice(&batch.encoded).unwrap();
            assert_eq!(crate::canonical::to_vec(&value), batch.encoded.to_vec());
            let Message::Patches(decoded) = Message::decode(&batch.encoded, &limits).unwrap()
            else {
                panic!("not decoded as patches");
            };
            assert_eq!(*decoded, batch);
            assert_eq!(decoded.head, patches[k - 1].hash);
        }
        assert!(Patches::new(chain(1).0, Vec::new()).is_none());
    }

    #[test]
    fn anything_but_a_chain_of_the_root_is_refused() {
        let limits = Limits::default();
        let (root, patches) = chain(3);
        let good = Patches::new(root, patches.clone()).unwrap();
        let mut value: Value = serde_json::from_slice(&good.encoded).unwrap();
        let broken = |edit: &dyn Fn(&mut Value)| {
            let mut v = value.clone();
            edit(&mut v);
            Message::decode(&serde_json::to_vec(&v).unwrap(), &limits)
        };
        // A gap, a reordering, the wrong head or height, no patches, a signed
        // element, something that is no patch.
        type Edit<'a> = Box<dyn Fn(&mut Value) + 'a>;
        let cases: Vec<Edit> = vec![
            Box::new(|v| {
                v["patches"].as_array_mut().unwrap().remove(1);
            }),
            Box::new(|v| v["patches"].as_array_mut().unwrap().swap(0, 1)),
            Box::new(|v| v["head"] = json!(root.to_hex())),
            Box::new(|v| v["height"] = json!(7)),
            Box::new(|v| v["patches"] = json!([])),
            Box::new(|v| v["patches"][2]["sig"] = json!({"key": "00", "sig": "00"})),
            Box::new(|v| v["patches"][0] = json!({"type": "stored"})),
            Box::new(|v| v["patches"] = json!({})),
        ];
        for (i, edit) in cases.iter().enumerate() {
            assert!(broken(edit.as_ref()).is_err(), "case {i} decoded");
        }
        value["extra"] = json!(1);
        assert!(Message::decode(&serde_json::to_vec(&value).unwrap(), &limits).is_err());
    }
}
