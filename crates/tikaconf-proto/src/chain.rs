//! A root's chain as a store keeps it, checked link by link: the rule of
//! `PROTOCOL.md` ("Hashes", "patch") that makes the history a tamper-evident
//! log, applied to what is stored rather than to what arrives.
//!
//! Every head is the hash of the patch that made it, and every patch names
//! the head it applies to, so a stored history is a hash chain from the root
//! to the head, like git's commits. [`verify`] recomputes it: each retained
//! patch decodes, sits at the height its `height` field says, belongs to the
//! root, names as parent the hash of the patch below it (the root at height
//! 1), and the last one's hash is the stored head. Where the log reaches down
//! to height 1 and the registration is kept, the ops are applied too, as a
//! follower applies them ([`Patch::apply_with_bound`], under the same
//! limits), and the document they make must be the stored head's. It reports
//! the first link that does not hold, by height, with the stored patch's hash
//! and why ([`Break`]). A patch whose bytes changed no longer hashes to what
//! the next one names as parent; when that next one is itself confirmed by
//! the link above it, the altered patch is the one named ([`Break::Altered`]),
//! else the next one ([`Break::WrongParent`]).
//!
//! Gaps are not breaks: heights missing from the middle of a log (a period
//! when a storage node ran with retention `none` on a shared store) or at its
//! bottom (pruned under `last N`) are expected. After a gap the check starts
//! again from the next patch, unanchored: its parent cannot be checked against
//! a patch that is not kept, and neither can its document.
//!
//! What a passing check proves, and what it does not, is in
//! docs/SECURITY.md ("The history as a tamper-evident log"). In short: a
//! change to any one stored patch, to the head, or to the head's document is
//! found; a rewrite of the whole chain with recomputed hashes is not, except
//! against a head hash known from elsewhere, or with signatures, which this
//! check does not verify (it has no trust set; the `sig` member is outside
//! every hash).
//!
//! [`Walk`] is the link rule itself, one patch at a time, for callers that
//! replay a chain to rebuild a document at a version (the HTTP API's history).
//! Pure: no I/O, no clock; the caller reads the store.

use serde_json::Value;

use crate::limits::DocBound;
use crate::message::{DecodeError, Message, Patch, Rejection};
use crate::storage::StoredHead;
use crate::{Hash, Limits};

/// Most gaps a [`Report`] lists one by one; beyond them it only counts
/// ([`Report::gap_count`]), so that a damaged store cannot make a report as
/// large as its log.
pub const MAX_LISTED_GAPS: usize = 16;

