//! Channel names, with the optional namespace prefix.
//!
//! Updates for a hash travel on `updates:<hash>`; load requests on
//! `update_requests`; storage's answer to one client's request on that client's
//! `replies:<token>`. A namespace `NS` turns these into `NS:updates:<hash>`,
//! `NS:update_requests` and `NS:replies:<token>`, so several deployments can
//! share one Redis without hearing each other.

use std::fmt;
use std::sync::Arc;

use crate::Hash;

/// What a channel name means to tikaconf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// `updates:<hash>`: patches on `hash`, and storage's answers and notices when
    /// `hash` is a root.
    Updates(Hash),
    /// `update_requests`.
    UpdateRequests,
    /// `replies:<token>`: storage's answers to one client's load requests. Which
    /// client's is for the caller to check (see [`Channels::replies`]).
    Replies,
    /// `storage_nodes`: storage nodes saying which store they serve (see
    /// [`crate::storage::presence`]).
    StorageNodes,
}

/// The name of one client's reply channel: the `<token>` of `replies:<token>`.
///
/// Why a channel per client: storage's answer to a load request is the whole
/// document. Sent on `updates:<root>`, it is heard and decoded by every follower
/// of the root, so each node that loads or re-syncs would make the whole fleet
/// decode a document it already holds. A client names this channel in its
/// requests (`@<token> <request>`) and storage answers there when that request is
/// the only one due for the root.
///
/// One token per client (per connection), not per root: a process following
/// 10,000 roots holds one more subscription, not 10,000. A token is 1 to 64
/// characters from `0-9`, `a-z`, `A-Z`, `_` and `-`; clients pick 128 random bits
/// ([`ReplyToken::from_random`]) so that no two clients share one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReplyToken(Arc<str>);

/// Why a string is not a [`ReplyToken`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a reply token is 1 to 64 characters from 0-9, a-z, A-Z, '_' and '-'")]
pub struct InvalidReplyToken;

impl ReplyToken {
    /// The longest token, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Checks `token`'s spelling.
    pub fn new(token: &str) -> Result<ReplyToken, InvalidReplyToken> {
        ReplyToken::parse(token.as_bytes())
    }

    /// Checks a token received on the wire.
    pub fn parse(token: &[u8]) -> Result<ReplyToken, InvalidReplyToken> {
        if !is_token(token) {
            return Err(InvalidReplyToken);
        }
        let text = std::str::from_utf8(token).map_err(|_| InvalidReplyToken)?;
        Ok(ReplyToken(text.into()))
    }

    /// The token a client uses, from 128 random bits (the caller's randomness:
    /// this crate does no I/O), as 32 lowercase hex digits.
    pub fn from_random(bits: u128) -> ReplyToken {
        ReplyToken(format!("{bits:032x}").into())
    }

    /// The token itself, as it appears in `replies:<token>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The spelling of the names nodes pick for themselves (reply tokens, store ids):
/// 1 to 64 characters from `0-9`, `a-z`, `A-Z`, `_` and `-`, so that they fit in
/// a channel name or a key unescaped.
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-');
    !bytes.is_empty() && bytes.len() <= ReplyToken::MAX_LEN && bytes.iter().all(allowed)
}

impl fmt::Display for ReplyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ReplyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplyToken({})", self.0)
    }
}

/// The channel names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Channels {
    /// `""` or `"NS:"`.
    prefix: String,
}

impl Channels {
    /// Channels with no namespace (`None` or an empty string) or with namespace `ns`.
    pub fn new(namespace: Option<&str>) -> Channels {
        let prefix = match namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}:"),
            _ => String::new(),
        };
        Channels { prefix }
    }

    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.prefix.strip_suffix(':')
    }

    /// `[NS:]updates:<hash>`.
    pub fn updates(&self, hash: &Hash) -> String {
        // Built on every hop (the SUBSCRIBE, later the UNSUBSCRIBE): by hand,
        // which is a fraction of what `format!` costs.
        let mut name = String::with_capacity(self.prefix.len() + "updates:".len() + 64);
        name.push_str(&self.prefix);
        name.push_str("updates:");
        hash.push_hex(&mut name);
        name
    }

    /// `[NS:]update_requests`.
    pub fn update_requests(&self) -> String {
        format!("{}update_requests", self.prefix)
    }

    /// `[NS:]storage_nodes`, where storage nodes say which store they serve.
    pub fn storage_nodes(&self) -> String {
        format!("{}storage_nodes", self.prefix)
    }

    /// `[NS:]replies:<token>`, the channel a client hears its own answers on.
    pub fn replies(&self, token: &ReplyToken) -> String {
        format!("{}replies:{token}", self.prefix)
    }

    /// `[NS:]updates:*`, the pattern storage nodes listen on. Glob characters in
    /// the namespace are escaped, so a namespace never matches another's channels.
    pub fn updates_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() + 9);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str("updates:*");
        pattern
    }

    /// Classifies a channel name; `None` for a name that is not ours (another
    /// namespace, a malformed hash).
    pub fn classify(&self, channel: &[u8]) -> Option<ChannelKind> {
        let rest = channel.strip_prefix(self.prefix.as_bytes())?;
        if rest == b"update_requests" {
            return Some(ChannelKind::UpdateRequests);
        }
        if rest == b"storage_nodes" {
            return Some(ChannelKind::StorageNodes);
        }
        if let Some(token) = rest.strip_prefix(b"replies:") {
            return ReplyToken::parse(token).ok().map(|_| ChannelKind::Replies);
        }
        let hex = rest.strip_prefix(b"updates:")?;
        let hash = std::str::from_utf8(hex).ok()?.parse().ok()?;
        Some(ChannelKind::Updates(hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_with_and_without_namespace() {
        let h = Hash::of_canonical_bytes(b"x");
        for ns in [None, Some("prod")] {
            let c = Channels::new(ns);
            assert_eq!(
                c.classify(c.updates(&h).as_bytes()),
                Some(ChannelKind::Updates(h))
            );
            assert_eq!(
                c.classify(c.update_requests().as_bytes()),
                Some(ChannelKind::UpdateRequests)
            );
        }
        let prod = Channels::new(Some("prod"));
        assert_eq!(prod.updates(&h), format!("prod:updates:{h}"));
        assert_eq!(
            prod.classify(Channels::new(None).updates(&h).as_bytes()),
            None
        );
        assert_eq!(prod.classify(b"prod:updates:nothex"), None);
        let token = ReplyToken::from_random(0xfeed);
        assert_eq!(token.as_str(), "0000000000000000000000000000feed");
        assert_eq!(prod.replies(&token), format!("prod:replies:{token}"));
        assert_eq!(
            prod.classify(prod.replies(&token).as_bytes()),
            Some(ChannelKind::Replies)
        );
        assert_eq!(prod.classify(b"prod:replies:"), None);
        assert_eq!(prod.classify(b"prod:replies:a b"), None);
        assert_eq!(
            Channels::new(Some("a*b")).updates_pattern(),
            "a\\*b:updates:*"
        );
    }

    #[test]
    fn reply_tokens_are_short_and_plain() {
        for good in ["a", "0123456789abcdef", "A_b-C", &"x".repeat(64)] {
            assert_eq!(
                ReplyToken::new(good).map(|t| t.to_string()),
                Ok(good.into())
            );
        }
        for bad in ["", " ", "a b", "a:b", "é", "*", &"x".repeat(65)] {
            assert_eq!(ReplyToken::new(bad), Err(InvalidReplyToken), "{bad:?}");
        }
        assert_ne!(ReplyToken::from_random(1), ReplyToken::from_random(2));
    }
}
