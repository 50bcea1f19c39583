//! The storage node's driver: feeds a [`StorageEngine`] and carries out its
//! commands against a [`Store`] and the bus.
//!
//! The engine decides; this loop only moves data. It reads every bus event that is
//! ready, then flushes the engine, so that a burst of patches becomes one store
//! transaction (group commit) and a burst of load requests one answer per root.
//! Store calls are futures the loop itself polls (no task of their own, so no
//! extra hand-off on the way in or out); their results come back as inputs.
//!
//! A storage process of its own runs on one thread ([`StorageNode::runtime`]):
//! the loop, its Redis connections' tasks and (with [`tikaconf_store::RedbStore`])
//! the store's file I/O, like Redis's own event loop. Every message then reaches
//! the engine without a thread wake-up, which on a two-core machine is worth
//! more than reading on while a batch is synced (figures in
//! docs/PERFORMANCE.md). On a multi-thread runtime the node works the same, with
//! the store's I/O on the blocking pool and the loop reading on meanwhile.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::{BoxFuture, OptionFuture};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tikaconf_proto::storage::StopReason;
use tikaconf_proto::storage::presence::StoreId;
use tikaconf_proto::storage::{HeadRef, PersistOutcome, StorageCommand, StorageStats};
use tikaconf_proto::{Channels, Hash, Limits, SigningKey, StorageEngine, StoredHead, TrustSet};
use tikaconf_store::{Retention, Store, StoreError};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::bus::{BusEvent, BusHandle};
use crate::executor::Executor;
use crate::metrics::StorageMetrics;
use crate::verify::{DEFAULT_VERIFY_FOR, VerifyMetrics, VerifySummary, verify_store};

/// Settings of a storage node; `namespace` and `limits` must match the
/// deployment's.
#[derive(Debug, Clone, Default)]
pub struct StorageOptions {
    /// Channel namespace (`NS:updates:<hash>`), for deployments sharing a Redis;
    /// the clients' [`ClientOptions::namespace`](crate::ClientOptions::namespace).
    pub namespace: Option<String>,
    /// Sizes past which a patch, a document or a message is refused; the
    /// clients' [`ClientOptions::limits`](crate::ClientOptions::limits).
    pub limits: Limits,
    /// Accept only patches signed by these keys (empty: no signatures required).
    pub trust: TrustSet,
    /// Sign snapshots and notices with this key (needed when followers require
    /// signatures).
    pub signing_key: Option<SigningKey>,
    /// On a shared store, how long the answerer lease lasts (see
    /// [`StorageEngine::handle_answerer`]); renewed every third of it. `None`:
    /// [`DEFAULT_ANSWERER_LEASE`].
    pub answerer_lease: Option<Duration>,
    /// The shortest time between two snapshots of one root on its channel (see
    /// [`StorageEngine::with_broadcast_interval`]). `None`:
    /// [`tikaconf_proto::storage::DEFAULT_BROADCAST_INTERVAL`].
    pub broadcast_interval: Option<Duration>,
    /// How long to check the chains the store keeps when the node starts (see
    /// [`crate::verify`]), in the background: on a thread of the blocking
    /// pool, never delaying the node, a root at a time (each root's reads are
    /// short ones, so commits never wait for it). Each broken link is logged
    /// and counted, and the summary logged and shown in
    /// [`StorageStatus::verified`]. `None`: [`DEFAULT_VERIFY_FOR`];
    /// `Some(Duration::ZERO)`: no check.
    pub verify_for: Option<Duration>,
}

/// How long a storage node of a shared store holds the answerer lease unless it
/// renews it: long enough that a busy node never loses it between renewals (one
/// a second), short enough that when its holder dies another node answers within
/// a few of the requesters' one-second retries.
pub const DEFAULT_ANSWERER_LEASE: Duration = Duration::from_secs(3);

/// A store call finished.
enum StoreResult {
    Loaded(Hash, Result<Option<StoredHead>, StoreError>),
    Heads(Vec<Hash>, Result<Vec<Option<HeadRef>>, StoreError>),
    Persisted(u64, Result<Vec<PersistOutcome>, StoreError>),
    /// A claim of the answerer lease, sent at `sent`.
    Lease {
        sent: Instant,
        held: Result<bool, StoreError>,
    },
}

