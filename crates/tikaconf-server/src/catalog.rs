//! Where the roots listing comes from: the store of the server's own storage
//! node, behind an object-safe trait so that the router does not carry the
//! store's type.

use futures_util::future::BoxFuture;
use tikaconf::Hash;
use tikaconf::store::{ListedRoot, Store, StoreError};

/// A source of root listings: any [`Store`] (the redb, memory or Redis store
/// of the server's storage node).
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
}

impl<S: Store> Catalog for S {
    fn list(
        &self,
        after: Option<Hash>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<ListedRoot>, StoreError>> {
        Box::pin(self.list_roots(after, limit))
    }
}
