//! The behaviour every [`Store`] must show, as test cases any backend can run.
//!
//! Storage nodes rely on the store contract, not on a particular backend, so the
//! contract is written down once, here, and each backend's tests run it:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In a backend's tests, under `#[tokio::test]`:
//! tikaconf_store::conformance::run_all(tikaconf_store::MemoryStore::new()).await;
//! # }
//! ```
//!
//! Every case works on roots of its own, made unique per call, so all cases can
//! share one store (even one that already holds data, like a Redis server shared by
//! several tests). Cases panic on a violation, as test assertions do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::{Hash, HeadRef, PersistCommit, PersistOutcome, Store, StoredHead};

/// Runs every case against `store`.
pub async fn run_all<S: Store>(store: S) {
    let store = Arc::new(store);
    load_unknown_root(&*store).await;
    register_then_load(&*store).await;
    register_is_idempotent(&*store).await;
    register_rejects_nonzero_height(&*store).await;
    commit_applies(&*store).await;
    commit_already_stored(&*store).await;
    commit_stale(&*store).await;
    commit_unregistered_root(&*store).await;
    empty_batch(&*store).await;
    batch_chains_one_root(&*store).await;
    batch_mixes_roots_and_outcomes(&*store).await;
    batch_repeats_a_commit(&*store).await;
    root_count_counts_registrations(&*store).await;
    heads_match_loads(&*store).await;
    store_id_is_stable(&*store).await;
    answerer_lease_has_one_holder(&*store).await;
    list_roots_pages_every_root_once(&*store).await;
    racing_commits(Arc::clone(&store), Arc::clone(&store)).await;
}

/// A root hash no other case (or earlier run) uses.
pub fn unique_root(label: &str) -> Hash {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!(
        "{{\"root\":\"{label}\",\"n\":{n},\"pid\":{},\"t\":{nanos}}}",
        std::process::id()
    );
    Hash::of_canonical_bytes(seed.as_bytes())
}

/// Stand-in snapshot bytes: opaque to stores, but distinct per head so that a
/// store returning the wrong snapshot is caught.
fn snapshot(root: Hash, head: Hash, height: u64) -> Bytes {
    Bytes::from(format!(
        "{{\"head\":\"{head}\",\"height\":{height},\"root\":\"{root}\",\"type\":\"snapshot\"}}"
    ))
}

/// The height-0 head of `root`.
pub fn genesis(root: Hash) -> StoredHead {
    StoredHead {
        root,
        head: root,
        height: 0,
        snapshot: snapshot(root, root, 0),
    }
}

/// The head one step after `prev`, named by `salt` (different salts give forks).
pub fn next(prev: &StoredHead, salt: &str) -> StoredHead {
    let seed = format!("{{\"parent\":\"{}\",\"salt\":\"{salt}\"}}", prev.head);
    let head = Hash::of_canonical_bytes(seed.as_bytes());
    StoredHead {
        root: prev.root,
        head,
        height: prev.height + 1,
        snapshot: snapshot(prev.root, head, prev.height + 1),
    }
}

/// The commit that moves `prev` to `new`.
pub fn step(prev: &StoredHead, new: &StoredHead) -> PersistCommit {
    PersistCommit {
        expected_head: prev.head,
        new: new.clone(),
        patch: None,
    }
}

async fn load<S: Store>(store: &S, root: Hash) -> Option<StoredHead> {
    store.load(root).await.expect("load failed")
}

async fn commit<S: Store>(store: &S, batch: Vec<PersistCommit>) -> Vec<PersistOutcome> {
    let n = batch.len();
    let outcomes = store.commit(batch).await.expect("commit failed");
    assert_eq!(outcomes.len(), n, "one outcome per commit");
    outcomes
}

async fn registered<S: Store>(store: &S, label: &str) -> StoredHead {
    let g = genesis(unique_root(label));
    assert_eq!(store.register(g.clone()).await.expect("register failed"), g);
    g
}

/// Loading a root that was never registered finds nothing (and is no error).
pub async fn load_unknown_root<S: Store>(store: &S) {
    assert_eq!(load(store, unique_root("unknown")).await, None);
}

/// A registered root loads as its genesis head: height 0, the given snapshot.
pub async fn register_then_load<S: Store>(store: &S) {
    let g = registered(store, "register").await;
    assert_eq!(load(store, g.root).await, Some(g));
}