/// Why a link of a stored chain does not hold. Each names what was found, so
/// that a person can tell a damaged byte from a patch put in the wrong place.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Break {
    /// The registration (the snapshot at height 0) is not the root's: it does
    /// not decode, is not a height-0 snapshot, or its configuration does not
    /// hash to the root.
    #[error("the registration is not the root's height-0 snapshot: {0}")]
    BadRegistration(String),
    /// The stored patch does not decode as a message.
    #[error("the stored patch does not decode: {0}")]
    Undecodable(DecodeError),
    /// The stored bytes are a message of another type.
    #[error("the stored message is a {0}, not a patch")]
    NotAPatch(&'static str),
    /// The patch's `height` is not the height it is stored at.
    #[error("its height field says {found}, but it is stored at height {stored}")]
    WrongHeight {
        /// The height it is stored at (its key in the log).
        stored: u64,
        /// The height it names.
        found: u64,
    },
    /// The patch belongs to another root.
    #[error("it is a patch of root {found}")]
    WrongRoot {
        /// The root it names.
        found: Hash,
    },
    /// The patch does not name the previous link as its parent: it, or the
    /// stored patch below it, was altered (or put in the wrong place).
    #[error(
        "it names parent {found}, but the link below it is {expected} \
         (this patch or the one below it was altered)"
    )]
    WrongParent {
        /// The hash of the stored patch below (the root at height 1).
        expected: Hash,
        /// The parent it names.
        found: Hash,
    },
    /// The stored patch hashes to `found`, but the patch after it names
    /// `expected` as its parent and is itself confirmed by the link above it
    /// (the next patch names it, or it is the head): this patch's bytes were
    /// altered after it was stored.
    #[error(
        "it hashes to {found}, but the patch after it, confirmed by the link above, \
         names {expected} as its parent: this patch was altered"
    )]
    Altered {
        /// The hash the patch after it names: what this patch hashed to.
        expected: Hash,
        /// What the stored bytes hash to now.
        found: Hash,
    },
    /// The ops do not apply to the document before it (or break a limit).
    #[error("its ops do not apply to the document before it: {0}")]
    OpsFail(Rejection),
    /// The newest stored patch is at the head's height but does not hash to
    /// the stored head: it, or the head, was altered.
    #[error("the stored head is {stored}, but the patch at its height hashes to {computed}")]
    HeadMismatch {
        /// The head the store records.
        stored: Hash,
        /// The hash of the stored patch at the head's height.
        computed: Hash,
    },
    /// The head's snapshot is not the head's: it does not decode, or names
    /// another root, head or height than the store's record of the head.
    #[error("the stored head's snapshot does not match the head: {0}")]
    BadHeadSnapshot(String),
    /// The log holds a patch above the stored head's height.
    #[error("a patch is stored above the head's height {head}")]
    BeyondHead {
        /// The stored head's height.
        head: u64,
    },
    /// The store cannot rebuild the head's document at all (a store that
    /// keeps some heads as patches on an earlier snapshot found one of those
    /// patches damaged or missing); the text is the store's.
    #[error("the store cannot rebuild the head: {0}")]
    Unloadable(String),
    /// Replaying every patch from the registration does not give the stored
    /// head's document.
    #[error("the document replayed from the registration differs from the stored head's")]
    DocumentMismatch,
}

impl Break {
    /// Every [`Break::label`], for a metrics exporter that registers its
    /// series up front.
    pub const LABELS: &'static [&'static str] = &[
        "bad_registration",
        "undecodable",
        "wrong_height",
        "wrong_root",
        "wrong_parent",
        "altered",
        "ops_fail",
        "head_mismatch",
        "bad_head_snapshot",
        "beyond_head",
        "document_mismatch",
        "unloadable",
    ];

    /// A stable name of the kind of break, for JSON and metrics' labels.
    pub fn label(&self) -> &'static str {
        match self {
            Break::BadRegistration(_) => "bad_registration",
            Break::Undecodable(_) | Break::NotAPatch(_) => "undecodable",
            Break::WrongHeight { .. } => "wrong_height",
            Break::WrongRoot { .. } => "wrong_root",
            Break::WrongParent { .. } => "wrong_parent",
            Break::Altered { .. } => "altered",
            Break::OpsFail(_) => "ops_fail",
            Break::HeadMismatch { .. } => "head_mismatch",
            Break::BadHeadSnapshot(_) => "bad_head_snapshot",
            Break::BeyondHead { .. } => "beyond_head",
            Break::DocumentMismatch => "document_mismatch",
            Break::Unloadable(_) => "unloadable",
        }
    }
}

/// The first link of a chain that does not hold.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BrokenLink {
    /// Where: the height of the stored patch (0 for the registration, the
    /// head's height for the head and its document).
    pub height: u64,
    /// The hash of what is stored there, when it decodes: the patch's (the
    /// root for the registration, the stored head for the head's snapshot).
    pub hash: Option<Hash>,
    /// Why it does not hold.
    pub reason: Break,
}

