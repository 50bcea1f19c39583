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
//!
//! History cases check what the store's own [`Store::retention`] promises, so
//! [`run_all`] runs them with whatever setting the store was opened with;
//! [`run_history`] runs them again under `all`, a small `last N` and `none`,
//! and across reopens that change the setting.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tikaconf_proto::{Limits, Message, Patch, RootConfig, Snapshot};

use crate::{
    Hash, HeadRef, ListedRoot, LoggedPatch, MAX_HISTORY, PersistCommit, PersistOutcome, Retention,
    Store, StoredHead,
};

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
    run_history_cases(&*store).await;
    racing_commits(Arc::clone(&store), Arc::clone(&store)).await;
}

/// A root hash no other case (or earlier run) uses: the hash of a real root
/// configuration, remembered so that [`genesis`] can build its snapshot.
pub fn unique_root(label: &str) -> Hash {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let config = serde_json::json!({"connection": {
        "conformance": label,
        "n": n,
        "pid": std::process::id(),
        "t": nanos.to_string(),
    }});
    let root = RootConfig::from_value(config).expect("a valid root configuration");
    let hash = root.hash();
    made()
        .lock()
        .expect("not poisoned")
        .roots
        .insert(hash, root);
    hash
}

/// What the helpers made, so that a head's snapshot and patch are real
/// messages: a store that keeps only some snapshots and replays patches (redb
/// does) must be able to rebuild every head from them.
#[derive(Default)]
struct Made {
    roots: HashMap<Hash, RootConfig>,
    /// The patch that made each head [`next`] returned.
    patches: HashMap<Hash, Bytes>,
}

fn made() -> &'static Mutex<Made> {
    static MADE: OnceLock<Mutex<Made>> = OnceLock::new();
    MADE.get_or_init(Default::default)
}

/// Stand-in snapshot bytes, for a root this module did not make: opaque to
/// stores, but distinct per head so that a store returning the wrong snapshot
/// is caught.
fn stand_in(root: Hash, head: Hash, height: u64) -> Bytes {
    Bytes::from(format!(
        "{{\"head\":\"{head}\",\"height\":{height},\"root\":\"{root}\",\"type\":\"snapshot\"}}"
    ))
}

/// The height-0 head of `root`: its real snapshot if [`unique_root`] made it.
pub fn genesis(root: Hash) -> StoredHead {
    let config = made()
        .lock()
        .expect("not poisoned")
        .roots
        .get(&root)
        .cloned();
    StoredHead {
        root,
        head: root,
        height: 0,
        snapshot: match config {
            Some(config) => Snapshot::of_root(&config).encoded,
            None => stand_in(root, root, 0),
        },
    }
}

/// The head one step after `prev`, named by `salt` (different salts give
/// forks): a real patch on `prev`'s document (adding a member named by the
/// salt) and the snapshot it makes, when `prev`'s snapshot is a real one;
/// stand-ins otherwise (a caller that changed the snapshot's bytes).
pub fn next(prev: &StoredHead, salt: &str) -> StoredHead {
    let relaxed = Limits {
        max_message_bytes: usize::MAX,
        max_depth: Limits::MAX_DEPTH_CEILING,
    };
    if let Ok(Message::Snapshot(snapshot)) = Message::decode(&prev.snapshot, &relaxed) {
        let member = salt.replace('~', "~0").replace('/', "~1");
        let ops = serde_json::json!([{"op": "add", "path": format!("/s_{member}"), "value": salt}]);
        let patch =
            Patch::build(prev.root, prev.head, prev.height, ops, None).expect("a valid patch");
        if let Ok(doc) = patch.apply_to(prev.root, prev.height, &snapshot.config, &relaxed) {
            let head = patch.hash;
            let snapshot = Snapshot::new(prev.root, head, patch.height, doc).encoded;
            made()
                .lock()
                .expect("not poisoned")
                .patches
                .insert(head, patch.encoded);
            return StoredHead {
                root: prev.root,
                head,
                height: prev.height + 1,
                snapshot,
            };
        }
    }
    let seed = format!("{{\"parent\":\"{}\",\"salt\":\"{salt}\"}}", prev.head);
    let head = Hash::of_canonical_bytes(seed.as_bytes());
    StoredHead {
        root: prev.root,
        head,
        height: prev.height + 1,
        snapshot: stand_in(prev.root, head, prev.height + 1),
    }
}