/// A second registration (a restarted node, another node) must not reset a root:
/// it returns the current head, whatever height that is.
pub async fn register_is_idempotent<S: Store>(store: &S) {
    let g = registered(store, "idempotent").await;
    let mut other = g.clone();
    other.snapshot = Bytes::from_static(b"{\"different\":true}");
    assert_eq!(store.register(other).await.expect("register"), g);

    let h1 = next(&g, "a");
    assert_eq!(
        commit(store, vec![step(&g, &h1)]).await,
        [PersistOutcome::Applied]
    );
    assert_eq!(store.register(g.clone()).await.expect("register"), h1);
    assert_eq!(load(store, g.root).await, Some(h1));
}

/// Registering a head above height 0 is a caller's bug: refused with an
/// error, and nothing is stored.
pub async fn register_rejects_nonzero_height<S: Store>(store: &S) {
    let g = genesis(unique_root("bad-register"));
    let h1 = next(&g, "a");
    assert!(
        store.register(h1).await.is_err(),
        "registering at height 1 must fail"
    );
    assert_eq!(load(store, g.root).await, None);
}

/// A commit from the stored head moves it forward (`Applied`), and the next
/// commit chains from there.
pub async fn commit_applies<S: Store>(store: &S) {
    let g = registered(store, "applies").await;
    let h1 = next(&g, "a");
    assert_eq!(
        commit(store, vec![step(&g, &h1)]).await,
        [PersistOutcome::Applied]
    );
    assert_eq!(load(store, g.root).await, Some(h1.clone()));
    let h2 = next(&h1, "b");
    assert_eq!(
        commit(store, vec![step(&h1, &h2)]).await,
        [PersistOutcome::Applied]
    );
    assert_eq!(load(store, g.root).await, Some(h2));
}

/// `heads` answers, per root and in order, what `load` would, without the
/// snapshot: `None` for an unknown root, the latest head after commits.
pub async fn heads_match_loads<S: Store>(store: &S) {
    let g = registered(store, "heads").await;
    let h1 = next(&g, "a");
    let other = registered(store, "heads-other").await;
    let unknown = unique_root("heads-unknown");
    let ask = vec![g.root, unknown, other.root];
    let before = store.heads(ask.clone()).await.expect("heads");
    assert_eq!(
        before,
        [Some(HeadRef::from(&g)), None, Some(HeadRef::from(&other))]
    );
    commit(store, vec![step(&g, &h1)]).await;
    let after = store.heads(ask).await.expect("heads");
    assert_eq!(after[0], Some(HeadRef::from(&h1)));
    assert_eq!(store.heads(Vec::new()).await.expect("heads"), []);
}

/// A store names itself the same way every time, with an id storage nodes can
/// announce.
pub async fn store_id_is_stable<S: Store>(store: &S) {
    let id = store.store_id().await.expect("store id");
    assert!(
        tikaconf_proto::storage::presence::StoreId::new(&id).is_ok(),
        "{id:?} is not a valid store id"
    );
    assert_eq!(store.store_id().await.expect("store id"), id);
}

/// On a shared store one node at a time holds the answerer lease; its holder
/// renews it, and releasing it lets another node take it. (A store only one node
/// uses grants it to anyone.)
pub async fn answerer_lease_has_one_holder<S: Store>(store: &S) {
    let ttl = std::time::Duration::from_secs(30);
    let (a, b) = (
        format!("a-{}", unique_root("lease").to_hex()),
        format!("b-{}", unique_root("lease").to_hex()),
    );
    let claim = |node: &String| store.claim_answerer(node.clone(), ttl);
    assert!(claim(&a).await.expect("claim"));
    if !store.is_shared() {
        assert!(claim(&b).await.expect("claim"));
        return;
    }
    // The lease may be held by another case's node on a store shared by tests:
    // this case only uses nodes of its own, after releasing any it took.
    assert!(!claim(&b).await.expect("claim"), "two holders at once");
    assert!(claim(&a).await.expect("renew"), "the holder renews");
    store.release_answerer(b.clone()).await.expect("release");
    assert!(!claim(&b).await.expect("claim"), "only the holder releases");
    store.release_answerer(a.clone()).await.expect("release");
    assert!(claim(&b).await.expect("claim"), "released, so free");
    store.release_answerer(b).await.expect("release");
}

