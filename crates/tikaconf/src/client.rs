//! [`Client`]: a process's connection to a tikaconf deployment.

use std::time::Duration;

use tikaconf_proto::{Channels, FollowerConfig, Hash, Limits, RootConfig, SigningKey, TrustSet};
use tokio::sync::{mpsc, oneshot};

use crate::bus::{BusHandle, BusOptions};
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
        let bus = BusHandle::redis_with_options(url, options.tls_ca_pem.as_deref(), options.bus)
            .await
            .map_err(|e| Error::Connect(e.to_string()))?;
        Ok(Client::with_bus(bus, options))
    }

    /// A client over any bus, such as [`crate::memory::Broker::connect`].
    pub fn with_bus(bus: BusHandle, options: ClientOptions) -> Client {
        let channels = Channels::new(options.namespace.as_deref());
        let hub = Hub::spawn(bus, channels, &options);
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

/// Why a string does not name a root.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "a root is a root hash (64 lowercase hex digits), `twitch:<channel>`, or connection info as a JSON object: {0}"
)]
pub struct ParseRootError(String);

impl std::str::FromStr for Root {
    type Err = ParseRootError;

    /// Reads a root as users write it: a root hash, `twitch:#tikatoo` (or
    /// `twitch:tikatoo`), or connection info for any other platform as a JSON object
    /// (`{"platform":"discord","guild":"42"}`).
    fn from_str(s: &str) -> Result<Root, ParseRootError> {
        let s = s.trim();
        if let Ok(hash) = s.parse::<Hash>() {
            return Ok(Root::Hash(hash));
        }
        if let Some(channel) = s.strip_prefix("twitch:") {
            return RootConfig::twitch(channel)
                .map(Root::Config)
                .map_err(|e| ParseRootError(e.to_string()));
        }
        if s.starts_with('{') {
            let value = tikaconf_proto::json::parse_strict(s.as_bytes(), Limits::MAX_DEPTH_CEILING)
                .map_err(|e| ParseRootError(e.to_string()))?;
            return RootConfig::from_connection(value)
                .map(Root::Config)
                .map_err(|e| ParseRootError(e.to_string()));
        }
        Err(ParseRootError(format!("{s:?} is none of these")))
    }
}

impl Root {
    /// The root hash.
    pub fn hash(&self) -> Hash {
        match self {
            Root::Hash(h) => *h,
            Root::Config(r) => r.hash(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_spellings_of_a_root() {
        let twitch = RootConfig::twitch("#tikatoo").unwrap();
        let by_name: Root = "twitch:#TikaToo".parse().unwrap();
        assert_eq!(by_name.hash(), twitch.hash());
        let by_hash: Root = twitch.hash().to_string().parse().unwrap();
        assert!(matches!(by_hash, Root::Hash(h) if h == twitch.hash()));
        let by_json: Root = r##"{"platform":"twitch","channel":"#tikatoo"}"##
            .parse()
            .unwrap();
        assert_eq!(by_json.hash(), twitch.hash());
        assert!("nonsense".parse::<Root>().is_err());
        assert!("twitch:".parse::<Root>().is_err());
    }
}
