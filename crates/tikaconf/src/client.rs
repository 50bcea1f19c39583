//! [`Client`]: a process's connection to a tikaconf deployment.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tikaconf_proto::{Channels, FollowerConfig, Limits, SigningKey, TrustSet};
use tokio::sync::{mpsc, oneshot};

use crate::bus::{BusHandle, BusOptions};
use crate::cache::HeadCache;
use crate::config::Config;
use crate::connection::{self, ConnectionState, StateReceiver};
use crate::error::Error;
use crate::hub::{Hub, HubOptions};
use crate::root::Root;
use crate::shared::{Handle, LoadFailure, Request};

/// Settings of a [`Client`]. Every node of one deployment must agree on
/// `namespace` and `limits`.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Channel namespace (`NS:updates:<hash>`), for deployments sharing a Redis.
    pub namespace: Option<String>,
    /// Sizes past which a patch, a document or a message is refused (the same
    /// on every node, or nodes disagree on what is valid).
    pub limits: Limits,
    /// The follower state machine's timing: retries of load requests, how long
    /// a patch waits for storage's notice before the follower re-syncs.
    pub follower: FollowerConfig,
    /// How long [`Client::follow`] waits for storage's answer.
    pub load_timeout: Duration,
    /// PEM of the CA that signed a `rediss://` server's certificate, when it is not
    /// one of the platform's web roots.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Accept only messages signed by these keys (empty: no signatures required).
    /// Every node of a deployment must use the same set.
    pub trust: TrustSet,
    /// Sign this client's writes with this key.
    pub signing_key: Option<SigningKey>,
    /// The Redis connections' ping and deadline (how soon a half-open
    /// connection is found) and the bound of the subscribed connection's queue
    /// (how far the client may fall behind before it drops messages and
    /// re-syncs). See [`BusOptions`].
    pub bus: BusOptions,
    /// A JSON Schema every document this client writes must match: each write
    /// ([`Config::submit`], [`Config::update`], ...) is checked against it
    /// before it is published, and refused with
    /// [`InvalidPatch::Schema`](crate::InvalidPatch::Schema) if the result would
    /// not match. A writer's check, not a rule of the protocol: see
    /// [`crate::Schema`] for why.
    #[cfg(feature = "schema")]
    pub schema: Option<crate::Schema>,
    /// A directory where the client keeps each followed root's last head (one
    /// small file per root, written atomically whenever the head changes), so
    /// that [`Client::follow`] can start on the last configuration this
    /// machine knew when Redis or storage is unreachable: at once while the
    /// client is not connected, or when storage has not answered within
    /// `follower.request_timeout`. The follower then keeps asking storage, and
    /// storage's answer replaces the cached document as soon as it comes
    /// ([`Config::from_cache`] says which one a config holds). A cache file
    /// is checked before use and ignored if it fails (logged and counted in
    /// [`Client::stats`]). `None` (the default): no cache, follows wait for
    /// storage as they always did.
    ///
    /// Each root's file is `<root hash>.head`: a header line
    /// `tikaconf-head-cache 1 <hash>`, then the head's snapshot message in
    /// the protocol's canonical encoding, `<hash>` being the protocol's hash
    /// of those bytes. The directory is created on the first write and may be
    /// shared by several clients of one machine (writes use unique temporary
    /// files and atomic renames).
    pub cache_dir: Option<PathBuf>,
    /// Whether [`Client::connect_with`] returns at once even if Redis cannot
    /// be reached yet, and keeps trying in the background (as async-nats's
    /// `retry_on_initial_connect`): with a [`ClientOptions::cache_dir`], an
    /// application can then start and read its configuration while Redis is
    /// down. Writes fail with [`crate::WriteError::Disconnected`] until the
    /// connection is made; [`Client::connection_state`] tells. A bad password
    /// or certificate is then retried too, rather than reported. `false` (the
    /// default): the first connection must succeed, or `connect_with` fails
    /// with [`Error::Connect`]. A malformed URL fails either way.
    pub retry_on_initial_connect: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            namespace: None,
            limits: Limits::default(),
            follower: FollowerConfig::default(),
            load_timeout: Duration::from_secs(10),
            tls_ca_pem: None,
            trust: TrustSet::default(),
            signing_key: None,
            bus: BusOptions::default(),
            #[cfg(feature = "schema")]
            schema: None,
            cache_dir: None,
            retry_on_initial_connect: false,
        }
    }
}