/// Heights missing from a log, `from..=to`, between patches that are kept or
/// between the newest kept and the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The first height missing.
    pub from: u64,
    /// The last height missing.
    pub to: u64,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Report {
    /// The root checked.
    pub root: Hash,
    /// The stored head.
    pub head: Hash,
    /// The stored head's height.
    pub height: u64,
    /// The lowest height of a stored patch (`None`: no patch is kept).
    pub oldest: Option<u64>,
    /// Patches whose links were checked (up to the break, if any).
    pub checked: u64,
    /// Of those, how many were also applied to the document before them.
    pub replayed: u64,
    /// Of those, how many were checked for linkage only (the document before
    /// them is not known: the log does not reach the root, or follows a gap,
    /// or the registration is not kept).
    pub linkage_only: u64,
    /// The first [`MAX_LISTED_GAPS`] gaps, oldest first.
    pub gaps: Vec<Gap>,
    /// How many gaps there are in all.
    pub gap_count: u64,
    /// Whether the chain was checked unbroken from the root to the head (the
    /// log reaches height 1, or the head is the root, and has no gap).
    pub anchored: bool,
    /// Whether the head's document was compared with the replayed one.
    pub document_checked: bool,
    /// The first broken link; `None` if every checkable link holds.
    pub broken: Option<BrokenLink>,
}

impl Report {
    /// The report on a root whose head (`head` at `height`, as the store's
    /// record says) the store could not load: broken at the head, for `why`.
    pub fn unloadable(root: Hash, head: Hash, height: u64, why: String) -> Report {
        Report::empty(root, head, height).broke(height, Some(head), Break::Unloadable(why))
    }

    /// Nothing checked yet, of the chain of `root` ending at `head`.
    fn empty(root: Hash, head: Hash, height: u64) -> Report {
        Report {
            root,
            head,
            height,
            oldest: None,
            checked: 0,
            replayed: 0,
            linkage_only: 0,
            gaps: Vec::new(),
            gap_count: 0,
            anchored: false,
            document_checked: false,
            broken: None,
        }
    }

    /// No broken link.
    pub fn is_ok(&self) -> bool {
        self.broken.is_none()
    }

    fn gap(&mut self, from: u64, to: u64) {
        self.gap_count += 1;
        if self.gaps.len() < MAX_LISTED_GAPS {
            self.gaps.push(Gap { from, to });
        }
    }

    fn broke(mut self, height: u64, hash: Option<Hash>, reason: Break) -> Report {
        self.broken = Some(BrokenLink {
            height,
            hash,
            reason,
        });
        self.anchored = false;
        self
    }
}

/// The end of a chain walked one patch at a time: the head reached, its
/// height, and its document when the walk started from one.
///
/// The link rule of [`verify`], for callers that replay: the HTTP API
/// rebuilds a document at a version by walking from the registration.
#[derive(Debug, Clone)]
pub struct Walk {
    root: Hash,
    head: Hash,
    height: u64,
    document: Option<(Value, DocBound)>,
}

impl Walk {
    /// A walk from the root (height 0), with the root configuration as its
    /// document when it is known.
    pub fn from_root(root: Hash, registration: Option<Value>) -> Walk {
        Walk {
            root,
            head: root,
            height: 0,
            document: registration.map(|doc| {
                let bound = DocBound::measure(&doc);
                (doc, bound)
            }),
        }
    }

    /// A walk that starts at `patch` with no link below it to check and no
    /// document (after a gap, or at the oldest patch kept above height 1).
    /// Its height and root are checked; its parent cannot be.
    pub fn unanchored(root: Hash, patch: &Patch, stored_at: u64) -> Result<Walk, Break> {
        check_place(root, patch, stored_at)?;
        Ok(Walk {
            root,
            head: patch.hash,
            height: patch.height,
            document: None,
        })
    }

    /// Takes the walk one link further: `patch`, stored at height
    /// `stored_at`, must be at that height, of this root, on this walk's
    /// head, and, when the document is known, apply to it.
    pub fn step(&mut self, patch: &Patch, stored_at: u64, limits: &Limits) -> Result<(), Break> {
        check_place(self.root, patch, stored_at)?;
        if patch.height != self.height + 1 {
            return Err(Break::WrongHeight {
                stored: self.height + 1,
                found: patch.height,
            });
        }
        if patch.parent != self.head {
            return Err(Break::WrongParent {
                expected: self.head,
                found: patch.parent,
            });
        }
        if let Some((doc, bound)) = &self.document {
            let next = patch
                .apply_with_bound(self.root, self.height, doc, *bound, limits)
                .map_err(Break::OpsFail)?;
            self.document = Some(next);
        }
        self.head = patch.hash;
        self.height = patch.height;
        Ok(())
    }