/// The patch message of the commit that makes `new` (see [`next`]); a
/// stand-in, distinct per head, for a head [`next`] did not make.
pub fn patch_of(new: &StoredHead) -> Bytes {
    if let Some(patch) = made().lock().expect("not poisoned").patches.get(&new.head) {
        return patch.clone();
    }
    Bytes::from(format!(
        "{{\"hash\":\"{}\",\"height\":{},\"root\":\"{}\",\"type\":\"patch\"}}",
        new.head, new.height, new.root
    ))
}

/// The commit that moves `prev` to `new`, with its patch ([`patch_of`]), as a
/// storage node makes it.
pub fn step(prev: &StoredHead, new: &StoredHead) -> PersistCommit {
    PersistCommit {
        expected_head: prev.head,
        new: new.clone(),
        patch: Some(patch_of(new)),
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

/// Runs the history cases under `all`, `last 3` and `none`, then
/// [`retention_changes_across_reopens`]. `open` opens the store (always the same
/// one) with the given setting; the previous handle is dropped first, so a
/// backend that one process may open once (redb) can reopen it.
pub async fn run_history<S, F, Fut>(mut open: F)
where
    S: Store,
    F: FnMut(Retention) -> Fut,
    Fut: Future<Output = S>,
{
    for retention in [Retention::All, last(3), Retention::None] {
        let store = open(retention).await;
        assert_eq!(store.retention(), retention);
        run_history_cases(&store).await;
        drop(store);
    }
    retention_changes_across_reopens(open).await;
}

/// The history cases, under the store's own setting.
async fn run_history_cases<S: Store>(store: &S) {
    history_follows_commits(store).await;
    history_pages(store).await;
    patches_since_inside_and_beyond_the_window(store).await;
    a_commit_without_its_patch_leaves_a_gap(store).await;
    read_chain_reads_the_registration_the_log_and_the_head(store).await;
}

fn last(n: u32) -> Retention {
    Retention::Last(NonZeroU32::new(n).expect("non-zero"))
}

/// `n` heads chained after `from`.
fn chain_after(from: &StoredHead, label: &str, n: usize) -> Vec<StoredHead> {
    let mut heads = vec![from.clone()];
    for i in 0..n {
        let next = next(&heads[i], &format!("{label}{i}"));
        heads.push(next);
    }
    heads.split_off(1)
}

/// What a history page must hold when `logged` (ascending) were committed
/// with their patches and the head is the last of them.
fn expected_history(
    retention: Retention,
    logged: &[StoredHead],
    before: Option<u64>,
    limit: usize,
) -> Vec<LoggedPatch> {
    let head = logged.last().map_or(0, |h| h.height);
    logged
        .iter()
        .rev()
        .filter(|h| before.is_none_or(|b| h.height < b))
        .take_while(|h| retention.keeps(h.height, head))
        .take(limit.min(MAX_HISTORY))
        .map(|h| LoggedPatch::new(h.height, patch_of(h)))
        .collect()
}

async fn history<S: Store>(
    store: &S,
    root: Hash,
    before: Option<u64>,
    limit: usize,
) -> Vec<LoggedPatch> {
    store
        .history(root, before, limit)
        .await
        .expect("history failed")
}

async fn since<S: Store>(store: &S, root: Hash, height: u64, max: usize) -> Option<Vec<Bytes>> {
    store
        .patches_since(root, height, max)
        .await
        .expect("patches_since failed")
}

/// Each applied commit logs its patch, newest first in the history, within the
/// window: commits chained in one batch each log theirs; a registration, an
/// `AlreadyStored` and a `Stale` commit log nothing.
pub async fn history_follows_commits<S: Store>(store: &S) {
    let g = registered(store, "history").await;
    assert_eq!(
        history(store, g.root, None, 100).await,
        [],
        "a registration is no patch"
    );
    assert_eq!(
        history(store, unique_root("history-unknown"), None, 100).await,
        []
    );
    let heads = chain_after(&g, "h", 5);
    let first: Vec<_> = std::iter::once(&g)
        .chain(&heads[..3])
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| step(w[0], w[1]))
        .collect();
    assert_eq!(commit(store, first).await, vec![PersistOutcome::Applied; 3]);
    let expected = expected_history(store.retention(), &heads[..3], None, 100);
    assert_eq!(history(store, g.root, None, 100).await, expected);
    for w in heads[2..].windows(2) {
        assert_eq!(
            commit(store, vec![step(&w[0], &w[1])]).await,
            [PersistOutcome::Applied]
        );
    }
    let fork = next(&g, "fork");
    assert_eq!(
        commit(store, vec![step(&heads[3], &heads[4]), step(&g, &fork)]).await,
        [
            PersistOutcome::AlreadyStored,
            PersistOutcome::Stale {
                current: Some(heads[4].clone())
            }
        ]
    );
    let expected = expected_history(store.retention(), &heads, None, 100);
    assert_eq!(history(store, g.root, None, 100).await, expected);
    if store.retention() == Retention::All {
        assert_eq!(expected.len(), 5);
    }
}

/// Pages of the history, each starting below the last height of the one
/// before, hold every kept patch once, newest first, whatever the page size.
pub async fn history_pages<S: Store>(store: &S) {
    let g = registered(store, "history-pages").await;
    let heads = chain_after(&g, "p", 12);
    let mut prev = g.clone();
    for batch in heads.chunks(3) {
        let mut commits = Vec::new();
        for h in batch {
            commits.push(step(&prev, h));
            prev = h.clone();
        }
        commit(store, commits).await;
    }
    let all = expected_history(store.retention(), &heads, None, MAX_HISTORY);
    for page in [1, 5, 12, 5000] {
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let got = history(store, g.root, before, page).await;
            assert!(got.len() <= page, "page {page}");
            assert_eq!(
                got,
                expected_history(store.retention(), &heads, before, page)
            );
            let Some(last) = got.last() else { break };
            before = Some(last.height);
            seen.extend(got);
        }
        assert_eq!(seen, all, "page {page}");
    }
    assert_eq!(history(store, g.root, None, 0).await, []);
    assert_eq!(history(store, g.root, Some(1), 10).await, []);
}

