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
//!
//! An UNSUBSCRIBE, on the other hand, is not urgent: a channel left a little late
//! only delivers messages the hub drops unread (it routes a channel only while a
//! follower is on it). So channels left are collected and unsubscribed together,
//! once [`LEAVE_BATCH`] have gathered or the oldest has waited [`LINGER`]. A
//! follower hops on every update, and an UNSUBSCRIBE per hop was a command for
//! Redis and a reply and a future for the client on every update received;
//! batched, a chain with ten followers ran about 8% faster (docs/PERFORMANCE.md).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tikaconf_proto::Command;
use tokio::sync::oneshot;

use crate::bus::{Bus, BusError};

type Pending = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>>;

/// Channels left that make one UNSUBSCRIBE as soon as they have gathered.
pub(crate) const LEAVE_BATCH: usize = 64;

/// The longest a channel left waits for its UNSUBSCRIBE (checked on the hub's
/// tick): long enough that a follower of a root updated many times a second
/// leaves its channels in batches, short enough that a process following
/// thousands of quiet roots never holds many channels it does not need.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

pub(crate) struct Executor {
    bus: Arc<dyn Bus>,
    /// Subscription changes sent but not yet confirmed.
    unconfirmed: FuturesOrdered<Pending>,
    /// Publishes waiting for `unconfirmed` to drain, in order.
    held: Vec<(String, Bytes)>,
    /// Who wants Redis's answer to the publish that will carry `held`.
    held_reports: Vec<oneshot::Sender<Result<(), BusError>>>,
    /// Publishes and unsubscribes sent, not yet answered: nothing waits for
    /// them, their answers are only reported.
    trailing: FuturesOrdered<Pending>,
    /// Channels left but not yet unsubscribed (see the module documentation).
    leaving: Vec<String>,
    /// When the oldest of `leaving` was left.
    leaving_since: Option<Instant>,
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
            .field("trailing", &self.trailing.len())
            .field("leaving", &self.leaving.len())
            .finish()
    }
}

