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
use tikaconf_proto::storage::{PersistCommit, PersistOutcome, StorageCommand, StorageStats};
use tikaconf_proto::{Channels, Hash, Limits, SigningKey, StorageEngine, StoredHead, TrustSet};
use tikaconf_store::{Commit, CommitOutcome, Store};
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
    Loaded(Hash, Result<Option<StoredHead>, String>),
    Persisted(u64, Result<Vec<PersistOutcome>, String>),
}

/// What a running storage node shows of itself.
#[derive(Debug, Clone, Default)]
pub struct StorageStatus {
    /// Subscribed and answering.
    pub listening: bool,
    pub stats: StorageStats,
}

/// Runs a storage node until `shutdown` resolves. `status` reports readiness and
/// counters.
pub async fn run<S: Store>(
    bus: BusHandle,
    store: S,
    options: StorageOptions,
    status: watch::Sender<StorageStatus>,
    shutdown: impl Future<Output = ()>,
) {
    let channels = Channels::new(options.namespace.as_deref());
    let mut engine = StorageEngine::new(channels, options.limits)
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
            _ = &mut shutdown => return,
            Some(result) = store_calls.next(), if !store_calls.is_empty() => {
                on_result(&mut engine, result, &mut out);
            }
            () = executor.next(), if executor.busy() => {}
            event = events.next() => {
                let Some(event) = event else { return };
                if starts_afresh(&event) {
                    // Subscribe here, not through the executor, and only then say
                    // we listen: a load request sent before Redis confirmed the
                    // subscription would be lost.
                    connected(&mut engine, bus_ops.as_ref(), &event, &status).await;
                    continue;
                }
                on_event(&mut engine, event, &status, &mut out);
                // Group commit: take everything already waiting before flushing.
                while let Some(Some(event)) = events.next().now_or_never() {
                    if starts_afresh(&event) {
                        connected(&mut engine, bus_ops.as_ref(), &event, &status).await;
                    } else {
                        on_event(&mut engine, event, &status, &mut out);
                    }
                }
            }
        }
        while let Some(Some(result)) = store_calls.next().now_or_never() {
            on_result(&mut engine, result, &mut out);
        }
        engine.flush(&mut out);
        for command in out.drain(..) {
            execute(command, &mut executor, &store, &mut store_calls);
        }
        status.send_modify(|s| s.stats = engine.stats().clone());
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
) {
    if let BusEvent::Overflowed { .. } = event {
        // The subscriptions are still in place; subscribing again is harmless.
        engine.handle_disconnected();
    }
    subscribe_now(bus, engine.handle_connected()).await;
    status.send_modify(|s| s.listening = true);
}

/// Carries out subscription commands at once, waiting for Redis to confirm them.
async fn subscribe_now(bus: &dyn crate::bus::Bus, commands: Vec<StorageCommand>) {
    use tikaconf_proto::Command;
    for command in commands {
        let result = match command {
            StorageCommand::Bus(Command::PSubscribe(p)) => bus.psubscribe(&[p]).await,
            StorageCommand::Bus(Command::Subscribe(c)) => bus.subscribe(&[c]).await,
            other => {
                tracing::error!(?other, "unexpected command on connect");
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
        // Handled by the loop itself, like `Connected`.
        BusEvent::Overflowed { .. } => {}
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

fn on_result(engine: &mut StorageEngine, result: StoreResult, out: &mut Vec<StorageCommand>) {
    match result {
        StoreResult::Loaded(root, result) => {
            if let Err(err) = &result {
                tracing::error!(%root, %err, "store read failed");
            }
            engine.handle_loaded(root, result, out);
        }
        StoreResult::Persisted(batch, result) => {
            if let Err(err) = &result {
                tracing::error!(batch, %err, "store commit failed; the batch is not stored");
            }
            engine.handle_persisted(batch, result, out);
        }
    }
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
            let r = store.load(root).await.map_err(|e| e.to_string());
            StoreResult::Loaded(root, r)
        }),
        StorageCommand::Register(head) => Box::pin(async move {
            let root = head.root;
            let r = store
                .register(head)
                .await
                .map(Some)
                .map_err(|e| e.to_string());
            StoreResult::Loaded(root, r)
        }),
        StorageCommand::Persist { batch, commits } => Box::pin(async move {
            let commits = commits
                .into_iter()
                .map(|PersistCommit { expected_head, new }| Commit { expected_head, new })
                .collect();
            let r = store
                .commit(commits)
                .await
                .map(|outcomes| outcomes.into_iter().map(outcome).collect())
                .map_err(|e| e.to_string());
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
    task: tokio::task::JoinHandle<()>,
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

    /// Stops the node and waits for its loop to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
