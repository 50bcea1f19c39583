//! Carries out the state machines' bus commands, in order, without stalling the
//! node's loop.
//!
//! The executor lives inside the loop that drives the state machines (the hub, the
//! storage node): every command is *sent* the moment it is issued (the first poll
//! of a bus future hands the command to the connection, synchronously), and its
//! confirmation is collected later while the loop goes on reading messages. A
//! task of its own would add a hand-off, some tens of microseconds on a busy
//! machine, to every publish and every hop.
//!
//! One ordering rule is kept: a publish leaves only after every subscription change
//! issued before it is confirmed, which is what makes a load request go out only
//! once the subscription that hears its answer is in place. Subscription changes
//! themselves are never held back: a follower hopping from channel to channel
//! would otherwise wait a round trip per hop, and its SUBSCRIBE would reach Redis
//! later, widening the hop gap.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tikaconf_proto::Command;
use tokio::sync::oneshot;

use crate::bus::{Bus, BusError};

type Pending = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>>;

pub(crate) struct Executor {
    bus: Arc<dyn Bus>,
    /// Subscription changes sent but not yet confirmed.
    unconfirmed: FuturesOrdered<Pending>,
    /// Publishes waiting for `unconfirmed` to drain, in order.
    held: Vec<(String, Bytes)>,
    /// Publishes sent, not yet answered.
    publishing: FuturesOrdered<Pending>,
    /// True while no subscription change is unconfirmed and no publish is held:
    /// then a publish may leave from any task without breaking the ordering rule
    /// (see [`Executor::settled`]).
    settled: Arc<AtomicBool>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("unconfirmed", &self.unconfirmed.len())
            .field("held", &self.held.len())
            .field("publishing", &self.publishing.len())
            .finish()
    }
}

impl Executor {
    pub(crate) fn new(bus: Arc<dyn Bus>) -> Executor {
        Executor {
            bus,
            unconfirmed: FuturesOrdered::new(),
            held: Vec::new(),
            publishing: FuturesOrdered::new(),
            settled: Arc::new(AtomicBool::new(true)),
        }
    }

    /// A flag that reads true while a publish sent straight to the bus, from
    /// another task, would keep this executor's ordering rule: no subscription
    /// change is unconfirmed and nothing is held. It is updated before
    /// [`Executor::send`] returns, so a caller that serializes its reads of the
    /// flag with its calls to `send` (the hub holds a root's lock across both)
    /// never sees it true while a subscription it issued is still on its way.
    pub(crate) fn settled(&self) -> Arc<AtomicBool> {
        self.settled.clone()
    }

    fn update_settled(&self) {
        let settled = self.unconfirmed.is_empty() && self.held.is_empty();
        self.settled.store(settled, Ordering::Release);
    }

    /// Sends `commands` in order (see the module documentation).
    pub(crate) fn send(&mut self, commands: impl IntoIterator<Item = Command>) {
        let mut queue: VecDeque<Command> = commands.into_iter().collect();
        while let Some(first) = queue.pop_front() {
            match first {
                Command::Publish { channel, payload } => {
                    self.held.push((channel, payload));
                    while let Some(Command::Publish { .. }) = queue.front() {
                        if let Some(Command::Publish { channel, payload }) = queue.pop_front() {
                            self.held.push((channel, payload));
                        }
                    }
                    self.release();
                }
                change => {
                    // Merge a run of the same kind into one command.
                    let same =
                        |c: &Command| std::mem::discriminant(c) == std::mem::discriminant(&change);
                    let mut names = vec![name(&change)];
                    while queue.front().is_some_and(same) {
                        names.extend(queue.pop_front().as_ref().map(name));
                    }
                    let bus = self.bus.clone();
                    let future: Pending = match change {
                        Command::Subscribe(_) => {
                            Box::pin(async move { bus.subscribe(&names).await })
                        }
                        Command::Unsubscribe(_) => {
                            Box::pin(async move { bus.unsubscribe(&names).await })
                        }
                        _ => Box::pin(async move { bus.psubscribe(&names).await }),
                    };
                    start(future, &mut self.unconfirmed);
                }
            }
        }
        self.update_settled();
    }

    /// Sends a SUBSCRIBE of its own whose answer the caller wants: the channel
    /// is subscribed in order, like any [`Command::Subscribe`] (publishes issued
    /// after it wait for it), and its outcome, a refusal by an ACL say, comes
    /// back through the returned receiver instead of the log.
    pub(crate) fn subscribe_reporting(
        &mut self,
        channel: String,
    ) -> oneshot::Receiver<Result<(), BusError>> {
        let (tx, rx) = oneshot::channel();
        let bus = self.bus.clone();
        start(
            Box::pin(async move {
                let _ = tx.send(bus.subscribe(&[channel]).await);
                Ok(())
            }),
            &mut self.unconfirmed,
        );
        self.update_settled();
        rx
    }

    /// Publishes held publishes once no subscription change is unconfirmed.
    fn release(&mut self) {
        if !self.unconfirmed.is_empty() || self.held.is_empty() {
            return;
        }
        let messages = std::mem::take(&mut self.held);
        let bus = self.bus.clone();
        start(
            Box::pin(async move { bus.publish(&messages).await }),
            &mut self.publishing,
        );
    }

    /// Whether anything awaits an answer (drive [`Executor::next`] then).
    pub(crate) fn busy(&self) -> bool {
        !self.unconfirmed.is_empty() || !self.publishing.is_empty()
    }

    /// Waits for the next answer and acts on it. Only call while [`Executor::busy`].
    pub(crate) async fn next(&mut self) {
        tokio::select! {
            Some(result) = self.unconfirmed.next(), if !self.unconfirmed.is_empty() => {
                report(result);
                self.release();
                self.update_settled();
            }
            Some(result) = self.publishing.next(), if !self.publishing.is_empty() => {
                report(result);
            }
        }
    }
}

fn name(c: &Command) -> String {
    match c {
        Command::Subscribe(n) | Command::Unsubscribe(n) | Command::PSubscribe(n) => n.clone(),
        Command::Publish { channel, .. } => channel.clone(),
    }
}

/// Polls `future` once, which sends its command, and keeps it if not yet answered.
fn start(mut future: Pending, pending: &mut FuturesOrdered<Pending>) {
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(result) => report(result),
        // Polled again, with a real waker, when the loop drives `next`.
        Poll::Pending => pending.push_back(future),
    }
}

fn report(result: Result<(), BusError>) {
    match result {
        Ok(()) => {}
        // Redis said no (an ACL without the channel, say): every retry will be
        // refused alike, and a write refused here ends as a timeout, so say why.
        Err(err @ BusError::Refused(_)) => tracing::warn!(%err, "Redis refused a bus command"),
        // A lost connection is followed by a reconnect, on which the state machines
        // subscribe and re-ask afresh; nothing here needs retrying.
        Err(err) => tracing::debug!(%err, "bus command failed"),
    }
}
