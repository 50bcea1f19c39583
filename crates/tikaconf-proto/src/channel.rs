//! Channel names, with the optional namespace prefix.
//!
//! Updates for a hash travel on `updates:<hash>`; load requests on
//! `update_requests`. A namespace `NS` turns these into `NS:updates:<hash>` and
//! `NS:update_requests`, so several deployments can share one Redis without hearing
//! each other.

use crate::Hash;

/// What a channel name means to tikaconf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// `updates:<hash>`: patches on `hash`, and storage's answers and notices when
    /// `hash` is a root.
    Updates(Hash),
    /// `update_requests`.
    UpdateRequests,
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
        format!("{}updates:{hash}", self.prefix)
    }

    /// `[NS:]update_requests`.
    pub fn update_requests(&self) -> String {
        format!("{}update_requests", self.prefix)
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
        assert_eq!(
            Channels::new(Some("a*b")).updates_pattern(),
            "a\\*b:updates:*"
        );
    }
}