    /// The head the walk reached.
    pub fn head(&self) -> Hash {
        self.head
    }

    /// Its height.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The document at the head, if the walk knows it.
    pub fn document(&self) -> Option<&Value> {
        self.document.as_ref().map(|(doc, _)| doc)
    }

    /// The document at the head, if the walk knows it.
    pub fn into_document(self) -> Option<Value> {
        self.document.map(|(doc, _)| doc)
    }
}

/// The stored patch at `stored_at` is at that height and of `root`.
fn check_place(root: Hash, patch: &Patch, stored_at: u64) -> Result<(), Break> {
    if patch.height != stored_at {
        return Err(Break::WrongHeight {
            stored: stored_at,
            found: patch.height,
        });
    }
    if patch.root != root {
        return Err(Break::WrongRoot { found: patch.root });
    }
    Ok(())
}

/// Decodes a stored patch; the break if it is not one.
pub fn decode_stored(bytes: &[u8], limits: &Limits) -> Result<Patch, Break> {
    match Message::decode(bytes, limits) {
        Ok(Message::Patch(patch)) => Ok(std::sync::Arc::unwrap_or_clone(patch)),
        Ok(other) => Err(Break::NotAPatch(other.type_name())),
        Err(e) => Err(Break::Undecodable(e)),
    }
}

/// Checks a root's stored chain (see the module's documentation):
/// `registration`, the height-0 snapshot bytes if the store keeps them;
/// `log`, the retained patches as stored (`sig` included), by ascending
/// height, each with the height it is stored at; `head`, the stored head
/// with its snapshot. `limits` are the deployment's, as the storage node
/// applied them when it accepted the patches.
///
/// Checked in order, and the first failure is the report's broken link: the
/// registration; then per patch, that it decodes, its height, its root, its
/// parent (unless it follows a gap), its ops (when the document before it is
/// known); then that the newest patch at the head's height hashes to the
/// head, that the head's snapshot is the head's, and that the replayed
/// document (when known) is the head's.
pub fn verify<'a>(
    root: Hash,
    registration: Option<&[u8]>,
    log: impl IntoIterator<Item = (u64, &'a [u8])>,
    head: &StoredHead,
    limits: &Limits,
) -> Report {
    let mut report = Report::empty(root, head.head, head.height);
    let mut registration =
        match registration.map(|bytes| registration_document(root, bytes, limits)) {
            None => None,
            Some(Ok(document)) => Some(document),
            Some(Err(why)) => return report.broke(0, Some(root), Break::BadRegistration(why)),
        };
    // The walk so far (`None` before the first patch), and whether it runs
    // unbroken from the root.
    let mut walk: Option<Walk> = None;
    let mut anchored = true;
    let mut log = log.into_iter().peekable();
    while let Some((stored_at, bytes)) = log.next() {
        report.oldest.get_or_insert(stored_at);
        if stored_at > head.height {
            return report.broke(stored_at, None, Break::BeyondHead { head: head.height });
        }
        let patch = match decode_stored(bytes, limits) {
            Ok(patch) => patch,
            Err(why) => return report.broke(stored_at, None, why),
        };
        let stepped = match walk.as_mut() {
            Some(w) if stored_at == w.height() + 1 => w.step(&patch, stored_at, limits),
            below => {
                // The first patch kept, or the first after a gap: anchored on
                // the root only at height 1, else a new start.
                let below = below.map_or(0, |w| w.height());
                if stored_at > below + 1 {
                    anchored = false;
                    if below > 0 {
                        report.gap(below + 1, stored_at - 1);
                    }
                }
                let started = if stored_at == 1 {
                    let mut w = Walk::from_root(root, registration.take());
                    w.step(&patch, stored_at, limits).map(|()| w)
                } else {
                    Walk::unanchored(root, &patch, stored_at)
                };
                started.map(|w| walk = Some(w))
            }
        };
        match stepped {
            Ok(()) => {}
            // Which of the two was altered: the one below, if this one is
            // confirmed by the link above it.
            Err(Break::WrongParent { expected, found }) => {
                // (At height 1 the link below is the root itself, which
                // cannot have been altered: decoding already refuses a
                // patch at height 1 on another parent.)
                let confirmed = stored_at > 1
                    && match log.peek() {
                        Some(&(next_at, next)) => {
                            next_at == stored_at + 1
                                && decode_stored(next, limits).is_ok_and(|n| n.parent == patch.hash)
                        }
                        None => stored_at == head.height && patch.hash == head.head,
                    };
                return if confirmed {
                    let why = Break::Altered {
                        expected: found,
                        found: expected,
                    };
                    report.broke(stored_at - 1, Some(expected), why)
                } else {
                    let why = Break::WrongParent { expected, found };
                    report.broke(stored_at, Some(patch.hash), why)
                };
            }
            Err(why) => return report.broke(stored_at, Some(patch.hash), why),
        }
        report.checked += 1;
        if walk.as_ref().is_some_and(|w| w.document().is_some()) {
            report.replayed += 1;
        } else {
            report.linkage_only += 1;
        }
    }
    let snapshot = match head_document(head, limits) {
        Ok(document) => document,
        Err(why) => {
            return report.broke(head.height, Some(head.head), Break::BadHeadSnapshot(why));
        }
    };
    let (reached, computed, document) = match &walk {
        Some(w) => (w.height(), w.head(), w.document()),
        // Nothing kept: only a head at the root is a chain of its own.
        None if head.height == 0 => (0, root, registration.as_ref()),
        None => return report_unanchored(report),
    };
    if reached < head.height {
        report.gap(reached + 1, head.height);
        return report_unanchored(report);
    }
    if computed != head.head {
        let stored = head.head;
        return report.broke(
            head.height,
            Some(computed),
            Break::HeadMismatch { stored, computed },
        );
    }
    if let Some(document) = document {
        report.document_checked = true;
        if *document != snapshot {
            return report.broke(head.height, Some(head.head), Break::DocumentMismatch);
        }
    }
    report.anchored = anchored;
    report
}

