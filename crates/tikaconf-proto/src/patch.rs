//! RFC 6902 JSON Patch, applied all or nothing.
//!
//! A patch message carries its change as RFC 6902 ops. Every node applies them to
//! the same document and must reach the same result, including when they fail:
//! RFC 6902 section 5 makes a patch atomic, so a failing op leaves the document as
//! it was. [`Ops::apply`] works on a copy and only replaces the document once every
//! op succeeded. (The `json_patch` crate's own rollback, `json_patch::patch`, can
//! hit `unreachable!` while undoing some op sequences, such as a `move` to the root
//! followed by a failing op; a node must not crash on a peer's patch.)
//!
//! Numbers follow the protocol's rule from [`crate::json`]: equal doubles are equal
//! values, so a `test` of `1.0` against `1` passes. `json_patch` compares with
//! `serde_json::Value`'s `==`, which tells `1` and `1.0` apart, so
//! [`Ops::from_value`] normalizes every op (its `value` included), and the
//! documents ops apply to are expected to be normalized too (which is what
//! [`crate::json::parse_strict`] and [`crate::json::normalize`] return).

use json_patch::{Patch, PatchOperation};
use serde::Deserialize;
use serde_json::Value;

use crate::limits::DocBound;
use crate::{Limits, canonical, json};

/// A parsed, normalized list of RFC 6902 operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Ops {
    patch: Patch,
}

/// Why [`Ops::apply_within`] refused a patch.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyError {
    Op(PatchError),
    /// A document after some op would be this large (canonical bytes).
    TooLarge {
        size: usize,
    },
    /// A document after some op would nest this deep.
    TooDeep {
        depth: usize,
    },
}

/// The bound after one op: an add or replace grows the size by at most its value
/// and a member key, a move by a key, a copy by at most the whole document and a
/// key; depth grows to at most the path's depth plus the value's, or, for a move
/// or copy, by the path's depth.
fn bound_after_op(op: &PatchOperation, mut b: DocBound) -> DocBound {
    // A member key as canonical JSON: every byte may become a 6-byte escape, plus
    // quotes, colon and comma.
    fn key_bytes(path: &str) -> usize {
        let last = path.rsplit('/').next().unwrap_or("");
        6 * last.len() + 4
    }
    fn segments(path: &str) -> usize {
        path.bytes().filter(|b| *b == b'/').count()
    }
    match op {
        PatchOperation::Add(op) => {
            let grow = canonical::encoded_len(&op.value) + key_bytes(op.path.as_str());
            b.bytes = b.bytes.saturating_add(grow);
            b.depth = b
                .depth
                .max(segments(op.path.as_str()) + json::depth(&op.value));
        }
        PatchOperation::Replace(op) => {
            let grow = canonical::encoded_len(&op.value) + key_bytes(op.path.as_str());
            b.bytes = b.bytes.saturating_add(grow);
            b.depth = b
                .depth
                .max(segments(op.path.as_str()) + json::depth(&op.value));
        }
        PatchOperation::Move(op) => {
            b.bytes = b.bytes.saturating_add(key_bytes(op.path.as_str()));
            b.depth = b.depth.saturating_add(segments(op.path.as_str()));
        }
        PatchOperation::Copy(op) => {
            let grow = key_bytes(op.path.as_str());
            b.bytes = b.bytes.saturating_mul(2).saturating_add(grow);
            b.depth = b.depth.saturating_add(segments(op.path.as_str()));
        }
        PatchOperation::Remove(_) | PatchOperation::Test(_) => {}
    }
    b
}

/// One op from its JSON object. An op's `value` can be a whole document, and
/// serde reads an internally tagged enum (the `"op"` member picks the variant)
/// by first buffering every member, so the value stands aside while the op is
/// read, a `null` in its place, and is moved in afterwards. Any JSON value is a
/// valid `value`, so the placeholder changes no outcome.
fn op_from_parsed(mut item: Value) -> Result<PatchOperation, serde_json::Error> {
    let value = item
        .as_object_mut()
        .and_then(|members| members.get_mut("value"))
        .map(Value::take);
    let mut op = PatchOperation::deserialize(item)?;
    if let Some(value) = value {
        match &mut op {
            PatchOperation::Add(op) => op.value = value,
            PatchOperation::Replace(op) => op.value = value,
            PatchOperation::Test(op) => op.value = value,
            // These have no `value`: the member was an unknown one, ignored.
            PatchOperation::Remove(_) | PatchOperation::Move(_) | PatchOperation::Copy(_) => {}
        }
    }
    Ok(op)
}