/// A client's own counters, beside each root's [`Config::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Follows whose first document came from the head cache (see
    /// [`ClientOptions::cache_dir`]) because storage had not answered.
    pub cache_loads: u64,
    /// Cache files ignored because they failed their check (damaged, for
    /// another root, of another format) or could not be read.
    pub cache_rejected: u64,
    /// Heads written to the cache. A burst of changes of one root is written
    /// once, with its latest head, so this counts writes, not changes.
    pub cache_writes: u64,
    /// Heads that could not be written to the cache (the previous file stays).
    pub cache_write_failures: u64,
}

/// A connection to a deployment: follows any number of configurations over one
/// subscribed connection.
#[derive(Debug, Clone)]
pub struct Client {
    hub: mpsc::UnboundedSender<Request>,
    options: ClientOptions,
    cache: Option<Arc<HeadCache>>,
    connection: StateReceiver,
}

impl Client {
    /// Connects to Redis at `url` with default options.
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    /// Connects to Redis at `url` (`redis://` or `rediss://`, `user:password@`
    /// as needed) with `options`: fails if the first connection cannot be
    /// made, unless [`ClientOptions::retry_on_initial_connect`] is set; later
    /// losses are retried forever.
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Client, Error> {
        let ca = options.tls_ca_pem.as_deref();
        let bus = if options.retry_on_initial_connect {
            BusHandle::redis_in_background(url, ca, options.bus)
        } else {
            BusHandle::redis_with_options(url, ca, options.bus).await
        }
        .map_err(Error::Connect)?;
        Ok(Client::with_bus(bus, options))
    }

    /// A client over any bus, such as [`crate::memory::Broker::connect`].
    pub fn with_bus(bus: BusHandle, options: ClientOptions) -> Client {
        let cache = options
            .cache_dir
            .clone()
            .map(|dir| Arc::new(HeadCache::new(dir, options.limits)));
        let (state, connection) = connection::channel();
        let hub = Hub::spawn(
            bus,
            HubOptions {
                channels: Channels::new(options.namespace.as_deref()),
                limits: options.limits,
                follower: options.follower.clone(),
                trust: options.trust.clone(),
                signer: options.signing_key.clone(),
                cache: cache.clone(),
            },
            state,
        );
        Client {
            hub,
            options,
            cache,
            connection,
        }
    }

    /// Whether the client is connected to its bus now. Never waits: meant for
    /// a health check or a readiness probe.
    pub fn connection_state(&self) -> ConnectionState {
        *self.connection.borrow()
    }

    /// The client's own counters (the head cache's, so far). Never waits.
    pub fn stats(&self) -> ClientStats {
        let Some(cache) = &self.cache else {
            return ClientStats::default();
        };
        let stats = &cache.stats;
        ClientStats {
            cache_loads: stats.loads.load(Ordering::Relaxed),
            cache_rejected: stats.rejected.load(Ordering::Relaxed),
            cache_writes: stats.writes.load(Ordering::Relaxed),
            cache_write_failures: stats.write_failures.load(Ordering::Relaxed),
        }
    }

    /// Follows a configuration: returns once its current document is loaded,
    /// from storage, or from the head cache when storage is out of reach (see
    /// [`ClientOptions::cache_dir`]).
    pub async fn follow(&self, root: impl Into<Root>) -> Result<Config, Error> {
        let root = root.into();
        let hash = root.hash();
        let cached = match &self.cache {
            Some(cache) => cache.read(hash).await,
            None => None,
        };
        let (reply, rx) = oneshot::channel();
        self.hub
            .send(Request::Follow {
                root,
                cached,
                reply,
            })
            .map_err(|_| Error::Closed)?;
        let timeout = self.options.load_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(shared))) => {
                let config = Config::new(Handle::new(shared, self.hub.clone()));
                #[cfg(feature = "schema")]
                let config = config.with_schema(self.options.schema.clone());
                Ok(config)
            }
            Ok(Ok(Err(LoadFailure::UnknownRoot))) => Err(Error::UnknownRoot(hash)),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                let _ = self.hub.send(Request::Unfollow { root: hash });
                Err(Error::LoadTimeout(timeout))
            }
        }
    }
}
