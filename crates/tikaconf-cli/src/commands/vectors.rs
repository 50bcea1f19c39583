//! `tikaconf vectors`: the protocol test vectors quoted in docs/PROTOCOL.md.
//!
//! The document's examples are printed by the implementation rather than typed by
//! hand, so that they cannot drift from what nodes actually compute: an
//! implementation in another language checks itself against these lines. The
//! output is `key: value` lines in a fixed order; changing it changes the docs.

use serde_json::json;
use tikaconf::RootConfig;
use tikaconf::proto::{Limits, Patch, canonical};

use crate::failure::Failure;
use crate::output;

/// The Twitch channel the vectors are built from.
const CHANNEL: &str = "#tikatoo";

pub fn run() -> Result<(), Failure> {
    for (key, value) in vectors()? {
        output::line(format!("{key}: {value}"))?;
    }
    Ok(())
}

/// The vectors as (key, value) pairs, in output order.
fn vectors() -> Result<Vec<(&'static str, String)>, Failure> {
    let root = RootConfig::twitch(CHANNEL).map_err(Failure::other)?;
    let ops = json!([{"op": "add", "path": "/commands", "value": {"!hello": "Hello, chat!"}}]);
    // The first patch: its parent is the root itself, at height 0.
    let patch =
        Patch::build(root.hash(), root.hash(), 0, ops.clone(), None).map_err(Failure::other)?;
    let document = patch
        .apply_to(root.hash(), 0, root.value(), &Limits::default())
        .map_err(Failure::other)?;
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    Ok(vec![
        ("twitch_channel", CHANNEL.to_owned()),
        ("root_config", text(root.to_canonical())),
        ("root_hash", root.hash().to_hex()),
        ("patch1_ops", text(canonical::to_vec(&ops))),
        ("patch1", text(patch.encoded.to_vec())),
        ("patch1_hash", patch.hash.to_hex()),
        ("document1", text(canonical::to_vec(&document))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_patch_chains_on_the_root() {
        let v = vectors().unwrap();
        let get = |k: &str| v.iter().find(|(key, _)| *key == k).unwrap().1.clone();
        let root = get("root_hash");
        assert_eq!(
            get("root_config"),
            r##"{"connection":{"channel":"#tikatoo","platform":"twitch"}}"##
        );
        assert!(get("patch1").contains(&format!(r#""parent":"{root}""#)));
        assert!(get("patch1").contains(r#""height":1"#));
        assert!(!get("patch1").contains("meta"));
        assert_ne!(get("patch1_hash"), root);
    }
}
