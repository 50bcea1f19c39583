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

    /// Largest canonical root configuration, in bytes (4 KiB), whatever the
    /// other limits.
    ///
    /// A root configuration is connection info (a platform and a channel, a
    /// server and a room), not a document: a few hundred bytes at most. Anyone
    /// may send one (a registering load request needs no writer rights), and
    /// storage keeps every new one durably and in memory for good, so without a
    /// cap of its own one request of about a message's size (1 MiB) costs every
    /// storage node a megabyte forever. A constant, not a setting: a root that
    /// one node accepts and another refuses would split the fleet.
    pub const MAX_ROOT_CONFIG_BYTES: usize = 4096;

    /// Work units a patch may cost per canonical byte of the document it
    /// applies to (see [`Limits::patch_budget`]).
    pub const PATCH_BUDGET_PER_DOCUMENT_BYTE: u64 = 2;
    /// Work units a patch may cost per canonical byte of its own message.
    pub const PATCH_BUDGET_PER_PATCH_BYTE: u64 = 8;
    /// Work units every patch may cost, however small it and its document are.
    pub const PATCH_BUDGET_FLOOR: u64 = 65_536;

    /// The most a patch may cost to apply, in work units, for a document of
    /// `document_bytes` (canonical, before the patch) and a patch message of
    /// `patch_bytes` (canonical, without `sig`).
    ///
    /// Parsing a patch costs its size, and applying it to a copy of the document
    /// costs the document's; what an op can make cost more than its own bytes is
    /// charged (see [`crate::patch::Ops::apply_within`]): a `copy` or `move` the
    /// canonical size of the value it copies or moves, and inserting or removing
    /// an array element the number of elements after it, which must shift. A
    /// patch charged more than its budget is refused, so a hostile one (many
    /// `copy`/`remove` pairs of a large subtree, many inserts at the front of a
    /// long array) costs every node a small multiple of its own size plus a
    /// couple of document copies, never ops x document. The budget depends on
    /// nothing but the patch and the document, so every node refuses the same
    /// patches. Ordinary patches stay far below it: one copy or move of the
    /// whole document is always within it.
    pub fn patch_budget(document_bytes: usize, patch_bytes: usize) -> u64 {
        (document_bytes as u64)
            .saturating_mul(Self::PATCH_BUDGET_PER_DOCUMENT_BYTE)
            .saturating_add((patch_bytes as u64).saturating_mul(Self::PATCH_BUDGET_PER_PATCH_BYTE))
            .saturating_add(Self::PATCH_BUDGET_FLOOR)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1 << 20,
            max_depth: 64,
        }
    }
}

/// A document's exact canonical size and an upper bound of its nesting depth.
///
/// Checking a patched document against the limits by measuring it costs a walk
/// over the whole document after every op, which is most of what applying a
/// small patch to a large document costs, and, for a patch of many ops, ops x
/// document. Instead each node carries the size, measured once (when a snapshot
/// is loaded) and then kept exact op by op from the sizes of what each op adds
/// and removes (see [`crate::patch::Ops::apply_within`]). Depth only needs a
/// bound: the document is below the cap before an op, so after it only what the
/// op placed can be too deep, and that is measured exactly. The outcome is the
/// same as measuring every time, so nodes still agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DocBound {
    /// The canonical size, exactly.
    pub bytes: usize,
    /// At least the nesting depth.
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