/// What a running storage node shows of itself.
#[derive(Debug, Clone, Default)]
pub struct StorageStatus {
    /// Subscribed and answering.
    pub listening: bool,
    /// Whether this node answers load requests (on a shared store, only the
    /// holder of the answerer lease does).
    pub answerer: bool,
    /// The storage engine's counters (patches applied, notices sent, messages
    /// ignored and why), for metrics and tests.
    pub stats: StorageStats,
    /// Set when the node stopped by itself, with the reason.
    pub failed: Option<NodeFailed>,
    /// What the start-up check of the store's chains found, once it ended
    /// (see [`StorageOptions::verify_for`]).
    pub verified: Option<VerifySummary>,
}

/// Why a storage node stopped by itself.
///
/// Why stop rather than carry on: in each case a node that stayed up would look
/// healthy while doing harm or nothing. Stopping hands the problem to the process
/// supervisor (or the operator), with the reason.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NodeFailed {
    /// Its store can no longer write ([`StoreError::is_fatal`], e.g. a failed
    /// sync of the write-ahead log): it refuses every write until reopened, so
    /// the node would answer loads but never acknowledge a write again (a zombie).
    /// A restart reopens the store, which replays what really is on disk.
    #[error("the storage node stopped: its store can no longer write")]
    Store(#[source] Arc<StoreError>),
    /// Another store already serves this bus: two independent stores would each
    /// acknowledge writes the other never holds (see
    /// [`tikaconf_proto::storage::presence`]).
    #[error(
        "the storage node stopped: store {theirs} already serves this bus, and this node's \
         store is {ours}; independent stores cannot share a bus (give each deployment its own \
         --namespace or Redis, or let every storage node share one store with --store redis)"
    )]
    ForeignStore {
        /// This node's store id.
        ours: String,
        /// The store id another storage node announced on the bus.
        theirs: String,
    },
}

/// How many of a root's latest patches the engine keeps to send a follower
/// that is behind: what the deployment's history keeps, so that "within the
/// retained log" means the same to a follower as to an operator, and at most
/// the engine's default (a memory bound: the patches of every root held in
/// memory are kept beside its document). Under `none`, none: exactly the seed's
/// behaviour, whole snapshots.
fn catch_up_window(retention: Retention) -> usize {
    let most = tikaconf_proto::storage::DEFAULT_CATCH_UP_WINDOW;
    match retention {
        Retention::All => most,
        Retention::Last(n) => most.min(usize::try_from(n.get()).unwrap_or(most)),
        Retention::None => 0,
    }
}

