//! `tikaconf storage`: runs a storage node until Ctrl-C or SIGTERM.
//!
//! A storage node is what makes writes durable and answers load requests; a
//! deployment needs at least one. The node itself is the library's
//! [`StorageNode`]; this command only picks the store, prints one line on stdout
//! once the node is subscribed and answering (so that scripts and tests can wait
//! for it), stops the node gracefully on a signal so that no acknowledged
//! batch is cut short, and with `--metrics ADDR` serves the process's metrics
//! (see `crate::exporter`).
//!
//! Two ways it refuses to run, each a non-zero exit with the reason on stderr:
//! - with `--store redis`, before anything is acknowledged, when Redis's
//!   persistence settings can lose acknowledged writes and the operator did not
//!   accept that with `--accept-redis-durability` (see
//!   [`tikaconf_redis::durability`]);
//! - at any time, when the store can no longer write (e.g. a failed sync of the
//!   redb write-ahead log): the node stops rather than stay up answering loads
//!   while never acknowledging a write again, so that a supervisor restarts it.

use std::path::Path;

use tikaconf::bus::BusHandle;
use tikaconf::store::{RedbStore, Retention, Store, StoreOptions};
use tikaconf::{StorageNode, StorageOptions};
use tikaconf_redis::{AcceptedLoss, Persistence, RedisStore};

use crate::cli::{AcceptedLossArg, Global, StorageArgs, StoreKind};
use crate::credentials::Credentials;
use crate::failure::{Code, Failure};
use crate::{exporter, output, session, shutdown};

pub async fn run(global: &Global, args: &StorageArgs) -> Result<(), Failure> {
    let redis = session::redact(&global.redis);
    // First: a busy address fails before anything else starts, and the
    // recorder must be in place before the node registers its series.
    if let Some(addr) = args.metrics {
        exporter::serve(addr)?;
    }
    session::check_reachable(global).await?;
    match args.store {
        StoreKind::Redb => {
            let store = open_redb(&args.data, args.history.retention).await?;
            let stores = format!(
                "redb file {}, history {}",
                store.path().display(),
                store.retention()
            );
            serve(global, args, store, &redis, &stores).await
        }
        StoreKind::Redis => {
            let (store, stores) =
                open_redis_store(global, args.accept_redis_durability, args.history.retention)
                    .await?;
            serve(global, args, store, &redis, &stores).await
        }
    }
}

/// Opens the shared Redis store (keys under `tikaconf:[NS:]`) and checks that
/// Redis keeps acknowledged writes, or loses no more than `accept` says;
/// returns it with a description for logs. `tikaconf serve --redis` opens the
/// same store, so that its storage node shares it with plain ones.
pub async fn open_redis_store(
    global: &Global,
    accept: Option<AcceptedLossArg>,
    retention: Retention,
) -> Result<(RedisStore, String), Failure> {
    let redis = session::redact(&global.redis);
    let prefix = match global.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("tikaconf:{ns}:"),
        _ => "tikaconf:".to_owned(),
    };
    let ca = Credentials::from_options(global)?.tls_ca_pem;
    let client = tikaconf_redis::bus::open_client(&global.redis, ca.as_deref())
        .map_err(|e| Failure::new(Code::Connect, e).context(format!("Redis at {redis}")))?;
    let store = RedisStore::with_client(client, &prefix)
        .await
        .map_err(|e| Failure::new(Code::Connect, e).context(format!("Redis store at {redis}")))?
        .with_retention(retention);
    let accepted = match accept {
        None => AcceptedLoss::Nothing,
        Some(AcceptedLossArg::Everysec) => AcceptedLoss::EverySec,
        Some(AcceptedLossArg::None) => AcceptedLoss::None,
    };
    let found = store.check_durability(accepted).await.map_err(|e| {
        Failure::other(e).context(format!(
            "refusing to store in Redis at {redis}: acknowledged writes could be lost"
        ))
    })?;
    if !found.is_durable() {
        tracing::warn!(
            %redis,
            persistence = %found,
            "Redis can lose acknowledged writes; accepted with --accept-redis-durability"
        );
    }
    // A store written before the roots listing existed gets its index once.
    let indexed = store.index_roots().await.map_err(|e| {
        Failure::other(e).context(format!("indexing the roots of the Redis store at {redis}"))
    })?;
    if indexed > 0 {
        tracing::info!(%redis, roots = indexed, "listed the roots registered before the index");
    }
    let stores = match found {
        Persistence::Always => format!("Redis keys {prefix}* at {redis}, history {retention}"),
        lossy => {
            format!("Redis keys {prefix}* at {redis}, history {retention} (accepted: {lossy})")
        }
    };
    Ok((store, stores))
}

