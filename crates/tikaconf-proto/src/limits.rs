//! Size and nesting caps applied to everything a node receives.
//!
//! Every node of one deployment must use the same limits: they are part of the
//! validity rules, so nodes with different limits could disagree on which patch
//! counts.

/// Caps on received messages and on the documents they produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in bytes (default 1 MiB).
    pub max_message_bytes: usize,
    /// Deepest nesting of arrays and objects accepted (default 64; at most 128).
    pub max_depth: usize,
}

impl Limits {
    /// serde_json refuses to recurse deeper than this, so no cap may exceed it.
    pub const MAX_DEPTH_CEILING: usize = 128;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1 << 20,
            max_depth: 64,
        }
    }
}

/// Upper bounds of a document's canonical size and nesting depth.
///
/// Checking a patched document against the limits exactly costs a walk over the
/// whole document for every patch, which is most of what applying a small patch to
/// a large document costs. Instead each node carries bounds: exact after a
/// measurement, then grown by what each patch's ops could add at most (see
/// [`crate::patch::Ops::bound_after`]). While the bound is within the limits, the
/// document is too; only when the bound crosses a limit is the document measured
/// again. The outcome is the same as measuring every time, so nodes still agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DocBound {
    pub bytes: usize,
    pub depth: usize,
}

impl DocBound {
    /// The exact size and depth of `doc`.
    pub fn measure(doc: &serde_json::Value) -> DocBound {
        DocBound {
            bytes: crate::canonical::encoded_len(doc),
            depth: crate::json::depth(doc),
        }
    }
}

impl Limits {
    /// Room left in a message for a snapshot's envelope (type, root, head, height
    /// and their keys take about 200 bytes; the rest is margin).
    const SNAPSHOT_OVERHEAD: usize = 512;

    /// Largest canonical document a patch may produce: one that still fits in a
    /// snapshot message, so that storage can always answer a load request for it.
    pub fn max_document_bytes(&self) -> usize {
        self.max_message_bytes
            .saturating_sub(Self::SNAPSHOT_OVERHEAD)
    }
}
