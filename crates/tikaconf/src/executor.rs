//! Carries out the state machines' bus commands, in order, off the node's loop.
//!
//! The node's loop must never wait on Redis: it decides, queues commands here, and
//! goes back to reading messages. This task sends the queue in order, merging runs
//! of the same kind into one command (one SUBSCRIBE for many channels, one
//! pipeline for many publishes).
//!
//! Subscription changes are sent at once but not awaited one by one: a follower
//! that hops from channel to channel would otherwise wait a round trip per hop,
//! and the later SUBSCRIBE would reach Redis late, widening the hop gap. What
//! must be awaited is only this: a publish goes out after every subscription
//! change before it has been confirmed, which is what makes a load request go out
//! only once the subscription that hears its answer is in place.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tikaconf_proto::Command;
use tokio::sync::mpsc;

use crate::bus::{Bus, BusError};

/// Sends commands to the executor task.
#[derive(Debug, Clone)]
pub(crate) struct Executor {
    tx: mpsc::UnboundedSender<Command>,
}

impl Executor {
    pub(crate) fn spawn(bus: Arc<dyn Bus>) -> Executor {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(bus, rx));
        Executor { tx }
    }

    pub(crate) fn send(&self, commands: impl IntoIterator<Item = Command>) {
        for c in commands {
            // The task ends only when every sender is gone.
            let _ = self.tx.send(c);
        }
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Subscribe,
    Unsubscribe,
    PSubscribe,
    Publish,
}

fn kind(c: &Command) -> Kind {
    match c {
        Command::Subscribe(_) => Kind::Subscribe,
        Command::Unsubscribe(_) => Kind::Unsubscribe,
        Command::PSubscribe(_) => Kind::PSubscribe,
        Command::Publish { .. } => Kind::Publish,
    }
}

type Pending = Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>>;

async fn run(bus: Arc<dyn Bus>, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut queue: Vec<Command> = Vec::new();
    // Subscription changes sent (first polled, in order) but not yet confirmed.
    let mut unconfirmed: FuturesOrdered<Pending> = FuturesOrdered::new();
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(c) => queue.push(c),
                None => return,
            },
            Some(result) = unconfirmed.next(), if !unconfirmed.is_empty() => {
                report(result);
                continue;
            }
        }
        while let Ok(more) = rx.try_recv() {
            queue.push(more);
        }
        let mut rest = queue.drain(..).peekable();
        while let Some(head) = rest.next() {
            let k = kind(&head);
            let mut run = vec![head];
            while let Some(next) = rest.next_if(|c| kind(c) == k) {
                run.push(next);
            }
            if k == Kind::Publish {
                while let Some(result) = unconfirmed.next().await {
                    report(result);
                }
                let messages: Vec<(String, Bytes)> = run
                    .into_iter()
                    .filter_map(|c| match c {
                        Command::Publish { channel, payload } => Some((channel, payload)),
                        _ => None,
                    })
                    .collect();
                report(bus.publish(&messages).await);
            } else {
                let names: Vec<String> = run
                    .into_iter()
                    .filter_map(|c| match c {
                        Command::Subscribe(n)
                        | Command::Unsubscribe(n)
                        | Command::PSubscribe(n) => Some(n),
                        Command::Publish { .. } => None,
                    })
                    .collect();
                let bus = bus.clone();
                let mut change: Pending = Box::pin(async move {
                    match k {
                        Kind::Subscribe => bus.subscribe(&names).await,
                        Kind::Unsubscribe => bus.unsubscribe(&names).await,
                        _ => bus.psubscribe(&names).await,
                    }
                });
                // Poll once now, so the command leaves in order, before anything
                // queued after it; the confirmation is collected later.
                match futures_util::poll!(&mut change) {
                    std::task::Poll::Ready(result) => report(result),
                    std::task::Poll::Pending => unconfirmed.push_back(change),
                }
            }
        }
    }
}

fn report(result: Result<(), BusError>) {
    if let Err(err) = result {
        // A lost connection is followed by a reconnect, on which the state machines
        // subscribe and re-ask afresh; nothing here needs retrying.
        tracing::debug!(%err, "bus command failed");
    }
}
