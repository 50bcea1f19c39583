//! The HTTP API of `tikaconf serve`: configurations as JSON resources whose
//! `ETag` is their head hash, conditional writes on it, live changes as
//! Server-Sent Events, and an OpenAPI 3.1 document generated from the code.
//!
//! The server is one [`tikaconf::Client`] (following the roots requests ask
//! for, see [`ApiOptions::followed_roots`]) behind an axum [`Router`]; the
//! process that embeds it decides the bus (in-process or Redis) and whether a
//! storage node runs beside it. [`Api::with_store`] gives the roots listing a
//! store to read; without one, listing answers 501.
//!
//! ```no_run
//! # async fn example(client: tikaconf::Client) -> std::io::Result<()> {
//! use tikaconf_server::{Api, ApiOptions};
//!
//! let api = Api::new(client, ApiOptions::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
//! // More routes (a `/metrics` endpoint, say) merge into `api.router()`.
//! tikaconf_server::serve(listener, &api, api.router(), std::future::pending()).await
//! # }
//! ```
//!
//! Endpoints, statuses and headers: `docs/API.md`.

mod auth;
mod catalog;
mod console;
mod etag;
mod follows;
pub mod meta;
mod openapi;
mod problem;
mod routes;
mod sse;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;
use tikaconf::{Client, Limits};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The router type [`Api::router`] returns, re-exported so that an embedding
/// binary can merge routes of its own without naming axum.
pub use axum::Router;
pub use catalog::Catalog;
pub use etag::HEIGHT_HEADER;
pub use problem::{ApiError, Problem};
pub use routes::configs::{JSON_PATCH, MERGE_PATCH};

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The bearer token every request must present (`Authorization: Bearer`);
    /// `None`: no authentication, for a loopback address only (see
    /// [`check_listen`]).
    pub token: Option<String>,
    /// The largest request body, in bytes; larger ones get 413. Defaults to
    /// the protocol's largest message: a body beyond it could never become a
    /// patch.
    pub max_body_bytes: usize,
    /// How many roots the API keeps followed at once (each costs its document
    /// in memory and a subscription); past it, the root used longest ago is
    /// unfollowed, and followed again (one load) when next asked.
    pub followed_roots: usize,
    /// How often an idle SSE stream gets a comment line, so that proxies keep
    /// it open.
    pub heartbeat: Duration,
    /// The `meta.author` of a write whose request names none (no
    /// `Tikaconf-Author` header).
    pub author: String,
}

impl Default for ApiOptions {
    fn default() -> ApiOptions {
        ApiOptions {
            token: None,
            max_body_bytes: Limits::default().max_message_bytes,
            followed_roots: 1024,
            heartbeat: Duration::from_secs(15),
            author: "api".to_owned(),
        }
    }
}

/// What `/readyz` says of the server's own storage node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageHealth {
    /// Its store is open and it is subscribed and answering.
    Ready,
    /// Not answering yet.
    Starting,
    /// It stopped, for this reason.
    Failed(String),
}

/// The API's state, shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    follows: follows::Follows,
    catalog: Option<Arc<dyn Catalog>>,
    storage: Option<Arc<dyn Fn() -> StorageHealth + Send + Sync>>,
    /// Renders the process's metrics in Prometheus text format, for
    /// `/metrics` (see [`Api::with_metrics`]).
    metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    options: ApiOptions,
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("follows", &self.inner.follows)
            .field("listing", &self.inner.catalog.is_some())
            .field("options", &ApiOptionsRedacted(&self.inner.options))
            .finish_non_exhaustive()
    }
}

/// The options without the token, for `Debug`.
struct ApiOptionsRedacted<'a>(&'a ApiOptions);

impl std::fmt::Debug for ApiOptionsRedacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiOptions")
            .field("token", &self.0.token.as_ref().map(|_| "(set)"))
            .field("max_body_bytes", &self.0.max_body_bytes)
            .field("followed_roots", &self.0.followed_roots)
            .field("heartbeat", &self.0.heartbeat)
            .field("author", &self.0.author)
            .finish()
    }
}

impl Api {
    /// An API that reads and writes through `client` (any bus).
    pub fn new(client: Client, options: ApiOptions) -> Api {
        Api {
            inner: Arc::new(Inner {
                follows: follows::Follows::new(client, options.followed_roots),
                catalog: None,
                storage: None,
                metrics: None,
                options,
                closing: watch::channel(false).0,
            }),
        }
    }

    /// Lists roots from `catalog` (the store of the process's own storage
    /// node). Call before [`Api::router`].
    pub fn with_store(self, catalog: impl Catalog) -> Api {
        self.rebuild(|inner| inner.catalog = Some(Arc::new(catalog)))
    }

