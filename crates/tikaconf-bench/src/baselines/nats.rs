//! NATS JetStream key-value (the `async-nats` crate): put and watch on one
//! bucket with file storage and a history of one, which is how a NATS user
//! would hold configuration.

use anyhow::Context;
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub async fn store(url: &str, bucket: &str) -> anyhow::Result<kv::Store> {
    let client = async_nats::connect(url)
        .await
        .context("connecting to NATS")?;
    let js = jetstream::new(client);
    let store = match js.get_key_value(bucket).await {
        Ok(store) => store,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: bucket.to_owned(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .context("creating the NATS KV bucket")?,
    };
    Ok(store)
}

/// Watches `key` (new values only) on a connection of its own; every entry's
/// arrival time goes to `tx`. Returns once the watch is established.
pub async fn watch(
    url: &str,
    bucket: &str,
    key: &str,
    tx: mpsc::UnboundedSender<Instant>,
) -> anyhow::Result<JoinHandle<()>> {
    let store = store(url, bucket).await?;
    let mut watch = store.watch(key).await.context("NATS KV watch")?;
    let task = tokio::spawn(async move {
        let _store = store;
        while let Some(Ok(_entry)) = watch.next().await {
            if tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    Ok(task)
}
