//! Signed messages: who may change a configuration when Redis itself is not trusted.
//!
//! Anyone who can publish on Redis could otherwise change every bot's
//! configuration. With a [`TrustSet`] of Ed25519 public keys configured, a node
//! accepts on `updates:` channels only messages signed by one of those keys:
//! writers sign their patches, storage nodes their snapshots, `stored` and
//! `unknown` notices. The signature travels in an optional `"sig"` member,
//! `{"key": <public key, 64 hex>, "sig": <signature, 128 hex>}`.
//!
//! What it signs is not the message alone but the message *in its context*
//! (protocol v1.2, [`crate::message::signed_bytes`]): the deployment's namespace,
//! the message's type, the hash of the canonical message *without* the `"sig"`
//! member (for a patch, the patch's hash, so signing never changes a chain's
//! hashes) and, for an `unknown` answer, the channel it answers on. A signature
//! made for one deployment, one kind of message or one requester therefore never
//! verifies for another: a patch signed in namespace `a` cannot be replayed into
//! namespace `b` with the same keys, and an `unknown` sent to one client's reply
//! channel cannot be replayed to every follower of the root.
//!
//! Every node of a deployment must use the same trust set, or they would disagree
//! on which patch counts. An empty trust set (the default) turns verification off;
//! signatures present are then ignored.

use std::collections::HashSet;
use std::fmt;

use ed25519_dalek::{Signer as _, Verifier as _};
use serde_json::{Map, Value};

use crate::Hash;

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

/// An Ed25519 signing key (its 32-byte seed is the secret).
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

/// A message's signature and the key that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// The key that made the signature (and must be trusted for it to count).
    pub key: PublicKey,
    /// The Ed25519 signature over the message's signed bytes.
    pub sig: ed25519_dalek::Signature,
}

/// The public keys whose signatures a node accepts. Empty: no verification.
///
/// Keys may be trusted for one role only: a writer's key for patches, a storage
/// node's key for snapshots and notices. Then a writer whose key leaks cannot
/// forge storage's word (a `stored` notice would tell another writer its write
/// was committed). Keys given to [`TrustSet::new`] are trusted for both roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSet {
    writers: HashSet<[u8; 32]>,
    storage: HashSet<[u8; 32]>,
}

/// What a signed message speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A patch.
    Writer,
    /// A snapshot, `stored` or `unknown` notice.
    Storage,
}

/// Why a key or signature could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not exactly 64 lowercase hex digits.
    #[error("a key is 64 hex digits")]
    BadHex,
    /// 32 bytes that are not a point on the curve, so no key.
    #[error("not a valid Ed25519 public key")]
    BadPublicKey,
}

fn hex_bytes<const N: usize>(s: &str) -> Result<[u8; N], KeyError> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return Err(KeyError::BadHex);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(KeyError::BadHex),
    };
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Ok(out)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl PublicKey {
    /// Reads a public key written as 64 lowercase hex digits (as
    /// [`PublicKey::to_hex`] writes it, and `tikaconf keygen` prints it).
    pub fn from_hex(s: &str) -> Result<PublicKey, KeyError> {
        let bytes = hex_bytes::<32>(s)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::BadPublicKey)
    }

    /// The key's 32 bytes as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        to_hex(self.0.as_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..12])
    }
}

impl SigningKey {
    /// A signing key from its 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A signing key from its seed written as 64 hex digits.
    pub fn from_hex(s: &str) -> Result<SigningKey, KeyError> {
        hex_bytes::<32>(s.trim()).map(SigningKey::from_seed)
    }

    /// The public key that verifies this key's signatures: what the other nodes
    /// put in their [`TrustSet`].
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs the 32 raw bytes of `hash`: the signed bytes of protocol v1.1, kept
    /// for tools and tests that build such signatures (v1.2 nodes reject them as
    /// `bad_signature`). Messages are signed with [`crate::message::sign_canonical`].
    pub fn sign(&self, hash: &Hash) -> Signature {
        self.sign_bytes(hash.as_bytes())
    }

