//! [`Root`]: what an application follows, as it names it.
//!
//! The one type for "which root" from the public API down to the hub: a root
//! hash, or the root configuration itself (which the hub's follower registers
//! with storage if it is new). It lives apart from the client and the hub so
//! that both can use it without importing each other.

use tikaconf_proto::{Hash, Limits, RootConfig};

/// What to follow: a root hash, or the root configuration itself (which registers
/// the root with storage if it is new).
#[derive(Debug, Clone)]
pub enum Root {
    /// A root known by its hash: storage must already have it.
    Hash(Hash),
    /// The root configuration itself, registered with storage if it is new.
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
