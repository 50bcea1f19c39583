//! Checking what a store keeps: each root's chain, from its registration (or
//! oldest patch kept) through its log to its head (issue 14).
//!
//! The check itself is the protocol's ([`tikaconf_proto::chain::verify`]);
//! the reads are the store's ([`tikaconf_store::read_chain`]). This module
//! puts them together for one root ([`verify_root`], which `tikaconf serve`'s
//! `GET /v1/configs/{root}/verify` and `tikaconf verify` use) and for a whole
//! store within a time budget ([`verify_store`], which a storage node runs in
//! the background when it starts: [`StorageOptions::verify_for`]).
//!
//! A break is logged (`error`, with the root, height, hash and reason) and
//! counted ([`crate::metrics::CHAIN_BREAKS`], by reason), never acted on: the
//! history decides nothing (docs/ARCHITECTURE.md), and which of two copies is
//! right is a person's call.
//!
//! [`StorageOptions::verify_for`]: crate::StorageOptions::verify_for

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use metrics::Counter;
use tikaconf_proto::chain::{self, Report};
use tikaconf_proto::{Hash, Limits};
use tikaconf_store::{ListedRoot, MAX_CHAIN, MAX_LIST_ROOTS, Store, StoreError, read_chain};

use crate::metrics::{CHAIN_BREAKS, CHAIN_PATCHES_VERIFIED, REASON};

/// How long a storage node verifies its store when it starts, unless told
/// otherwise: 10 s. A store of 100,000 roots with 4 patches each verified
/// in 5.1 to 6.7 s on redb (docs/PERFORMANCE.md, "Start-up verification"), so
/// a typical store is checked whole at every start; a larger one is checked
/// from a random root on, so that successive starts cover different parts,
/// and the work one start costs beside serving stays bounded.
pub const DEFAULT_VERIFY_FOR: Duration = Duration::from_secs(10);

/// Reads `listed`'s chain from `store` and checks it, with the deployment's
/// `limits`; `None` if the root is not registered (any more).
pub async fn verify_root<S: Store>(
    store: &S,
    listed: &ListedRoot,
    limits: &Limits,
) -> Result<Option<Verified>, StoreError> {
    let stored = match read_chain(store, listed, MAX_CHAIN).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return Ok(None),
        // The head cannot be rebuilt (redb replays patches above a snapshot):
        // that root is broken, the others are still checked.
        Err(StoreError::Corrupt(why)) => {
            let report = Report::unloadable(listed.root, listed.head.head, listed.head.height, why);
            return Ok(Some(Verified {
                report,
                truncated: false,
            }));
        }
        Err(e) => return Err(e),
    };
    let report = chain::verify(
        listed.root,
        stored.registration.as_deref(),
        stored
            .patches
            .iter()
            .map(|logged| (logged.height, logged.patch.as_ref())),
        &stored.head,
        limits,
    );
    Ok(Some(Verified {
        report,
        truncated: stored.truncated,
    }))
}

/// One root's chain, checked.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Verified {
    /// What the check found.
    pub report: Report,
    /// Whether the store keeps older patches than were checked
    /// ([`MAX_CHAIN`] at most are read).
    pub truncated: bool,
}

/// What a store-wide check did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct VerifySummary {
    /// Roots whose chains were checked.
    pub roots: u64,
    /// Patches checked, over all roots.
    pub patches: u64,
    /// Gaps found (not breaks: see [`tikaconf_proto::chain`]).
    pub gaps: u64,
    /// Roots with a broken link.
    pub broken: u64,
    /// The first broken links found (at most [`MAX_SUMMARY_BREAKS`]), with
    /// their roots; all of them are logged.
    pub breaks: Vec<(Hash, chain::BrokenLink)>,
    /// Time spent.
    pub elapsed: Duration,
    /// Whether the budget ran out before every root was checked.
    pub budget_ran_out: bool,
    /// Whether the check was stopped (the node stopped) before it finished.
    pub stopped: bool,
}

/// Most broken links a [`VerifySummary`] holds.
pub const MAX_SUMMARY_BREAKS: usize = 16;

/// The series a store-wide check updates, registered by whoever runs it (a
/// storage node registers them with its own, on its own thread, so that a
/// recorder local to that thread sees them).
#[derive(Debug, Clone)]
pub struct VerifyMetrics {
    patches: Counter,
    /// One counter per [`chain::Break::label`].
    breaks: Vec<(&'static str, Counter)>,
}

impl VerifyMetrics {
    /// Registers the series with the installed recorder.
    pub fn new() -> VerifyMetrics {
        VerifyMetrics {
            patches: metrics::counter!(CHAIN_PATCHES_VERIFIED),
            breaks: chain::Break::LABELS
                .iter()
                .map(|&reason| (reason, metrics::counter!(CHAIN_BREAKS, REASON => reason)))
                .collect(),
        }
    }

    fn broken(&self, reason: &'static str) {
        if let Some((_, counter)) = self.breaks.iter().find(|(r, _)| *r == reason) {
            counter.increment(1);
        }
    }
}

impl Default for VerifyMetrics {
    fn default() -> Self {
        VerifyMetrics::new()
    }
}

/// Checks every root `store` keeps, a page of roots at a time (each root's
/// reads short ones: see [`read_chain`]), starting after `start` and
/// wrapping around, until every root is done, `budget` has passed, or `stop`
/// is set. Logs each broken link and a summary, and counts both in `metrics`.
///
/// A store failure ends the check with the error (logged by the caller).
pub async fn verify_store<S: Store>(
    store: &S,
    limits: &Limits,
    budget: Duration,
    start: Hash,
    stop: &AtomicBool,
    metrics: &VerifyMetrics,
) -> Result<VerifySummary, StoreError> {
    let began = Instant::now();
    let deadline = began + budget;
    let mut summary = VerifySummary::default();
    // Two passes: the roots above `start`, then those up to it.
    let mut after = Some(start);
    let mut wrapped = false;
    'pages: loop {
        let page = store.list_roots(after, MAX_LIST_ROOTS).await?;
        let last = page.last().map(|listed| listed.root);
        for listed in &page {
            if wrapped && listed.root > start {
                break 'pages;
            }
            if stop.load(Ordering::Relaxed) {
                summary.stopped = true;
                break 'pages;
            }
            if Instant::now() >= deadline {
                summary.budget_ran_out = true;
                break 'pages;
            }
            let Some(verified) = verify_root(store, listed, limits).await? else {
                continue;
            };
            count(&mut summary, listed.root, &verified.report, metrics);
        }
        match last {
            Some(last) if page.len() == MAX_LIST_ROOTS => after = Some(last),
            _ if !wrapped => {
                wrapped = true;
                after = None;
            }
            _ => break,
        }
    }
    summary.elapsed = began.elapsed();
    Ok(summary)
}

fn count(summary: &mut VerifySummary, root: Hash, report: &Report, metrics: &VerifyMetrics) {
    summary.roots += 1;
    summary.patches += report.checked;
    summary.gaps += report.gap_count;
    metrics.patches.increment(report.checked);
    if let Some(broken) = &report.broken {
        summary.broken += 1;
        metrics.broken(broken.reason.label());
        tracing::error!(
            %root,
            height = broken.height,
            hash = %broken.hash.map_or_else(|| "-".to_owned(), |h| h.to_hex()),
            reason = broken.reason.label(),
            detail = %broken.reason,
            "a stored chain is broken"
        );
        if summary.breaks.len() < MAX_SUMMARY_BREAKS {
            summary.breaks.push((root, broken.clone()));
        }
    }
}