/// Storing a head that is already stored (another node got there first) succeeds
/// without writing.
pub async fn commit_already_stored<S: Store>(store: &S) {
    let g = registered(store, "already").await;
    let h1 = next(&g, "a");
    assert_eq!(
        commit(store, vec![step(&g, &h1)]).await,
        [PersistOutcome::Applied]
    );
    assert_eq!(
        commit(store, vec![step(&g, &h1)]).await,
        [PersistOutcome::AlreadyStored]
    );
    assert_eq!(load(store, g.root).await, Some(h1));
}

/// A commit from an out-of-date head (a fork, or an old retry) never overwrites
/// newer state, and reports what the store holds.
pub async fn commit_stale<S: Store>(store: &S) {
    let g = registered(store, "stale").await;
    let h1 = next(&g, "a");
    let h2 = next(&h1, "b");
    assert_eq!(
        commit(store, vec![step(&g, &h1), step(&h1, &h2)]).await,
        [PersistOutcome::Applied, PersistOutcome::Applied]
    );
    // An old commit replayed after the head moved on.
    let fork = next(&g, "fork");
    assert_eq!(
        commit(store, vec![step(&g, &fork)]).await,
        [PersistOutcome::Stale {
            current: Some(h2.clone())
        }]
    );
    // Even a commit to a hash the store held earlier must not move it back.
    assert_eq!(
        commit(store, vec![step(&g, &h1)]).await,
        [PersistOutcome::Stale {
            current: Some(h2.clone())
        }]
    );
    assert_eq!(load(store, g.root).await, Some(h2));
}

/// A commit for a root that was never registered is `Stale` with no current
/// head, and registers nothing.
pub async fn commit_unregistered_root<S: Store>(store: &S) {
    let g = genesis(unique_root("unregistered"));
    let h1 = next(&g, "a");
    assert_eq!(
        commit(store, vec![step(&g, &h1)]).await,
        [PersistOutcome::Stale { current: None }]
    );
    assert_eq!(load(store, g.root).await, None);
}

/// An empty batch succeeds with no outcomes (a backend must not fail on it).
pub async fn empty_batch<S: Store>(store: &S) {
    assert_eq!(commit(store, Vec::new()).await, []);
}

/// Group commit: a burst of patches on one root arrives as one batch whose commits
/// chain; each must see the one before it.
pub async fn batch_chains_one_root<S: Store>(store: &S) {
    let g = registered(store, "chain").await;
    let mut heads = vec![g.clone()];
    for i in 0..10 {
        let next = next(&heads[i], &i.to_string());
        heads.push(next);
    }
    let batch = heads.windows(2).map(|w| step(&w[0], &w[1])).collect();
    let outcomes = commit(store, batch).await;
    assert!(
        outcomes.iter().all(|o| *o == PersistOutcome::Applied),
        "{outcomes:?}"
    );
    assert_eq!(load(store, g.root).await.as_ref(), heads.last());
}

/// Outcomes are per commit: a stale commit in a batch does not stop the others.
pub async fn batch_mixes_roots_and_outcomes<S: Store>(store: &S) {
    let a = registered(store, "mix-a").await;
    let b = registered(store, "mix-b").await;
    let c = registered(store, "mix-c").await;
    let a1 = next(&a, "1");
    let b1 = next(&b, "1");
    let c1 = next(&c, "1");
    assert_eq!(
        commit(store, vec![step(&b, &b1)]).await,
        [PersistOutcome::Applied]
    );

    let b_fork = next(&b, "fork");
    let outcomes = commit(
        store,
        vec![
            step(&a, &a1),
            step(&b, &b_fork),
            step(&c, &c1),
            step(&b, &b1),
        ],
    )
    .await;
    assert_eq!(
        outcomes,
        [
            PersistOutcome::Applied,
            PersistOutcome::Stale {
                current: Some(b1.clone())
            },
            PersistOutcome::Applied,
            PersistOutcome::AlreadyStored,
        ]
    );
    assert_eq!(load(store, a.root).await, Some(a1));
    assert_eq!(load(store, b.root).await, Some(b1));
    assert_eq!(load(store, c.root).await, Some(c1));
}