    /// Reports the process's own storage node in `/readyz`. Call before
    /// [`Api::router`].
    pub fn with_storage_health(
        self,
        health: impl Fn() -> StorageHealth + Send + Sync + 'static,
    ) -> Api {
        self.rebuild(|inner| inner.storage = Some(Arc::new(health)))
    }

    /// Serves `/metrics`: `render` gives the process's metrics in Prometheus
    /// text format (the embedding binary's exporter, such as
    /// `metrics-exporter-prometheus`'s handle; this crate only counts through
    /// the `metrics` facade and depends on no exporter). Behind the token
    /// like every route. Call before [`Api::router`].
    pub fn with_metrics(self, render: impl Fn() -> String + Send + Sync + 'static) -> Api {
        self.rebuild(|inner| inner.metrics = Some(Arc::new(render)))
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Api {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                follows: follows::Follows::new(
                    shared.follows.client().clone(),
                    shared.options.followed_roots,
                ),
                catalog: shared.catalog.clone(),
                storage: shared.storage.clone(),
                metrics: shared.metrics.clone(),
                options: shared.options.clone(),
                closing: watch::channel(false).0,
            },
        };
        change(&mut inner);
        Api {
            inner: Arc::new(inner),
        }
    }

    /// The routes: `/v1/...`, `/healthz`, `/readyz`, `/metrics` (404 unless
    /// [`Api::with_metrics`]), `/openapi.json`, and the web console (`/` and
    /// `/assets/...`). Every route but the console's needs the token when one
    /// is set: the console's files hold no data, and the page asks for the
    /// token when the API answers 401. The embedding binary may merge more
    /// routes into it; the token layer covers only these.
    pub fn router(&self) -> Router {
        let mut router = Router::new()
            .route("/healthz", get(routes::health::healthz))
            .route("/readyz", get(routes::health::readyz))
            .route("/openapi.json", get(openapi_json))
            .route(
                "/v1/roots",
                get(routes::roots::list).post(routes::roots::register),
            )
            .route(
                "/v1/configs/{root}",
                get(routes::configs::get)
                    .patch(routes::configs::patch)
                    .put(routes::configs::put),
            )
            .route("/v1/configs/{root}/events", get(sse::events))
            .route("/v1/configs/{root}/history", get(routes::history::history))
            .route("/v1/configs/{root}/at/{hash}", get(routes::history::at))
            .route("/v1/configs/{root}/diff", get(routes::history::diff))
            .route("/v1/configs/{root}/verify", get(routes::verify::verify))
            .route(
                "/v1/configs/{root}/rollback",
                axum::routing::post(routes::history::rollback),
            )
            .route("/metrics", get(routes::health::metrics))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(self.inner.options.max_body_bytes))
            .with_state(self.clone());
        if let Some(token) = &self.inner.options.token {
            let token = auth::Token(Arc::from(token.as_bytes()));
            router = router.layer(axum::middleware::from_fn_with_state(token, auth::require));
        }
        // Merged after the token layer, which therefore does not cover them.
        router.merge(
            Router::new()
                .route("/", get(console::page))
                .route("/assets/{*path}", get(console::asset)),
        )
    }

    /// Ends every open SSE stream (the server is shutting down: a graceful
    /// shutdown waits for open responses, and a stream never ends by itself).
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`Api::close_streams`] was called.
    fn closing(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let mut closing = self.inner.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closed| *closed).await;
        }
    }
}

/// The document describes this server: with a token, every operation
/// requires it (so that a client generator, or schemathesis, knows to send it
/// and can check that requests without it are refused).
async fn openapi_json(axum::extract::State(api): axum::extract::State<Api>) -> impl IntoResponse {
    let mut doc = openapi::document();
    if api.inner.options.token.is_some()
        && let Some(doc) = doc.as_object_mut()
    {
        doc.insert("security".into(), serde_json::json!([{ "bearer": [] }]));
    }
    axum::Json(doc)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Why [`check_listen`] refuses an address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address without a token: anyone who can reach the port
    /// could change every configuration.
    #[error(
        "refusing to listen on {0} without a token: it is not a loopback address, so anyone \
         who can reach it could change every configuration; give --token (or TIKACONF_TOKEN), \
         or listen on 127.0.0.1"
    )]
    NoToken(SocketAddr),
}

/// Refuses to serve on a non-loopback address without a token.
pub fn check_listen(addr: SocketAddr, token: Option<&str>) -> Result<(), ServeError> {
    if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(ServeError::NoToken(addr))
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then closes the
/// API's SSE streams and waits for the responses in flight.
pub async fn serve(
    listener: TcpListener,
    api: &Api,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let api = api.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            api.close_streams();
        })
        .await
}