    /// Signs `bytes` as they are (Ed25519 hashes them itself).
    pub fn sign_bytes(&self, bytes: &[u8]) -> Signature {
        Signature {
            key: self.public_key(),
            sig: self.0.sign(bytes),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "SigningKey(public {:?})", self.public_key())
    }
}

impl TrustSet {
    /// Trusts `keys` for every role.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> TrustSet {
        let keys: HashSet<[u8; 32]> = keys.into_iter().map(|k| *k.0.as_bytes()).collect();
        TrustSet {
            writers: keys.clone(),
            storage: keys,
        }
    }

    /// Trusts `writers` for patches only and `storage` for storage's messages only.
    pub fn with_roles(
        writers: impl IntoIterator<Item = PublicKey>,
        storage: impl IntoIterator<Item = PublicKey>,
    ) -> TrustSet {
        TrustSet {
            writers: writers.into_iter().map(|k| *k.0.as_bytes()).collect(),
            storage: storage.into_iter().map(|k| *k.0.as_bytes()).collect(),
        }
    }

    /// True when verification is off.
    pub fn is_empty(&self) -> bool {
        self.writers.is_empty() && self.storage.is_empty()
    }

    /// Whether `key` is trusted for any role.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.trusts(key, Role::Writer) || self.trusts(key, Role::Storage)
    }

    /// Whether `key` is trusted to speak for `role`.
    pub fn trusts(&self, key: &PublicKey, role: Role) -> bool {
        let keys = match role {
            Role::Writer => &self.writers,
            Role::Storage => &self.storage,
        };
        keys.contains(key.0.as_bytes())
    }
}

impl Signature {
    /// The `"sig"` member's value.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("key".into(), Value::String(self.key.to_hex()));
        m.insert("sig".into(), Value::String(self.sig_hex()));
        Value::Object(m)
    }

    /// Reads a `"sig"` member: exactly `{"key": hex, "sig": hex}`.
    pub fn from_value(value: &Value) -> Option<Signature> {
        let Value::Object(m) = value else {
            return None;
        };
        if m.len() != 2 {
            return None;
        }
        let key = PublicKey::from_hex(m.get("key")?.as_str()?).ok()?;
        let sig = hex_bytes::<64>(m.get("sig")?.as_str()?).ok()?;
        Some(Signature {
            key,
            sig: ed25519_dalek::Signature::from_bytes(&sig),
        })
    }

    /// Whether this signs the 32 raw bytes of `hash` (see [`SigningKey::sign`]).
    pub fn verifies(&self, hash: &Hash) -> bool {
        self.verifies_bytes(hash.as_bytes())
    }

    /// Whether this signs exactly `bytes`.
    pub fn verifies_bytes(&self, bytes: &[u8]) -> bool {
        self.key.0.verify(bytes, &self.sig).is_ok()
    }

    /// The signature as 128 lowercase hex digits, as in the `"sig"` member.
    pub fn sig_hex(&self) -> String {
        to_hex(&self.sig.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_a_hash() {
        let key = SigningKey::from_seed([7; 32]);
        let h = Hash::of_canonical_bytes(b"{}");
        let sig = key.sign(&h);
        assert!(sig.verifies(&h));
        assert!(!sig.verifies(&Hash::of_canonical_bytes(b"[]")));
        let back = Signature::from_value(&sig.to_value()).unwrap();
        assert_eq!(back, sig);
        let trust = TrustSet::new([key.public_key()]);
        assert!(trust.contains(&sig.key));
        assert!(!trust.contains(&SigningKey::from_seed([8; 32]).public_key()));
        assert_eq!(
            PublicKey::from_hex(&key.public_key().to_hex()),
            Ok(key.public_key())
        );
        let roles = TrustSet::with_roles([key.public_key()], []);
        assert!(roles.trusts(&key.public_key(), Role::Writer));
        assert!(!roles.trusts(&key.public_key(), Role::Storage));
    }
}