/// `patches_since` gives exactly the patches from a height up to the head when
/// all are kept, and `None` when any is outside the window, when there are
/// more than asked, above the head, or for an unknown root.
pub async fn patches_since_inside_and_beyond_the_window<S: Store>(store: &S) {
    let g = registered(store, "since").await;
    let heads = chain_after(&g, "s", 6);
    let mut prev = g.clone();
    for h in &heads {
        commit(store, vec![step(&prev, h)]).await;
        prev = h.clone();
    }
    let retention = store.retention();
    for from in 0..=6u64 {
        let expected = (from == 6 || retention.keeps(from + 1, 6)).then(|| {
            heads[from as usize..]
                .iter()
                .map(patch_of)
                .collect::<Vec<_>>()
        });
        assert_eq!(
            since(store, g.root, from, 100).await,
            expected,
            "from {from}"
        );
    }
    assert_eq!(since(store, g.root, 6, 0).await, Some(Vec::new()));
    if retention.keeps(1, 6) {
        assert_eq!(since(store, g.root, 4, 2).await.map(|p| p.len()), Some(2));
    }
    assert_eq!(since(store, g.root, 3, 2).await, None, "more than asked");
    assert_eq!(since(store, g.root, 7, 100).await, None, "above the head");
    assert_eq!(
        since(store, unique_root("since-unknown"), 0, 100).await,
        None
    );
}

/// A commit made without its patch (a storage node that keeps no history, on a
/// shared store) leaves a gap: the history shows the heights around it, and
/// `patches_since` never answers across it.
pub async fn a_commit_without_its_patch_leaves_a_gap<S: Store>(store: &S) {
    let g = registered(store, "gap").await;
    let heads = chain_after(&g, "g", 3);
    let mut unlogged = step(&heads[0], &heads[1]);
    unlogged.patch = None;
    let outcomes = commit(
        store,
        vec![step(&g, &heads[0]), unlogged, step(&heads[1], &heads[2])],
    )
    .await;
    assert_eq!(outcomes, vec![PersistOutcome::Applied; 3]);
    let retention = store.retention();
    let expected: Vec<_> = [&heads[2], &heads[0]]
        .into_iter()
        .filter(|h| retention.keeps(h.height, 3))
        .map(|h| LoggedPatch::new(h.height, patch_of(h)))
        .collect();
    assert_eq!(history(store, g.root, None, 10).await, expected);
    assert_eq!(since(store, g.root, 0, 10).await, None);
    assert_eq!(since(store, g.root, 1, 10).await, None);
    let last = retention.logs().then(|| vec![patch_of(&heads[2])]);
    assert_eq!(since(store, g.root, 2, 10).await, last);
}