/// Runs a storage node until `shutdown` resolves (`Ok`), or until its store can
/// no longer write (`Err`, also shown in `status`). `status` reports readiness
/// and counters.
pub async fn run<S: Store>(
    bus: BusHandle,
    store: S,
    options: StorageOptions,
    status: watch::Sender<StorageStatus>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeFailed> {
    let channels = Channels::new(options.namespace.as_deref());
    let store_id = match store.store_id().await.map(|id| StoreId::new(&id)) {
        Ok(Ok(id)) => Some(id),
        Ok(Err(err)) => {
            tracing::warn!(%err, "the store's id is malformed; not checking for other stores");
            None
        }
        Err(err) if err.is_fatal() => return Err(stop(&status, NodeFailed::Store(Arc::new(err)))),
        Err(err) => {
            tracing::warn!(%err, "cannot read the store's id; not checking for other stores");
            None
        }
    };
    let mut engine = StorageEngine::new(channels, options.limits)
        .with_shared_store(store.is_shared())
        .with_store_id(store_id)
        .with_trust(options.trust)
        .with_signer(options.signing_key)
        .with_broadcast_interval(
            options
                .broadcast_interval
                .unwrap_or(tikaconf_proto::storage::DEFAULT_BROADCAST_INTERVAL),
        )
        .with_catch_up_window(catch_up_window(store.retention()));
    let mut lease = store
        .is_shared()
        .then(|| Lease::new(options.answerer_lease.unwrap_or(DEFAULT_ANSWERER_LEASE)));
    if let Some(lease) = &mut lease {
        // Claim before listening, so that a lone node answers from the start.
        let sent = Instant::now();
        let held = store.claim_answerer(lease.node.clone(), lease.ttl).await;
        lease.on_claim(sent, held, &mut engine);
    }
    status.send_modify(|s| s.answerer = engine.is_answerer());
    let mut lease_tick = tokio::time::interval(
        lease
            .as_ref()
            .map_or(Duration::from_secs(3600), |l| l.ttl / 3),
    );
    lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut executor = Executor::new(bus.bus.clone());
    let bus_ops = bus.bus.clone();
    let store = Arc::new(store);
    // Set when this function returns, however it does: the check stops too.
    let verify_stop = StopOnDrop::default();
    let mut verifying = start_verify(&store, options.verify_for, options.limits, &verify_stop);
    let mut store_calls: FuturesUnordered<BoxFuture<'static, StoreResult>> =
        FuturesUnordered::new();
    let mut events = bus.events;
    let mut out = Vec::new();
    let mut metrics = StorageMetrics::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => {
                if let Some(lease) = &lease {
                    // Let another node answer at once rather than when it expires.
                    let release = store.release_answerer(lease.node.clone());
                    let _ = tokio::time::timeout(Duration::from_secs(1), release).await;
                }
                // The check stops at its next root; waiting for it means the
                // store is closed when the node has stopped (a redb file can
                // then be opened again at once).
                verify_stop.stop();
                if let Some(verifying) = verifying.take() {
                    let _ = verifying.await;
                }
                return Ok(());
            }
            _ = lease_tick.tick(), if lease.is_some() => {
                if let Some(lease) = &mut lease {
                    lease.expire(&mut engine);
                    let (store, node, ttl) = (store.clone(), lease.node.clone(), lease.ttl);
                    store_calls.push(Box::pin(async move {
                        let sent = Instant::now();
                        let held = store.claim_answerer(node, ttl).await;
                        StoreResult::Lease { sent, held }
                    }));
                }
            }
            Some(result) = store_calls.next(), if !store_calls.is_empty() => {
                on_result(&mut engine, &mut lease, result, &mut out).map_err(|e| stop(&status, e))?;
            }
            () = executor.next(), if executor.busy() => {}
            done = OptionFuture::from(verifying.as_mut()), if verifying.is_some() => {
                verifying = None;
                if let Some(summary) = verified(done) {
                    status.send_modify(|s| s.verified = Some(summary));
                }
            }
            // A snapshot broadcast that waited for its root's interval.
            () = sleep_until(engine.next_timeout()) => {}
            event = events.next() => {
                let Some(event) = event else { return Ok(()) };
                if starts_afresh(&event) {
                    // Subscribe here, not through the executor, and only then say
                    // we listen: a load request sent before Redis confirmed the
                    // subscription would be lost.
                    connected(&mut engine, bus_ops.as_ref(), &event, &status, &mut out).await;
                } else {
                    on_event(&mut engine, event, &status, &metrics, &mut out);
                }
                // Group commit: take everything already waiting before flushing.
                while let Some(Some(event)) = events.next().now_or_never() {
                    if starts_afresh(&event) {
                        connected(&mut engine, bus_ops.as_ref(), &event, &status, &mut out).await;
                    } else {
                        on_event(&mut engine, event, &status, &metrics, &mut out);
                    }
                }
            }
        }
        while let Some(Some(result)) = store_calls.next().now_or_never() {
            on_result(&mut engine, &mut lease, result, &mut out).map_err(|e| stop(&status, e))?;
        }
        engine.flush(Instant::now().into_std(), &mut out);
        for command in out.drain(..) {
            if let StorageCommand::Stop(StopReason::ForeignStore { ours, theirs }) = command {
                let failed = NodeFailed::ForeignStore {
                    ours: ours.to_string(),
                    theirs: theirs.to_string(),
                };
                return Err(stop(&status, failed));
            }
            execute(command, &mut executor, &store, &mut store_calls, &metrics);
        }
        // Once per turn of the loop, not per message: a burst read in one turn
        // is one update.
        metrics.update(engine.stats(), engine.cached_roots().0);
        status.send_modify(|s| {
            s.stats = engine.stats().clone();
            s.answerer = engine.is_answerer();
        });
    }
}

/// Sleeps until `deadline`, or forever without one.
/// A flag set when it is dropped.
#[derive(Debug, Default)]
struct StopOnDrop(Arc<AtomicBool>);

