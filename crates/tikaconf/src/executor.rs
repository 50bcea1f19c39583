//! Carries out the state machines' bus commands, in order, off the node's loop.
//!
//! The node's loop must never wait on Redis: it decides, queues commands here, and
//! goes back to reading messages. This task runs the queue in order, merging runs
//! of the same kind into one round trip (one SUBSCRIBE for many channels, one
//! pipeline for many publishes). Order across kinds is kept, which is what makes a
//! load request go out only after the subscription that hears its answer is
//! confirmed.

use std::sync::Arc;

use bytes::Bytes;
use tikaconf_proto::Command;
use tokio::sync::mpsc;

use crate::bus::Bus;

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

async fn run(bus: Arc<dyn Bus>, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut queue: Vec<Command> = Vec::new();
    while let Some(first) = rx.recv().await {
        queue.push(first);
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
            execute(bus.as_ref(), k, run).await;
        }
    }
}

async fn execute(bus: &dyn Bus, kind: Kind, run: Vec<Command>) {
    let result = if kind == Kind::Publish {
        let messages: Vec<(String, Bytes)> = run
            .into_iter()
            .filter_map(|c| match c {
                Command::Publish { channel, payload } => Some((channel, payload)),
                _ => None,
            })
            .collect();
        bus.publish(&messages).await
    } else {
        let names: Vec<String> = run
            .into_iter()
            .filter_map(|c| match c {
                Command::Subscribe(n) | Command::Unsubscribe(n) | Command::PSubscribe(n) => Some(n),
                Command::Publish { .. } => None,
            })
            .collect();
        match kind {
            Kind::Subscribe => bus.subscribe(&names).await,
            Kind::Unsubscribe => bus.unsubscribe(&names).await,
            _ => bus.psubscribe(&names).await,
        }
    };
    if let Err(err) = result {
        // A lost connection is followed by a reconnect, on which the state machines
        // subscribe and re-ask afresh; nothing here needs retrying.
        tracing::debug!(%err, "bus command failed");
    }
}