/// Opens the redb database in `dir`, keeping `retention` of history, creating
/// the directory if missing. Opening may recover a file left by a crash, so it
/// runs off the async threads.
pub async fn open_redb(dir: &Path, retention: Retention) -> Result<RedbStore, Failure> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::other(e).context(format!("cannot create {}", dir.display())))?;
        let options = StoreOptions::default().with_retention(retention);
        RedbStore::open_with(&dir, options).map_err(|e| {
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
    args: &StorageArgs,
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
        verify_for: Some(args.history.verify_for),
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
        failed = node.failed() => return Err(store_failed(failed)),
        () = node.ready() => {}
    }
    let namespace = global.namespace.as_deref().unwrap_or("(none)");
    tracing::info!(%redis, namespace, %stores, "storage node ready");
    output::line(format!(
        "tikaconf storage: listening on {redis} (namespace {namespace}), storing in {stores}"
    ))?;
    tokio::select! {
        () = &mut stop => {}
        failed = node.failed() => {
            node.shutdown().await;
            return Err(store_failed(failed));
        }
    }
    tracing::info!("stopping the storage node");
    let stats = node.status().stats;
    node.shutdown().await;
    tracing::info!(?stats, "storage node stopped");
    Ok(())
}

/// The node stopped because its store can no longer write: exit non-zero, the
/// store's error (with its source) as the reason.
pub fn store_failed(failed: tikaconf::storage_node::NodeFailed) -> Failure {
    Failure::other(failed)
}

#[cfg(test)]
mod tests {
    //! The command's own end when its store fails: run in-process, because the
    //! failure is caused through the store's test-only hook, which a separate
    //! process cannot reach.

    use std::time::Duration;

    use clap::Parser;
    use serde_json::json;
    use tikaconf::{Client, RootConfig};
    use tikaconf_test::RedisServer;

    use super::*;
    use crate::cli::{Cli, Command};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_that_can_no_longer_write_ends_the_command_non_zero_with_the_reason() {
        let redis = RedisServer::start();
        let url = redis.url();
        let cli = Cli::try_parse_from(["tikaconf", "--redis", url.as_str(), "storage"])
            .expect("arguments");
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path()).expect("open");
        let hook = store.clone();
        let serving = tokio::spawn(async move {
            let Command::Storage(args) = &cli.command else {
                unreachable!("parsed as storage")
            };
            serve(&cli.global, args, store, "redis", "redb").await
        });

        let client = Client::connect(&url).await.expect("client");
        // Answered, so the node is up; then one acknowledged write.
        let config = client
            .follow(RootConfig::twitch("#clizombie").expect("root"))
            .await
            .expect("follow");
        config
            .submit(json!([{"op": "add", "path": "/before", "value": 1}]))
            .await
            .expect("stored before the fault");
        hook.inject_log_sync_failure();
        let write = config
            .submit(json!([{"op": "add", "path": "/after", "value": 2}]))
            .await;
        assert!(write.is_err(), "acknowledged on a failed sync: {write:?}");

        let failure = tokio::time::timeout(Duration::from_secs(30), serving)
            .await
            .expect("the storage command kept running on a store that cannot write")
            .expect("the command's task")
            .expect_err("the command must fail");
        assert_eq!(failure.code, Code::Other);
        assert_eq!(failure.exit_code(), std::process::ExitCode::from(1));
        // What `main` prints: the whole chain, down to the failed sync.
        let printed = format!("{:#}", failure.error);
        assert!(printed.contains("can no longer write"), "{printed}");
        assert!(printed.contains("fdatasync failed"), "{printed}");
    }
}