impl StopOnDrop {
    fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

type Verifying = tokio::task::JoinHandle<Result<VerifySummary, StoreError>>;

/// Starts the check of the store's chains on a thread of the blocking pool
/// (see [`StorageOptions::verify_for`]), unless it is switched off.
///
/// Why a thread: a storage process runs its loop on one thread
/// ([`StorageNode::runtime`]), where a redb store's reads run inline, so the
/// check's reads and hashing would take turns with the node's own work. On a
/// thread of its own it never does; the store's reads are each short, and
/// redb's read transactions never block a commit.
fn start_verify<S: Store>(
    store: &Arc<S>,
    verify_for: Option<Duration>,
    limits: Limits,
    stop: &StopOnDrop,
) -> Option<Verifying> {
    let budget = verify_for.unwrap_or(DEFAULT_VERIFY_FOR);
    if budget.is_zero() {
        return None;
    }
    let (store, stop) = (store.clone(), stop.0.clone());
    // Registered here, on the node's thread, like the node's other series.
    let metrics = VerifyMetrics::new();
    let runtime = tokio::runtime::Handle::current();
    // From a random root on, so that starts whose budget runs out check
    // different parts of a large store.
    let start = Hash::from_bytes(rand::random());
    Some(tokio::task::spawn_blocking(move || {
        runtime.block_on(verify_store(
            &*store, &limits, budget, start, &stop, &metrics,
        ))
    }))
}

/// Logs how the check ended; the summary, if it did.
fn verified(
    done: Option<Result<Result<VerifySummary, StoreError>, tokio::task::JoinError>>,
) -> Option<VerifySummary> {
    match done? {
        Ok(Ok(summary)) => {
            let elapsed_ms = summary.elapsed.as_millis() as u64;
            if summary.broken > 0 {
                tracing::error!(
                    roots = summary.roots,
                    patches = summary.patches,
                    gaps = summary.gaps,
                    broken = summary.broken,
                    elapsed_ms,
                    budget_ran_out = summary.budget_ran_out,
                    "verified the store's chains: some are broken (each is logged above)"
                );
            } else {
                tracing::info!(
                    roots = summary.roots,
                    patches = summary.patches,
                    gaps = summary.gaps,
                    elapsed_ms,
                    budget_ran_out = summary.budget_ran_out,
                    "verified the store's chains"
                );
            }
            Some(summary)
        }
        Ok(Err(err)) => {
            tracing::error!(%err, "the check of the store's chains failed to read the store");
            None
        }
        Err(err) => {
            tracing::error!(%err, "the check of the store's chains did not finish");
            None
        }
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A new connection, or messages dropped on the current one because the loop
/// fell behind (see [`BusEvent::Overflowed`]): either way the engine may have
/// missed messages, and starts afresh as on a reconnect.
fn starts_afresh(event: &BusEvent) -> bool {
    matches!(event, BusEvent::Connected | BusEvent::Overflowed { .. })
}

async fn connected(
    engine: &mut StorageEngine,
    bus: &dyn crate::bus::Bus,
    event: &BusEvent,
    status: &watch::Sender<StorageStatus>,
    out: &mut Vec<StorageCommand>,
) {
    if let BusEvent::Overflowed { .. } = event {
        // The subscriptions are still in place; subscribing again is harmless.
        engine.handle_disconnected();
    }
    let mut commands = Vec::new();
    engine.handle_connected(&mut commands);
    subscribe_now(bus, commands, out).await;
    status.send_modify(|s| s.listening = true);
}

/// Carries out subscription commands at once, waiting for Redis to confirm them;
/// the others (the store reads that re-validate the cache, the `hello`) go to
/// `rest`, to run like any command.
async fn subscribe_now(
    bus: &dyn crate::bus::Bus,
    commands: Vec<StorageCommand>,
    rest: &mut Vec<StorageCommand>,
) {
    use tikaconf_proto::Command;
    for command in commands {
        let result = match command {
            StorageCommand::Bus(Command::PSubscribe(p)) => bus.psubscribe(&[p]).await,
            StorageCommand::Bus(Command::Subscribe(c)) => bus.subscribe(&[c]).await,
            other => {
                rest.push(other);
                Ok(())
            }
        };
        if let Err(err) = result {
            // The connection dropped again; the next Connected retries.
            tracing::debug!(%err, "subscribing on connect failed");
        }
    }
}

fn on_event(
    engine: &mut StorageEngine,
    event: BusEvent,
    status: &watch::Sender<StorageStatus>,
    metrics: &StorageMetrics,
    out: &mut Vec<StorageCommand>,
) {
    match event {
        // Handled by the loop itself, which must wait for the subscriptions.
        BusEvent::Connected => {}
        BusEvent::Disconnected => {
            engine.handle_disconnected();
            status.send_modify(|s| s.listening = false);
        }
        // Handled by the loop itself, like `Connected`.
        BusEvent::Overflowed { .. } => {}
        BusEvent::Message { channel, payload } => {
            metrics.received();
            if let Err(reason) = engine.handle_message(&channel, &payload, out) {
                tracing::warn!(
                    channel = %String::from_utf8_lossy(&channel),
                    %reason,
                    "storage ignored a message"
                );
            }
        }
    }
}

/// This node's hold on the answerer lease of a shared store.
struct Lease {
    /// This node's name in the lease: random, so that a restarted node is a new
    /// holder.
    node: String,
    ttl: Duration,
    /// Until when this node may answer: the lease it last renewed may expire at
    /// the store from `sent + ttl` on, so it stops a third of the lease earlier,
    /// whatever the store says later (a slow or failed renewal must not leave two
    /// nodes answering for long).
    valid_until: Option<Instant>,
}

impl Lease {
    fn new(ttl: Duration) -> Lease {
        Lease {
            node: format!("{:032x}", rand::random::<u128>()),
            ttl,
            valid_until: None,
        }
    }

    fn on_claim(
        &mut self,
        sent: Instant,
        held: Result<bool, StoreError>,
        engine: &mut StorageEngine,
    ) {
        match held {
            Ok(true) => {
                self.valid_until = Some(sent + self.ttl * 2 / 3);
                engine.handle_answerer(true);
            }
            Ok(false) => {
                self.valid_until = None;
                engine.handle_answerer(false);
            }
            Err(err) => {
                tracing::warn!(%err, "cannot claim the answerer lease; retrying");
                self.expire(engine);
            }
        }
    }

    /// Stops answering once the lease may have passed to another node.
    fn expire(&mut self, engine: &mut StorageEngine) {
        if self.valid_until.is_none_or(|until| Instant::now() >= until) {
            self.valid_until = None;
            engine.handle_answerer(false);
        }
    }
}

/// Records why the node stops, for [`StorageStatus::failed`], and passes it on.
fn stop(status: &watch::Sender<StorageStatus>, failed: NodeFailed) -> NodeFailed {
    tracing::error!(err = %failed, source = ?std::error::Error::source(&failed), "stopping the storage node");
    status.send_modify(|s| {
        s.listening = false;
        s.failed = Some(failed.clone());
    });
    failed
}

/// Hands a store call's result to the engine; a fatal store error (the store can
/// no longer write) is returned instead, to stop the node.
fn on_result(
    engine: &mut StorageEngine,
    lease: &mut Option<Lease>,
    result: StoreResult,
    out: &mut Vec<StorageCommand>,
) -> Result<(), NodeFailed> {
    let fatal = |err: StoreError| {
        if err.is_fatal() {
            Err(NodeFailed::Store(Arc::new(err)))
        } else {
            Ok(err.to_string())
        }
    };
    match result {
        StoreResult::Loaded(root, result) => {
            let result = match result {
                Ok(head) => Ok(head),
                Err(err) => Err(fatal(err)?),
            };
            if let Err(err) = &result {
                tracing::error!(%root, %err, "store read failed");
            }
            engine.handle_loaded(root, result, out);
        }
        StoreResult::Heads(roots, result) => {
            let result = match result {
                Ok(heads) => Ok(heads),
                Err(err) => Err(fatal(err)?),
            };
            if let Err(err) = &result {
                tracing::error!(roots = roots.len(), %err, "store read of heads failed");
            }
            engine.handle_heads(roots, result, out);
        }
        StoreResult::Lease { sent, held } => {
            if let Some(lease) = lease {
                lease.on_claim(sent, held, engine);
            }
        }
        StoreResult::Persisted(batch, result) => {
            let result = match result {
                Ok(outcomes) => Ok(outcomes),
                Err(err) => Err(fatal(err)?),
            };
            if let Err(err) = &result {
                tracing::error!(batch, %err, "store commit failed; the batch is not stored");
            }
            engine.handle_persisted(batch, result, out);
        }
    }
    Ok(())
}

fn execute<S: Store>(
    command: StorageCommand,
    executor: &mut Executor,
    store: &Arc<S>,
    store_calls: &mut FuturesUnordered<BoxFuture<'static, StoreResult>>,
    metrics: &StorageMetrics,
) {
    let store = store.clone();
    let call: BoxFuture<'static, StoreResult> = match command {
        StorageCommand::Bus(c) => return executor.send([c]),
        // Taken by the loop before it gets here.
        StorageCommand::Stop(reason) => {
            tracing::error!(?reason, "a stop reached the executor");
            return;
        }
        StorageCommand::Load(root) => Box::pin(async move {
            let r = store.load(root).await;
            StoreResult::Loaded(root, r)
        }),
        StorageCommand::Register(head) => Box::pin(async move {
            let root = head.root;
            let r = store.register(head).await.map(Some);
            StoreResult::Loaded(root, r)
        }),
        StorageCommand::CheckHeads(roots) => Box::pin(async move {
            let r = store.heads(roots.clone()).await;
            StoreResult::Heads(roots, r)
        }),
        StorageCommand::Persist { batch, commits } => {
            let (duration, errors) = (metrics.commit.clone(), metrics.commit_errors.clone());
            Box::pin(async move {
                // From the first poll, which is where the store starts its work.
                let started = std::time::Instant::now();
                let r = store.commit(commits).await;
                duration.record(started.elapsed());
                if r.is_err() {
                    errors.increment(1);
                }
                StoreResult::Persisted(batch, r)
            })
        }
    };
    // Polled (and so started: a blocking store hands its work to the blocking
    // pool on the first poll) as soon as the loop waits again, right after this
    // flush.
    store_calls.push(call);
}

/// A storage node running on its own task.
#[derive(Debug)]
pub struct StorageNode {
    status: watch::Receiver<StorageStatus>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), NodeFailed>>,
}

impl StorageNode {
    /// The runtime a storage process should run its node on: one thread, with
    /// I/O and timers.
    ///
    /// The node is one sequential loop; spread over a multi-thread runtime, each
    /// message and each commit costs hand-offs between threads (the Redis
    /// connection's task, the loop, the blocking pool), each a wake-up of tens of
    /// microseconds on a busy machine. On one thread the store works inline
    /// (see [`tikaconf_store::RedbStore`]), and `tikaconf-bench` measured a durable
    /// write about 15% faster and committed writes/s from 16 writers about 50%
    /// higher than on the default runtime (docs/PERFORMANCE.md).
    pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }

