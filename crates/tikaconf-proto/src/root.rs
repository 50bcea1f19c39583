//! Root configurations: where every chain starts.
//!
//! A root configuration is derived from connection info alone, deterministically,
//! so that every node that knows "Twitch channel #tikatoo" computes the same root
//! hash without asking anyone. It is the JSON object `{"connection": C}`.

use serde_json::{Map, Value, json};

use crate::Hash;

/// A root configuration and its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct RootConfig {
    value: Value,
    hash: Hash,
}

/// Why connection info cannot make a root configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    /// [`RootConfig::twitch`] was given something that is not a Twitch channel
    /// name.
    #[error(
        "a Twitch channel name is 1 to 25 ASCII letters, digits or underscores, optionally after '#'"
    )]
    BadTwitchChannel,
    /// [`RootConfig::from_connection`] was given a JSON value other than an
    /// object.
    #[error("connection info must be a JSON object")]
    ConnectionNotAnObject,
    /// The value has members other than `connection`, or `connection` is not an
    /// object.
    #[error("a root configuration is exactly {{\"connection\": {{...}}}}")]
    NotARootConfig,
    /// A registering load request's configuration is larger or deeper than a
    /// snapshot under the node's [`Limits`](crate::Limits) could carry.
    #[error("the root configuration is too large or too deep to fit in a snapshot")]
    TooLarge,
    /// Larger than [`Limits::MAX_ROOT_CONFIG_BYTES`](crate::Limits::MAX_ROOT_CONFIG_BYTES):
    /// connection info, not a document.
    #[error("root configuration of {size} canonical bytes exceeds the limit of {max}")]
    TooLong {
        /// The root configuration's canonical size, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// The JSON is not valid as the protocol reads it (a number out of range,
    /// nesting past the ceiling).
    #[error("connection info is not valid protocol JSON: {0}")]
    Json(#[from] crate::json::JsonError),
}

impl RootConfig {
    /// The root for a Twitch channel. `#TikaToo`, `tikatoo` and `#tikatoo` give the
    /// same root: the name is taken in ASCII lower case with one leading `#`.
    pub fn twitch(channel: &str) -> Result<RootConfig, RootError> {
        let name = channel.strip_prefix('#').unwrap_or(channel);
        let valid = (1..=25).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(RootError::BadTwitchChannel);
        }
        let connection = json!({
            "platform": "twitch",
            "channel": format!("#{}", name.to_ascii_lowercase()),
        });
        RootConfig::from_connection(connection)
    }

    /// The root for any other platform: `connection` is taken as is (after the
    /// protocol's number normalization), and must be a JSON object.
    pub fn from_connection(connection: Value) -> Result<RootConfig, RootError> {
        if !connection.is_object() {
            return Err(RootError::ConnectionNotAnObject);
        }
        let mut map = Map::new();
        map.insert("connection".to_owned(), connection);
        RootConfig::from_value(Value::Object(map))
    }

    /// Accepts a whole root configuration, `{"connection": {...}}` and nothing else,
    /// as sent in a registering load request, of at most
    /// [`Limits::MAX_ROOT_CONFIG_BYTES`](crate::Limits::MAX_ROOT_CONFIG_BYTES)
    /// canonical bytes: every constructor comes here, so no node can build a
    /// root that others would refuse.
    pub fn from_value(value: Value) -> Result<RootConfig, RootError> {
        let value = crate::json::normalize(value, crate::Limits::MAX_DEPTH_CEILING)?;
        match &value {
            Value::Object(m)
                if m.len() == 1 && m.get("connection").is_some_and(Value::is_object) => {}
            _ => return Err(RootError::NotARootConfig),
        }
        let size = crate::canonical::encoded_len(&value);
        let max = crate::Limits::MAX_ROOT_CONFIG_BYTES;
        if size > max {
            return Err(RootError::TooLong { size, max });
        }
        let hash = Hash::of_value(&value);
        Ok(RootConfig { value, hash })
    }

    /// The root hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The root configuration: the document at height 0.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The root configuration, taken out of the [`RootConfig`].
    pub fn into_value(self) -> Value {
        self.value
    }

    /// The canonical bytes, as published in a registering load request.
    pub fn to_canonical(&self) -> Vec<u8> {
        crate::canonical::to_vec(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_info_is_taken_by_value() {
        // Only the Twitch rule normalizes: an object naming Twitch is hashed as given.
        let given = RootConfig::from_connection(
            serde_json::json!({"platform": "twitch", "channel": "#TikaToo"}),
        )
        .unwrap();
        assert_ne!(given.hash(), RootConfig::twitch("#TikaToo").unwrap().hash());
    }

    #[test]
    fn twitch_spellings_share_one_root() {
        let a = RootConfig::twitch("#TikaToo").unwrap();
        let b = RootConfig::twitch("tikatoo").unwrap();
        let c = RootConfig::twitch("#tikatoo").unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(b.hash(), c.hash());
        assert_eq!(
            a.to_canonical(),
            br##"{"connection":{"channel":"#tikatoo","platform":"twitch"}}"##
        );
    }

    #[test]
    fn rejects_bad_channels_and_shapes() {
        for bad in ["", "#", "tika too", "tikatoö", &"x".repeat(26)] {
            assert_eq!(
                RootConfig::twitch(bad),
                Err(RootError::BadTwitchChannel),
                "{bad}"
            );
        }
        assert!(RootConfig::from_connection(json!([1])).is_err());
        assert!(RootConfig::from_value(json!({"connection": {}, "x": 1})).is_err());
        assert!(RootConfig::from_value(json!({"connection": 1})).is_err());
    }

    /// Issue 11: a registration of up to a message's size (1 MiB) of arbitrary
    /// connection info used to be accepted, stored durably and kept in memory.
    /// The cap is on the canonical size of the whole `{"connection": ...}`.
    #[test]
    fn root_configurations_are_capped_at_4_kib() {
        let max = crate::Limits::MAX_ROOT_CONFIG_BYTES;
        assert_eq!(max, 4096);
        // `{"connection":{"x":"..."}}` is 23 bytes around the string's contents.
        let with = |n: usize| json!({"x": "a".repeat(n)});
        let at_cap = RootConfig::from_connection(with(max - 23)).unwrap();
        assert_eq!(at_cap.to_canonical().len(), max);
        assert_eq!(
            RootConfig::from_connection(with(max - 22)),
            Err(RootError::TooLong { size: max + 1, max })
        );
        assert_eq!(
            RootConfig::from_value(json!({"connection": with(1 << 19)})),
            Err(RootError::TooLong {
                size: (1 << 19) + 23,
                max
            })
        );
    }
}
