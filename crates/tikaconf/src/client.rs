//! [`Client`]: a process's connection to a tikaconf deployment.

use std::time::Duration;

use tikaconf_proto::{Channels, FollowerConfig, Hash, Limits, RootConfig};
use tokio::sync::{mpsc, oneshot};

use crate::bus::BusHandle;
use crate::config::Config;
use crate::error::Error;
use crate::hub::{Hub, LoadFailure, Request, RootTarget};

/// Settings of a [`Client`]. Every node of one deployment must agree on
/// `namespace` and `limits`.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Channel namespace (`NS:updates:<hash>`), for deployments sharing a Redis.
    pub namespace: Option<String>,
    pub limits: Limits,
    pub follower: FollowerConfig,
    /// How long [`Client::follow`] waits for storage's answer.
    pub load_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            namespace: None,
            limits: Limits::default(),
            follower: FollowerConfig::default(),
            load_timeout: Duration::from_secs(10),
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

/// What to follow: a root hash, or the root configuration itself (which registers
/// the root with storage if it is new).
#[derive(Debug, Clone)]
pub enum Root {
    Hash(Hash),
    Config(RootConfig),
}

impl From<Hash> for Root {
    fn from(h: Hash) -> Root {
        Root::Hash(h)
    }
}

impl From<RootConfig> for Root {
    fn from(r: RootConfig) -> Root {
        Root::Config(r)
    }
}

impl Client {
    /// Connects to Redis at `url` with default options.
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Client, Error> {
        let bus = BusHandle::redis(url)
            .await
            .map_err(|e| Error::Connect(e.to_string()))?;
        Ok(Client::with_bus(bus, options))
    }

    /// A client over any bus, such as [`crate::memory::Broker::connect`].
    pub fn with_bus(bus: BusHandle, options: ClientOptions) -> Client {
        let channels = Channels::new(options.namespace.as_deref());
        let hub = Hub::spawn(bus, channels, options.limits, options.follower.clone());
        Client { hub, options }
    }

    /// Follows a configuration: returns once its current document is loaded.
    pub async fn follow(&self, root: impl Into<Root>) -> Result<Config, Error> {
        let target = match root.into() {
            Root::Hash(h) => RootTarget::Hash(h),
            Root::Config(r) => RootTarget::Root(r),
        };
        let hash = target.hash();
        let (reply, rx) = oneshot::channel();
        self.hub
            .send(Request::Follow { target, reply })
            .map_err(|_| Error::Closed)?;
        let timeout = self.options.load_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(shared))) => Ok(Config::new(shared, self.hub.clone())),
            Ok(Ok(Err(LoadFailure::UnknownRoot))) => Err(Error::UnknownRoot(hash)),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                let _ = self.hub.send(Request::Unfollow { root: hash });
                Err(Error::LoadTimeout(timeout))
            }
        }
    }
}
