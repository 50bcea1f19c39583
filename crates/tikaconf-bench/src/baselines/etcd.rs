//! etcd through its official v3 gRPC API (the `etcd-client` crate): put, watch,
//! and compare-and-swap on a key's modification revision.
//!
//! Each "node" gets its own `Client` (its own gRPC connection), as each tikaconf
//! node has its own Redis connections.

use anyhow::Context;
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, WatchStream};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub async fn connect(endpoint: &str) -> anyhow::Result<Client> {
    Client::connect([endpoint], None)
        .await
        .context("connecting to etcd")
}

/// A put; returns the revision it created.
pub async fn put(client: &mut Client, key: &str, value: &[u8]) -> anyhow::Result<i64> {
    let resp = client.put(key, value, None).await?;
    Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
}

/// Watches `key` from now on; every event's arrival time goes to `tx`. Returns
/// once the watch is established.
pub async fn watch(
    client: &mut Client,
    key: &str,
    tx: mpsc::UnboundedSender<Instant>,
) -> anyhow::Result<JoinHandle<()>> {
    let mut stream: WatchStream = client.watch(key, None).await?;
    let task = tokio::spawn(async move {
        while let Some(Ok(resp)) = stream.next().await {
            let at = Instant::now();
            for _event in resp.events() {
                if tx.send(at).is_err() {
                    return;
                }
            }
        }
    });
    Ok(task)
}

/// Compare-and-swap: writes `value` if `key` was last modified at `expected`
/// (0: the key does not exist). Returns the new revision, or `None` if the
/// comparison failed.
pub async fn cas(
    client: &mut Client,
    key: &str,
    expected: i64,
    value: &[u8],
) -> anyhow::Result<Option<i64>> {
    let txn = Txn::new()
        .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
        .and_then([TxnOp::put(key, value, None)]);
    let resp = client.txn(txn).await?;
    let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
    Ok(resp.succeeded().then_some(revision))
}