impl Executor {
    pub(crate) fn new(bus: Arc<dyn Bus>) -> Executor {
        Executor {
            bus,
            unconfirmed: FuturesOrdered::new(),
            held: Vec::new(),
            held_reports: Vec::new(),
            trailing: FuturesOrdered::new(),
            leaving: Vec::new(),
            leaving_since: None,
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

    /// Sends `commands` in order, except that UNSUBSCRIBEs wait to be batched
    /// (see the module documentation).
    pub(crate) fn send(&mut self, commands: impl IntoIterator<Item = Command>) {
        self.send_inner(commands, None);
    }

    /// Like [`Executor::send`], and returns Redis's answer to the publish that
    /// carries the publishes among `commands` (a write's `PUBLISH`, whose
    /// refusal must end the write at once rather than as a timeout). Without a
    /// publish among them, the receiver ends without an answer.
    pub(crate) fn send_reporting(
        &mut self,
        commands: impl IntoIterator<Item = Command>,
    ) -> oneshot::Receiver<Result<(), BusError>> {
        let (tx, rx) = oneshot::channel();
        self.send_inner(commands, Some(tx));
        rx
    }

    fn send_inner(
        &mut self,
        commands: impl IntoIterator<Item = Command>,
        mut report: Option<oneshot::Sender<Result<(), BusError>>>,
    ) {
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
                    self.held_reports.extend(report.take());
                    self.release();
                }
                Command::Unsubscribe(channel) => self.leave(channel),
                change => {
                    // Merge a run of the same kind into one command.
                    let same =
                        |c: &Command| std::mem::discriminant(c) == std::mem::discriminant(&change);
                    let mut names = vec![name(&change)];
                    while queue.front().is_some_and(same) {
                        names.extend(queue.pop_front().as_ref().map(name));
                    }
                    // A channel subscribed again before its UNSUBSCRIBE left
                    // must not be unsubscribed by it later.
                    self.leaving.retain(|left| !names.contains(left));
                    let bus = self.bus.clone();
                    let future: Pending = match change {
                        Command::Subscribe(_) => {
                            Box::pin(async move { bus.subscribe(&names).await })
                        }
                        _ => Box::pin(async move { bus.psubscribe(&names).await }),
                    };
                    start(future, &mut self.unconfirmed);
                }
            }
        }
        self.update_settled();
    }

    /// Queues `channel` for the next batched UNSUBSCRIBE.
    fn leave(&mut self, channel: String) {
        if self.leaving.is_empty() {
            self.leaving_since = Some(Instant::now());
        }
        self.leaving.push(channel);
        if self.leaving.len() >= LEAVE_BATCH {
            self.unsubscribe_left();
        }
    }

    /// Unsubscribes the channels left, if the oldest has waited [`LINGER`] by
    /// `now`. The hub calls this on its tick.
    pub(crate) fn leave_due(&mut self, now: Instant) {
        if self
            .leaving_since
            .is_some_and(|since| now >= since + LINGER)
        {
            self.unsubscribe_left();
        }
    }

    fn unsubscribe_left(&mut self) {
        self.leaving_since = None;
        let names = std::mem::take(&mut self.leaving);
        if names.is_empty() {
            return;
        }
        let bus = self.bus.clone();
        start(
            Box::pin(async move { bus.unsubscribe(&names).await }),
            &mut self.trailing,
        );
    }

    /// A new connection is up: it holds none of the old one's subscriptions,
    /// so there is nothing left to unsubscribe.
    pub(crate) fn connected(&mut self) {
        self.leaving.clear();
        self.leaving_since = None;
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
        let reports = std::mem::take(&mut self.held_reports);
        let bus = self.bus.clone();
        start(
            Box::pin(async move {
                let result = bus.publish(&messages).await;
                for tx in reports {
                    let _ = tx.send(result.clone());
                }
                result
            }),
            &mut self.trailing,
        );
    }

    /// Whether anything awaits an answer (drive [`Executor::next`] then).
    pub(crate) fn busy(&self) -> bool {
        !self.unconfirmed.is_empty() || !self.trailing.is_empty()
    }

    /// Waits for the next answer and acts on it. Only call while [`Executor::busy`].
    pub(crate) async fn next(&mut self) {
        tokio::select! {
            Some(result) = self.unconfirmed.next(), if !self.unconfirmed.is_empty() => {
                report(result);
                self.release();
                self.update_settled();
            }
            Some(result) = self.trailing.next(), if !self.trailing.is_empty() => {
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
        // refused alike, so say why (a write learns it through its report).
        Err(err @ BusError::Refused(_)) => tracing::warn!(%err, "Redis refused a bus command"),
        // A lost connection is followed by a reconnect, on which the state machines
        // subscribe and re-ask afresh; nothing here needs retrying.
        Err(err) => tracing::debug!(%err, "bus command failed"),
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;
    use crate::bus::{BusEvent, Events};
    use crate::memory::Broker;

    /// An executor on one connection of `broker`, and that connection's events
    /// (its `Connected` already taken).
    fn executor(broker: &Broker) -> (Executor, Events) {
        let handle = broker.connect();
        let mut events = handle.events;
        assert!(matches!(
            events.next().now_or_never(),
            Some(Some(BusEvent::Connected))
        ));
        (Executor::new(handle.bus), events)
    }

    /// The channels, among `channels`, on which the executor's connection hears
    /// a message published now.
    fn hears(broker: &Broker, events: &mut Events, channels: &[&str]) -> Vec<String> {
        let other = broker.connect();
        let messages: Vec<(String, Bytes)> = channels
            .iter()
            .map(|c| (c.to_string(), Bytes::from_static(b"x")))
            .collect();
        other
            .bus
            .publish(&messages)
            .now_or_never()
            .unwrap()
            .unwrap();
        let mut heard = Vec::new();
        while let Some(Some(event)) = events.next().now_or_never() {
            if let BusEvent::Message { channel, .. } = event {
                heard.push(String::from_utf8(channel.to_vec()).unwrap());
            }
        }
        heard
    }

    fn sub(c: &str) -> Command {
        Command::Subscribe(c.to_string())
    }

    fn unsub(c: &str) -> Command {
        Command::Unsubscribe(c.to_string())
    }

    #[test]
    fn a_hop_subscribes_at_once_and_leaves_the_old_channel_after_the_linger() {
        let broker = Broker::new();
        let (mut executor, mut events) = executor(&broker);
        executor.send([sub("a")]);
        executor.send([sub("b"), unsub("a")]);
        assert_eq!(hears(&broker, &mut events, &["a", "b"]), ["a", "b"]);

        executor.leave_due(Instant::now());
        assert_eq!(hears(&broker, &mut events, &["a", "b"]), ["a", "b"]);

        executor.leave_due(Instant::now() + LINGER);
        assert_eq!(hears(&broker, &mut events, &["a", "b"]), ["b"]);
    }

    #[test]
    fn a_channel_subscribed_again_before_its_unsubscribe_left_stays_subscribed() {
        let broker = Broker::new();
        let (mut executor, mut events) = executor(&broker);
        executor.send([sub("a"), sub("b")]);
        executor.send([unsub("a"), unsub("b")]);
        executor.send([sub("a")]);
        executor.leave_due(Instant::now() + LINGER);
        assert_eq!(hears(&broker, &mut events, &["a", "b"]), ["a"]);
    }

    #[test]
    fn a_full_batch_leaves_at_once() {
        let broker = Broker::new();
        let (mut executor, mut events) = executor(&broker);
        let names: Vec<String> = (0..LEAVE_BATCH).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        executor.send(refs.iter().map(|c| sub(c)));
        executor.send(refs[..LEAVE_BATCH - 1].iter().map(|c| unsub(c)));
        assert_eq!(hears(&broker, &mut events, &refs).len(), LEAVE_BATCH);

        executor.send([unsub(refs[LEAVE_BATCH - 1])]);
        assert!(hears(&broker, &mut events, &refs).is_empty());
    }

    #[test]
    fn a_reported_publish_answers_after_the_subscription_before_it() {
        let broker = Broker::new();
        let (mut executor, mut events) = executor(&broker);
        let publish = Command::Publish {
            channel: "a".into(),
            payload: Bytes::from_static(b"x"),
        };
        // Issued together: the publish leaves after the SUBSCRIBE, and its
        // answer comes back to the caller.
        let mut answer = executor.send_reporting([sub("a"), publish]);
        while executor.busy() {
            executor
                .next()
                .now_or_never()
                .expect("the in-process bus answers at once");
        }
        assert!(matches!(answer.try_recv(), Ok(Ok(()))));
        let heard = std::iter::from_fn(|| events.next().now_or_never().flatten())
            .filter(|e| matches!(e, BusEvent::Message { .. }))
            .count();
        assert_eq!(heard, 1, "its own subscription heard the publish");

        // Nothing to publish: the receiver ends without an answer.
        let mut none = executor.send_reporting([sub("b")]);
        assert!(matches!(
            none.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }

    #[test]
    fn a_new_connection_has_nothing_left_to_unsubscribe() {
        let broker = Broker::new();
        let (mut executor, mut events) = executor(&broker);
        executor.send([sub("a")]);
        executor.send([unsub("a")]);
        executor.connected();
        executor.leave_due(Instant::now() + LINGER);
        // Nothing was sent: the in-process connection (unlike a new Redis one)
        // still holds the channel, which shows the UNSUBSCRIBE never left.
        assert_eq!(hears(&broker, &mut events, &["a"]), ["a"]);
    }
}