/// [`crate::read_chain`] gives the registration the listing shows, the kept
/// patches oldest first (all of them, or the newest `max`, saying whether
/// older ones are kept), and the head.
pub async fn read_chain_reads_the_registration_the_log_and_the_head<S: Store>(store: &S) {
    let g = registered(store, "read-chain").await;
    let heads = chain_after(&g, "c", 5);
    let mut prev = g.clone();
    for h in &heads {
        commit(store, vec![step(&prev, h)]).await;
        prev = h.clone();
    }
    let listed = find_listed(store, g.root).await;
    let chain = crate::read_chain(store, &listed, 100)
        .await
        .expect("read_chain failed")
        .expect("registered");
    assert_eq!(chain.head, prev);
    assert_eq!(chain.registration, Some(g.snapshot.clone()));
    let mut expected = expected_history(store.retention(), &heads, None, 100);
    expected.reverse();
    assert_eq!(chain.patches, expected);
    assert!(!chain.truncated);
    let newest = crate::read_chain(store, &listed, 2)
        .await
        .expect("read_chain failed")
        .expect("registered");
    assert_eq!(newest.patches, expected[expected.len().saturating_sub(2)..]);
    assert_eq!(newest.truncated, expected.len() > 2);
    let unknown = ListedRoot::new(unique_root("read-chain-unknown"), HeadRef::from(&g), None);
    assert_eq!(
        crate::read_chain(store, &unknown, 100).await.ok(),
        Some(None)
    );
}

/// `root` as a page of the listing shows it.
async fn find_listed<S: Store>(store: &S, root: Hash) -> ListedRoot {
    let mut after = None;
    loop {
        let listed = store
            .list_roots(after, crate::MAX_LIST_ROOTS)
            .await
            .expect("list_roots failed");
        if let Some(found) = listed.iter().find(|l| l.root == root) {
            return found.clone();
        }
        after = Some(listed.last().expect("the root is listed").root);
    }
}

async fn applies<S: Store>(store: &S, c: PersistCommit) {
    assert_eq!(commit(store, vec![c]).await, [PersistOutcome::Applied]);
}

/// The setting is the deployment's, not the store's: reopened with a smaller
/// window, reads show only that window at once and the root's next commit
/// prunes the rest; reopened with `none`, commits log nothing; reopened with
/// `all` again, logging starts from there (a gap where `none` was).
pub async fn retention_changes_across_reopens<S, F, Fut>(mut open: F)
where
    S: Store,
    F: FnMut(Retention) -> Fut,
    Fut: Future<Output = S>,
{
    let store = open(Retention::All).await;
    let g = registered(&store, "reopen").await;
    let heads = chain_after(&g, "r", 8);
    let to = |i: usize| step(if i == 0 { &g } else { &heads[i - 1] }, &heads[i]);
    for i in 0..5 {
        applies(&store, to(i)).await;
    }
    let heights = |page: Vec<LoggedPatch>| page.iter().map(|p| p.height).collect::<Vec<_>>();
    assert_eq!(
        heights(history(&store, g.root, None, 100).await),
        [5, 4, 3, 2, 1]
    );
    drop(store);

    let store = open(last(2)).await;
    assert_eq!(heights(history(&store, g.root, None, 100).await), [5, 4]);
    assert_eq!(since(&store, g.root, 2, 100).await, None);
    assert_eq!(
        since(&store, g.root, 3, 100).await,
        Some(vec![patch_of(&heads[3]), patch_of(&heads[4])])
    );
    applies(&store, to(5)).await;
    assert_eq!(heights(history(&store, g.root, None, 100).await), [6, 5]);
    drop(store);

    // Pruned for good: `all` does not bring them back.
    let store = open(Retention::All).await;
    assert_eq!(heights(history(&store, g.root, None, 100).await), [6, 5]);
    drop(store);

    let store = open(Retention::None).await;
    assert_eq!(history(&store, g.root, None, 100).await, []);
    applies(&store, to(6)).await;
    assert_eq!(since(&store, g.root, 6, 100).await, None);
    drop(store);

    let store = open(Retention::All).await;
    assert_eq!(heights(history(&store, g.root, None, 100).await), [6, 5]);
    applies(&store, to(7)).await;
    assert_eq!(heights(history(&store, g.root, None, 100).await), [8, 6, 5]);
    assert_eq!(since(&store, g.root, 6, 100).await, None);
    assert_eq!(
        since(&store, g.root, 7, 100).await,
        Some(vec![patch_of(&heads[7])])
    );
}
