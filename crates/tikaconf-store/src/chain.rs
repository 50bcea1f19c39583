//! One root's stored chain read whole: the registration, the retained
//! patches (oldest first) and the head, for `tikaconf_proto::chain::verify`
//! and for replaying versions. Reading only: what the bytes mean is the
//! protocol crate's business.
//!
//! Why a reader of its own rather than a method of [`Store`]: it is made of
//! the trait's reads (`load`, then `history` pages), the same for every
//! backend, and each of those is one short read (a redb read transaction, a
//! Redis script), so a caller that reads many roots never holds the store
//! for long.

use bytes::Bytes;

use crate::{ListedRoot, LoggedPatch, MAX_HISTORY, Store, StoreError, StoredHead};

/// Most patches [`read_chain`] reads of one root: ten pages of history, the
/// whole log under the default retention (1,000) and a bounded read under
/// `all`. Older patches are left out ([`StoredChain::truncated`]), as if
/// pruned.
pub const MAX_CHAIN: usize = 10 * MAX_HISTORY;

/// What a store holds of one root's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredChain {
    /// The height-0 snapshot the root was registered with, if kept (see
    /// [`ListedRoot::registration`]).
    pub registration: Option<Bytes>,
    /// The retained patches at or below the head's height, oldest first.
    pub patches: Vec<LoggedPatch>,
    /// The head, with its snapshot.
    pub head: StoredHead,
    /// Whether older patches are kept than were read (beyond `max`).
    pub truncated: bool,
}

/// Reads `listed`'s chain: its head (`load`), then its history newest first
/// back to the oldest patch kept, or `max` patches (at most [`MAX_CHAIN`]).
/// `None` if the root is no longer registered.
///
/// Consistent without a transaction across the reads: the head is read
/// first, and a root's log only grows at the top (each height is written
/// once, by the commit that moves the head to it) and is pruned at the
/// bottom. So the patches read afterwards at or below the head's height are
/// exactly those that made it (minus any pruned meanwhile); patches above it,
/// committed between the reads, are left out.
pub async fn read_chain<S: Store>(
    store: &S,
    listed: &ListedRoot,
    max: usize,
) -> Result<Option<StoredChain>, StoreError> {
    let max = max.min(MAX_CHAIN);
    let Some(head) = store.load(listed.root).await? else {
        return Ok(None);
    };
    let mut newest_first: Vec<LoggedPatch> = Vec::new();
    let mut before = Some(head.height + 1);
    let mut truncated = false;
    while before.is_some_and(|b| b > 1) {
        let want = (max - newest_first.len()).min(MAX_HISTORY);
        if want == 0 {
            truncated = true;
            break;
        }
        let page = store.history(listed.root, before, want).await?;
        let full = page.len() == want;
        before = page.last().map(|p| p.height);
        newest_first.extend(page);
        if !full {
            break;
        }
    }
    if truncated {
        // Whether anything older is really kept.
        truncated = match before {
            Some(b) if b > 1 => !store.history(listed.root, Some(b), 1).await?.is_empty(),
            _ => false,
        };
    }
    newest_first.reverse();
    Ok(Some(StoredChain {
        registration: listed.registration.clone(),
        patches: newest_first,
        head,
        truncated,
    }))
}
