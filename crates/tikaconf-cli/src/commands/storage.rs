//! `tikaconf storage`: runs a storage node until Ctrl-C or SIGTERM.
//!
//! A storage node is what makes writes durable and answers load requests; a
//! deployment needs at least one. The node itself is the library's
//! [`StorageNode`]; this command only picks the store, prints one line on stdout
//! once the node is subscribed and answering (so that scripts and tests can wait
//! for it), and stops the node gracefully on a signal so that no acknowledged
//! batch is cut short.

use std::path::Path;

use tikaconf::bus::BusHandle;
use tikaconf::store::{RedbStore, Store};
use tikaconf::{StorageNode, StorageOptions};
use tikaconf_redis::RedisStore;

use crate::cli::{Global, StorageArgs, StoreKind};
use crate::credentials::Credentials;
use crate::failure::{Code, Failure};
use crate::{output, session, shutdown};

pub async fn run(global: &Global, args: &StorageArgs) -> Result<(), Failure> {
    let redis = session::redact(&global.redis);
    session::check_reachable(global).await?;
    match args.store {
        StoreKind::Redb => {
            let store = open_redb(&args.data).await?;
            let stores = format!("redb file {}", store.path().display());
            serve(global, store, &redis, &stores).await
        }
        StoreKind::Redis => {
            let prefix = match global.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => format!("tikaconf:{ns}:"),
                _ => "tikaconf:".to_owned(),
            };
            let ca = Credentials::from_options(global)?.tls_ca_pem;
            let client = tikaconf_redis::bus::open_client(&global.redis, ca.as_deref())
                .map_err(|e| Failure::new(Code::Connect, e).context(format!("Redis at {redis}")))?;
            let store = RedisStore::with_client(client, &prefix)
                .await
                .map_err(|e| {
                    Failure::new(Code::Connect, e).context(format!("Redis store at {redis}"))
                })?;
            let stores = format!("Redis keys {prefix}* at {redis}");
            serve(global, store, &redis, &stores).await
        }
    }
}

/// Opens the redb database in `dir`, creating the directory if missing. Opening
/// may recover a file left by a crash, so it runs off the async threads.
async fn open_redb(dir: &Path) -> Result<RedbStore, Failure> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::other(e).context(format!("cannot create {}", dir.display())))?;
        RedbStore::open(&dir).map_err(|e| {
            Failure::other(e).context(format!(
                "cannot open the store in {} (is another storage node using it?)",
                dir.display()
            ))
        })
    })
    .await
    .map_err(Failure::other)?
}

async fn serve<S: Store>(
    global: &Global,
    store: S,
    redis: &str,
    stores: &str,
) -> Result<(), Failure> {
    let credentials = Credentials::from_options(global)?;
    let bus = BusHandle::redis_with_ca(&global.redis, credentials.tls_ca_pem.as_deref())
        .await
        .map_err(|e| Failure::new(Code::Connect, e).context(format!("Redis at {redis}")))?;
    let options = StorageOptions {
        namespace: global.namespace.clone(),
        trust: credentials.trust,
        signing_key: credentials.signing_key,
        ..StorageOptions::default()
    };
    let node = StorageNode::spawn(bus, store, options);
    let stop = shutdown::signal();
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => {
            node.shutdown().await;
            return Ok(());
        }
        () = node.ready() => {}
    }
    let namespace = global.namespace.as_deref().unwrap_or("(none)");
    tracing::info!(%redis, namespace, %stores, "storage node ready");
    output::line(format!(
        "tikaconf storage: listening on {redis} (namespace {namespace}), storing in {stores}"
    ))?;
    stop.await;
    tracing::info!("stopping the storage node");
    let stats = node.status().stats;
    node.shutdown().await;
    tracing::info!(?stats, "storage node stopped");
    Ok(())
}
