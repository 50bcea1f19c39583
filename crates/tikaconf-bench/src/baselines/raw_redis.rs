//! Raw Redis Pub/Sub: what tikaconf's propagation, chain and load costs are
//! measured against.
//!
//! A subscriber here is a connection in subscribed mode read by one task that
//! reports the moment each message arrives; a publisher is one multiplexed
//! connection. That is the least any Redis-based design can do, so a ratio to it
//! is the cost of tikaconf's protocol and runtime on top of Redis.

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub async fn publisher(url: &str) -> anyhow::Result<MultiplexedConnection> {
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
        .context("raw redis publisher")
}

pub async fn publish(
    conn: &mut MultiplexedConnection,
    channel: &str,
    payload: &[u8],
) -> anyhow::Result<()> {
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(conn)
        .await?;
    Ok(())
}

/// `n` subscriber connections on `channel`; each reports the time it received
/// a message into `tx`. Returns once every subscription is confirmed.
pub async fn subscribers(
    url: &str,
    n: usize,
    channel: &str,
    tx: mpsc::UnboundedSender<Instant>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        tasks.push(subscriber(url, channel, Some(tx.clone())).await?);
    }
    Ok(tasks)
}

/// One subscriber connection on `channel`, reporting each receipt's time into
/// `tx` when given; without it, a receiver that only reads (the load of a
/// receiver whose receipt is not timed).
pub async fn subscriber(
    url: &str,
    channel: &str,
    tx: Option<mpsc::UnboundedSender<Instant>>,
) -> anyhow::Result<JoinHandle<()>> {
    let mut pubsub = redis::Client::open(url)?.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            let at = Instant::now();
            // Touch the payload as a real consumer would.
            let _len = msg.get_payload_bytes().len();
            if let Some(tx) = &tx
                && tx.send(at).is_err()
            {
                return;
            }
        }
    }))
}

/// A subscriber that hands out whole messages (channel, payload, arrival time),
/// with a sink to change its subscriptions while it runs.
pub struct Hopper {
    pub sink: redis::aio::PubSubSink,
    pub task: JoinHandle<()>,
    pub rx: mpsc::UnboundedReceiver<(String, Bytes, Instant)>,
}

impl std::fmt::Debug for Hopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hopper").finish_non_exhaustive()
    }
}

pub async fn hopper(url: &str) -> anyhow::Result<Hopper> {
    let client = redis::Client::open(url)?;
    let pubsub = client.get_async_pubsub().await?;
    let (sink, mut stream) = pubsub.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let at = Instant::now();
            let channel: String = msg.get_channel_name().to_owned();
            let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
            if tx.send((channel, payload, at)).is_err() {
                return;
            }
        }
    });
    Ok(Hopper { sink, task, rx })
}