/// A report whose chain does not reach the head unbroken from the root.
fn report_unanchored(mut report: Report) -> Report {
    report.anchored = false;
    report
}

/// The document of the stored head's snapshot, or why the snapshot is not
/// the head's.
fn head_document(head: &StoredHead, limits: &Limits) -> Result<Value, String> {
    match Message::decode(&head.snapshot, limits) {
        Ok(Message::Snapshot(s))
            if s.root == head.root && s.head == head.head && s.height == head.height =>
        {
            Ok(s.config.clone())
        }
        Ok(Message::Snapshot(s)) => Err(format!(
            "it is a snapshot of root {} at {} (height {})",
            s.root, s.head, s.height
        )),
        Ok(other) => Err(format!("it is a {} message", other.type_name())),
        Err(e) => Err(e.to_string()),
    }
}

/// The root configuration a stored registration (the height-0 snapshot)
/// holds, or why it is not `root`'s.
pub fn registration(root: Hash, bytes: &[u8], limits: &Limits) -> Result<Value, Break> {
    registration_document(root, bytes, limits).map_err(Break::BadRegistration)
}

fn registration_document(root: Hash, bytes: &[u8], limits: &Limits) -> Result<Value, String> {
    match Message::decode(bytes, limits) {
        Ok(Message::Snapshot(s)) if s.height == 0 && s.root == root => Ok(s.config.clone()),
        Ok(Message::Snapshot(s)) => Err(format!(
            "a snapshot of root {} at height {}",
            s.root, s.height
        )),
        Ok(other) => Err(format!("a {} message", other.type_name())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;
    use crate::RootConfig;
    use crate::message::Snapshot;

    /// A stored chain: the registration, the log, the head.
    struct Stored {
        root: Hash,
        registration: Vec<u8>,
        log: Vec<(u64, Vec<u8>)>,
        head: StoredHead,
    }

    impl Stored {
        /// A chain of one patch per step: `(key, value)` adds or replaces
        /// `/key`, `(key, None)` removes it when present (else adds 0);
        /// every other patch carries `meta`.
        fn build(steps: &[(u8, Option<i64>)]) -> Stored {
            let config = RootConfig::twitch("#chaintest").expect("root");
            let root = config.hash();
            let mut doc = config.value().clone();
            let mut head = root;
            let mut log = Vec::new();
            for (i, (key, value)) in steps.iter().enumerate() {
                let path = format!("/k{}", key % 5);
                let present = doc.pointer(&path).is_some();
                let op = match value {
                    None if present => json!({"op": "remove", "path": path}),
                    v => json!({"op": "add", "path": path, "value": v.unwrap_or(0)}),
                };
                let meta = (i % 2 == 0).then(|| {
                    let mut meta = Map::new();
                    meta.insert("author".into(), json!(format!("a{i}")));
                    meta
                });
                let patch = Patch::build(root, head, i as u64, json!([op]), meta).expect("patch");
                doc = patch
                    .apply_to(root, i as u64, &doc, &Limits::default())
                    .expect("applies");
                head = patch.hash;
                log.push((patch.height, patch.encoded.to_vec()));
            }
            let height = steps.len() as u64;
            Stored {
                root,
                registration: Snapshot::of_root(&config).encoded.to_vec(),
                log,
                head: StoredHead {
                    root,
                    head,
                    height,
                    snapshot: Snapshot::new(root, head, height, doc).encoded,
                },
            }
        }

        fn verify(&self) -> Report {
            verify(
                self.root,
                Some(&self.registration),
                self.log.iter().map(|(h, p)| (*h, p.as_slice())),
                &self.head,
                &Limits::default(),
            )
        }

        /// The stored patch at `height`, decoded.
        fn hash_at(&self, height: u64) -> Hash {
            let (_, bytes) = self.log.iter().find(|(h, _)| *h == height).expect("kept");
            decode_stored(bytes, &Limits::default())
                .expect("decodes")
                .hash
        }
    }

    fn steps(n: usize) -> Vec<(u8, Option<i64>)> {
        (0..n)
            .map(|i| (i as u8, (i % 4 != 3).then_some(i as i64)))
            .collect()
    }

    #[test]
    fn a_whole_chain_is_replayed_to_the_head() {
        let stored = Stored::build(&steps(7));
        let report = stored.verify();
        assert_eq!(report.broken, None);
        assert_eq!(
            (report.checked, report.replayed, report.linkage_only),
            (7, 7, 0)
        );
        assert!(report.anchored && report.document_checked);
        assert_eq!((report.oldest, report.gap_count), (Some(1), 0));
    }

    #[test]
    fn a_root_at_height_zero_is_a_chain_of_its_own() {
        let stored = Stored::build(&[]);
        let report = stored.verify();
        assert!(report.is_ok(), "{report:?}");
        assert!(report.anchored && report.document_checked);
        assert_eq!((report.checked, report.oldest), (0, None));
    }

    #[test]
    fn without_the_registration_the_links_are_still_checked() {
        let stored = Stored::build(&steps(3));
        let report = verify(
            stored.root,
            None,
            stored.log.iter().map(|(h, p)| (*h, p.as_slice())),
            &stored.head,
            &Limits::default(),
        );
        assert!(report.is_ok(), "{report:?}");
        assert!(report.anchored && !report.document_checked);
        assert_eq!((report.replayed, report.linkage_only), (0, 3));
    }

    #[test]
    fn gaps_are_reported_and_the_chain_restarts_after_them() {
        let mut stored = Stored::build(&steps(9));
        // Heights 3 and 4 missing (a node with `none`), 7 too.
        stored.log.retain(|(h, _)| ![3, 4, 7].contains(h));
        let report = stored.verify();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(
            report.gaps,
            [Gap { from: 3, to: 4 }, Gap { from: 7, to: 7 }]
        );
        assert_eq!(report.gap_count, 2);
        assert_eq!(
            (report.checked, report.replayed, report.linkage_only),
            (6, 2, 4)
        );
        assert!(!report.anchored && !report.document_checked);
    }

    #[test]
    fn a_pruned_log_is_checked_from_its_oldest_patch() {
        let mut stored = Stored::build(&steps(6));
        stored.log.retain(|(h, _)| *h > 2);
        let report = stored.verify();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!((report.oldest, report.gap_count), (Some(3), 0));
        assert_eq!((report.checked, report.linkage_only), (4, 4));
        assert!(!report.anchored);
    }

    #[test]
    fn a_log_that_stops_below_the_head_has_a_gap_at_the_top() {
        let mut stored = Stored::build(&steps(5));
        stored.log.retain(|(h, _)| *h <= 3);
        let report = stored.verify();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.gaps, [Gap { from: 4, to: 5 }]);
        // Nothing kept at all, above height 0: nothing to check, no break.
        stored.log.clear();
        let report = stored.verify();
        assert!(report.is_ok() && !report.anchored, "{report:?}");
        assert_eq!((report.checked, report.oldest), (0, None));
    }

    #[test]
    fn a_document_that_differs_from_the_replay_is_found() {
        let mut stored = Stored::build(&steps(4));
        let head = stored.head.head;
        stored.head.snapshot = Snapshot::new(stored.root, head, 4, json!({"forged": true})).encoded;
        let broken = stored.verify().broken.expect("broken");
        assert_eq!(broken.height, 4);
        assert_eq!(broken.hash, Some(head));
        assert_eq!(broken.reason, Break::DocumentMismatch);
    }

    #[test]
    fn a_head_the_chain_does_not_reach_is_found() {
        let mut stored = Stored::build(&steps(4));
        let computed = stored.head.head;
        let other = Hash::of_canonical_bytes(b"elsewhere");
        stored.head.head = other;
        stored.head.snapshot = Snapshot::new(stored.root, other, 4, json!({})).encoded;
        let broken = stored.verify().broken.expect("broken");
        assert_eq!(broken.height, 4);
        assert_eq!(broken.hash, Some(computed));
        assert_eq!(
            broken.reason,
            Break::HeadMismatch {
                stored: other,
                computed
            }
        );
        // A snapshot that is not the head's own.
        let mut stored = Stored::build(&steps(2));
        stored.head.snapshot = Snapshot::new(stored.root, stored.head.head, 1, json!({})).encoded;
        let broken = stored.verify().broken.expect("broken");
        assert_eq!(broken.reason.label(), "bad_head_snapshot");
    }

    #[test]
    fn a_registration_of_another_root_is_found() {
        let mut stored = Stored::build(&steps(2));
        let other = RootConfig::twitch("#another").expect("root");
        stored.registration = Snapshot::of_root(&other).encoded.to_vec();
        let broken = stored.verify().broken.expect("broken");
        assert_eq!(
            (broken.height, broken.reason.label()),
            (0, "bad_registration")
        );
    }

    #[test]
    fn a_patch_stored_at_the_wrong_height_or_above_the_head_is_found() {
        let mut stored = Stored::build(&steps(4));
        // Height 3's patch stored at height 5 after a gap: its own field says 3.
        let (_, third) = stored.log[2].clone();
        stored.log.truncate(2);
        stored.log.push((4, third.clone()));
        let broken = stored.verify().broken.expect("broken");
        assert_eq!(
            (broken.height, broken.reason),
            (
                4,
                Break::WrongHeight {
                    stored: 4,
                    found: 3
                }
            )
        );
        stored.log.pop();
        stored.log.push((9, third));
        let broken = stored.verify().broken.expect("broken");
        assert_eq!(
            (broken.height, broken.reason),
            (9, Break::BeyondHead { head: 4 })
        );
    }

    #[test]
    fn a_patch_of_another_chain_in_its_place_names_the_next_link() {
        let mut stored = Stored::build(&steps(5));
        let other = Stored::build(&[(9, Some(9)), (9, Some(10)), (8, Some(1))]);
        // Same root, same height, another parent and content.
        stored.log[2] = other.log[2].clone();
        let broken = stored.verify().broken.expect("broken");
        assert_eq!(broken.height, 3);
        assert_eq!(broken.hash, Some(other.hash_at(3)));
        assert_eq!(
            broken.reason,
            Break::WrongParent {
                expected: stored.hash_at(2),
                found: other.hash_at(2)
            }
        );
    }

    #[test]
    fn a_patch_altered_in_place_is_named() {
        let mut stored = Stored::build(&steps(5));
        let limits = Limits::default();
        let original = stored.hash_at(2);
        // The same patch with another value: it still applies, and hashes
        // to something else.
        let (_, bytes) = &stored.log[1];
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        let altered = text.replace("\"value\":1", "\"value\":100");
        assert_ne!(altered, text);
        stored.log[1].1 = altered.into_bytes();
        let now = stored.hash_at(2);
        let broken = stored.verify().broken.expect("broken");
        assert_eq!(broken.height, 2);
        assert_eq!(broken.hash, Some(now));
        assert_eq!(
            broken.reason,
            Break::Altered {
                expected: original,
                found: now
            }
        );
        // The patch below the head, confirmed by the head itself.
        let mut stored = Stored::build(&steps(3));
        let (_, bytes) = &stored.log[1];
        let mut patch = decode_stored(bytes, &limits).expect("decodes");
        let text = String::from_utf8(patch.encoded.to_vec()).expect("utf-8");
        patch.encoded = text
            .replace("\"value\":1", "\"value\":7")
            .into_bytes()
            .into();
        stored.log[1].1 = patch.encoded.to_vec();
        let broken = stored.verify().broken.expect("broken");
        assert_eq!((broken.height, broken.reason.label()), (2, "altered"));
    }

    #[test]
    fn the_walk_replays_like_a_follower() {
        let stored = Stored::build(&steps(3));
        let limits = Limits::default();
        let registration = registration_document(stored.root, &stored.registration, &limits)
            .expect("registration");
        let mut walk = Walk::from_root(stored.root, Some(registration));
        for (height, bytes) in &stored.log {
            let patch = decode_stored(bytes, &limits).expect("decodes");
            walk.step(&patch, *height, &limits).expect("links");
        }
        assert_eq!((walk.head(), walk.height()), (stored.head.head, 3));
        let snapshot = head_document(&stored.head, &limits).expect("head");
        assert_eq!(walk.into_document(), Some(snapshot));
    }

    fn chain_steps() -> impl Strategy<Value = Vec<(u8, Option<i64>)>> {
        prop::collection::vec((any::<u8>(), prop::option::of(-1000i64..1000)), 1..10)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_random_chain_verifies(steps in chain_steps()) {
            let stored = Stored::build(&steps);
            let report = stored.verify();
            prop_assert!(report.is_ok(), "{:?}", report);
            prop_assert_eq!(report.replayed, steps.len() as u64);
            prop_assert!(report.anchored && report.document_checked);
        }

        /// Any byte of any stored patch flipped (the test patches carry no
        /// `sig`, which no hash covers): the break names that patch's height,
        /// or the next one's (whose parent no longer matches).
        #[test]
        fn a_flipped_byte_is_found_at_its_height_or_the_next(
            steps in chain_steps(),
            which in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let mut stored = Stored::build(&steps);
            let entry = which.index(stored.log.len());
            let height = stored.log[entry].0;
            let bytes = &mut stored.log[entry].1;
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
            let report = stored.verify();
            let broken = report.broken.clone();
            prop_assert!(broken.is_some(), "not found: {:?}", report);
            let broken = broken.unwrap_or_else(|| unreachable!());
            prop_assert!(Break::LABELS.contains(&broken.reason.label()));
            prop_assert!(
                broken.height == height || broken.height == height + 1,
                "flipped at {} but broken at {}: {:?}", height, broken.height, broken
            );
        }
    }
}
