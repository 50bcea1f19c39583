//! An in-memory store, for tests and for the in-process bus.
//!
//! It keeps the same promises as the durable stores except durability, which is
//! what makes it a faithful stand-in: the conformance suite runs against it too.
//! Clones share one map, so two clones behave like two storage nodes sharing one
//! backend.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::{
    Hash, HeadRef, ListedRoot, MAX_LIST_ROOTS, PersistCommit, PersistOutcome, Store, StoreError,
    StoredHead, check_register, decide,
};

/// A [`Store`] in a mutex-guarded map from root to its latest head.
///
/// The design's two keyspaces (`root -> latest hash` and `latest hash -> snapshot`)
/// collapse into one map here: with no disk there is nothing to gain from keeping
/// snapshots apart, and dropping a head drops its snapshot with it.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    heads: Arc<Mutex<HashMap<Hash, StoredHead>>>,
    /// Each root's registration snapshot, ordered by root hash for listings.
    registrations: Arc<Mutex<BTreeMap<[u8; 32], bytes::Bytes>>>,
    /// Shared by clones: they are one store.
    id: Arc<str>,
    /// The answerer lease: holder and expiry.
    lease: Arc<Mutex<Option<(String, Instant)>>>,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore {
            heads: Arc::default(),
            registrations: Arc::default(),
            id: format!("{:032x}", rand::random::<u128>()).into(),
            lease: Arc::default(),
        }
    }
}

impl MemoryStore {
    /// An empty store with a fresh random store id (the same as
    /// [`MemoryStore::default`]). Clones share its contents.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Locks the map. A panic while holding the lock cannot leave it half-updated
    /// (every update is a single insert after all checks), so a poisoned lock is
    /// still consistent and is recovered rather than propagated.
    fn heads(&self) -> MutexGuard<'_, HashMap<Hash, StoredHead>> {
        self.heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    async fn load(&self, root: Hash) -> Result<Option<StoredHead>, StoreError> {
        Ok(self.heads().get(&root).cloned())
    }

    async fn register(&self, head: StoredHead) -> Result<StoredHead, StoreError> {
        check_register(&head)?;
        // The heads' lock first, always: registrations are written under it.
        let mut heads = self.heads();
        if let Some(current) = heads.get(&head.root) {
            return Ok(current.clone());
        }
        self.registrations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(*head.root.as_bytes(), head.snapshot.clone());
        heads.insert(head.root, head.clone());
        Ok(head)
    }

    async fn commit(&self, batch: Vec<PersistCommit>) -> Result<Vec<PersistOutcome>, StoreError> {
        // One lock for the whole batch: it is applied atomically, like a transaction.
        let mut heads = self.heads();
        let mut outcomes = Vec::with_capacity(batch.len());
        for commit in batch {
            let outcome = decide(heads.get(&commit.new.root), &commit);
            if outcome == PersistOutcome::Applied {
                heads.insert(commit.new.root, commit.new);
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn root_count(&self) -> Result<u64, StoreError> {
        Ok(self.heads().len() as u64)
    }

    async fn list_roots(
        &self,
        after: Option<Hash>,
        limit: usize,
    ) -> Result<Vec<ListedRoot>, StoreError> {
        let heads = self.heads();
        let registrations = self
            .registrations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let range = match after {
            Some(after) => registrations.range((
                std::ops::Bound::Excluded(*after.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => registrations.range::<[u8; 32], _>(..),
        };
        Ok(range
            .filter_map(|(root, registration)| {
                let root = Hash::from_bytes(*root);
                let head = heads.get(&root)?;
                Some(ListedRoot::new(
                    root,
                    HeadRef::from(head),
                    Some(registration.clone()),
                ))
            })
            .take(limit.min(MAX_LIST_ROOTS))
            .collect())
    }

    async fn store_id(&self) -> Result<String, StoreError> {
        Ok(self.id.to_string())
    }

    async fn claim_answerer(&self, node: String, ttl: Duration) -> Result<bool, StoreError> {
        let mut lease = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match &*lease {
            Some((holder, until)) if *holder != node && *until > now => Ok(false),
            _ => {
                *lease = Some((node, now + ttl));
                Ok(true)
            }
        }
    }

    async fn release_answerer(&self, node: String) -> Result<(), StoreError> {
        let mut lease = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        if lease.as_ref().is_some_and(|(holder, _)| *holder == node) {
            *lease = None;
        }
        Ok(())
    }

    async fn heads(&self, roots: Vec<Hash>) -> Result<Vec<Option<HeadRef>>, StoreError> {
        let heads = self.heads();
        Ok(roots
            .iter()
            .map(|root| heads.get(root).map(HeadRef::from))
            .collect())
    }
}