/// Why ops could not be read or applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The value is not a list of well-formed RFC 6902 ops (not an array, an
    /// unknown `op`, a missing member, a malformed JSON Pointer, a number out of
    /// range).
    #[error("{0}")]
    InvalidOps(String),
    /// The op at `index` (0-based) does not apply to the document.
    #[error("op {index}: {reason}")]
    OpFailed {
        /// Position of the failing op in the list.
        index: usize,
        /// What went wrong, for logs.
        reason: String,
    },
}

impl Ops {
    /// Reads ops from a JSON array of op objects. Members RFC 6902 does not define
    /// are ignored, as the RFC requires; JSON Pointers must be `""` or start with
    /// `/` and use only the `~0` and `~1` escapes.
    pub fn from_value(value: &Value) -> Result<Ops, PatchError> {
        let Value::Array(items) = value else {
            return Err(PatchError::InvalidOps("ops must be a JSON array".into()));
        };
        let ops = items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let invalid =
                    |e: &dyn std::fmt::Display| PatchError::InvalidOps(format!("op {index}: {e}"));
                let item = json::normalize(item.clone(), Limits::MAX_DEPTH_CEILING)
                    .map_err(|e| invalid(&e))?;
                PatchOperation::deserialize(&item).map_err(|e| invalid(&e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ops { patch: Patch(ops) })
    }

    /// [`Ops::from_value`] for a value that is protocol JSON already (from
    /// [`json::parse_strict`] or [`json::normalize`]), taken by value: the same
    /// ops or the same error, without copying the ops' values or normalizing
    /// them again. A patch carrying a whole document as one op's value is read
    /// in time proportional to its ops, not to the document.
    pub(crate) fn from_parsed(value: Value) -> Result<Ops, PatchError> {
        let Value::Array(items) = value else {
            return Err(PatchError::InvalidOps("ops must be a JSON array".into()));
        };
        let ops = items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                op_from_parsed(item).map_err(|e| PatchError::InvalidOps(format!("op {index}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ops { patch: Patch(ops) })
    }

    /// The ops as a JSON array, as they appear in the patch message.
    pub fn to_value(&self) -> Value {
        // Serializing a parsed patch cannot fail: it holds only JSON values and
        // pointers, which serialize to strings.
        serde_json::to_value(&self.patch).unwrap_or(Value::Null)
    }

    /// Upper bounds of the document's size and depth after these ops, given bounds
    /// before them (see [`DocBound`]). Sound for any document within `before`.
    pub fn bound_after(&self, before: DocBound) -> DocBound {
        self.patch
            .0
            .iter()
            .fold(before, |b, op| bound_after_op(op, b))
    }

    /// Applies the ops one by one to `doc` (consumed), keeping every intermediate
    /// document within `max_bytes` of canonical size and below `max_depth` of
    /// nesting; returns the new document and its bound.
    ///
    /// Checking after each op, not only at the end, is what keeps a hostile patch
    /// cheap: a few dozen `copy` ops of the root into itself double the document
    /// each time, and would otherwise build a gigabyte, or a document deep enough
    /// to overflow the stack of whatever walks it, before any check ran. Each op's
    /// growth is bounded (see [`Ops::bound_after`]); the document is measured
    /// exactly only when the bound crosses a limit.
    pub fn apply_within(
        &self,
        mut doc: Value,
        mut bound: DocBound,
        max_bytes: usize,
        max_depth: usize,
    ) -> Result<(Value, DocBound), ApplyError> {
        for (index, op) in self.patch.0.iter().enumerate() {
            json_patch::patch_unsafe(&mut doc, std::slice::from_ref(op)).map_err(|e| {
                ApplyError::Op(PatchError::OpFailed {
                    index,
                    reason: format!("{} (path {:?})", e.kind, e.path.as_str()),
                })
            })?;
            bound = bound_after_op(op, bound);
            if bound.depth >= max_depth || bound.bytes > max_bytes {
                bound = DocBound::measure(&doc);
                if bound.depth >= max_depth {
                    return Err(ApplyError::TooDeep { depth: bound.depth });
                }
                if bound.bytes > max_bytes {
                    return Err(ApplyError::TooLarge { size: bound.bytes });
                }
            }
        }
        Ok((doc, bound))
    }

    /// The number of ops.
    pub fn len(&self) -> usize {
        self.patch.0.len()
    }

    /// Whether there are no ops (a patch that changes nothing).
    pub fn is_empty(&self) -> bool {
        self.patch.0.is_empty()
    }

    /// Applies every op in order to `doc`, all or nothing: on error `doc` is left
    /// exactly as it was. `doc` should be normalized (see the module documentation)
    /// for `test` ops to compare numbers by value.
    pub fn apply(&self, doc: &mut Value) -> Result<(), PatchError> {
        let mut next = doc.clone();
        json_patch::patch_unsafe(&mut next, &self.patch).map_err(|e| PatchError::OpFailed {
            index: e.operation,
            reason: format!("{} (path {:?})", e.kind, e.path.as_str()),
        })?;
        *doc = next;
        Ok(())
    }

    /// Applies every op to `doc`, which is consumed: the new document, or the error
    /// (the partly patched value is dropped). For callers that already hold their
    /// own copy, this saves [`Ops::apply`]'s second one.
    pub fn apply_owned(&self, mut doc: Value) -> Result<Value, PatchError> {
        json_patch::patch_unsafe(&mut doc, &self.patch).map_err(|e| PatchError::OpFailed {
            index: e.operation,
            reason: format!("{} (path {:?})", e.kind, e.path.as_str()),
        })?;
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ops_serialize_back_to_their_json() {
        let v = serde_json::json!([{"op": "add", "path": "/a", "value": 1}]);
        assert_eq!(super::Ops::from_value(&v).unwrap().to_value(), v);
    }

    use super::*;
    use crate::json::parse_strict;
    use serde_json::json;

    fn ops(v: Value) -> Ops {
        Ops::from_value(&v).unwrap()
    }

    #[test]
    fn test_op_treats_equal_doubles_as_equal() {
        let mut doc = parse_strict(br#"{"a":1,"b":[2.5,100]}"#, 8).unwrap();
        // Built in-process: 1.0 and 1e2 are f64 here, unlike the document's integers.
        let p = ops(json!([
            {"op": "test", "path": "/a", "value": 1.0},
            {"op": "test", "path": "/b", "value": [2.5, 1e2]},
        ]));
        assert_eq!(p.apply(&mut doc), Ok(()));
        // And from text.
        let p = Ops::from_value(
            &parse_strict(br#"[{"op":"test","path":"/a","value":1.0}]"#, 8).unwrap(),
        )
        .unwrap();
        assert_eq!(p.apply(&mut doc), Ok(()));
        let p = ops(json!([{"op": "test", "path": "/a", "value": 1.5}]));
        assert!(matches!(
            p.apply(&mut doc),
            Err(PatchError::OpFailed { index: 0, .. })
        ));
    }

    #[test]
    fn applies_ops_in_order() {
        let mut doc = json!({"a": [1, 2]});
        let p = ops(json!([
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "move", "from": "/a/0", "path": "/b"},
            {"op": "copy", "from": "/b", "path": "/c"},
            {"op": "replace", "path": "/c", "value": "x"},
            {"op": "remove", "path": "/a/0"},
        ]));
        assert_eq!(p.len(), 5);
        assert!(!p.is_empty());
        p.apply(&mut doc).unwrap();
        assert_eq!(doc, json!({"a": [3], "b": 1, "c": "x"}));
        assert!(ops(json!([])).is_empty());
    }

    #[test]
    fn failure_leaves_document_unchanged() {
        let original = json!({"a": {"b": 1}, "l": [1, 2, 3]});
        for p in [
            // json_patch::patch would hit unreachable! undoing this move to the root.
            json!([{"op": "move", "from": "/a", "path": ""}, {"op": "test", "path": "/zz", "value": 1}]),
            json!([{"op": "remove", "path": "/l/0"}, {"op": "add", "path": "/l/9", "value": 1}]),
            json!([{"op": "add", "path": "/n", "value": 1}, {"op": "copy", "from": "/nope", "path": "/m"}]),
            json!([{"op": "move", "from": "/l/-", "path": "/x"}]),
            json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]),
        ] {
            let mut doc = original.clone();
            let result = ops(p.clone()).apply(&mut doc);
            assert!(
                matches!(result, Err(PatchError::OpFailed { .. })),
                "{p}: {result:?}"
            );
            assert_eq!(doc, original, "{p}");
        }
    }

    #[test]
    fn rejects_malformed_ops() {
        for bad in [
            json!({"op": "add", "path": "/a", "value": 1}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([{"op": "add", "value": 1}]),
            json!([{"op": "move", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!([{"op": "add", "path": "/~2", "value": 1}]),
            json!([{"path": "/a", "value": 1}]),
            json!([{"op": 1, "path": "/a", "value": 1}]),
            json!(["add"]),
            json!([{"op": "add", "path": "/a", "value": u64::MAX}]),
        ] {
            assert!(
                matches!(Ops::from_value(&bad), Err(PatchError::InvalidOps(_))),
                "{bad}"
            );
        }
    }

    mod from_parsed {
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        use super::super::Ops;
        use crate::json::tests::arb_value;

        /// Op objects well-formed or not: any `op`, pointers good and bad,
        /// members missing, unknown members, and items that are not objects.
        fn arb_item() -> impl Strategy<Value = Value> {
            let op = prop::sample::select(vec![
                json!("add"),
                json!("remove"),
                json!("replace"),
                json!("move"),
                json!("copy"),
                json!("test"),
                json!("frobnicate"),
                json!(1),
            ]);
            let pointer = prop::sample::select(vec!["", "/a", "/a/0", "a", "/~2", "/~1x"]);
            let member = |s: BoxedStrategy<Value>| prop::option::weighted(0.8, s);
            let object = (
                member(op.boxed()),
                member(pointer.clone().prop_map(Value::from).boxed()),
                member(pointer.prop_map(Value::from).boxed()),
                member(arb_value().boxed()),
                member(arb_value().boxed()),
            )
                .prop_map(|(op, path, from, value, extra)| {
                    let mut m = Map::new();
                    for (k, v) in [
                        ("op", op),
                        ("path", path),
                        ("from", from),
                        ("value", value),
                        ("x", extra),
                    ] {
                        if let Some(v) = v {
                            m.insert(k.into(), v);
                        }
                    }
                    Value::Object(m)
                });
            prop_oneof![8 => object, 1 => arb_value()]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]
            /// Reading parsed ops by value gives what reading them by reference
            /// gives: the same ops, or the same error.
            #[test]
            fn agrees_with_from_value(
                items in prop::collection::vec(arb_item(), 0..4),
                not_a_list in prop::option::weighted(0.05, arb_value()),
            ) {
                let ops = not_a_list.unwrap_or(Value::Array(items));
                prop_assert_eq!(Ops::from_parsed(ops.clone()), Ops::from_value(&ops));
            }
        }
    }

    mod bounds {
        use proptest::prelude::*;
        use serde_json::{Value, json};

        use crate::json::tests::arb_value;
        use crate::limits::DocBound;

        /// Documents whose keys are the ones the paths use, so most ops apply.
        fn arb_doc() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<i32>().prop_map(Value::from),
                "[a-z\\x00-\\x1f\"]{0,6}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop::sample::select(vec!["a", "b", "0", "1", "k/x"])
                            .prop_map(String::from),
                        inner,
                        0..4
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn arb_path() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop::sample::select(vec!["a", "b", "0", "1", "-", "k~1x"]),
                0..4,
            )
            .prop_map(|segs| segs.iter().map(|s| format!("/{s}")).collect())
        }

        fn arb_op() -> impl Strategy<Value = Value> {
            (
                0..6usize,
                arb_path(),
                arb_path(),
                prop_oneof![arb_value(), arb_doc()],
            )
                .prop_map(|(kind, path, from, value)| match kind {
                    0 => json!({"op": "add", "path": path, "value": value}),
                    1 => json!({"op": "remove", "path": path}),
                    2 => json!({"op": "replace", "path": path, "value": value}),
                    3 => json!({"op": "move", "from": from, "path": path}),
                    4 => json!({"op": "copy", "from": from, "path": path}),
                    _ => json!({"op": "test", "path": path, "value": value}),
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]
            /// The bound after a patch is never below the truth, so the fast path
            /// never accepts a document the exact check would refuse.
            #[test]
            fn bound_after_is_an_upper_bound(
                doc in arb_doc(),
                ops in prop::collection::vec(arb_op(), 1..4),
            ) {
                let ops = super::super::Ops::from_value(&Value::Array(ops)).unwrap();
                let before = DocBound::measure(&doc);
                if let Ok(after) = ops.apply_owned(doc) {
                    let truth = DocBound::measure(&after);
                    let bound = ops.bound_after(before);
                    prop_assert!(bound.bytes >= truth.bytes, "{bound:?} < {truth:?}");
                    prop_assert!(bound.depth >= truth.depth, "{bound:?} < {truth:?}");
                }
            }
        }
    }
}
