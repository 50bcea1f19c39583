//! Where the roots listing and each root's history come from: the store of
//! the server's own storage node, behind an object-safe trait so that the
//! router does not carry the store's type.

use futures_util::future::BoxFuture;
use tikaconf::store::{ListedRoot, LoggedPatch, Retention, Store, StoreError, StoredChain};
use tikaconf::verify::Verified;
use tikaconf::{Hash, Limits};

/// A source of root listings and histories: any [`Store`] (the redb, memory
/// or Redis store of the server's storage node).
///
/// Why a trait of its own: [`Store`]'s methods return `impl Future`, which
/// cannot be called through `dyn`; the API holds one `Arc<dyn Catalog>` for
/// whatever store the process opened.
pub trait Catalog: Send + Sync + 'static {
    /// A page of roots above `after`, at most `limit` (see
    /// [`Store::list_roots`]).
    fn list(
        &self,
        after: Option<Hash>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ListedRoot>, StoreError>>;

    /// A page of `root`'s patches below `before`, newest first (see
    /// [`Store::history`]).
    fn history(
        &self,
        root: Hash,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<LoggedPatch>, StoreError>>;

    /// How much history the store keeps.
    fn retention(&self) -> Retention;

    /// `listed`'s registration, retained patches (oldest first, at most
    /// `max`) and head (see [`tikaconf::store::read_chain`]).
    fn chain<'a>(
        &'a self,
        listed: &'a ListedRoot,
        max: usize,
    ) -> BoxFuture<'a, Result<Option<StoredChain>, StoreError>>;

    /// `listed`'s chain, checked (see [`tikaconf::verify::verify_root`]).
    fn verify<'a>(
        &'a self,
        listed: &'a ListedRoot,
        limits: &'a Limits,
    ) -> BoxFuture<'a, Result<Option<Verified>, StoreError>>;

    /// `root` as the listing shows it (head and registration snapshot), or
    /// `None` for a root the store does not know.
    ///
    /// Why through the listing: it is the one read every store has that
    /// returns the registration, and a page of one root above the root's
    /// predecessor is that root if it is registered.
    fn listed(&self, root: Hash) -> BoxFuture<'_, Result<Option<ListedRoot>, StoreError>> {
        Box::pin(async move {
            let page = self.list(predecessor(root), 1).await?;
            Ok(page.into_iter().find(|listed| listed.root == root))
        })
    }
}

impl<S: Store> Catalog for S {
    fn list(
        &self,
        after: Option<Hash>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ListedRoot>, StoreError>> {
        Box::pin(self.list_roots(after, limit))
    }

    fn history(
        &self,
        root: Hash,
        before: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<LoggedPatch>, StoreError>> {
        Box::pin(Store::history(self, root, before, limit))
    }

    fn retention(&self) -> Retention {
        Store::retention(self)
    }

    fn chain<'a>(
        &'a self,
        listed: &'a ListedRoot,
        max: usize,
    ) -> BoxFuture<'a, Result<Option<StoredChain>, StoreError>> {
        Box::pin(tikaconf::store::read_chain(self, listed, max))
    }

    fn verify<'a>(
        &'a self,
        listed: &'a ListedRoot,
        limits: &'a Limits,
    ) -> BoxFuture<'a, Result<Option<Verified>, StoreError>> {
        Box::pin(tikaconf::verify::verify_root(self, listed, limits))
    }
}

/// The hash just below `hash` in byte order (`None` below the smallest): the
/// listing cursor whose next root is `hash` if it exists.
fn predecessor(hash: Hash) -> Option<Hash> {
    let mut bytes = *hash.as_bytes();
    for byte in bytes.iter_mut().rev() {
        if *byte > 0 {
            *byte -= 1;
            return Some(Hash::from_bytes(bytes));
        }
        *byte = 0xff;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_predecessor_borrows_and_stops_at_zero() {
        let mut b = [0u8; 32];
        b[31] = 1;
        assert_eq!(
            predecessor(Hash::from_bytes(b)),
            Some(Hash::from_bytes([0; 32]))
        );
        let mut c = [0u8; 32];
        c[30] = 1;
        let mut want = [0u8; 32];
        want[31] = 0xff;
        assert_eq!(
            predecessor(Hash::from_bytes(c)),
            Some(Hash::from_bytes(want))
        );
        assert_eq!(predecessor(Hash::from_bytes([0; 32])), None);
    }
}
