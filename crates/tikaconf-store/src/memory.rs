//! An in-memory store, for tests and for the in-process bus.
//!
//! It keeps the same promises as the durable stores except durability, which is
//! what makes it a faithful stand-in: the conformance suite runs against it too.
//! Clones share one map, so two clones behave like two storage nodes sharing one
//! backend. A clone given another [`Retention`] ([`MemoryStore::with_retention`])
//! is that store reopened with another setting, as after a restart.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{
    Hash, HeadRef, ListedRoot, LoggedPatch, MAX_LIST_ROOTS, PersistCommit, PersistOutcome,
    Retention, Store, StoreError, StoredHead, check_register, decide, history_page,
    patches_since_from,
};

/// One root's history: (height, patch), ascending heights.
type Log = VecDeque<(u64, Bytes)>;

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
    /// Each root's history: (height, patch), ascending. Locked after `heads`.
    logs: Arc<Mutex<HashMap<Hash, Log>>>,
    /// This handle's setting (not shared: see the module doc).
    retention: Retention,
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
            logs: Arc::default(),
            retention: Retention::default(),
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

    /// This store, with `retention` from now on (a handle on the same
    /// contents: the store as a node restarted with another setting sees it).
    pub fn with_retention(mut self, retention: Retention) -> MemoryStore {
        self.retention = retention;
        self
    }

    fn logs(&self) -> MutexGuard<'_, HashMap<Hash, Log>> {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner)
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
        let mut logs = self.logs();
        let mut outcomes = Vec::with_capacity(batch.len());
        for commit in batch {
            let outcome = decide(heads.get(&commit.new.root), &commit);
            if outcome == PersistOutcome::Applied {
                if let Some(patch) = commit.patch.filter(|_| self.retention.logs()) {
                    let log = logs.entry(commit.new.root).or_default();
                    log.push_back((commit.new.height, patch));
                    if let Some(through) = self.retention.drops_through(commit.new.height) {
                        while log.front().is_some_and(|(h, _)| *h <= through) {
                            log.pop_front();
                        }
                    }
                }
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

    fn retention(&self) -> Retention {
        self.retention
    }

    async fn history(
        &self,
        root: Hash,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LoggedPatch>, StoreError> {
        let heads = self.heads();
        let Some(head) = heads.get(&root) else {
            return Ok(Vec::new());
        };
        let logs = self.logs();
        let Some(log) = logs.get(&root) else {
            return Ok(Vec::new());
        };
        Ok(history_page(
            self.retention,
            head.height,
            log.iter().cloned(),
            before,
            limit,
        ))
    }

    async fn patches_since(
        &self,
        root: Hash,
        height: u64,
        max: usize,
    ) -> Result<Option<Vec<Bytes>>, StoreError> {
        let heads = self.heads();
        let Some(head) = heads.get(&root) else {
            return Ok(None);
        };
        let logs = self.logs();
        let entries = logs
            .get(&root)
            .into_iter()
            .flatten()
            .filter(|(h, _)| *h > height)
            .cloned();
        Ok(patches_since_from(
            self.retention,
            head.height,
            height,
            max,
            entries,
        ))
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