/// The same patch received twice before a flush lands twice in one batch.
pub async fn batch_repeats_a_commit<S: Store>(store: &S) {
    let g = registered(store, "repeat").await;
    let h1 = next(&g, "a");
    assert_eq!(
        commit(store, vec![step(&g, &h1), step(&g, &h1)]).await,
        [PersistOutcome::Applied, PersistOutcome::AlreadyStored]
    );
    assert_eq!(load(store, g.root).await, Some(h1));
}

/// `root_count` counts each registered root once: re-registering or moving a
/// root does not change it.
pub async fn root_count_counts_registrations<S: Store>(store: &S) {
    let before = store.root_count().await.expect("root_count");
    let a = registered(store, "count-a").await;
    registered(store, "count-b").await;
    assert_eq!(store.root_count().await.expect("root_count"), before + 2);
    store.register(a.clone()).await.expect("register");
    let a1 = next(&a, "1");
    commit(store, vec![step(&a, &a1)]).await;
    assert_eq!(
        store.root_count().await.expect("root_count"),
        before + 2,
        "re-registering or committing adds no root"
    );
}

/// `list_roots` pages through every registered root once, in ascending hash
/// order, with its current head and, for a root still at height 0, the
/// snapshot it was registered with (also once it has moved on), whatever the
/// page size; a page never holds more than asked or than
/// [`crate::MAX_LIST_ROOTS`]. Other cases' roots may be in the store too.
pub async fn list_roots_pages_every_root_once<S: Store>(store: &S) {
    let mut ours = std::collections::BTreeMap::new();
    for i in 0..25 {
        let g = registered(store, &format!("list-{i}")).await;
        ours.insert(g.root, g);
    }
    // One of them moves on twice: its listing shows the new head, and still
    // its registration.
    let moved = ours.values().nth(3).cloned().expect("a root");
    let moved1 = next(&moved, "1");
    commit(store, vec![step(&moved, &moved1)]).await;
    let moved2 = next(&moved1, "2");
    commit(store, vec![step(&moved1, &moved2)]).await;
    for page in [1, 7, 1000, 5000] {
        let mut seen = std::collections::BTreeMap::new();
        let mut after = None;
        loop {
            let listed = store.list_roots(after, page).await.expect("list_roots");
            assert!(
                listed.len() <= page.min(crate::MAX_LIST_ROOTS),
                "page {page}"
            );
            let Some(last) = listed.last() else { break };
            after = Some(last.root);
            for entry in listed {
                if let Some(previous) = seen.keys().next_back() {
                    assert!(entry.root > *previous, "ascending, no repeat (page {page})");
                }
                seen.insert(entry.root, entry);
            }
        }
        for (root, g) in &ours {
            let entry = seen.get(root).expect("every registered root is listed");
            assert_eq!(
                entry.registration.as_ref(),
                Some(&g.snapshot),
                "page {page}"
            );
            let expected = if *root == moved.root { &moved2 } else { g };
            assert_eq!(entry.head, HeadRef::from(expected), "page {page}");
        }
    }
    assert!(store.list_roots(None, 0).await.expect("list").is_empty());
}

/// Two storage nodes store the same patch at the same moment through `a` and `b`
/// (two handles on one backing store): exactly one applies it, the other finds it
/// already stored. Run repeatedly to give the race a chance to interleave.
pub async fn racing_commits<S: Store>(a: Arc<S>, b: Arc<S>) {
    for round in 0..20 {
        let g = registered(&*a, &format!("race-{round}")).await;
        let h1 = next(&g, "a");
        let c = step(&g, &h1);
        let ta = tokio::spawn({
            let (a, c) = (Arc::clone(&a), c.clone());
            async move { a.commit(vec![c]).await }
        });
        let tb = tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.commit(vec![c]).await }
        });
        let oa = ta.await.expect("task a").expect("commit a");
        let ob = tb.await.expect("task b").expect("commit b");
        let mut outcomes = [oa[0].clone(), ob[0].clone()];
        outcomes.sort_by_key(|o| !matches!(o, PersistOutcome::Applied));
        assert_eq!(
            outcomes,
            [PersistOutcome::Applied, PersistOutcome::AlreadyStored],
            "round {round}"
        );
        assert_eq!(load(&*b, g.root).await, Some(h1));
    }
}
