//! `tikaconf serve`: the HTTP API of `tikaconf-server`, with a storage node in
//! the same process, until Ctrl-C or SIGTERM.
//!
//! This command only wires things: which bus (in-process without --redis, the
//! fleet's Redis with it), which store (redb in --data, the shared Redis
//! store, or none), then the API over a client of that bus. The API itself,
//! its statuses and its token check live in `tikaconf-server`.

use std::sync::Arc;

use tikaconf::bus::BusHandle;
use tikaconf::memory::Broker;
use tikaconf::store::Store;
use tikaconf::{Client, StorageNode, StorageOptions};
use tikaconf_server::{Api, ApiOptions, Router, StorageHealth};
use tokio::net::TcpListener;

use crate::cli::{Global, ServeArgs, StoreKind};
use crate::commands::storage::{open_redb, open_redis_store, store_failed};
use crate::credentials::Credentials;
use crate::failure::{Code, Failure};
use crate::{exporter, output, session, shutdown};

/// What `serve` hands from the wiring to the server.
struct Options {
    api: ApiOptions,
    /// Renders `/metrics` (the recorder is installed first thing).
    metrics: metrics_exporter_prometheus::PrometheusHandle,
}

pub async fn run(global: &Global, args: &ServeArgs, redis_given: bool) -> Result<(), Failure> {
    tikaconf_server::check_listen(args.listen, global.token.as_deref())
        .map_err(Failure::bad_input)?;
    // Before the client and the storage node, which register their series
    // with the recorder when they are made.
    let metrics = exporter::install()?;
    let options = Options {
        api: ApiOptions {
            token: global.token.clone().filter(|t| !t.is_empty()),
            // `--author`: the `meta.author` of API writes that name none.
            author: global
                .author
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| ApiOptions::default().author),
            ..ApiOptions::default()
        },
        metrics,
    };
    if !redis_given {
        if args.no_storage || args.store == Some(StoreKind::Redis) {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "--no-storage and --store redis need --redis: without it, this process's own \
                 storage node is the only one"
            )));
        }
        let broker = Broker::new();
        let store = open_redb(&args.data, args.history.retention).await?;
        let stores = format!(
            "redb file {}, history {}",
            store.path().display(),
            store.retention()
        );
        let client = Client::with_bus(broker.connect(), session::client_options(global)?);
        return serve(
            global,
            args,
            options,
            client,
            Some((broker.connect(), store)),
            &stores,
        )
        .await;
    }
    session::check_reachable(global).await?;
    let redis = session::redact(&global.redis);
    let client = Client::connect_with(&global.redis, session::client_options(global)?)
        .await
        .map_err(|e| Failure::from(e).context(format!("Redis at {redis}")))?;
    if args.no_storage {
        return serve::<tikaconf::store::MemoryStore>(global, args, options, client, None, "")
            .await;
    }
    let ca = Credentials::from_options(global)?.tls_ca_pem;
    let bus = || async {
        BusHandle::redis_with_ca(&global.redis, ca.as_deref())
            .await
            .map_err(|e| Failure::new(Code::Connect, e).context(format!("Redis at {redis}")))
    };
    match args.store.unwrap_or(StoreKind::Redis) {
        StoreKind::Redis => {
            let (store, stores) =
                open_redis_store(global, args.accept_redis_durability, args.history.retention)
                    .await?;
            serve(
                global,
                args,
                options,
                client,
                Some((bus().await?, store)),
                &stores,
            )
            .await
        }
        StoreKind::Redb => {
            let store = open_redb(&args.data, args.history.retention).await?;
            let stores = format!(
                "redb file {}, history {}",
                store.path().display(),
                store.retention()
            );
            serve(
                global,
                args,
                options,
                client,
                Some((bus().await?, store)),
                &stores,
            )
            .await
        }
    }
}

/// Starts the storage node (if any) on `storage`'s bus, then serves the API
/// over `client` until a signal, or until the node fails.
async fn serve<S: Store + Clone>(
    global: &Global,
    args: &ServeArgs,
    options: Options,
    client: Client,
    storage: Option<(BusHandle, S)>,
    stores: &str,
) -> Result<(), Failure> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::other(e).context(format!("cannot listen on {}", args.listen)))?;
    let address = listener.local_addr().map_err(Failure::other)?;
    let render = options.metrics;
    let mut api = Api::new(client, options.api).with_metrics(move || render.render());
    let node = match storage {
        Some((bus, store)) => {
            let credentials = Credentials::from_options(global)?;
            let node = Arc::new(StorageNode::spawn(
                bus,
                store.clone(),
                StorageOptions {
                    namespace: global.namespace.clone(),
                    trust: credentials.trust,
                    signing_key: credentials.signing_key,
                    verify_for: Some(args.history.verify_for),
                    ..StorageOptions::default()
                },
            ));
            tokio::select! {
                failed = node.failed() => return Err(store_failed(failed)),
                () = node.ready() => {}
            }
            let status = node.clone();
            api = api.with_store(store).with_storage_health(move || {
                let s = status.status();
                match s.failed {
                    Some(failed) => StorageHealth::Failed(failed.to_string()),
                    None if s.listening => StorageHealth::Ready,
                    None => StorageHealth::Starting,
                }
            });
            Some(node)
        }
        None => None,
    };
    let url = format!("http://{address}");
    let storing = match &node {
        Some(_) => format!("storing in {stores}"),
        None => "no storage node (--no-storage)".to_owned(),
    };
    tracing::info!(%url, %storing, "serving");
    output::line(format!(
        "tikaconf serve: {url} (API {url}/v1, OpenAPI {url}/openapi.json), {storing}"
    ))?;
    let server = tikaconf_server::serve(listener, &api, routes(&api), shutdown::signal());
    let failed = async {
        match &node {
            Some(node) => node.failed().await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        served = server => served.map_err(|e| Failure::other(e).context("the HTTP server failed")),
        failed = failed => Err(store_failed(failed)),
    };
    drop(api);
    if let Some(node) = node.and_then(Arc::into_inner) {
        node.shutdown().await;
    }
    result
}

/// Every route this process serves: the API's (its `/metrics` included), and
/// beside it what the binary adds of its own.
fn routes(api: &Api) -> Router {
    api.router()
}