    /// Starts a storage node on `bus` over `store`.
    pub fn spawn<S: Store>(bus: BusHandle, store: S, options: StorageOptions) -> StorageNode {
        let (status_tx, status) = watch::channel(StorageStatus::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(bus, store, options, status_tx, async move {
            let _ = stopped.await;
        }));
        StorageNode {
            status,
            stop: Some(stop),
            task,
        }
    }

    /// Waits until the node is subscribed and answering.
    pub async fn ready(&self) {
        let mut status = self.status.clone();
        let _ = status.wait_for(|s| s.listening).await;
    }

    /// The node's latest status: readiness, answerer role, counters, failure.
    pub fn status(&self) -> StorageStatus {
        self.status.borrow().clone()
    }

    /// Waits until the node stops by itself because its store can no longer
    /// write, and says why (see [`NodeFailed`]). Never resolves for a node that
    /// keeps running, or that stopped for any other reason; a process should exit
    /// non-zero with this error so that its supervisor restarts it.
    pub async fn failed(&self) -> NodeFailed {
        let mut status = self.status.clone();
        if let Ok(status) = status.wait_for(|s| s.failed.is_some()).await
            && let Some(failed) = &status.failed
        {
            return failed.clone();
        }
        std::future::pending().await
    }

    /// Stops the node and waits for its loop to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
