//! Content hashes: SHA-256 of canonical JSON, written as 64 lowercase hex digits.
//!
//! A [`Hash`](struct@Hash) names a root configuration (its *root hash*) or a
//! patch (the hash of the whole patch object, which names its parent, so hashes
//! form a chain).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::canonical;

/// A SHA-256 digest of canonical JSON bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; 32]);

impl Hash {
    /// Hashes bytes that are already canonical JSON.
    pub fn of_canonical_bytes(bytes: &[u8]) -> Hash {
        Hash(Sha256::digest(bytes).into())
    }

    /// Hashes the canonical (RFC 8785) encoding of `value`.
    pub fn of_value(value: &serde_json::Value) -> Hash {
        Hash::of_canonical_bytes(&canonical::to_vec(value))
    }

    /// The hash whose digest is `bytes` (no hashing: for digests already
    /// computed, and tests).
    pub const fn from_bytes(bytes: [u8; 32]) -> Hash {
        Hash(bytes)
    }

    /// The 32 bytes of the digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, as used in channel names and messages.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        self.push_hex(&mut out);
        out
    }

    /// Appends the 64 hex digits to `out`: a channel name is built on every hop,
    /// and going through `fmt` costs several times the digits themselves.
    pub fn push_hex(&self, out: &mut String) {
        out.push_str(self.hex_digits().as_str());
    }

    fn hex_digits(&self) -> HexDigits {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[(b >> 4) as usize];
            out[2 * i + 1] = DIGITS[(b & 0x0f) as usize];
        }
        HexDigits(out)
    }
}

/// A hash's 64 ASCII hex digits.
struct HexDigits([u8; 64]);

impl HexDigits {
    fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored here.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex_digits().as_str())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_string()[..12])
    }
}

/// Why a string is not a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a hash is exactly 64 lowercase hex digits")]
pub struct ParseHashError;

impl FromStr for Hash {
    type Err = ParseHashError;

    /// Parses exactly 64 *lowercase* hex digits. Upper case is rejected so that every
    /// hash has one spelling, and so one channel name.
    fn from_str(s: &str) -> Result<Hash, ParseHashError> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(ParseHashError);
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(ParseHashError),
        };
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Ok(Hash(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let h = Hash::of_canonical_bytes(b"{}");
        assert_eq!(h.to_string().parse::<Hash>(), Ok(h));
        assert_eq!(
            h.to_string(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn rejects_upper_case_and_wrong_length() {
        let h = Hash::of_canonical_bytes(b"{}").to_string();
        assert!(h.to_uppercase().parse::<Hash>().is_err());
        assert!(h[..63].parse::<Hash>().is_err());
        assert!(format!("{h}0").parse::<Hash>().is_err());
    }
}
