//! The reject corpus (`testdata/wire/rejects/rejects.jsonl`): one loader for every
//! suite that replays it.
//!
//! The corpus is protocol data, but reading it is not protocol logic: records, the
//! placeholders that stand for live hashes, and the channel names they are
//! published on. Both the state-machine test (tikaconf-proto) and the
//! real-Redis test (tikaconf) replay it, so both read it here, with the live
//! values passed in as plain strings. See `testdata/wire/README.md` for the format.

use std::path::Path;

use serde_json::Value;

/// One record of the corpus.
#[derive(Debug, Clone)]
pub struct Record {
    /// The record's name, unique in the corpus, for failure messages.
    pub name: String,
    /// Where to publish it: `head`, `root`, `old`, `update_requests`, or a literal
    /// channel name (placeholders allowed).
    pub channels: Vec<String>,
    /// The message, placeholders not yet substituted.
    pub payload: Vec<u8>,
    /// What a follower that hears it must do: a rejection label, or `None` if
    /// followers never hear it.
    pub follower: Option<String>,
    /// The same for a storage node.
    pub storage: Option<String>,
    /// A substring of the reason the follower must give, when set.
    pub why: Option<String>,
}

/// Reads the whole corpus from the workspace's `testdata`.
pub fn corpus() -> Vec<Record> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/wire/rejects/rejects.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a corpus line is JSON");
            let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            let payload = match (text("payload"), text("payload_b64")) {
                (Some(p), None) => p.into_bytes(),
                (None, Some(b)) => base64(&b),
                _ => panic!("record needs exactly one of payload, payload_b64: {line}"),
            };
            Record {
                name: text("name").expect("name"),
                channels: v["channels"]
                    .as_array()
                    .expect("channels")
                    .iter()
                    .map(|c| c.as_str().expect("channel").to_owned())
                    .collect(),
                payload,
                follower: text("follower"),
                storage: text("storage"),
                why: text("why"),
            }
        })
        .collect()
}

/// Standard base64, as `payload_b64` holds it (a dependency for ten lines would
/// be more than the ten lines).
fn base64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The live values the placeholders stand for, as text.
#[derive(Debug, Clone)]
pub struct Live {
    /// The root hash, 64 hex digits.
    pub root: String,
    /// The root configuration's canonical JSON.
    pub root_config: String,
    /// The live head and the head before it.
    pub head: String,
    /// The head before the live head.
    pub prev: String,
    /// The live head's height.
    pub height: u64,
    /// Another root's hash, and a hash on no chain.
    pub other_root: String,
    /// A hash on no chain.
    pub random: String,
    /// Channel names: `updates:<hash>` for a hash, and `update_requests`.
    pub updates: fn(&str) -> String,
    /// The `update_requests` channel's name.
    pub update_requests: String,
}

impl Live {
    /// Replaces every `{{NAME}}` placeholder.
    pub fn substitute(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = bytes;
        while let Some(start) = find(rest, b"{{") {
            out.extend_from_slice(&rest[..start]);
            let after = &rest[start + 2..];
            let end = find(after, b"}}").expect("unterminated placeholder");
            let name = std::str::from_utf8(&after[..end]).expect("ASCII placeholder");
            out.extend_from_slice(&self.expand(name));
            rest = &after[end + 2..];
        }
        out.extend_from_slice(rest);
        out
    }

    fn expand(&self, name: &str) -> Vec<u8> {
        if let Some(spec) = name.strip_prefix("REP:") {
            let (n, c) = spec.split_once(':').expect("REP:<n>:<char>");
            return c.repeat(n.parse().expect("REP count")).into_bytes();
        }
        let text = match name {
            "ROOT" => self.root.clone(),
            "HEAD" => self.head.clone(),
            "PREV" => self.prev.clone(),
            "HEIGHT" => self.height.to_string(),
            "NEXT" => (self.height + 1).to_string(),
            "OTHER_ROOT" => self.other_root.clone(),
            "RANDOM" => self.random.clone(),
            "ROOT_UPPER" => self.root.to_ascii_uppercase(),
            "HEAD_UPPER" => self.head.to_ascii_uppercase(),
            "ROOT_63" => self.root[..63].to_owned(),
            "ROOT_CONFIG" => self.root_config.clone(),
            other => panic!("unknown placeholder {{{{{other}}}}}"),
        };
        text.into_bytes()
    }

    /// The channel a record's channel entry names.
    pub fn channel(&self, kind: &str) -> String {
        match kind {
            "head" => (self.updates)(&self.head),
            "root" => (self.updates)(&self.root),
            "old" => (self.updates)(&self.prev),
            "update_requests" => self.update_requests.clone(),
            literal => String::from_utf8(self.substitute(literal.as_bytes()))
                .expect("a channel name is UTF-8"),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
