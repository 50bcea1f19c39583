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

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tikaconf_proto::storage::{
    HeadRef, PersistCommit, PersistOutcome, StorageCommand, StorageStats,
};
use tikaconf_proto::{Channels, Hash, Limits, SigningKey, StorageEngine, StoredHead, TrustSet};
use tikaconf_store::{Commit, CommitOutcome, Store, StoreError};
use tokio::sync::watch;

use crate::bus::{BusEvent, BusHandle};
use crate::executor::Executor;

/// Settings of a storage node; `namespace` and `limits` must match the
/// deployment's.
#[derive(Debug, Clone, Default)]
pub struct StorageOptions {
    pub namespace: Option<String>,
    pub limits: Limits,
    /// Accept only patches signed by these keys (empty: no signatures required).
    pub trust: TrustSet,
    /// Sign snapshots and notices with this key (needed when followers require
    /// signatures).
    pub signing_key: Option<SigningKey>,
}

/// A store call finished.
enum StoreResult {
    Loaded(Hash, Result<Option<StoredHead>, StoreError>),
    Heads(Vec<Hash>, Result<Vec<Option<HeadRef>>, StoreError>),
    Persisted(u64, Result<Vec<PersistOutcome>, StoreError>),
}

/// What a running storage node shows of itself.
#[derive(Debug, Clone, Default)]
pub struct StorageStatus {
    /// Subscribed and answering.
    pub listening: bool,
    pub stats: StorageStats,
    /// Set when the node stopped because its store can no longer write.
    pub failed: Option<StoreFailed>,
}

/// Why a storage node stopped by itself: its store can no longer write
/// ([`StoreError::is_fatal`], e.g. a failed sync of the write-ahead log).
///
/// Why stop rather than carry on: such a store refuses every write until it is
/// reopened, so a node that stayed up would still answer loads and look healthy
/// while never acknowledging a write again (a zombie). Stopping hands the problem
/// to the process supervisor, whose restart reopens the store, which replays
/// what really is on disk.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the storage node stopped: its store can no longer write")]
pub struct StoreFailed {
    #[source]
    pub source: Arc<StoreError>,
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
) -> Result<(), StoreFailed> {
    let channels = Channels::new(options.namespace.as_deref());
    let mut engine = StorageEngine::new(channels, options.limits)
        .with_shared_store(store.is_shared())
        .with_trust(options.trust)
        .with_signer(options.signing_key);
    let mut executor = Executor::new(bus.bus.clone());
    let bus_ops = bus.bus.clone();
    let store = Arc::new(store);
    let mut store_calls: FuturesUnordered<BoxFuture<'static, StoreResult>> =
        FuturesUnordered::new();
    let mut events = bus.events;
    let mut out = Vec::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => return Ok(()),
            Some(result) = store_calls.next(), if !store_calls.is_empty() => {
                on_result(&mut engine, result, &mut out).map_err(|e| stop(&status, e))?;
            }
            () = executor.next(), if executor.busy() => {}
            event = events.next() => {
                let Some(event) = event else { return Ok(()) };
                if let BusEvent::Connected = event {
                    // Subscribe here, not through the executor, and only then say
                    // we listen: a load request sent before Redis confirmed the
                    // subscription would be lost.
                    let commands = engine.handle_connected();
                    subscribe_now(bus_ops.as_ref(), commands, &mut out).await;
                    status.send_modify(|s| s.listening = true);
                } else {
                    on_event(&mut engine, event, &status, &mut out);
                }
                // Group commit: take everything already waiting before flushing.
                while let Some(Some(event)) = events.next().now_or_never() {
                    if let BusEvent::Connected = event {
                        let commands = engine.handle_connected();
                        subscribe_now(bus_ops.as_ref(), commands, &mut out).await;
                        status.send_modify(|s| s.listening = true);
                    } else {
                        on_event(&mut engine, event, &status, &mut out);
                    }
                }
            }
        }
        while let Some(Some(result)) = store_calls.next().now_or_never() {
            on_result(&mut engine, result, &mut out).map_err(|e| stop(&status, e))?;
        }
        engine.flush(&mut out);
        for command in out.drain(..) {
            execute(command, &mut executor, &store, &mut store_calls);
        }
        status.send_modify(|s| s.stats = engine.stats().clone());
    }
}

/// Carries out subscription commands at once, waiting for Redis to confirm them;
/// the others (the store reads that re-validate the cache) go to `rest`, to run
/// like any command.
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
    out: &mut Vec<StorageCommand>,
) {
    match event {
        // Handled by the loop itself, which must wait for the subscriptions.
        BusEvent::Connected => {}
        BusEvent::Disconnected => {
            engine.handle_disconnected();
            status.send_modify(|s| s.listening = false);
        }
        BusEvent::Message { channel, payload } => {
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

/// Records why the node stops, for [`StorageStatus::failed`], and passes it on.
fn stop(status: &watch::Sender<StorageStatus>, failed: StoreFailed) -> StoreFailed {
    tracing::error!(err = %failed.source, "the store can no longer write; stopping the storage node");
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
    result: StoreResult,
    out: &mut Vec<StorageCommand>,
) -> Result<(), StoreFailed> {
    let fatal = |err: StoreError| {
        if err.is_fatal() {
            Err(StoreFailed {
                source: Arc::new(err),
            })
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
) {
    let store = store.clone();
    let call: BoxFuture<'static, StoreResult> = match command {
        StorageCommand::Bus(c) => return executor.send([c]),
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
        StorageCommand::Persist { batch, commits } => Box::pin(async move {
            let commits = commits
                .into_iter()
                .map(|PersistCommit { expected_head, new }| Commit { expected_head, new })
                .collect();
            let r = store
                .commit(commits)
                .await
                .map(|outcomes| outcomes.into_iter().map(outcome).collect());
            StoreResult::Persisted(batch, r)
        }),
    };
    // Polled (and so started: a blocking store hands its work to the blocking
    // pool on the first poll) as soon as the loop waits again, right after this
    // flush.
    store_calls.push(call);
}

fn outcome(o: CommitOutcome) -> PersistOutcome {
    match o {
        CommitOutcome::Applied => PersistOutcome::Applied,
        CommitOutcome::AlreadyStored => PersistOutcome::AlreadyStored,
        CommitOutcome::Stale { current } => PersistOutcome::Stale { current },
    }
}

/// A storage node running on its own task.
#[derive(Debug)]
pub struct StorageNode {
    status: watch::Receiver<StorageStatus>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), StoreFailed>>,
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

    pub fn status(&self) -> StorageStatus {
        self.status.borrow().clone()
    }

    /// Waits until the node stops by itself because its store can no longer
    /// write, and says why (see [`StoreFailed`]). Never resolves for a node that
    /// keeps running, or that stopped for any other reason; a process should exit
    /// non-zero with this error so that its supervisor restarts it.
    pub async fn failed(&self) -> StoreFailed {
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
