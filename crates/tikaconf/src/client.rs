//! [`Client`]: a process's connection to a tikaconf deployment.

use std::time::Duration;

use tikaconf_proto::{Channels, FollowerConfig, Limits, SigningKey, TrustSet};
use tokio::sync::{mpsc, oneshot};

use crate::bus::{BusHandle, BusOptions};
use crate::config::Config;
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
        }
    }
}

/// A connection to a deployment: follows any number of configurations over one
/// subscribed connection.
#[derive(Debug, Clone)]
pub struct Client {
    hub: mpsc::UnboundedSender<Request>,
    options: ClientOptions,
}

impl Client {
    /// Connects to Redis at `url` with default options.
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    /// Connects to Redis at `url` (`redis://` or `rediss://`, `user:password@`
    /// as needed) with `options`. Fails only if the first connection fails;
    /// later losses are retried forever.
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Client, Error> {
        let bus = BusHandle::redis_with_options(url, options.tls_ca_pem.as_deref(), options.bus)
            .await
            .map_err(Error::Connect)?;
        Ok(Client::with_bus(bus, options))
    }

    /// A client over any bus, such as [`crate::memory::Broker::connect`].
    pub fn with_bus(bus: BusHandle, options: ClientOptions) -> Client {
        let hub = Hub::spawn(
            bus,
            HubOptions {
                channels: Channels::new(options.namespace.as_deref()),
                limits: options.limits,
                follower: options.follower.clone(),
                trust: options.trust.clone(),
                signer: options.signing_key.clone(),
            },
        );
        Client { hub, options }
    }

    /// Follows a configuration: returns once its current document is loaded.
    pub async fn follow(&self, root: impl Into<Root>) -> Result<Config, Error> {
        let root = root.into();
        let hash = root.hash();
        let (reply, rx) = oneshot::channel();
        self.hub
            .send(Request::Follow { root, reply })
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
